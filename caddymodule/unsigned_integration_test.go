package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"
)

const (
	swedbankToken = "it-swedbank-bearer-token"
	pyxisToken    = "it-pyxis-url-token-3f9a"
	poPath        = "/psp/paymentorders/5adc265f-f87f-4313-577e-08d3dca1a26c"
	payPath       = "/psp/creditcard/payments/7e6cdfc3-1276-44e9-9992-7cf4419750e1"
	trPath        = payPath + "/transactions/ec2a9b09-601a-42ae-8e33-a5737e1cf177"
	callbackV31   = `{"orderReference":"549213","paymentOrder":{"id":"` + poPath + `","instrument":"paymentorders","number":12345678}}`
	callbackV2    = `{"paymentOrder":{"id":"` + poPath + `","instrument":"paymentorders"},"payment":{"id":"` + payPath + `","number":"222222222"},"transaction":{"id":"` + trPath + `","number":333333333}}`
	callbackOld   = `{"payment":"` + payPath + `","paymentNumber":123456,"transaction":"` + trPath + `","transactionNumber":"12345678"}`
)

func swedbankSite(api *fakeAPI, extra string) string {
	return fmt.Sprintf(`route /callbacks/swedbankpay* {
		payhook swedbankpay {
			token {env.PAYHOOK_TEST_SWEDBANK_TOKEN}
			api_base %s
			api_timeout 500ms
			%s
		}
		reverse_proxy {upstream}
	}`, api.URL, extra)
}

func startSwedbank(t *testing.T, globals, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_SWEDBANK_TOKEN", swedbankToken)
	api := newFakeAPI(t)
	return startCaddyWith(t, globals, swedbankSite(api, extra)), api
}

func paymentOrder(fields string) string {
	return `{"paymentOrder":{"id":"` + poPath + `","currency":"SEK","amount":150000,"orderReference":"549213","updated":"2026-11-20T09:34:47Z",` + fields + `}}`
}

// Each status of a payment order and of a transaction reaches the shop as
// the canonical status, built from what the API answered.
func TestSwedbankPayStatusesThroughCaddy(t *testing.T) {
	e, api := startSwedbank(t, "", "dedupe off")
	payment := `{"payment":{"id":"` + payPath + `","currency":"NOK","amount":1500,"state":"Ready"}}`
	transaction := func(kind, state string) string {
		return `{"payment":"` + payPath + `","transaction":{"id":"` + trPath + `","type":"` + kind + `","state":"` + state + `","amount":1500,"payeeReference":"ord-88"}}`
	}
	tests := []struct {
		name, callback, path, doc, status, providerStatus string
	}{
		{"order initialized", callbackV31, poPath, paymentOrder(`"status":"Initialized"`), "pending", "Initialized"},
		{"order paid, sale", callbackV2, poPath, paymentOrder(`"status":"Paid","transactionType":"Sale"`), "captured", "Paid"},
		{"order paid, authorization", callbackV2, poPath, paymentOrder(`"status":"Paid","transactionType":"Authorization","remainingCaptureAmount":150000`), "authorized", "Paid"},
		{"order paid, authorization captured", callbackV2, poPath, paymentOrder(`"status":"Paid","transactionType":"Authorization","remainingCaptureAmount":0`), "captured", "Paid"},
		{"order paid, v3.1 to capture", callbackV31, poPath, paymentOrder(`"status":"Paid","remainingCaptureAmount":"150000"`), "authorized", "Paid"},
		{"order failed", callbackV31, poPath, paymentOrder(`"status":"Failed"`), "failed", "Failed"},
		{"order cancelled", callbackV31, poPath, paymentOrder(`"status":"Cancelled"`), "cancelled", "Cancelled"},
		{"order aborted", callbackV31, poPath, paymentOrder(`"status":"Aborted"`), "cancelled", "Aborted"},
		{"order reversed", callbackV31, poPath, paymentOrder(`"status":"Reversed"`), "refunded", "Reversed"},
		{"capture completed", callbackOld, trPath, transaction("Capture", "Completed"), "captured", "Capture Completed"},
		{"sale completed", callbackOld, trPath, transaction("Sale", "Completed"), "captured", "Sale Completed"},
		{"authorization completed", callbackOld, trPath, transaction("Authorization", "Completed"), "authorized", "Authorization Completed"},
		{"reversal completed", callbackOld, trPath, transaction("Reversal", "Completed"), "refunded", "Reversal Completed"},
		{"cancellation completed", callbackOld, trPath, transaction("Cancellation", "Completed"), "cancelled", "Cancellation Completed"},
		{"authorization failed", callbackOld, trPath, transaction("Authorization", "Failed"), "failed", "Authorization Failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			api.set(tt.path, 200, tt.doc)
			api.set(payPath, 200, payment)
			resp, body := e.post("/callbacks/swedbankpay", "application/json", tt.callback, nil)
			expectAnswer(t, resp, body, http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || doc.Data.ProviderStatus != tt.providerStatus || doc.Data.Verification["method"] != "api-fetch" {
				t.Errorf("status %s provider_status %s verification %v, want %s %s", doc.Data.Status, doc.Data.ProviderStatus, doc.Data.Verification, tt.status, tt.providerStatus)
			}
			if !gjson.GetBytes(r.Body, "data.fetched").IsObject() || strings.Contains(string(r.Body), swedbankToken) {
				t.Errorf("data.fetched missing, or the token leaked: %s", r.Body)
			}
		})
	}
	asked := api.asked()
	if len(asked) == 0 || asked[0].Header.Get("Authorization") != "Bearer "+swedbankToken {
		t.Errorf("the API was not asked with the bearer token")
	}
}

// A Checkout v2/v3.0 order names the merchant's references only in its
// payeeInfo, which payhook asks the API to expand.
func TestSwedbankPayReferenceFromExpandedPayeeInfo(t *testing.T) {
	e, api := startSwedbank(t, "", "dedupe off")
	api.set(poPath, 200, `{"paymentOrder":{"id":"`+poPath+`","status":"Paid","transactionType":"Sale","currency":"SEK","amount":150000,`+
		`"payeeInfo":{"id":"`+poPath+`/payeeinfo","payeeId":"5cabf558-5283-482f-b252-4d58e06f6f3b","payeeReference":"1642756240","orderReference":"or-549213"}}}`)
	resp, body := e.post("/callbacks/swedbankpay", "application/json", callbackV2, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	r, _ := e.onlyDelivery()
	if got := gjson.GetBytes(r.Body, "data.merchant_reference").String(); got != "or-549213" {
		t.Errorf("merchant_reference = %q, want the expanded payeeInfo's orderReference", got)
	}
	if asked := api.asked(); len(asked) != 1 || !strings.HasPrefix(asked[0].URL.Query().Get("$expand"), "payeeInfo") {
		t.Errorf("the payment order was not asked for with $expand=payeeInfo: %v", asked)
	}
}

func TestSwedbankPayFailuresForwardNothing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer *apiAnswer
		status int
		reason string
	}{
		{"unknown payment order", nil, 401, "resource_unknown"},
		{"API answers 502", &apiAnswer{502, ``}, 503, "api_unavailable"},
		{"API refuses the token", &apiAnswer{401, `{"title":"Unauthorized"}`}, 503, "api_refused"},
		{"API answers another order", &apiAnswer{200, `{"paymentOrder":{"id":"/psp/paymentorders/other","status":"Paid"}}`}, 503, "api_response_unexpected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, api := startSwedbank(t, "", "")
			if tt.answer != nil {
				api.set(poPath, tt.answer.status, tt.answer.body)
			}
			resp, body := e.post("/callbacks/swedbankpay", "application/json", callbackV31, nil)
			expectAnswer(t, resp, body, tt.status, "")
			e.expectNothingForwarded()
			if entries := e.logEntries(1); len(entries) != 1 || entries[0]["reason"] != tt.reason {
				t.Errorf("log = %v, want reason %s", entries, tt.reason)
			}
			if strings.Contains(e.rawLog(), swedbankToken) {
				t.Error("the log contains the bearer token")
			}
		})
	}
	t.Run("API unreachable", func(t *testing.T) {
		t.Setenv("PAYHOOK_TEST_SWEDBANK_TOKEN", swedbankToken)
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		e := startCaddy(t, swedbankSite(&fakeAPI{Server: closed}, ""))
		resp, body := e.post("/callbacks/swedbankpay", "application/json", callbackV31, nil)
		expectAnswer(t, resp, body, http.StatusServiceUnavailable, "")
		e.expectNothingForwarded()
	})
}

// No request forgery through payhook: a resource that is not a plain /psp/
// path is a 400 and payhook makes no outbound request at all, neither to the
// API nor to the host the callback names.
func TestSwedbankPayForgedResourcesMakeNoRequest(t *testing.T) {
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write([]byte(paymentOrder(`"status":"Paid","transactionType":"Sale"`)))
	}))
	defer attacker.Close()
	attackerHost := strings.TrimPrefix(attacker.URL, "http://")
	e, api := startSwedbank(t, "", "")
	for _, forged := range []string{
		attacker.URL + "/psp/paymentorders/1",
		"//" + attackerHost + "/psp/paymentorders/1",
		"/psp/../../" + attackerHost,
		"/psp/paymentorders/%2e%2e/%2e%2e/admin",
		"/psp/paymentorders/1?url=" + attacker.URL,
		"/psp/paymentorders/1#" + attackerHost,
		"/psp/paymentorders/1@" + attackerHost,
		"/psp\\..\\" + attackerHost,
		"/psp//" + attackerHost + "/x",
		"http:/psp/paymentorders/1",
	} {
		t.Run(forged, func(t *testing.T) {
			e.t = t
			callback := fmt.Sprintf(`{"paymentOrder":{"id":%q}}`, forged)
			resp, body := e.post("/callbacks/swedbankpay", "application/json", callback, nil)
			expectAnswer(t, resp, body, http.StatusBadRequest, "")
			e.expectNothingForwarded()
		})
	}
	// A fetched transaction whose payment link points elsewhere is refused too.
	api.set(trPath, 200, `{"payment":"`+attacker.URL+`/psp/x","transaction":{"id":"`+trPath+`","type":"Sale","state":"Completed","amount":1}}`)
	resp, body := e.post("/callbacks/swedbankpay", "application/json", callbackOld, nil)
	expectAnswer(t, resp, body, http.StatusBadRequest, "")
	e.expectNothingForwarded()

	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's host received %d requests", n)
	}
	if asked := api.asked(); len(asked) != 1 || asked[0].URL.Path != trPath {
		t.Errorf("the API was asked %d times; only the real transaction may be fetched", len(asked))
	}
}

// allow_ips is checked against Caddy's client address, which honours the
// server's trusted_proxies, before the body is read or the API asked.
func TestAllowIPs(t *testing.T) {
	const trusted = "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"
	e, api := startSwedbank(t, trusted, "allow_ips 20.91.170.120/29 51.107.183.58\n\t\t\tdedupe off")
	api.set(poPath, 200, paymentOrder(`"status":"Paid","transactionType":"Sale"`))
	for _, tt := range []struct {
		forwardedFor string
		body         string
		status       int
	}{
		{"20.91.170.121", callbackV31, 200},
		{"51.107.183.58", callbackV31, 200},
		{"20.91.170.128", callbackV31, 403},
		{"203.0.113.7", callbackV31, 403},
		{"", callbackV31, 403}, // the proxy itself, 127.0.0.1
		// Refused before the body is read: an oversized body from outside is 403, not 413.
		{"203.0.113.7", `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 403},
	} {
		e.upstream.reset()
		before := len(api.asked())
		var header http.Header
		if tt.forwardedFor != "" {
			header = http.Header{"X-Forwarded-For": {tt.forwardedFor}}
		}
		post := e.post
		if len(tt.body) > 1<<20 {
			post = e.postUnread
		}
		resp, body := post("/callbacks/swedbankpay", "application/json", tt.body, header)
		if resp.StatusCode != tt.status {
			t.Errorf("from %q: %d %q, want %d", tt.forwardedFor, resp.StatusCode, body, tt.status)
		}
		if tt.status == 403 {
			e.expectNothingForwarded()
			if len(api.asked()) != before {
				t.Errorf("from %q: the API was asked although the address is not allowed", tt.forwardedFor)
			}
		} else {
			r, _ := e.onlyDelivery()
			if also := gjson.GetBytes(r.Body, "data.verification.also").String(); !strings.Contains(also, "ip-allowlist") {
				t.Errorf("verification.also = %s, want ip-allowlist", also)
			}
		}
	}
}

// Without trusted_proxies, X-Forwarded-For is not believed.
func TestAllowIPsIgnoresUntrustedForwardedFor(t *testing.T) {
	e, api := startSwedbank(t, "", "allow_ips 20.91.170.120/29")
	api.set(poPath, 200, paymentOrder(`"status":"Paid","transactionType":"Sale"`))
	resp, body := e.post("/callbacks/swedbankpay", "application/json", callbackV31, http.Header{"X-Forwarded-For": {"20.91.170.121"}})
	expectAnswer(t, resp, body, http.StatusForbidden, "")
	e.expectNothingForwarded()
	if entries := e.logEntries(1); len(entries) != 1 || entries[0]["reason"] != "address_not_allowed" || entries[0]["client_ip"] != "127.0.0.1" {
		t.Errorf("log = %v", entries)
	}
}

func pyxisSite(extra string) string {
	return `route /callbacks/pyxis* {
		payhook pyxis {
			url_token {env.PAYHOOK_TEST_PYXIS_TOKEN}
			` + extra + `
		}
		reverse_proxy {upstream}
	}`
}

const pyxisSuccess = `{"payment":{"id":"6f1c2a90","amount":12.5,"status":"Success","timeStamp":"2026-11-20T10:34:47Z","source":{"holder":"J Smith"}},"data":{"orderId":"1042","customerEmail":"j.smith@example.co.uk"}}`

func TestPyxisURLToken(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PYXIS_TOKEN", pyxisToken)
	accessLog := t.TempDir() + "/access.log"
	// Caddy's access log records the request as received; docs/pyxis.md's
	// filter keeps the token out of it.
	e := startCaddy(t, pyxisSite("")+`
	log {
		output file `+accessLog+`
		format filter {
			request>uri query {
				delete token
			}
		}
	}`)
	resp, body := e.post("/callbacks/pyxis/success?shop=main&token="+pyxisToken+"&lang=en", "application/json", pyxisSuccess, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if r.RequestURI != "/callbacks/pyxis/success?shop=main&lang=en" {
		t.Errorf("upstream got %s; want the token removed and the other parameters kept", r.RequestURI)
	}
	if doc.Data.Status != "captured" || doc.Data.ProviderReference != "6f1c2a90" || doc.Data.Amount.MinorUnits != 1250 ||
		doc.Data.Amount.Currency != "GBP" || doc.Data.Verification["method"] != "url-token" {
		t.Errorf("envelope: %+v", doc.Data)
	}
	if gjson.GetBytes(r.Body, "data.original.data.orderId").String() != "1042" {
		t.Errorf("data.original lost the Data map")
	}
	for _, tt := range []struct {
		uri    string
		reason string
	}{
		{"/callbacks/pyxis/success", "token_missing"},
		{"/callbacks/pyxis/success?token=", "token_missing"},
		{"/callbacks/pyxis/success?token=guess", "token_wrong"},
		{"/callbacks/pyxis/success?token=" + pyxisToken + "&token=x", "token_wrong"},
	} {
		e.upstream.reset()
		resp, body := e.post(tt.uri, "application/json", pyxisSuccess, nil)
		expectAnswer(t, resp, body, http.StatusUnauthorized, "")
		e.expectNothingForwarded()
	}
	entries := e.logEntries(5)
	if len(entries) != 5 || entries[1]["reason"] != "token_missing" || entries[3]["reason"] != "token_wrong" {
		t.Errorf("log = %v", entries)
	}
	if strings.Contains(e.rawLog(), pyxisToken) {
		t.Errorf("payhook's log contains the URL token")
	}
	access, _ := os.ReadFile(accessLog)
	if len(access) == 0 || strings.Contains(string(access), pyxisToken) || !strings.Contains(string(access), "shop=main") {
		t.Errorf("the filtered access log must hold the requests without the token:\n%s", access)
	}
}

// TestPyxisOutcomeOfTheURL: Pyxis posts a payment that succeeded to the
// OnSuccess URL and one that failed to the OnFail URL. With a route for
// each (outcome success, outcome fail), a notification that contradicts
// its URL is refused, nothing on the OnFail URL is reported as paid, and
// one that names no status takes its URL's.
func TestPyxisOutcomeOfTheURL(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PYXIS_TOKEN", pyxisToken)
	site := func(path, outcome string) string {
		return strings.Replace(pyxisSite("outcome "+outcome), "route /callbacks/pyxis*", "route "+path, 1)
	}
	e := startCaddy(t, site("/callbacks/pyxis/success", "success")+"\n\t"+site("/callbacks/pyxis/fail", "fail"))
	failed := strings.Replace(pyxisSuccess, `"status":"Success"`, `"status":"Failed","statusReason":"Card declined"`, 1)
	pending := strings.Replace(pyxisSuccess, `"status":"Success"`, `"status":"Pending"`, 1)
	noStatus := strings.Replace(pyxisSuccess, `"status":"Success",`, ``, 1)
	for _, tt := range []struct {
		name, path, body string
		code             int
		status, reason   string
	}{
		{"success on OnSuccess", "/callbacks/pyxis/success", pyxisSuccess, http.StatusOK, "captured", ""},
		{"failure on OnFail", "/callbacks/pyxis/fail", failed, http.StatusOK, "failed", ""},
		{"pending on OnFail is failed", "/callbacks/pyxis/fail", pending, http.StatusOK, "failed", ""},
		{"success on OnFail", "/callbacks/pyxis/fail", pyxisSuccess, http.StatusBadRequest, "", "outcome_mismatch"},
		{"failure on OnSuccess", "/callbacks/pyxis/success", failed, http.StatusBadRequest, "", "outcome_mismatch"},
		{"pending on OnSuccess stays pending", "/callbacks/pyxis/success", pending, http.StatusOK, "pending", ""},
		{"no status on OnSuccess is a success", "/callbacks/pyxis/success", noStatus, http.StatusOK, "captured", ""},
		{"no status on OnFail is a failure", "/callbacks/pyxis/fail", noStatus, http.StatusOK, "failed", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body := e.post(tt.path+"?token="+pyxisToken, "application/json", tt.body, nil)
			if tt.code != http.StatusOK {
				expectAnswer(t, resp, body, tt.code, "")
				e.expectNothingForwarded()
				e.expectReason(tt.reason)
				return
			}
			expectAnswer(t, resp, body, http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || gjson.GetBytes(r.Body, "data.original.payment.id").String() != "6f1c2a90" {
				t.Errorf("envelope: %s", r.Body)
			}
		})
	}
}

// url_token adds to any provider's own verification.
func TestURLTokenAddsToIXOPAY(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PYXIS_TOKEN", pyxisToken)
	e := startCaddy(t, `route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			url_token {env.PAYHOOK_TEST_PYXIS_TOKEN}
		}
		reverse_proxy {upstream}
	}`)
	c := ixopayCallback(debitOK)
	resp, body := e.send(c) // signed, but no token
	expectAnswer(t, resp, body, http.StatusUnauthorized, "")
	e.expectNothingForwarded()
	c = ixopayCallback(debitOK)
	c.uri = "/callbacks/ixopay?token=" + pyxisToken
	resp, body = e.send(c)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if r.RequestURI != "/callbacks/ixopay" || doc.Data.Verification["method"] != "hmac-sha512" ||
		gjson.GetBytes(r.Body, "data.verification.also.0").String() != "url-token" {
		t.Errorf("upstream %s, verification %s", r.RequestURI, gjson.GetBytes(r.Body, "data.verification").Raw)
	}
}

func TestUnsignedProvidersConfigurationMistakes(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SWEDBANK_TOKEN", swedbankToken)
	site := func(payhook string) string {
		return "{\n\tadmin localhost:2999\n\thttp_port 9080\n}\nhttp://localhost:9080 {\n\t" + payhook + "\n\trespond 200\n}\n"
	}
	for _, tt := range []struct{ name, payhook, want string }{
		{"swedbankpay without token", "payhook swedbankpay", "token is required"},
		{"pyxis without url_token", "payhook pyxis", "url_token is required"},
		{"pyxis with unset url_token", "payhook pyxis {\n\t\turl_token {env.PAYHOOK_TEST_UNSET_TOKEN}\n\t}", "{env.PAYHOOK_TEST_UNSET_TOKEN} is empty"},
		{"bad allow_ips", "payhook swedbankpay {\n\t\ttoken {env.PAYHOOK_TEST_SWEDBANK_TOKEN}\n\t\tallow_ips 20.91.170.120/99\n\t}", "is not an address or CIDR"},
		{"allow_ips without address", "payhook swedbankpay {\n\t\ttoken {env.PAYHOOK_TEST_SWEDBANK_TOKEN}\n\t\tallow_ips\n\t}", "wrong argument count"},
		{"bad currency", "payhook pyxis {\n\t\turl_token {env.PAYHOOK_TEST_SWEDBANK_TOKEN}\n\t\tcurrency XAU\n\t}", "not an ISO 4217 code"},
		{"currency on swedbankpay", "payhook swedbankpay {\n\t\ttoken {env.PAYHOOK_TEST_SWEDBANK_TOKEN}\n\t\tcurrency SEK\n\t}", "currency does not apply"},
		{"max_skew on pyxis", "payhook pyxis {\n\t\turl_token {env.PAYHOOK_TEST_SWEDBANK_TOKEN}\n\t\tmax_skew 1m\n\t}", "max_skew does not apply"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, site(tt.payhook), "caddyfile", tt.want)
		})
	}
}

// A Swedbank Pay order stays Paid with the same amount through a second
// partial capture of the same amount: it used to get the first capture's
// id and be dropped as a duplicate. Now each financial transaction is its
// own event; a retry of one is still a duplicate.
func TestSwedbankPaySecondPartialCaptureIsNotADuplicate(t *testing.T) {
	e, api := startSwedbank(t, "", "")
	send := func(golden string) (*http.Response, string) {
		t.Helper()
		raw, err := os.ReadFile("../normalize/testdata/swedbankpay/" + golden + ".fetched.json")
		if err != nil {
			t.Fatal(err)
		}
		api.set(gjson.GetBytes(raw, "paymentOrder.id").String(), 200, string(raw))
		req, body := readRawRequest(t, "../normalize/testdata/swedbankpay/"+golden+".in")
		return e.post("/callbacks/swedbankpay", req.Header.Get("Content-Type"), string(body), nil)
	}
	for _, golden := range []string{"quirk_partial_capture_first", "quirk_partial_capture_second_same_amount", "quirk_partial_capture_second_same_amount"} {
		resp, body := send(golden)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	got := e.upstream.received()
	if len(got) != 2 {
		t.Fatalf("the shop received %d envelopes, want the two captures once each", len(got))
	}
	for i, r := range got {
		if status, amount := gjson.GetBytes(r.Body, "data.status").String(), gjson.GetBytes(r.Body, "data.amount.value").Int(); status != "captured" || amount != 50000 {
			t.Errorf("envelope %d: %s %d, want captured 50000", i, status, amount)
		}
	}
	if gjson.GetBytes(got[0].Body, "id").String() == gjson.GetBytes(got[1].Body, "id").String() {
		t.Errorf("the two captures share an id")
	}
}

// `caddy payhook send swedbankpay --api` stores the sample payment order
// at the demo's stand-in of Swedbank Pay's API, which payhook then fetches
// with the route's token.
func TestSendSwedbankPayThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_DEMO_SWEDBANK_PAY_TOKEN", demoSecrets["SWEDBANK_PAY_TOKEN"])
	e := startCaddy(t, `route /callbacks/swedbankpay* {
		payhook swedbankpay {
			token {env.PAYHOOK_TEST_DEMO_SWEDBANK_PAY_TOKEN}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"captured", "authorized", "refunded"} {
		t.Run(status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "swedbankpay", e.base+"/callbacks/swedbankpay", sendOptions{
				api: standIn.URL, status: status, amount: "12.30", currency: "SEK", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			if doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.Amount.Currency != "SEK" ||
				doc.Data.MerchantReference != "order-8" || gjson.GetBytes(r.Body, "data.verification.method").String() != "api-fetch" {
				t.Errorf("envelope: %s", r.Body)
			}
		})
	}
	// Without --api, the payment order is not one the API knows.
	e.t = t
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "swedbankpay", e.base+"/callbacks/swedbankpay", sendOptions{status: "captured", amount: "1", currency: "SEK", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Errorf("an unknown payment order: %s %s", resp.Status, body)
	}
	e.expectNothingForwarded()
}
