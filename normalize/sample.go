package normalize

import (
	"slices"
	"strings"
)

// Sample describes a callback to fabricate for testing a deployment without
// the provider (`caddy payhook send`).
type Sample struct {
	Status            Status
	Amount            Amount
	MerchantReference string
	ProviderReference string
}

// SampleBuilder fabricates a provider's callback body for a Sample. It
// returns the body and its Content-Type.
type SampleBuilder func(s Sample) (body []byte, contentType string, err error)

// sampleStatuses lists the statuses a provider's sample builder knows.
func sampleStatuses[V any](m map[Status]V) string {
	names := make([]string, 0, len(m))
	for s := range m {
		names = append(names, string(s))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
