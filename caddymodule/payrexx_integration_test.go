package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

const payrexxAPIKey = "it-payrexx-api-secret"

// payrexxSite routes /callbacks/payrexx* through payhook, fetching from api.
func payrexxSite(provider string, api *fakeAPI, extra string) string {
	return fmt.Sprintf(`route /callbacks/payrexx* {
		payhook %s {
			instance myshop
			api_key {env.PAYHOOK_TEST_PAYREXX_KEY}
			api_base %s
			api_timeout 500ms
			%s
		}
		reverse_proxy {upstream}
	}`, provider, api.URL, extra)
}

func startPayrexx(t *testing.T, provider, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_PAYREXX_KEY", payrexxAPIKey)
	api := newFakeAPI(t)
	return startCaddy(t, payrexxSite(provider, api, extra)), api
}

const (
	payrexxTransactionPath = "/v1.14/Transaction/4711/"
	payrexxConfirmedDoc    = `{"id":4711,"uuid":"a1b2","status":"confirmed","mode":"LIVE","referenceId":"order-2001","amount":4590,"time":"2026-11-20T10:34:47+01:00","invoice":{"currency":"CHF","referenceId":"order-2001"},"contact":{"email":"max@example.ch"}}`
	payrexxForm            = "transaction%5Bid%5D=4711&transaction%5Bstatus%5D=confirmed&transaction%5Bamount%5D=4590&transaction%5Binvoice%5D%5Bcurrency%5D=CHF&transaction%5Binvoice%5D%5Bcustom_fields%5D%5B0%5D%5Bname%5D=Hobby&transaction%5Binvoice%5D%5Bcustom_fields%5D%5B0%5D%5Bvalue%5D=Golf&transaction%5Bcontact%5D%5Bemail%5D=max%40example.ch"
	formType               = "application/x-www-form-urlencoded"
)

func apiSuccess(doc string) string { return `{"status":"success","data":[` + doc + `]}` }

// Agreement, form-encoded: the envelope comes from the API's document, the
// decoded webhook is data.unverified, the document data.fetched.
func TestPayrexxFormWebhookVerifiedByFetch(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "")
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")

	asked := api.asked()
	if len(asked) != 1 || asked[0].URL.Path != payrexxTransactionPath || asked[0].URL.Query().Get("instance") != "myshop" ||
		asked[0].Header.Get("X-Api-Key") != payrexxAPIKey {
		t.Fatalf("API was asked %d times; first: %v", len(asked), asked)
	}
	r, doc := e.onlyDelivery()
	d := doc.Data
	if doc.Source != "payhook/payrexx" || d.Status != "captured" || d.ProviderStatus != "confirmed" || d.ProviderReference != "4711" ||
		d.MerchantReference != "order-2001" || d.Amount.MinorUnits != 4590 || d.Amount.Currency != "CHF" {
		t.Errorf("envelope: %+v", doc)
	}
	// Nobody signed the webhook: it is kept apart, never data.original.
	if got := gjson.GetBytes(r.Body, "data.unverified.transaction.invoice.custom_fields.0.value").String(); got != "Golf" {
		t.Errorf("data.unverified is not the decoded form: %s", gjson.GetBytes(r.Body, "data.unverified").Raw)
	}
	if gjson.GetBytes(r.Body, "data.original").Exists() {
		t.Errorf("the unsigned webhook was forwarded as data.original")
	}
	if got := gjson.GetBytes(r.Body, "data.fetched.uuid").String(); got != "a1b2" {
		t.Errorf("data.fetched = %s", gjson.GetBytes(r.Body, "data.fetched").Raw)
	}
	if d.Verification["method"] != "api-fetch" || d.Verification["status"] != "confirmed" || d.Verification["resource"] != "Transaction/4711" {
		t.Errorf("verification = %v", d.Verification)
	}
	if strings.Contains(string(r.Body), payrexxAPIKey) {
		t.Error("the envelope contains the API key")
	}
}

func TestPayrexxJSONWebhookVerifiedByFetch(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "")
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	resp, body := e.post("/callbacks/payrexx", "application/json", `{"transaction":{"id":4711,"status":"confirmed","metadata":[]}}`, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if unverified := gjson.GetBytes(r.Body, "data.unverified").Raw; doc.Data.Status != "captured" || unverified != `{"transaction":{"id":4711,"status":"confirmed","metadata":[]}}` {
		t.Errorf("envelope: %+v, data.unverified %s", doc.Data, unverified)
	}
}

// Disagreement: the API wins; what the webhook claimed is recorded.
func TestPayrexxAPIWinsOverTheWebhook(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "")
	api.set(payrexxTransactionPath, 200, apiSuccess(`{"id":4711,"status":"declined","amount":100,"invoice":{"currency":"CHF"},"referenceId":"order-2001"}`))
	resp, body := e.post("/callbacks/payrexx", "application/json",
		`{"transaction":{"id":4711,"status":"confirmed","amount":999999,"referenceId":"order-2001","invoice":{"currency":"EUR"}}}`, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	_, doc := e.onlyDelivery()
	d := doc.Data
	if d.Status != "failed" || d.Amount.MinorUnits != 100 || d.Amount.Currency != "CHF" || d.Verification["claimed_status"] != "confirmed" {
		t.Errorf("envelope: status %s amount %+v verification %v; want the API's declined 100 CHF", d.Status, d.Amount, d.Verification)
	}
}

// Every failure gets its status, and nothing reaches the shop.
func TestPayrexxFailuresForwardNothing(t *testing.T) {
	tests := []struct {
		name     string
		answer   *apiAnswer // nil: unknown id (the fake answers 404)
		slow     bool
		webhook  string
		status   int
		reason   string
		level    string
		noFetch  bool
		logCheck string
	}{
		{"unknown id", nil, false, `{"transaction":{"id":4711}}`, 401, "resource_unknown", "warn", false, ""},
		{"unknown id, empty data", &apiAnswer{200, `{"status":"success","data":[]}`}, false, `{"transaction":{"id":4711}}`, 401, "resource_unknown", "warn", false, ""},
		{"API answers 500", &apiAnswer{500, `oops`}, false, `{"transaction":{"id":4711}}`, 503, "api_unavailable", "error", false, ""},
		{"API answers 503", &apiAnswer{503, ``}, false, `{"transaction":{"id":4711}}`, 503, "api_unavailable", "error", false, ""},
		{"API too slow", &apiAnswer{200, apiSuccess(payrexxConfirmedDoc)}, true, `{"transaction":{"id":4711}}`, 503, "api_unavailable", "error", false, ""},
		{"API refuses the key", &apiAnswer{401, `{"status":"error","message":"Invalid API key"}`}, false, `{"transaction":{"id":4711}}`, 503, "api_refused", "error", false, "api_key and instance"},
		{"API refuses the key with 200", &apiAnswer{200, `{"status":"error","message":"The API Signature is invalid"}`}, false, `{"transaction":{"id":4711}}`, 503, "api_refused", "error", false, "api_key and instance"},
		{"id is not a Payrexx id", nil, false, `{"transaction":{"id":"4711/../../Gateway/1"}}`, 400, "payload_malformed", "warn", true, ""},
		{"no transaction", nil, false, `{"ping":true}`, 400, "field_missing", "warn", true, ""},
		{"not JSON", nil, false, `transaction[id]=4711`, 400, "payload_malformed", "warn", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, api := startPayrexx(t, "payrexx", "")
			if tt.answer != nil {
				api.set(payrexxTransactionPath, tt.answer.status, tt.answer.body)
			}
			if tt.slow {
				api.delay = 2 * time.Second
			}
			start := time.Now()
			resp, body := e.post("/callbacks/payrexx", "application/json", tt.webhook, nil)
			expectAnswer(t, resp, body, tt.status, "")
			if tt.slow && time.Since(start) > 1500*time.Millisecond {
				t.Errorf("a slow API held the callback %s; api_timeout is 500ms", time.Since(start))
			}
			e.expectNothingForwarded()
			if tt.noFetch && len(api.asked()) != 0 {
				t.Errorf("the API was asked about a webhook rejected before verification")
			}
			entries := e.logEntries(1)
			if len(entries) != 1 || entries[0]["reason"] != tt.reason || entries[0]["level"] != tt.level {
				t.Fatalf("log = %v, want one %s line with reason %s", entries, tt.level, tt.reason)
			}
			if detail, _ := entries[0]["detail"].(string); !strings.Contains(detail, tt.logCheck) {
				t.Errorf("log detail %q does not say %q", detail, tt.logCheck)
			}
			if strings.Contains(e.rawLog(), payrexxAPIKey) {
				t.Error("the log contains the API key")
			}
		})
	}
}

func TestPayrexxReusesAPIConnections(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "")
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	for range 5 {
		resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, nil)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	if n := api.connections(); n != 1 {
		t.Errorf("5 webhooks opened %d connections to the API, want 1", n)
	}
}

func TestPayrexxOptionalWebhookSignature(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PAYREXX_SIG", "it-webhook-signing-secret")
	e, api := startPayrexx(t, "payrexx", "signature_secret {env.PAYHOOK_TEST_PAYREXX_SIG}")
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	sig := verify.SignHexHMACSHA256([]byte("it-webhook-signing-secret"), []byte(payrexxForm))
	for _, tt := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"missing", nil, 401},
		{"wrong", http.Header{"X-Webhook-Signature": {verify.SignHexHMACSHA256([]byte("nope"), []byte(payrexxForm))}}, 401},
		{"valid", http.Header{"X-Webhook-Signature": {sig}}, 200},
	} {
		e.upstream.reset()
		before := len(api.asked())
		resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s signature: %d %q, want %d", tt.name, resp.StatusCode, body, tt.status)
		}
		if tt.status != 200 {
			e.expectNothingForwarded()
			if len(api.asked()) != before {
				t.Errorf("%s signature: the API was still asked", tt.name)
			}
		} else {
			_, doc := e.onlyDelivery()
			if gjson.GetBytes(e.upstream.received()[0].Body, "data.verification.also.0").String() != "hmac-sha256" || doc.Data.Verification["method"] != "api-fetch" {
				t.Errorf("verification = %v", doc.Data.Verification)
			}
		}
	}
}

// Shop & Pay is the same platform under its own name.
func TestShopAndPayIsTheSamePlatform(t *testing.T) {
	e, api := startPayrexx(t, "shopandpay", "")
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	_, doc := e.onlyDelivery()
	if doc.Source != "payhook/shopandpay" || doc.Data.Provider != "shopandpay" || doc.Data.Status != "captured" {
		t.Errorf("envelope: source %s provider %s status %s", doc.Source, doc.Data.Provider, doc.Data.Status)
	}
}

func TestPayrexxConfigurationMistakes(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PAYREXX_KEY", payrexxAPIKey)
	site := func(payhook string) string {
		return "{\n\tadmin localhost:2999\n\thttp_port 9080\n}\nhttp://localhost:9080 {\n\t" + payhook + "\n\trespond 200\n}\n"
	}
	for _, tt := range []struct{ name, payhook, want string }{
		{"no instance", "payhook payrexx {\n\t\tapi_key {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t}", "instance is required"},
		{"no api_key", "payhook payrexx {\n\t\tinstance myshop\n\t}", "api_key is required"},
		{"unset api_key", "payhook payrexx {\n\t\tinstance myshop\n\t\tapi_key {env.PAYHOOK_TEST_UNSET_KEY}\n\t}", "{env.PAYHOOK_TEST_UNSET_KEY} is empty"},
		{"plain http api_base", "payhook payrexx {\n\t\tinstance myshop\n\t\tapi_key {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t\tapi_base http://api.payrexx.com\n\t}", "must be https"},
		{"api_base with a query", "payhook payrexx {\n\t\tinstance myshop\n\t\tapi_key {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t\tapi_base https://api.payrexx.com/?x=1\n\t}", "want an https origin"},
		{"secret on payrexx", "payhook payrexx {\n\t\tinstance myshop\n\t\tapi_key {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t\tsecret x\n\t}", "secret does not apply to provider payrexx"},
		{"api_key on ixopay", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t\tapi_key x\n\t}", "api_key does not apply to provider ixopay"},
		{"bad api_timeout", "payhook payrexx {\n\t\tinstance myshop\n\t\tapi_key {env.PAYHOOK_TEST_PAYREXX_KEY}\n\t\tapi_timeout never\n\t}", "api_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, site(tt.payhook), "caddyfile", tt.want)
		})
	}
}

// A forger repeating an id the API does not know costs one API request a
// minute, not one per callback.
// The repeats are answered 503, not 401: a forger may have posted the id of
// a genuine payment just before the provider did, and the provider must
// retry rather than give up.
func TestRepeatedUnknownIDAsksTheAPIOnce(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "")
	for i := range 5 {
		resp, body := e.post("/callbacks/payrexx", "application/json", `{"transaction":{"id":999}}`, nil)
		want := http.StatusServiceUnavailable
		if i == 0 {
			want = http.StatusUnauthorized
		}
		expectAnswer(t, resp, body, want, "")
	}
	e.expectNothingForwarded()
	if n := len(api.asked()); n != 1 {
		t.Errorf("5 forged callbacks for one unknown id asked the API %d times, want 1", n)
	}
	// Another id is asked about.
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
}

// `caddy payhook send payrexx --api` stores the sample transaction at the
// demo's stand-in of Payrexx's API, which payhook then fetches with the
// instance's API key.
func TestSendPayrexxThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_DEMO_PAYREXX_API_KEY", demoSecrets["PAYREXX_API_KEY"])
	e := startCaddy(t, `route /callbacks/payrexx* {
		payhook payrexx {
			instance demo
			api_key {env.PAYHOOK_TEST_DEMO_PAYREXX_API_KEY}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"captured", "refunded", "cancelled"} {
		t.Run(status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "payrexx", e.base+"/callbacks/payrexx", sendOptions{
				api: standIn.URL, status: status, amount: "12.30", currency: "CHF", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			if doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.Amount.Currency != "CHF" ||
				doc.Data.MerchantReference != "order-8" || gjson.GetBytes(r.Body, "data.verification.method").String() != "api-fetch" {
				t.Errorf("envelope: %s", r.Body)
			}
		})
	}
	// Without --api, the transaction is not one the API knows.
	e.t = t
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "payrexx", e.base+"/callbacks/payrexx", sendOptions{status: "captured", amount: "1", currency: "CHF", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Errorf("an unknown transaction: %s %s", resp.Status, body)
	}
	e.expectNothingForwarded()
}
