package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// Mollie's classic webhooks are not signed: a form post of id=tr_… whose
// truth is the payment fetched back from GET /v2/payments/{id} with the
// merchant's API key (docs.mollie.com, "Webhooks"). Its next-gen webhooks
// carry X-Mollie-Signature: "sha256=" and the hex HMAC-SHA256 of the raw
// body under the webhook's signing secret (mollie-api-php's
// SignatureValidator); Mollie sends the header once per secret during a
// rotation.

// maxMollieIDLen bounds a Mollie id; real ones are "tr_" and 10 to 25
// characters.
const maxMollieIDLen = 64

// CheckMolliePaymentID accepts only a Mollie payment id: "tr_" followed by
// ASCII letters and digits. Nothing else ever reaches the API's path, so a
// callback cannot point payhook's request (and its API key) elsewhere.
func CheckMolliePaymentID(id string) error {
	rest, ok := strings.CutPrefix(id, "tr_")
	if !ok || rest == "" || len(id) > maxMollieIDLen {
		return fmt.Errorf("%w: not a Mollie payment id (tr_…)", ErrBadResource)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("%w: character %q in a Mollie id", ErrBadResource, c)
		}
	}
	return nil
}

// MollieEmbed is what the payment is fetched with: its refunds and
// chargebacks, so that each becomes its own event. A constant: nothing of
// the callback is added to the URL but the checked id.
const MollieEmbed = "?embed=refunds,chargebacks"

// Mollie fetches Mollie payments back from the API.
type Mollie struct {
	// APIBase is the API's origin, https://api.mollie.com.
	APIBase string
	// APIKey is the merchant's API key (live_… or test_…), sent as a bearer
	// token.
	APIKey []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// Fetch GETs the payment id (checked by CheckMolliePaymentID) with its
// refunds and chargebacks embedded.
func (v *Mollie) Fetch(ctx context.Context, id string) (Result, error) {
	if err := CheckMolliePaymentID(id); err != nil {
		return Result{}, err
	}
	// Mollie answers an id it cannot find with 404 and an id of the other
	// mode (a test payment asked with a live key) with 4xx too: unknown.
	doc, err := v.Fetcher.getDocument(ctx, strings.TrimRight(v.APIBase, "/")+"/v2/payments/"+id+MollieEmbed,
		http.Header{"Authorization": {"Bearer " + string(v.APIKey)}})
	if err != nil {
		return Result{}, err
	}
	payment := gjson.ParseBytes(doc)
	if payment.Get("resource").String() != "payment" || payment.Get("id").String() != id {
		return Result{}, fmt.Errorf("%w: asked for payment %s, got %s %s", ErrAPIResponse, id,
			truncate(payment.Get("resource").String(), 24), truncate(payment.Get("id").String(), 80))
	}
	return Result{Method: "api-fetch", Resource: "payments/" + id, Status: payment.Get("status").String(), Fetched: doc}, nil
}

// CheckMollieSignature checks X-Mollie-Signature headers (one per signing
// secret during a rotation, each "sha256=<hex>" or bare hex) against the
// raw body: any header matching any secret verifies. No header is
// ErrNotSigned; headers none of which decode are ErrMalformedSignature.
func CheckMollieSignature(secrets [][]byte, headers []string, body []byte) error {
	if len(headers) == 0 {
		return ErrNotSigned
	}
	var macs [][]byte
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		macs = append(macs, mac.Sum(nil))
	}
	decoded, tried := false, 0
	for _, header := range headers {
		for value := range strings.SplitSeq(header, ",") {
			if tried++; tried > 8 { // a rotation sends two; more is not Mollie
				break
			}
			value = strings.TrimPrefix(strings.TrimSpace(value), "sha256=")
			sig, err := hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				continue
			}
			decoded = true
			for _, mac := range macs {
				if hmac.Equal(sig, mac) {
					return nil
				}
			}
		}
	}
	if !decoded {
		return ErrMalformedSignature
	}
	return ErrBadSignature
}

// SignMollie returns an X-Mollie-Signature value for body.
func SignMollie(secret, body []byte) string {
	return "sha256=" + SignHexHMACSHA256(secret, body)
}
