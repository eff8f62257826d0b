package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

const multisafepayAPIKey = "msp-it-0123456789abcdef0123456789abcdef"

// multisafepaySite routes /callbacks/multisafepay through payhook, fetching
// orders from api's /v1/json (a stand-in of MultiSafepay's API).
func multisafepaySite(api *fakeAPI, extra string) string {
	return fmt.Sprintf(`route /callbacks/multisafepay* {
		payhook multisafepay {
			api_key {env.PAYHOOK_TEST_MSP_KEY}
			api_base %s/v1/json
			api_timeout 500ms
			%s
		}
		reverse_proxy {upstream}
	}`, api.URL, extra)
}

func startMultiSafepay(t *testing.T, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_MSP_KEY", multisafepayAPIKey)
	api := newFakeAPI(t)
	return startCaddy(t, multisafepaySite(api, extra)), api
}

// multisafepayOrder is an order as MultiSafepay's API describes it.
func multisafepayOrder(status, financial string, amount, refunded int64) string {
	return fmt.Sprintf(`{"amount":%d,"amount_refunded":%d,"currency":"EUR","description":"Order order-1042","financial_status":%q,"order_id":"order-1042","reason":"","reason_code":"","status":%q,"transaction_id":"4711"}`,
		amount, refunded, financial, status)
}

// setOrder makes the stand-in answer GET /v1/json/orders/order-1042 with
// the order.
func setOrder(api *fakeAPI, order string) {
	api.set("/v1/json/orders/order-1042", 200, `{"success":true,"data":`+order+`}`)
}

// signedNotification is a POST of order signed with the API key as
// MultiSafepay signs it, with its query.
func (e *env) signedNotification(order string, key string) (*http.Response, string) {
	e.t.Helper()
	req := e.postRequest("/callbacks/multisafepay", "application/json", order, nil)
	if err := new(MultiSafepay).SignSample(req, []byte(order), []byte(key)); err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

// legacyNotification is the GET MultiSafepay sends unless the order asked
// for POST: the notification URL with transactionid and timestamp.
func (e *env) legacyNotification(query string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+"/callbacks/multisafepay?"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

var mspNow = func() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// The signed POST: verified by its Auth header alone (no API request),
// the envelope made from the body, answered OK.
func TestMultiSafepaySignedNotificationThroughCaddy(t *testing.T) {
	e, api := startMultiSafepay(t, "")
	resp, body := e.signedNotification(multisafepayOrder("completed", "completed", 1000, 0), multisafepayAPIKey)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	d := doc.Data
	if doc.Source != "payhook/multisafepay" || d.Status != "captured" || d.MerchantReference != "order-1042" || d.ProviderReference != "4711" ||
		d.Amount.MinorUnits != 1000 || d.Amount.Currency != "EUR" || d.Verification["method"] != "hmac-sha512" {
		t.Errorf("envelope: %+v", doc)
	}
	if r.Method != http.MethodPost || r.Header.Get("Auth") != "" || !gjson.GetBytes(r.Body, "data.original").IsObject() {
		t.Errorf("forwarded %s with Auth %q: %s", r.Method, r.Header.Get("Auth"), r.Body)
	}
	if len(api.asked()) != 0 {
		t.Errorf("the API was asked about a signed notification")
	}
	// Another key's signature, and a stale one, are refused.
	for _, tt := range []struct {
		name   string
		mangle func(*http.Request)
		reason string
	}{
		{"another key", func(r *http.Request) {
			_ = new(MultiSafepay).SignSample(r, []byte(multisafepayOrder("completed", "completed", 1000, 0)), []byte("another-key"))
		}, "signature_mismatch"},
		{"stale", func(r *http.Request) {
			order := []byte(multisafepayOrder("completed", "completed", 1000, 0))
			_ = new(MultiSafepay).SignSample(r, order, []byte(multisafepayAPIKey))
			r.Header.Set("Auth", staleMultiSafepayAuth(t, order))
		}, "date_outside_window"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			req := e.postRequest("/callbacks/multisafepay", "application/json", multisafepayOrder("completed", "completed", 1000, 0), nil)
			tt.mangle(req)
			resp, _ := e.do(req)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("answered %d, want 401", resp.StatusCode)
			}
			e.expectNothingForwarded()
			entries := e.logEntries(1)
			if last := entries[len(entries)-1]; last["reason"] != tt.reason {
				t.Errorf("log = %v, want reason %s", last, tt.reason)
			}
		})
	}
}

// staleMultiSafepayAuth signs order as of 20 minutes ago.
func staleMultiSafepayAuth(t *testing.T, order []byte) string {
	t.Helper()
	p := multisafepayAt(t, multisafepayAPIKey, time.Time{})
	ts := strconv.FormatInt(time.Now().Add(-20*time.Minute).Unix(), 10)
	auth, err := p.signature.Sign([]byte(multisafepayAPIKey), verify.TemplateValues{Body: order, Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// The legacy GET: payhook fetches the order it names from the configured
// API with the api_key header, answers OK, and forwards the order fetched
// (by POST, as every envelope); the API key is in neither the envelope nor
// the log. The same order state notified again, by GET or by a signed
// POST, is the same event; a refund later is another.
func TestMultiSafepayLegacyNotificationFetchesTheOrder(t *testing.T) {
	e, api := startMultiSafepay(t, "")
	setOrder(api, multisafepayOrder("completed", "completed", 1000, 0))
	resp, body := e.legacyNotification("transactionid=order-1042&timestamp=" + mspNow())
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	asked := api.asked()
	if len(asked) != 1 || asked[0].Method != http.MethodGet || asked[0].URL.Path != "/v1/json/orders/order-1042" || asked[0].Header.Get("api_key") != multisafepayAPIKey {
		t.Fatalf("API asked: %v", asked)
	}
	r, doc := e.onlyDelivery()
	d := doc.Data
	if r.Method != http.MethodPost || d.Status != "captured" || d.MerchantReference != "order-1042" || d.Amount.MinorUnits != 1000 ||
		d.Verification["method"] != "api-fetch" || d.Verification["resource"] != "orders/order-1042" || d.Verification["status"] != "completed" {
		t.Errorf("forwarded %s: %+v", r.Method, doc)
	}
	if !gjson.GetBytes(r.Body, "data.fetched").IsObject() || gjson.GetBytes(r.Body, "data.original").Exists() {
		t.Errorf("envelope: %s", r.Body)
	}
	if strings.Contains(string(r.Body), multisafepayAPIKey) || strings.Contains(e.rawLog(), multisafepayAPIKey) {
		t.Error("the envelope or the log holds the API key")
	}
	first := r.Header.Get(EventIDHeader)

	// MultiSafepay's resend (a new timestamp), and the same state signed
	// and posted: acknowledged, not forwarded again.
	resp, body = e.legacyNotification("transactionid=order-1042&timestamp=" + mspNow() + "1")
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	resp, body = e.signedNotification(multisafepayOrder("completed", "completed", 1000, 0), multisafepayAPIKey)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if got := e.upstream.received(); len(got) != 1 {
		t.Fatalf("one order state reached the shop %d times", len(got))
	}

	// A partial refund: the order fetched has changed, another event.
	setOrder(api, multisafepayOrder("partial_refunded", "completed", 1000, 400))
	resp, body = e.legacyNotification("transactionid=order-1042&timestamp=" + mspNow())
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	got := e.upstream.received()
	if len(got) != 2 || got[1].Header.Get(EventIDHeader) == first || gjson.GetBytes(got[1].Body, "data.status").String() != "partially_refunded" {
		t.Fatalf("the refund: %d deliveries, %s", len(got), got[len(got)-1].Body)
	}

	// A POST without Auth is a legacy notification too: the order is
	// fetched, the body (which nobody signed) is not the event.
	e.upstream.reset()
	setOrder(api, multisafepayOrder("refunded", "completed", 1000, 1000))
	resp, body = e.post("/callbacks/multisafepay?transactionid=order-1042&timestamp="+mspNow(), "application/json", multisafepayOrder("completed", "completed", 999999, 0), nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if _, doc := e.onlyDelivery(); doc.Data.Status != "refunded" || doc.Data.Amount.MinorUnits != 1000 {
		t.Errorf("unsigned POST: %+v", doc.Data)
	}
}

// Every refusal of a legacy notification gets its status, nothing reaches
// the shop, and a forger's unknown order costs one API request.
func TestMultiSafepayLegacyFailures(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		answer  *apiAnswer // nil: the stand-in's 404
		status  int
		outcome string
		reason  string
		asks    int
	}{
		{"unknown order", "transactionid=order-1042&timestamp=1", nil, 401, "rejected", "resource_unknown", 1},
		{"unknown order, MultiSafepay's error", "transactionid=order-1042&timestamp=1", &apiAnswer{200, `{"success":false,"data":{},"error_code":1006,"error_info":"Invalid transaction ID"}`}, 401, "rejected", "resource_unknown", 1},
		{"API down", "transactionid=order-1042&timestamp=1", &apiAnswer{500, `oops`}, 503, "rejected", "api_unavailable", 1},
		{"API refuses the key", "transactionid=order-1042&timestamp=1", &apiAnswer{401, `{"success":false,"error_code":1032}`}, 503, "rejected", "api_refused", 1},
		{"another order answered", "transactionid=order-1042&timestamp=1", &apiAnswer{200, `{"success":true,"data":{"order_id":"order-1","status":"completed"}}`}, 503, "rejected", "api_response_unexpected", 1},
		{"a path for an order id", "transactionid=order-1042/../../gateways&timestamp=1", nil, 400, "rejected", "resource_invalid", 0},
		{"no transactionid", "timestamp=1", nil, 400, "rejected", "field_missing", 0},
		{"transactionid twice", "transactionid=a&transactionid=b&timestamp=1", nil, 400, "rejected", "payload_malformed", 0},
		{"no timestamp: the customer's return", "transactionid=order-1042", nil, 200, "ignored", "not_a_payment", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, api := startMultiSafepay(t, "")
			if tt.answer != nil {
				api.set("/v1/json/orders/order-1042", tt.answer.status, tt.answer.body)
			}
			resp, body := e.legacyNotification(tt.query)
			expectAnswer(t, resp, body, tt.status, "")
			e.expectNothingForwarded()
			if n := len(api.asked()); n != tt.asks {
				t.Errorf("the API was asked %d times, want %d", n, tt.asks)
			}
			entries := e.logEntries(1)
			if len(entries) != 1 || entries[0]["reason"] != tt.reason || entries[0]["outcome"] != tt.outcome {
				t.Fatalf("log = %v, want %s %s", entries, tt.outcome, tt.reason)
			}
			if tt.reason == "resource_unknown" {
				// The forger's loop: the same unknown order again costs
				// no request, and MultiSafepay's genuine retry is told to
				// come back later (503), not refused.
				resp, body = e.legacyNotification(tt.query)
				expectAnswer(t, resp, body, http.StatusServiceUnavailable, "")
				if n := len(api.asked()); n != 1 {
					t.Errorf("the unknown order again: %d API requests in all", n)
				}
			}
			if strings.Contains(e.rawLog(), multisafepayAPIKey) {
				t.Error("the log contains the API key")
			}
		})
	}
}

// `caddy payhook send multisafepay`: with --secret (the API key) a signed
// POST; with --api and no secret, the legacy GET, its order stored first
// at the demo's stand-in of the API.
func TestSendMultiSafepayBothForms(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_MSP_KEY", multisafepayAPIKey)
	e := startCaddy(t, `route /callbacks/multisafepay* {
		payhook multisafepay {
			api_key {env.PAYHOOK_TEST_MSP_KEY}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, tt := range []struct {
		status, secret, api, method string
	}{
		{"captured", multisafepayAPIKey, "", "hmac-sha512"},
		{"refunded", "", standIn.URL, "api-fetch"},
		{"authorized", "", standIn.URL, "api-fetch"},
	} {
		t.Run(tt.status+"/"+tt.method, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "multisafepay", e.base+"/callbacks/multisafepay", sendOptions{
				api: tt.api, secret: tt.secret, status: tt.status, amount: "12.30", currency: "EUR", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			_, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.MerchantReference != "order-8" || doc.Data.Verification["method"] != tt.method {
				t.Errorf("envelope: %+v", doc.Data)
			}
		})
	}
}

// The goldens of normalize/testdata/multisafepay through Caddy: each GET
// has its order served by the stand-in of the API; each signed POST is
// signed again with the route's key and a current timestamp (the
// vectors' own are years old), the body unchanged.
func TestMultiSafepayGoldenThroughCaddy(t *testing.T) {
	e, api := startMultiSafepay(t, "dedupe off")
	replayGolden(t, e, "multisafepay", func(answer []byte, _ string) {
		api.set("/v1/json/orders/"+gjson.GetBytes(answer, "data.order_id").String(), 200, string(answer))
	}, func(req *http.Request, body []byte) (*http.Response, string) {
		_, query, _ := strings.Cut(req.RequestURI, "?")
		if req.Method == http.MethodGet {
			return e.legacyNotification(query)
		}
		return e.signedNotification(string(body), multisafepayAPIKey)
	})
}

// A route written for the former preset (secret, twice during a rotation)
// loads unchanged: either key verifies a signed POST, and the first
// fetches the order of a GET.
func TestMultiSafepayPresetConfigurationStillLoads(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_MSP_KEY", multisafepayAPIKey)
	t.Setenv("PAYHOOK_TEST_MSP_NEXT_KEY", "msp-it-next-key")
	api := newFakeAPI(t)
	e := startCaddy(t, `route /callbacks/multisafepay* {
		payhook multisafepay {
			secret {env.PAYHOOK_TEST_MSP_KEY}
			secret {env.PAYHOOK_TEST_MSP_NEXT_KEY}
			api_base `+api.URL+`/v1/json
		}
		reverse_proxy {upstream}
	}`)
	for _, key := range []string{multisafepayAPIKey, "msp-it-next-key"} {
		e.upstream.reset()
		resp, body := e.signedNotification(multisafepayOrder("completed", "completed", 1000+int64(len(key)), 0), key)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
		e.onlyDelivery()
	}
	e.upstream.reset()
	setOrder(api, multisafepayOrder("shipped", "completed", 1000, 0))
	resp, body := e.legacyNotification("transactionid=order-1042&timestamp=" + mspNow())
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if asked := api.asked(); len(asked) != 1 || asked[0].Header.Get("api_key") != multisafepayAPIKey {
		t.Errorf("API asked: %v", asked)
	}
	if _, doc := e.onlyDelivery(); doc.Data.Status != "captured" || doc.Data.ProviderStatus != "shipped" {
		t.Errorf("envelope: %+v", doc.Data)
	}
}
