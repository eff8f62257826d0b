package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// ErrBadResource means the resource a callback names is not a path payhook
// will ever request: the callback is refused without any outbound request.
var ErrBadResource = errors.New("resource reference invalid")

// maxPSPPathLen bounds a Swedbank Pay resource path; real ones are under 150.
const maxPSPPathLen = 256

// CheckPSPPath accepts only a Swedbank Pay resource path: "/psp/" followed
// by non-empty segments of ASCII letters, digits, '-' and '_'. That leaves
// no room for a scheme, a host, "..", a query, percent-encoding, a
// backslash or any other trick that could point payhook's request (and its
// bearer token) anywhere but under the configured API base.
func CheckPSPPath(path string) error {
	if len(path) > maxPSPPathLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadResource, maxPSPPathLen)
	}
	rest, ok := strings.CutPrefix(path, "/psp/")
	if !ok || rest == "" {
		return fmt.Errorf("%w: not a /psp/ path", ErrBadResource)
	}
	for segment := range strings.SplitSeq(rest, "/") {
		if segment == "" {
			return fmt.Errorf("%w: empty path segment", ErrBadResource)
		}
		for i := 0; i < len(segment); i++ {
			c := segment[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: character %q in path", ErrBadResource, c)
			}
		}
	}
	return nil
}

// SwedbankPay verifies Swedbank Pay (PayEx) callbacks, which are not
// signed, the way Swedbank Pay's documentation requires: by GETting the
// resource the callback names with the merchant's bearer token and acting
// on what that returns. The callback's claim is a /psp/… path.
type SwedbankPay struct {
	// APIBase is the API's origin: https://api.payex.com, or
	// https://api.externalintegration.payex.com for the test environment.
	APIBase string
	// Token is the merchant's API bearer token.
	Token []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// swedbankKinds maps a claim's kind to the top-level field of the API's
// answer that holds the resource.
var swedbankKinds = map[string]string{"paymentorder": "paymentOrder", "transaction": "transaction", "payment": "payment"}

// Expansions asked for, each a constant: the callback never adds to a URL.
//
// payeeInfo: without it, Checkout v2 and v3.0 orders (and legacy payments)
// carry only a link to their payeeInfo, so the merchant's orderReference
// and payeeReference would be missing from the envelope.
//
// financialtransactions: the captures, sales, cancellations and reversals
// of a Checkout v3 order, so that the envelope reports the one a callback
// is about, with its own amount (a partial capture, a partial reversal),
// rather than the order as a whole.
const (
	expandPayeeInfo    = "?$expand=payeeInfo"
	expandPaymentOrder = "?$expand=payeeInfo,financialtransactions"
)

// Verify fetches cb.Claim back. For a transaction, whose document has no
// currency, it also fetches the payment the transaction belongs to and
// expands it in place of its link, as Swedbank Pay's $expand would.
func (v *SwedbankPay) Verify(ctx context.Context, cb *Callback) (Result, error) {
	field, ok := swedbankKinds[cb.Claim.Kind]
	if !ok {
		return Result{}, fmt.Errorf("%w: unknown kind %q", ErrBadResource, truncate(cb.Claim.Kind, 24))
	}
	query := expandPayeeInfo
	switch field {
	case "paymentOrder":
		query = expandPaymentOrder
	case "transaction":
		query = "" // a transaction carries its payeeReference itself
		field = swedbankTransactionField(cb.Claim.ID)
	}
	doc, err := v.get(ctx, cb.Claim.ID, query, field)
	if err != nil {
		return Result{}, err
	}
	res := Result{Method: "api-fetch", Resource: cb.Claim.ID, Fetched: doc}
	switch cb.Claim.Kind {
	case "transaction":
		var payment []byte
		if paymentPath := gjson.GetBytes(doc, "payment"); paymentPath.Type == gjson.String {
			if payment, err = v.get(ctx, paymentPath.Str, expandPayeeInfo, "payment"); err != nil {
				return Result{}, err
			}
		}
		if res.Fetched, err = SwedbankPayTransactionDocument(cb.Claim.ID, doc, payment); err != nil {
			return Result{}, err
		}
		transaction := gjson.GetBytes(res.Fetched, "transaction")
		res.Status = strings.TrimSpace(transaction.Get("type").String() + " " + transaction.Get("state").String())
	case "payment":
		res.Status = swedbankResource(doc, field).Get("state").String()
	default:
		order := swedbankResource(doc, field)
		res.Status = cmp.Or(order.Get("status").String(), order.Get("state").String()) // a state: Checkout v2
	}
	return res, nil
}

// swedbankTransactionFields maps the collection a legacy transaction's path
// names to the field of the GET answer that holds it: GET …/captures/<id>
// answers {"payment": "/psp/…", "capture": {"id": …, "transaction": {…}}},
// GET …/transactions/<id> {"payment": "/psp/…", "transaction": {…}}. The
// portal once printed a reversal's path with "reversal" in the singular.
var swedbankTransactionFields = map[string]string{
	"transactions": "transaction", "authorizations": "authorization", "captures": "capture",
	"reversals": "reversal", "reversal": "reversal", "cancellations": "cancellation",
	"sales": "sale", "verifications": "verification",
}

// swedbankTransactionField is the field a legacy transaction's GET answer
// holds it in (one of the constants above; "transaction" for a path of
// any other shape).
func swedbankTransactionField(path string) string {
	segments := strings.Split(path, "/")
	if len(segments) >= 2 {
		if field, ok := swedbankTransactionFields[strings.ToLower(segments[len(segments)-2])]; ok {
			return field
		}
	}
	return "transaction"
}

// SwedbankPayTransactionDocument is what the verifier hands on for a legacy
// transaction: {"payment": <the payment's GET answer's payment>,
// "transaction": <the transaction>}, from the answers to GET path and GET
// of the payment it links to (paymentAnswer may be empty when the answer
// has the payment expanded or names none). A transaction answered inside
// its kind's object ("capture": {"transaction": {…}}) is taken from there.
func SwedbankPayTransactionDocument(path string, answer, paymentAnswer []byte) ([]byte, error) {
	if !gjson.ValidBytes(answer) || (len(paymentAnswer) > 0 && !gjson.ValidBytes(paymentAnswer)) {
		return nil, fmt.Errorf("%w: not JSON", ErrAPIResponse)
	}
	field := swedbankTransactionField(path)
	resource := gjson.GetBytes(answer, field)
	if !resource.IsObject() {
		return nil, fmt.Errorf("%w: no %s in the answer", ErrAPIResponse, field)
	}
	transaction := resource
	if inner := resource.Get("transaction"); inner.IsObject() {
		transaction = inner
	}
	payment := gjson.GetBytes(answer, "payment")
	if len(paymentAnswer) > 0 {
		payment = gjson.GetBytes(paymentAnswer, "payment")
	}
	doc := `{"transaction":` + transaction.Raw + `}`
	if payment.IsObject() {
		doc = `{"payment":` + payment.Raw + `,"transaction":` + transaction.Raw + `}`
	}
	return []byte(doc), nil
}

// swedbankResource is the resource an answer holds at field. A payment
// order is also read as "paymentorder": Checkout v2's answers, as the
// developer portal prints most of them, spell it so.
func swedbankResource(doc []byte, field string) gjson.Result {
	resource := gjson.GetBytes(doc, field)
	if !resource.IsObject() && field == "paymentOrder" {
		resource = gjson.GetBytes(doc, "paymentorder")
	}
	return resource
}

// get fetches path with query (a constant of this file, never from the
// callback) and checks that the answer holds the resource at field with that
// id.
func (v *SwedbankPay) get(ctx context.Context, path, query, field string) ([]byte, error) {
	if err := CheckPSPPath(path); err != nil {
		return nil, err
	}
	resp, err := v.Fetcher.Get(ctx, strings.TrimRight(v.APIBase, "/")+path+query, http.Header{"Authorization": {"Bearer " + string(v.Token)}})
	if err != nil {
		return nil, err
	}
	if resp.Status >= 400 {
		switch query {
		case expandPaymentOrder:
			// Checkout v2 orders have no financial transactions to expand.
			return v.get(ctx, path, expandPayeeInfo, field)
		case expandPayeeInfo:
			// Should the API ever refuse the expansion itself, a callback
			// without its references beats a real payment refused as unknown.
			return v.get(ctx, path, "", field)
		}
		// Swedbank Pay answers an id it cannot parse with 400 and a problem document.
		return nil, fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, resp.Status)
	}
	doc, err := apiDocument(resp)
	if err != nil {
		return nil, err
	}
	resource := swedbankResource(doc, field)
	if !resource.IsObject() {
		return nil, fmt.Errorf("%w: no %s in the answer", ErrAPIResponse, field)
	}
	if id := resource.Get("id").String(); !strings.EqualFold(id, path) {
		return nil, fmt.Errorf("%w: asked for %s, got %s", ErrAPIResponse, path, truncate(id, 80))
	}
	return doc, nil
}
