package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// MultiSafepay notifies a website's notification URL of an order's new
// status in two ways (docs.multisafepay.com "Handle notifications" and
// "How does the notification URL work?"):
//
//   - a POST of the order (JSON) with an Auth header, the base64 of
//     "<timestamp>:<hex HMAC-SHA512 of "<timestamp>:<body>" keyed with the
//     website's API key>" (MultiSafepay/php-sdk Notification::
//     verifyNotification), checked by MultiSafepaySignature;
//   - the older notification: a GET (or a POST without Auth) carrying only
//     ?transactionid=<the merchant's order_id>&timestamp=<…> in the URL,
//     for which the merchant fetches the order, GET /v1/json/orders/{id}
//     with the api_key header (MultiSafepay/php-sdk Client), which
//     MultiSafepay.Fetch does.
//
// Both are answered 200 with OK in the body.

// MultiSafepay API origins with their path (MultiSafepay/php-sdk Client
// LIVE_URL and TEST_URL).
const (
	MultiSafepayAPI     = "https://api.multisafepay.com/v1/json"
	MultiSafepayTestAPI = "https://testapi.multisafepay.com/v1/json"
)

// MultiSafepayMaxSkew is how old an Auth timestamp may be: the PHP SDK's
// default validation time, 600 s; payhook bounds the future alike.
const MultiSafepayMaxSkew = 10 * time.Minute

// MultiSafepaySignature is the verifier of the Auth header: the generic
// HMAC scheme, as the multisafepay preset described it, with the API keys
// as secrets (any one verifies).
func MultiSafepaySignature(apiKeys [][]byte, maxSkew time.Duration) (*HMAC, error) {
	content, err := ParseTemplate("{timestamp}:{body}")
	if err != nil {
		return nil, err
	}
	if maxSkew <= 0 {
		maxSkew = MultiSafepayMaxSkew
	}
	v := &HMAC{
		Secrets:         apiKeys,
		Algorithm:       "sha512",
		Header:          "Auth",
		HeaderEncoding:  "base64",
		Fields:          []string{"timestamp", "signature"},
		FieldSeparator:  ":",
		Encoding:        "hex",
		Content:         content,
		TimestampFormat: "seconds",
		MaxSkew:         maxSkew,
	}
	return v, v.Check()
}

// maxMultiSafepayOrderIDLen bounds an order id. MultiSafepay's API takes
// order ids of up to 50 characters; twice that leaves room.
const maxMultiSafepayOrderIDLen = 100

// CheckMultiSafepayOrderID accepts an order id that can name one order in
// the API's path: 1 to 100 printable ASCII characters other than space,
// '/', '\\', '?', '#' and '%'. The order id is the merchant's own, so it
// has no fixed form; these bounds keep a callback from pointing payhook's
// request, and its API key, anywhere but one order.
func CheckMultiSafepayOrderID(id string) error {
	if id == "" || len(id) > maxMultiSafepayOrderIDLen {
		return fmt.Errorf("%w: a MultiSafepay order id is 1 to %d characters", ErrBadResource, maxMultiSafepayOrderIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`/\?#%`, c) >= 0 {
			return fmt.Errorf("%w: character %q in a MultiSafepay order id", ErrBadResource, c)
		}
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: a MultiSafepay order id %q", ErrBadResource, id)
	}
	return nil
}

// MultiSafepay fetches orders back from MultiSafepay's API.
type MultiSafepay struct {
	// APIBase is MultiSafepayAPI or MultiSafepayTestAPI (with its path).
	APIBase string
	// APIKey is the website's API key.
	APIKey []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// Fetch GETs the order id (checked by CheckMultiSafepayOrderID) and
// returns its "data", the order, checked to be that order.
func (v *MultiSafepay) Fetch(ctx context.Context, id string) (Result, error) {
	if err := CheckMultiSafepayOrderID(id); err != nil {
		return Result{}, err
	}
	resp, err := v.Fetcher.Get(ctx, strings.TrimRight(v.APIBase, "/")+"/orders/"+url.PathEscape(id),
		http.Header{"Api_key": {string(v.APIKey)}, "Accept": {"application/json"}})
	if err != nil {
		return Result{}, err
	}
	if resp.Status == http.StatusNotFound {
		return Result{}, fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, resp.Status)
	}
	doc, err := apiDocument(resp)
	if err != nil {
		return Result{}, err
	}
	answer := gjson.ParseBytes(doc)
	if !answer.Get("success").Bool() {
		// {"success":false,"error_code":1006,"error_info":"Invalid
		// transaction ID"} is MultiSafepay's answer for an order it does
		// not know; an invalid API key is 1032.
		code := answer.Get("error_code").String()
		if code == "1006" {
			return Result{}, fmt.Errorf("%w: error %s", ErrUnknownResource, code)
		}
		return Result{}, fmt.Errorf("%w: error %s (HTTP %d)", ErrAPIResponse, truncate(code, 16), resp.Status)
	}
	order := answer.Get("data")
	if !order.IsObject() {
		return Result{}, fmt.Errorf("%w: no order in the answer (HTTP %d)", ErrAPIResponse, resp.Status)
	}
	if got := order.Get("order_id").String(); got != id {
		return Result{}, fmt.Errorf("%w: asked for order %s, got %s", ErrAPIResponse, id, truncate(got, 80))
	}
	return Result{Method: "api-fetch", Resource: "orders/" + id, Status: order.Get("status").String(), Fetched: []byte(order.Raw)}, nil
}
