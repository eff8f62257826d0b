package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
)

const (
	unzerPrivateKey     = "s-priv-it0123456789abcdef"
	unzerLivePrivateKey = "p-priv-it0123456789abcdef"
	unzerPublicKey      = "s-pub-it0123456789"
)

// unzerSite routes /callbacks/unzer through payhook with the sandbox key
// (and /callbacks/unzer-live with the production one), fetching from api;
// extra goes to the first route, and to the second unless it names a
// public key.
func unzerSite(api *fakeAPI, extra string) string {
	liveExtra := extra
	if strings.Contains(extra, "public_key") {
		liveExtra = ""
	}
	return fmt.Sprintf(`route /callbacks/unzer-live {
		payhook unzer {
			private_key {env.PAYHOOK_TEST_UNZER_LIVE_KEY}
			api_base %[1]s
			api_timeout 500ms
			%[3]s
		}
		reverse_proxy {upstream}
	}
	route /callbacks/unzer {
		payhook unzer {
			private_key {env.PAYHOOK_TEST_UNZER_KEY}
			api_base %[1]s
			api_timeout 500ms
			%[2]s
		}
		reverse_proxy {upstream}
	}`, api.URL, extra, liveExtra)
}

func startUnzer(t *testing.T, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_UNZER_KEY", unzerPrivateKey)
	t.Setenv("PAYHOOK_TEST_UNZER_LIVE_KEY", unzerLivePrivateKey)
	api := newFakeAPI(t)
	return startCaddy(t, unzerSite(api, extra)), api
}

// trapHost is a server a webhook's retrieveUrl names: payhook must never
// ask it anything (it would get the private key).
func trapHost(t *testing.T) (url string, asked *atomic.Int64) {
	asked = new(atomic.Int64)
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte(unzerPayment("s-pay-1", 1, "completed", "100.0000", "100.0000", "0.0000", "0.0000", "")))
	}))
	t.Cleanup(trap.Close)
	return trap.URL, asked
}

func unzerPayment(id string, stateID int, state, total, charged, canceled, remaining, transactions string) string {
	return fmt.Sprintf(`{"id":%q,"state":{"id":%d,"name":%q},"amount":{"total":%q,"charged":%q,"canceled":%q,"remaining":%q},"currency":"EUR","orderId":"order-1042","resources":{"paymentId":%q},"transactions":[%s]}`,
		id, stateID, state, total, charged, canceled, remaining, id, transactions)
}

func unzerWebhook(event, publicKey, retrieveURL, paymentID string) string {
	return fmt.Sprintf(`{"event":%q,"publicKey":%q,"retrieveUrl":%q,"paymentId":%q}`, event, publicKey, retrieveURL, paymentID)
}

const unzerChargeOK = `{"date":"2026-11-20 10:34:47","type":"charge","status":"success","url":"https://sbx-api.unzer.com/v1/payments/s-pay-1/charges/s-chg-1","amount":"50.0000"}`

// Agreement: the envelope comes from the payment fetched from the
// configured API with the private key; the retrieveUrl's host, a trap
// here, is never asked; the webhook is data.unverified.
func TestUnzerWebhookVerifiedByFetch(t *testing.T) {
	e, api := startUnzer(t, "public_key "+unzerPublicKey)
	trap, trapped := trapHost(t)
	api.set("/v1/payments/s-pay-1", 200, unzerPayment("s-pay-1", 3, "partly", "100.0000", "50.0000", "0.0000", "50.0000", unzerChargeOK))
	webhook := unzerWebhook("charge.succeeded", unzerPublicKey, trap+"/v1/payments/s-pay-1/charges/s-chg-1", "s-pay-1")
	resp, body := e.post("/callbacks/unzer", "text/plain", webhook, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")

	if n := trapped.Load(); n != 0 {
		t.Errorf("the retrieveUrl's host was asked %d times", n)
	}
	asked := api.asked()
	if len(asked) != 1 {
		t.Fatalf("API was asked %d times", len(asked))
	}
	user, password, ok := asked[0].BasicAuth()
	if asked[0].Method != http.MethodGet || asked[0].URL.Path != "/v1/payments/s-pay-1" || !ok || user != unzerPrivateKey || password != "" {
		t.Errorf("API was asked %s %s with %q", asked[0].Method, asked[0].URL, asked[0].Header.Get("Authorization"))
	}
	r, doc := e.onlyDelivery()
	d := doc.Data
	if doc.Source != "payhook/unzer" || d.Status != "captured" || d.ProviderStatus != "partly" || d.ProviderReference != "s-pay-1" ||
		d.MerchantReference != "order-1042" || d.Amount.MinorUnits != 5000 || d.Amount.Currency != "EUR" {
		t.Errorf("envelope: %+v", doc)
	}
	if got := gjson.GetBytes(r.Body, "data.unverified.retrieveUrl").String(); !strings.HasPrefix(got, trap) {
		t.Errorf("data.unverified = %s", gjson.GetBytes(r.Body, "data.unverified").Raw)
	}
	if gjson.GetBytes(r.Body, "data.original").Exists() || gjson.GetBytes(r.Body, "data.test").Raw != "true" ||
		gjson.GetBytes(r.Body, "data.payment_reference").String() != "s-pay-1" {
		t.Errorf("envelope: %s", r.Body)
	}
	if d.Verification["method"] != "api-fetch" || d.Verification["status"] != "partly" || d.Verification["resource"] != "payments/s-pay-1" ||
		d.Verification["claimed_status"] != "charge.succeeded" {
		t.Errorf("verification = %v", d.Verification)
	}
	if strings.Contains(string(r.Body), unzerPrivateKey) || strings.Contains(e.rawLog(), unzerPrivateKey) {
		t.Error("the envelope or the log holds the private key")
	}
}

// A webhook whose retrieveUrl alone names the payment, on a foreign host:
// the payment is fetched from the configured API, the host never asked.
func TestUnzerRetrieveURLHostIsNeverAsked(t *testing.T) {
	e, api := startUnzer(t, "")
	trap, trapped := trapHost(t)
	api.set("/v1/payments/s-pay-1", 200, unzerPayment("s-pay-1", 1, "completed", "100.0000", "100.0000", "0.0000", "0.0000", unzerChargeOK))
	resp, body := e.post("/callbacks/unzer", "application/json",
		`{"event":"payment.completed","publicKey":"s-pub-any","retrieveUrl":"`+trap+`/v1/payments/s-pay-1"}`, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if trapped.Load() != 0 || len(api.asked()) != 1 {
		t.Errorf("trap asked %d times, API %d times", trapped.Load(), len(api.asked()))
	}
	if _, doc := e.onlyDelivery(); doc.Data.Status != "captured" || doc.Data.Amount.MinorUnits != 10000 {
		t.Errorf("envelope: %+v", doc.Data)
	}
}

// A retry of a webhook, the payment unchanged, is the same event (dedupe
// acknowledges it without a second delivery); the payment moved on, or
// another event about it, is a new one.
func TestUnzerRetryKeepsItsIDALaterStateIsNew(t *testing.T) {
	e, api := startUnzer(t, "public_key "+unzerPublicKey)
	path := "/v1/payments/s-pay-1"
	api.set(path, 200, unzerPayment("s-pay-1", 3, "partly", "100.0000", "50.0000", "0.0000", "50.0000", unzerChargeOK))
	charge := unzerWebhook("charge.succeeded", unzerPublicKey, "https://sbx-api.unzer.com/v1/payments/s-pay-1/charges/s-chg-1", "s-pay-1")
	post := func(webhook string) {
		t.Helper()
		resp, body := e.post("/callbacks/unzer", "text/plain", webhook, nil)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	post(charge)
	post(charge) // Unzer's retry
	got := e.upstream.received()
	if len(got) != 1 {
		t.Fatalf("a webhook and its retry reached the shop %d times", len(got))
	}
	first := got[0].Header.Get(EventIDHeader)

	// A refund later: its webhook finds the payment changed.
	api.set(path, 200, unzerPayment("s-pay-1", 3, "partly", "100.0000", "40.0000", "10.0000", "50.0000", unzerChargeOK+
		`,{"date":"2026-11-21 09:00:00","type":"cancel-charge","status":"success","url":"https://sbx-api.unzer.com/v1/payments/s-pay-1/charges/s-chg-1/cancels/s-cnl-1","amount":"10.0000"}`))
	post(unzerWebhook("charge.canceled", unzerPublicKey, "https://sbx-api.unzer.com/v1/payments/s-pay-1/charges/s-chg-1/cancels/s-cnl-1", "s-pay-1"))
	got = e.upstream.received()
	if len(got) != 2 {
		t.Fatalf("the refund's webhook: the shop received %d requests in all, want 2", len(got))
	}
	second := got[1].Header.Get(EventIDHeader)
	if second == first || gjson.GetBytes(got[1].Body, "data.status").String() != "partially_refunded" || gjson.GetBytes(got[1].Body, "data.amount.value").Int() != 1000 {
		t.Errorf("refund: id %s (first %s), %s", second, first, got[1].Body)
	}
}

// Every refusal gets its status, and nothing reaches the shop.
func TestUnzerFailuresForwardNothing(t *testing.T) {
	ok := unzerPayment("s-pay-1", 1, "completed", "10.0000", "10.0000", "0.0000", "0.0000", "")
	tests := []struct {
		name    string
		webhook string
		answer  *apiAnswer // nil: the payment is unknown (404)
		status  int
		reason  string
		noFetch bool
	}{
		{"another merchant's key", unzerWebhook("charge.succeeded", "s-pub-someoneelse", "", "s-pay-1"), &apiAnswer{200, ok}, 401, "key_foreign", true},
		{"a production payment on a sandbox key", unzerWebhook("charge.succeeded", unzerPublicKey, "", "p-pay-1"), &apiAnswer{200, ok}, 401, "key_foreign", true},
		{"a path for a payment id", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1/../../keypair"), &apiAnswer{200, ok}, 400, "resource_invalid", true},
		{"an order id for a payment id", unzerWebhook("charge.succeeded", unzerPublicKey, "", "order-1042"), &apiAnswer{200, ok}, 400, "resource_invalid", true},
		{"a payment event naming no payment", `{"event":"payment.completed","publicKey":"` + unzerPublicKey + `","retrieveUrl":"https://api.unzer.com/v1/types/card/s-crd-1"}`, nil, 400, "field_missing", true},
		{"an event Unzer has not", unzerWebhook("payment.frozen", unzerPublicKey, "", "s-pay-1"), &apiAnswer{200, ok}, 400, "payload_malformed", true},
		{"not JSON", "event=charge.succeeded&paymentId=s-pay-1", nil, 400, "payload_malformed", true},
		{"unknown payment", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), nil, 401, "resource_unknown", false},
		{"unknown payment, errors with 200", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), &apiAnswer{200, `{"errors":[{"code":"API.310.100.003","merchantMessage":"Payment not found"}]}`}, 401, "resource_unknown", false},
		{"API answers 500", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), &apiAnswer{500, `oops`}, 503, "api_unavailable", false},
		{"API refuses the key", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), &apiAnswer{401, `{"errors":[{"code":"API.000.000.001"}]}`}, 503, "api_refused", false},
		{"API answers another payment", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), &apiAnswer{200, strings.ReplaceAll(ok, "s-pay-1", "s-pay-2")}, 503, "api_response_unexpected", false},
		{"amount not exact", unzerWebhook("charge.succeeded", unzerPublicKey, "", "s-pay-1"), &apiAnswer{200, strings.ReplaceAll(ok, "10.0000", "10.0050")}, 400, "amount_inexact", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, api := startUnzer(t, "public_key "+unzerPublicKey)
			if tt.answer != nil {
				api.set("/v1/payments/s-pay-1", tt.answer.status, tt.answer.body)
			}
			resp, body := e.post("/callbacks/unzer", "text/plain", tt.webhook, nil)
			expectAnswer(t, resp, body, tt.status, "")
			e.expectNothingForwarded()
			if tt.noFetch && len(api.asked()) != 0 {
				t.Errorf("the API was asked about a webhook refused before verification")
			}
			entries := e.logEntries(1)
			if len(entries) != 1 || entries[0]["reason"] != tt.reason {
				t.Fatalf("log = %v, want one line with reason %s", entries, tt.reason)
			}
			if strings.Contains(e.rawLog(), unzerPrivateKey) {
				t.Error("the log contains the private key")
			}
		})
	}
}

// Unzer's events that concern no payment (a payment type stored, a
// customer or a basket changed) are acknowledged as Unzer expects, so it
// stops sending them, and nothing is forwarded or fetched.
func TestUnzerEventsOfNoPaymentAreAcknowledged(t *testing.T) {
	e, api := startUnzer(t, "public_key "+unzerPublicKey)
	for i, webhook := range []string{
		`{"event":"types","publicKey":"` + unzerPublicKey + `","retrieveUrl":"https://api.unzer.com/v1/types/card/s-crd-1"}`,
		`{"event":"customer.created","publicKey":"` + unzerPublicKey + `","retrieveUrl":"https://api.unzer.com/v1/customers/s-cst-1"}`,
		`{"event":"basket.used","publicKey":"` + unzerPublicKey + `","retrieveUrl":"https://api.unzer.com/v2/baskets/s-bsk-1"}`,
	} {
		resp, body := e.post("/callbacks/unzer", "text/plain", webhook, nil)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
		entries := e.logEntries(i + 1)
		if last := entries[len(entries)-1]; last["outcome"] != "ignored" || last["reason"] != "not_a_payment" {
			t.Errorf("log = %v, want outcome ignored, reason not_a_payment", last)
		}
	}
	e.expectNothingForwarded()
	if len(api.asked()) != 0 {
		t.Errorf("the API was asked %v", api.asked())
	}
}

// The goldens of normalize/testdata/unzer through Caddy: the stand-in of
// the API serves each case's payment; production payments (p-pay-) go to
// the route with the production key.
func TestUnzerGoldenThroughCaddy(t *testing.T) {
	e, api := startUnzer(t, "dedupe off")
	replayGolden(t, e, "unzer", func(fetched []byte, _ string) {
		api.set("/v1/payments/"+gjson.GetBytes(fetched, "id").String(), 200, string(fetched))
	}, func(req *http.Request, body []byte) (*http.Response, string) {
		path := req.RequestURI
		if strings.Contains(string(body), `"p-pub-`) {
			path += "-live"
		}
		return e.post(path, req.Header.Get("Content-Type"), string(body), nil)
	})
}

// `caddy payhook send unzer --api` stores the sample payment at the demo's
// stand-in of Unzer's API, which payhook then fetches; --secret names the
// route's public key.
func TestSendUnzerThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_UNZER_KEY", unzerPrivateKey)
	e := startCaddy(t, `route /callbacks/unzer* {
		payhook unzer {
			private_key {env.PAYHOOK_TEST_UNZER_KEY}
			public_key `+unzerPublicKey+`
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"captured", "refunded", "chargeback"} {
		t.Run(status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "unzer", e.base+"/callbacks/unzer", sendOptions{
				api: standIn.URL, secret: unzerPublicKey, status: status, amount: "12.30", currency: "EUR", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			_, doc := e.onlyDelivery()
			if doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.MerchantReference != "order-8" {
				t.Errorf("envelope: %+v", doc.Data)
			}
		})
	}
	// Without --secret, the sample's public key is not the route's.
	e.t = t
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "unzer", e.base+"/callbacks/unzer", sendOptions{api: standIn.URL, status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, resp, string(body), http.StatusUnauthorized, "")
	e.expectNothingForwarded()
}

// A key that is not an Unzer private key, or a public key of the other
// environment, is a configuration error that names no secret.
func TestUnzerConfigurationErrors(t *testing.T) {
	for _, tt := range []struct{ key, public, want string }{
		{"sk_live_123", "", "want an Unzer private key"},
		{"s-pub-123", "", "want an Unzer private key"},
		{unzerPrivateKey, "p-pub-123", "public_key: want the public key of the private key's environment, s-pub-"},
		{unzerPrivateKey, "s-priv-123", "public_key: want the public key"},
	} {
		t.Setenv("PAYHOOK_TEST_UNZER_CONF", tt.key)
		p := new(Unzer)
		p.PrivateKey, p.PublicKey = "{env.PAYHOOK_TEST_UNZER_CONF}", tt.public
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := p.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s/%s: %v, want %q without the key", tt.key, tt.public, err, tt.want)
		}
	}
}

// The rejections every provider shares, for Unzer (which posts text/plain,
// so that is no refusal here): another method, another content type, a
// compressed body, a body over max_body. Nothing is forwarded and the API
// is never asked.
func TestUnzerSharedRejections(t *testing.T) {
	e, api := startUnzer(t, "max_body 64KiB")
	big := `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tt := range []struct {
		name, method, contentType, body string
		header                          http.Header
		status                          int
		reason                          string
	}{
		{"GET", http.MethodGet, "", "", nil, 405, "method_not_allowed"},
		{"form", http.MethodPost, formType, "event=charge.succeeded", nil, 415, "content_type_not_accepted"},
		{"compressed", http.MethodPost, "text/plain", "{}", http.Header{"Content-Encoding": {"gzip"}}, 415, "content_type_not_accepted"},
		{"over max_body", http.MethodPost, "text/plain", big, nil, 413, "body_too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			var resp *http.Response
			var answer string
			if tt.body == big {
				resp, answer = e.postUnread("/callbacks/unzer", tt.contentType, tt.body, tt.header)
			} else {
				req := e.postRequest("/callbacks/unzer", tt.contentType, tt.body, tt.header)
				req.Method = tt.method
				if tt.contentType == "" {
					req.Header.Del("Content-Type")
				}
				resp, answer = e.do(req)
			}
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			entries := e.logEntries(1)
			if last := entries[len(entries)-1]; last["reason"] != tt.reason || last["provider"] != "unzer" {
				t.Errorf("log = %v, want reason %s for unzer", last, tt.reason)
			}
		})
	}
	if len(api.asked()) != 0 {
		t.Error("Unzer's API was asked")
	}
}

// A forged webhook naming a payment the API does not know is refused once
// (401); sent again within verify.UnknownFor it is answered 503 without
// asking the API again, so a forger's loop costs one request, and a
// genuine webhook for a payment forged a moment before is retried, not
// refused.
func TestUnzerUnknownPaymentIsRememberedNotAskedAgain(t *testing.T) {
	e, api := startUnzer(t, "")
	webhook := unzerWebhook("charge.succeeded", "s-pub-forged", "", "s-pay-404")
	resp, body := e.post("/callbacks/unzer", "text/plain", webhook, nil)
	expectAnswer(t, resp, body, http.StatusUnauthorized, "")
	for range 5 {
		resp, body = e.post("/callbacks/unzer", "text/plain", webhook, nil)
		expectAnswer(t, resp, body, http.StatusServiceUnavailable, "")
	}
	if n := len(api.asked()); n != 1 {
		t.Errorf("the API was asked %d times about one unknown payment, want 1", n)
	}
	e.expectNothingForwarded()
}

// The outcome of a callback payhook answered without forwarding it is the
// {http.vars.payhook.outcome} placeholder, so that an access log can carry
// it: rejected, ignored; a forwarded one leaves it empty (a dial of
// reverse_proxy's may still read the request's vars, which have no lock).
func TestOutcomePlaceholderInTheAccessLog(t *testing.T) {
	accessLog := t.TempDir() + "/access.log"
	t.Setenv("PAYHOOK_TEST_UNZER_KEY", unzerPrivateKey)
	t.Setenv("PAYHOOK_TEST_UNZER_LIVE_KEY", unzerLivePrivateKey)
	api := newFakeAPI(t)
	e := startCaddy(t, strings.Replace(unzerSite(api, "public_key "+unzerPublicKey), "route /callbacks/unzer {", "route /callbacks/unzer {\n\t\tlog_append payhook_outcome {http.vars.payhook.outcome}", 1)+`
	log {
		output file `+accessLog+`
	}`)
	api.set("/v1/payments/s-pay-1", 200, unzerPayment("s-pay-1", 1, "completed", "10.0000", "10.0000", "0.0000", "0.0000", ""))
	for _, webhook := range []string{
		unzerWebhook("payment.completed", unzerPublicKey, "", "s-pay-1"),
		unzerWebhook("payment.completed", "s-pub-someoneelse", "", "s-pay-1"),
		`{"event":"types","publicKey":"` + unzerPublicKey + `","retrieveUrl":"https://api.unzer.com/v1/types/card/s-crd-1"}`,
	} {
		e.post("/callbacks/unzer", "text/plain", webhook, nil)
	}
	want := []string{"", "rejected", "ignored"}
	var got []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		raw, _ := os.ReadFile(accessLog)
		got = nil
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if line != "" {
				got = append(got, gjson.Get(line, "payhook_outcome").String())
			}
		}
		if len(got) >= len(want) {
			break
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("access log outcomes %q, want %q", got, want)
	}
}
