package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// fakeStripe stands in for Stripe's API: it answers GET of the objects it
// holds to the restricted key, and records every request.
type fakeStripe struct {
	*httptest.Server
	mu       sync.Mutex
	objects  map[string]string // path → object
	requests []*http.Request
}

const stripeRestrictedKey = "rk_test_it_payhook_0123456789"

func newFakeStripe(t *testing.T, objects map[string]string) *fakeStripe {
	f := &fakeStripe{objects: objects}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r.Clone(r.Context()))
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+stripeRestrictedKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`))
			return
		}
		object, ok := f.objects[r.URL.Path]
		if !ok || r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"resource_missing"}}`))
			return
		}
		_, _ = w.Write([]byte(object))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeStripe) taken() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

func stripeThinSite(api *fakeStripe, withKey bool) string {
	key := ""
	if withKey {
		key = "api_key {env.PAYHOOK_TEST_STRIPE_KEY}"
	}
	return fmt.Sprintf(`route /hooks/stripe* {
		payhook stripe {
			secret {env.PAYHOOK_TEST_STRIPE_SECRET}
			%s
			api_base %s
		}
		reverse_proxy {upstream}
	}`, key, api.URL)
}

// fetchWithStripeLibrary has Stripe's own library parse a thin event and
// fetch its related object (from the stand-in, whose address it is given),
// as Stripe documents a receiver must.
const fetchWithStripeLibrary = `
const [secret, header, body, port, key] = process.argv.slice(1);
const stripe = new (require("stripe"))(key, {host: "127.0.0.1", port: Number(port), protocol: "http"});
const notification = stripe.parseEventNotification(body, header, secret);
notification.fetchRelatedObject().then(o => console.log(o.id), e => console.log("error: " + e.message));`

// A thin event (API v2 event destinations) signed by Stripe's library: the
// route fetches the object it names from Stripe's API exactly as Stripe's
// library does (the same path, key, Stripe-Context and
// Stripe-Request-Trigger), and the shop receives the event as the
// snapshot event of that type. Its retry is a duplicate; a forged one, a
// route without an api_key and an object path off Stripe's API fetch
// nothing.
func TestStripeThinEventThroughCaddy(t *testing.T) {
	dir := npmPackage(t, stripePackage)
	api := newFakeStripe(t, map[string]string{
		"/v1/payment_intents/pi_thin_1": `{"id":"pi_thin_1","object":"payment_intent","amount":2500,"amount_received":2500,"currency":"eur",` +
			`"status":"succeeded","metadata":{"order_id":"order-thin-1"},"livemode":false}`,
	})
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	t.Setenv("PAYHOOK_TEST_STRIPE_KEY", stripeRestrictedKey)
	e := startCaddy(t, stripeThinSite(api, true))
	thin := func(id, url string) string {
		return `{"id":"` + id + `","object":"v2.core.event","type":"v1.payment_intent.succeeded","livemode":false,` +
			`"created":"2026-12-07T10:00:00.123Z","related_object":{"id":"pi_thin_1","type":"payment_intent","url":"` + url + `"},"context":"acct_1Thin"}`
	}
	sign := func(body string) http.Header {
		return http.Header{"Stripe-Signature": {runNode(t, dir, signWithStripeLibrary, stripeSecret, strconv.FormatInt(time.Now().Unix(), 10), body)}}
	}
	body := thin("evt_thin_1", "/v1/payment_intents/pi_thin_1")
	header := sign(body)
	resp, answer := e.post("/hooks/stripe", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.Amount == nil || doc.Data.Amount.MinorUnits != 2500 || doc.Data.Amount.Currency != "EUR" ||
		doc.Subject != "order-thin-1" || gjson.GetBytes(r.Body, "data.original.data.object.id").String() != "pi_thin_1" ||
		gjson.GetBytes(r.Body, "data.original.type").String() != "payment_intent.succeeded" ||
		!strings.Contains(gjson.GetBytes(r.Body, "data.verification").Raw, "api-fetch") {
		t.Errorf("envelope: %s", r.Body)
	}
	requests := api.taken()
	if len(requests) != 1 {
		t.Fatalf("payhook sent %d API requests, want 1", len(requests))
	}
	ours := requests[0]

	// Stripe's library fetches the same object the same way.
	u, _ := url.Parse(api.URL)
	if got := runNode(t, dir, fetchWithStripeLibrary, stripeSecret, header.Get("Stripe-Signature"), body, u.Port(), stripeRestrictedKey); got != "pi_thin_1" {
		t.Fatalf("Stripe's library: %s", got)
	}
	theirs := api.taken()[1]
	for _, name := range []string{"Authorization", "Stripe-Context", "Stripe-Request-Trigger"} {
		if ours.Header.Get(name) != theirs.Header.Get(name) {
			t.Errorf("%s: payhook sent %q, Stripe's library %q", name, ours.Header.Get(name), theirs.Header.Get(name))
		}
	}
	if ours.URL.Path != theirs.URL.Path || ours.Method != theirs.Method {
		t.Errorf("payhook asked %s %s, Stripe's library %s %s", ours.Method, ours.URL.Path, theirs.Method, theirs.URL.Path)
	}

	// Stripe's retry: a duplicate, nothing forwarded.
	e.upstream.reset()
	resp, answer = e.post("/hooks/stripe", "application/json", body, sign(body))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.expectNothingForwarded()

	before := len(api.taken())
	for _, tt := range []struct {
		name, body string
		header     http.Header
		status     int
		reason     string
	}{
		{"forged", thin("evt_thin_2", "/v1/payment_intents/pi_thin_1"),
			http.Header{"Stripe-Signature": {"t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"}},
			http.StatusUnauthorized, "signature_mismatch"},
		{"off the API", thin("evt_thin_3", "https://evil.example/v1/payment_intents/pi_thin_1"), nil, http.StatusBadRequest, "resource_invalid"},
		{"climbing", thin("evt_thin_4", "/v1/../../evil"), nil, http.StatusBadRequest, "resource_invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			header := tt.header
			if header == nil {
				header = sign(tt.body)
			}
			resp, answer := e.post("/hooks/stripe", "application/json", tt.body, header)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
	e.t = t
	if n := len(api.taken()); n != before {
		t.Errorf("the refused events caused %d API requests", n-before)
	}
}

// A route without an api_key answers a genuine thin event 503, so that
// Stripe retries until the operator gives it one, and says why.
func TestStripeThinEventWithoutAPIKey(t *testing.T) {
	dir := npmPackage(t, stripePackage)
	api := newFakeStripe(t, nil)
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	e := startCaddy(t, stripeThinSite(api, false))
	body := `{"id":"evt_thin_9","object":"v2.core.event","type":"v1.payment_intent.succeeded","livemode":false,` +
		`"created":"2026-12-07T10:00:00Z","related_object":{"id":"pi_9","type":"payment_intent","url":"/v1/payment_intents/pi_9"}}`
	header := http.Header{"Stripe-Signature": {runNode(t, dir, signWithStripeLibrary, stripeSecret, strconv.FormatInt(time.Now().Unix(), 10), body)}}
	resp, answer := e.post("/hooks/stripe", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusServiceUnavailable, "")
	e.expectNothingForwarded()
	e.expectReason("thin_event_without_api_key")
	if n := len(api.taken()); n != 0 {
		t.Errorf("%d API requests without a key", n)
	}
}

// `caddy payhook send stripe --thin --api` stores the sample payment
// intent at the demo's stand-in of Stripe's API and sends the signed thin
// event naming it: payhook fetches it there, and the shop gets the event
// as the snapshot event of the same type would make it.
func TestSendStripeThinThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_DEMO_STRIPE_SECRET", demoSecrets["STRIPE_WEBHOOK_SECRET"])
	t.Setenv("PAYHOOK_TEST_DEMO_STRIPE_KEY", demoSecrets["STRIPE_API_KEY"])
	e := startCaddy(t, `route /callbacks/stripe* {
		payhook stripe {
			secret {env.PAYHOOK_TEST_DEMO_STRIPE_SECRET}
			api_key {env.PAYHOOK_TEST_DEMO_STRIPE_KEY}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"captured", "authorized", "failed"} {
		t.Run(status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "stripe", e.base+"/callbacks/stripe", sendOptions{
				thin: true, api: standIn.URL, secret: "whsec_demo", status: status, amount: "12.30", currency: "EUR", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			if doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.MerchantReference != "order-8" ||
				gjson.GetBytes(r.Body, "data.original.object").String() != "event" || gjson.GetBytes(r.Body, "data.original.related_object.url").String() == "" ||
				!strings.Contains(gjson.GetBytes(r.Body, "data.verification.also").Raw, "api-fetch") {
				t.Errorf("envelope: %s", r.Body)
			}
		})
	}
	// A thin event whose object the stand-in does not hold (no --api).
	e.t = t
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "stripe", e.base+"/callbacks/stripe", sendOptions{
		thin: true, secret: "whsec_demo", status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Errorf("a thin event naming an unknown object: %s %s", resp.Status, body)
	}
	e.expectNothingForwarded()
	// --api without --thin: a snapshot event names nothing to store.
	if _, _, err := sendSample(t.Context(), "stripe", e.base+"/callbacks/stripe", sendOptions{
		api: standIn.URL, secret: "whsec_demo", status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second,
	}); err == nil || !strings.Contains(err.Error(), "--thin") {
		t.Errorf("--api without --thin: %v", err)
	}
}
