package verify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// Unzer's webhooks are not signed: a JSON body {event, publicKey,
// retrieveUrl, paymentId} that only names a resource. Unzer's documentation
// ("Notifications", docs.unzer.com) says to fetch the resource from the
// Unzer API's own domain, never to trust the retrieveUrl's, and to act only
// on the state fetched. payhook fetches the payment, GET
// /v1/payments/{paymentId}, with the merchant's private key as the user of
// HTTP basic authentication (an empty password), as Unzer's SDKs do.

// ErrForeignKey means the callback names another merchant's public key (or
// an environment other than the configured key's): it is not for this route.
var ErrForeignKey = errors.New("callback is for another merchant's key")

// Unzer API hosts: unzerdev/php-sdk PaymentApiConfig and unzerdev/java-sdk
// ApiUrls send sandbox keys (s-…) to the sandbox host and production keys
// (p-…) to the production one.
const (
	UnzerAPI        = "https://api.unzer.com"
	UnzerSandboxAPI = "https://sbx-api.unzer.com"
)

// maxUnzerIDLen bounds a payment id: "s-pay-" and a number or a UUID.
const maxUnzerIDLen = 64

// CheckUnzerPaymentID accepts only an Unzer payment id: "s-pay-" (sandbox)
// or "p-pay-" (production) followed by lower-case letters, digits and '-'
// (unzerdev/php-sdk IdService: [sp]-pay-[a-z\d-]+). Nothing else ever
// reaches the API's path, so a callback cannot point payhook's request, and
// its private key, anywhere else.
func CheckUnzerPaymentID(id string) error {
	if len(id) > maxUnzerIDLen {
		return fmt.Errorf("%w: an Unzer payment id longer than %d bytes", ErrBadResource, maxUnzerIDLen)
	}
	rest, ok := strings.CutPrefix(id, "s-pay-")
	if !ok {
		rest, ok = strings.CutPrefix(id, "p-pay-")
	}
	if !ok || rest == "" {
		return fmt.Errorf("%w: not an Unzer payment id (s-pay-… or p-pay-…)", ErrBadResource)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: character %q in an Unzer payment id", ErrBadResource, c)
		}
	}
	return nil
}

// UnzerEnvironment is the environment a key or id names by its first
// letter: "s" (sandbox) or "p" (production); "" for anything else.
func UnzerEnvironment(keyOrID string) string {
	if len(keyOrID) > 2 && keyOrID[1] == '-' && (keyOrID[0] == 's' || keyOrID[0] == 'p') {
		return keyOrID[:1]
	}
	return ""
}

// Unzer fetches Unzer payments back from the Payment API.
type Unzer struct {
	// APIBase is the API's origin: UnzerAPI, or UnzerSandboxAPI for
	// sandbox keys.
	APIBase string
	// PrivateKey is the merchant's private key (s-priv-… or p-priv-…).
	PrivateKey []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// Fetch GETs the payment id (checked by CheckUnzerPaymentID) and checks
// that the answer is that payment.
func (v *Unzer) Fetch(ctx context.Context, id string) (Result, error) {
	if err := CheckUnzerPaymentID(id); err != nil {
		return Result{}, err
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString(append(append([]byte(nil), v.PrivateKey...), ':'))
	resp, err := v.Fetcher.Get(ctx, strings.TrimRight(v.APIBase, "/")+"/v1/payments/"+id, http.Header{"Authorization": {auth}})
	if err != nil {
		return Result{}, err
	}
	if resp.Status >= 400 {
		// Unzer answers a payment it does not know (API.310.100.003) with
		// an error document; 404 is ErrUnknownResource already.
		return Result{}, fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, resp.Status)
	}
	doc, err := apiDocument(resp)
	if err != nil {
		return Result{}, err
	}
	payment := gjson.ParseBytes(doc)
	if errs := payment.Get("errors"); errs.IsArray() && len(errs.Array()) > 0 {
		// unzerdev/php-sdk HttpService treats an "errors" list as a failure
		// whatever the status.
		code := errs.Get("0.code").String()
		if code == "API.310.100.003" {
			return Result{}, fmt.Errorf("%w: %s", ErrUnknownResource, code)
		}
		return Result{}, fmt.Errorf("%w: error %s (HTTP %d)", ErrAPIResponse, truncate(code, 40), resp.Status)
	}
	if got := payment.Get("id").String(); got != id {
		return Result{}, fmt.Errorf("%w: asked for payment %s, got %s", ErrAPIResponse, id, truncate(got, 80))
	}
	state := payment.Get("state.name").String()
	if state == "" {
		state = payment.Get("state.id").String()
	}
	return Result{Method: "api-fetch", Resource: "payments/" + id, Status: state, Fetched: doc}, nil
}
