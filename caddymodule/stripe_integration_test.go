package caddymodule

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// stripePackage is Stripe's official Node.js library, the independent
// signer of these tests.
const stripePackage = "stripe@23.1.0"

const signWithStripeLibrary = `
const [secret, ts, body] = process.argv.slice(1);
const stripe = new (require("stripe"))("sk_test_payhook");
console.log(stripe.webhooks.generateTestHeaderString({payload: body, secret, timestamp: Number(ts)}));`

const stripeSecret = "whsec_it_stripe_0123456789abcdef"

func stripeSite() string {
	return `route /hooks/stripe* {
		payhook stripe {
			secret {env.PAYHOOK_TEST_STRIPE_SECRET}
			max_body 64KiB
		}
		reverse_proxy {upstream}
	}`
}

// An event signed by Stripe's own library reaches the shop; forged, stale,
// future and malformed ones are refused with nothing forwarded.
func TestStripeThroughCaddy(t *testing.T) {
	dir := npmPackage(t, stripePackage)
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	e := startCaddy(t, stripeSite())
	body := `{"id":"evt_it_1","object":"event","type":"payment_intent.succeeded","livemode":false,"created":1795320000,` +
		`"data":{"object":{"id":"pi_it_1","object":"payment_intent","amount":10000,"amount_received":10000,"currency":"mga","metadata":{"order_id":"order-77"}}}}`
	send := func(secret string, at time.Time, mutate func(http.Header)) (*http.Response, string) {
		t.Helper()
		header := http.Header{"Stripe-Signature": {runNode(t, dir, signWithStripeLibrary, secret, strconv.FormatInt(at.Unix(), 10), body)}}
		if mutate != nil {
			mutate(header)
		}
		return e.post("/hooks/stripe", "application/json; charset=utf-8", body, header)
	}
	resp, answer := send(stripeSecret, time.Now(), nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.Amount.MinorUnits != 1000000 || doc.Data.Amount.Currency != "MGA" ||
		doc.Subject != "order-77" || gjson.GetBytes(r.Body, "data.test").String() != "true" || r.Header.Get("Stripe-Signature") != "" {
		t.Errorf("envelope: %s", r.Body)
	}
	e.upstream.reset()
	for _, tt := range []struct {
		name   string
		secret string
		at     time.Time
		mutate func(http.Header)
		status int
		reason string
	}{
		{"forged", "whsec_forger", time.Now(), nil, 401, "signature_mismatch"},
		{"stale", stripeSecret, time.Now().Add(-6 * time.Minute), nil, 401, "date_outside_window"},
		{"future", stripeSecret, time.Now().Add(6 * time.Minute), nil, 401, "date_outside_window"},
		{"no signature", stripeSecret, time.Now(), func(h http.Header) { h.Del("Stripe-Signature") }, 401, "signature_missing"},
		{"only v0", stripeSecret, time.Now(), func(h http.Header) {
			h.Set("Stripe-Signature", strings.Replace(h.Get("Stripe-Signature"), "v1=", "v0=", 1))
		}, 401, "signature_missing"},
		{"malformed", stripeSecret, time.Now(), func(h http.Header) { h.Set("Stripe-Signature", "t=1,v1=zz") }, 401, "date_outside_window"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			resp, answer := send(tt.secret, tt.at, tt.mutate)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
	// Signed, but not an event payhook can read: 400.
	e.t = t
	bad := `{"id":"evt_it_2","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount_received":4010,"currency":"isk"}}}`
	header := http.Header{"Stripe-Signature": {runNode(t, dir, signWithStripeLibrary, stripeSecret, strconv.FormatInt(time.Now().Unix(), 10), bad)}}
	resp, answer = e.post("/hooks/stripe", "application/json", bad, header)
	expectAnswer(t, resp, answer, http.StatusBadRequest, "")
	e.expectNothingForwarded()
}

// Every Stripe golden event, signed afresh, reaches the shop as its golden
// envelope.
func TestStripeGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	e := startCaddy(t, strings.Replace(stripeSite(), "max_body 64KiB", "max_body 64KiB\n\t\t\tdedupe off", 1))
	replayGolden(t, e, "stripe", nil, func(req *http.Request, body []byte) (*http.Response, string) {
		r := e.postRequest("/hooks/stripe", req.Header.Get("Content-Type"), string(body), nil)
		signStripe(r, body, []byte(stripeSecret), time.Now())
		return e.do(r)
	})
}
