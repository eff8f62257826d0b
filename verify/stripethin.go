package verify

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// maxStripePathLen bounds a thin event's related_object.url; real ones
// are under 100 bytes.
const maxStripePathLen = 256

// CheckStripeObjectPath accepts only a Stripe API object path: "/v1/" or
// "/v2/" followed by non-empty segments of ASCII letters, digits and '_'.
// That leaves no room for a scheme, a host, "..", a query or an escape
// that could point payhook's request, and its API key, anywhere but under
// the configured API base.
func CheckStripeObjectPath(path string) error {
	if len(path) > maxStripePathLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadResource, maxStripePathLen)
	}
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		if rest, ok = strings.CutPrefix(path, "/v2/"); !ok {
			return fmt.Errorf("%w: not a /v1/ or /v2/ path", ErrBadResource)
		}
	}
	if rest == "" {
		return fmt.Errorf("%w: no object in the path", ErrBadResource)
	}
	for segment := range strings.SplitSeq(rest, "/") {
		if segment == "" {
			return fmt.Errorf("%w: empty path segment", ErrBadResource)
		}
		for i := 0; i < len(segment); i++ {
			c := segment[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
				return fmt.Errorf("%w: character %q in path", ErrBadResource, c)
			}
		}
	}
	return nil
}

// checkStripeContext accepts a thin event's context (a connected account,
// "acct_…", or a path of them joined by '/'), sent back as Stripe-Context.
func checkStripeContext(context string) error {
	if len(context) > maxStripePathLen {
		return fmt.Errorf("%w: context longer than %d bytes", ErrBadResource, maxStripePathLen)
	}
	for i := 0; i < len(context); i++ {
		c := context[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '/') {
			return fmt.Errorf("%w: character %q in context", ErrBadResource, c)
		}
	}
	return nil
}

// StripeThin fetches the object a Stripe thin event names, after the
// event's signature verified: thin events carry only a reference, and
// Stripe's documentation (and its SDKs' fetchRelatedObject) has the
// receiver GET related_object.url with its API key.
type StripeThin struct {
	// APIBase is the API's origin: https://api.stripe.com.
	APIBase string
	// APIKey is a restricted key (rk_…) with read access to the objects
	// the events name, or a secret key (sk_…).
	APIKey []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// Fetch GETs the object at path (related_object.url) in context (the
// thin event's, "" for the account itself) and checks that it is the
// object id. The request carries what Stripe's SDKs send with it:
// the key as a bearer token, Stripe-Context, and Stripe-Request-Trigger
// naming the event.
func (v *StripeThin) Fetch(ctx context.Context, eventID, id, path, stripeContext string) ([]byte, error) {
	if err := CheckStripeObjectPath(path); err != nil {
		return nil, err
	}
	if err := checkStripeContext(stripeContext); err != nil {
		return nil, err
	}
	header := http.Header{"Authorization": {"Bearer " + string(v.APIKey)}}
	if stripeContext != "" {
		header.Set("Stripe-Context", stripeContext)
	}
	if eventID != "" && len(eventID) <= 128 && !strings.ContainsAny(eventID, "\r\n") {
		header.Set("Stripe-Request-Trigger", "event="+eventID)
	}
	// Stripe answers an id it does not know with 404 and a malformed one
	// with 400: unknown.
	doc, err := v.Fetcher.getDocument(ctx, strings.TrimRight(v.APIBase, "/")+path, header)
	if err != nil {
		return nil, err
	}
	if got := gjson.GetBytes(doc, "id").String(); got != id {
		return nil, fmt.Errorf("%w: asked for %s, got %s", ErrAPIResponse, truncate(id, 80), truncate(got, 80))
	}
	return doc, nil
}
