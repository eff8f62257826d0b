package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// EnvelopeContentType is the Content-Type of the forwarded envelope
// (CloudEvents structured mode).
const EnvelopeContentType = "application/cloudevents+json; charset=utf-8"

// envelope is the CloudEvents 1.0 document, field for field as in the README.
type envelope struct {
	SpecVersion     string       `json:"specversion"`
	ID              string       `json:"id"`
	Source          string       `json:"source"`
	Type            string       `json:"type"`
	Subject         string       `json:"subject,omitempty"`
	Time            string       `json:"time"`
	DataContentType string       `json:"datacontenttype"`
	Data            envelopeData `json:"data"`
}

type envelopeData struct {
	Provider          string          `json:"provider"`
	Object            Object          `json:"object"`
	Status            Status          `json:"status"`
	ProviderStatus    string          `json:"provider_status"`
	MerchantReference *string         `json:"merchant_reference"`
	ProviderReference *string         `json:"provider_reference"`
	Amount            *Amount         `json:"amount"`
	Test              *bool           `json:"test"`
	Failure           *Failure        `json:"failure"`
	Verification      any             `json:"verification"`
	ReceivedAt        string          `json:"received_at"`
	Original          json.RawMessage `json:"original"`
	Fetched           json.RawMessage `json:"fetched,omitempty"`
}

// ID returns the event's deterministic id: the lowercase hex of the first 16
// bytes of SHA-256 over "payhook-event-v1", provider, object,
// provider_reference, provider_status, canonical status, amount value and
// currency, each followed by a NUL byte. The canonical status is included
// because some providers keep their own status word while the state moves
// on (a Swedbank Pay order stays "Paid" from authorization to capture). Retries and replays of one provider event share
// it; another status, amount or transaction changes it. When the callback
// carries no provider reference, the SHA-256 of the original payload stands
// in for it.
func (e *Event) ID() string {
	h := sha256.New()
	reference := e.ProviderReference
	if reference == "" {
		sum := sha256.Sum256(e.Original)
		reference = "sha256:" + hex.EncodeToString(sum[:])
	}
	value, currency := "", ""
	if e.Amount != nil {
		value, currency = strconv.FormatInt(e.Amount.MinorUnits, 10), e.Amount.Currency
	}
	for _, part := range [...]string{"payhook-event-v1", e.Provider, string(e.Object), reference, e.ProviderStatus, string(e.Status), value, currency} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Type returns the CloudEvents type, payhook.<object>.<status>.
func (e *Event) Type() string {
	return "payhook." + string(e.Object) + "." + string(e.Status)
}

const (
	timeLayout       = "2006-01-02T15:04:05Z07:00"
	receivedAtLayout = "2006-01-02T15:04:05.000Z07:00"
)

// Encode returns the envelope for e: verification describes how authenticity
// was established (it must hold no secret), receivedAt is when the callback
// arrived. The output is compact JSON without HTML escaping.
func Encode(e *Event, verification any, receivedAt time.Time) ([]byte, error) {
	receivedAt = receivedAt.UTC()
	eventTime := receivedAt
	if !e.Time.IsZero() {
		eventTime = e.Time.UTC()
	}
	env := envelope{
		SpecVersion:     "1.0",
		ID:              e.ID(),
		Source:          "payhook/" + e.Provider,
		Type:            e.Type(),
		Subject:         e.MerchantReference,
		Time:            eventTime.Format(timeLayout),
		DataContentType: "application/json",
		Data: envelopeData{
			Provider:          e.Provider,
			Object:            e.Object,
			Status:            e.Status,
			ProviderStatus:    e.ProviderStatus,
			MerchantReference: nullable(e.MerchantReference),
			ProviderReference: nullable(e.ProviderReference),
			Amount:            e.Amount,
			Test:              e.Test,
			Failure:           e.Failure,
			Verification:      verification,
			ReceivedAt:        receivedAt.Format(receivedAtLayout),
			Original:          e.Original,
			Fetched:           e.Fetched,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&env); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
