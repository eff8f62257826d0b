package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/normalize"
)

const (
	klarnaUsername = "PK0001_it0123456789"
	klarnaPassword = "it-password-0123456789"
	klarnaOrderID  = "903e3d51-3b68-4993-be73-2c2f95e83d97"
)

// klarnaSite routes /kco/push through payhook, fetching from api; extra
// goes into the payhook block.
func klarnaSite(api *fakeAPI, extra string) string {
	return fmt.Sprintf(`route /kco/push* {
		payhook klarna {
			username {env.PAYHOOK_TEST_KLARNA_USER}
			password {env.PAYHOOK_TEST_KLARNA_PASSWORD}
			api_base %s
			api_timeout 500ms
			%s
		}
		reverse_proxy {upstream}
	}`, api.URL, extra)
}

func startKlarna(t *testing.T, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_KLARNA_USER", klarnaUsername)
	t.Setenv("PAYHOOK_TEST_KLARNA_PASSWORD", klarnaPassword)
	api := newFakeAPI(t)
	return startCaddy(t, klarnaSite(api, extra)), api
}

// klarnaOrderDoc is an order of the Order Management API.
func klarnaOrderDoc(id, status, fraud string, captured, refunded int64, captures, refunds string) string {
	return fmt.Sprintf(`{"order_id":%q,"status":%q,"fraud_status":%q,"order_amount":1800,"original_order_amount":1800,"captured_amount":%d,`+
		`"refunded_amount":%d,"remaining_authorized_amount":%d,"purchase_currency":"EUR","locale":"nl-BE","merchant_reference1":"1042",`+
		`"klarna_reference":"K4MADNY","captures":[%s],"refunds":[%s]}`, id, status, fraud, captured, refunded, 1800-captured, captures, refunds)
}

// setKlarnaOrder has the stand-in serve the order and take its acknowledge.
func setKlarnaOrder(api *fakeAPI, id, doc string) {
	api.set("/ordermanagement/v1/orders/"+id, 200, doc)
	api.set("/ordermanagement/v1/orders/"+id+"/acknowledge", 204, "")
}

// push sends Klarna's push: a POST with an empty body and no Content-Type.
func (e *env) push(uri string) (*http.Response, string) {
	e.t.Helper()
	req := e.postRequest(uri, "", "", nil)
	req.Header.Del("Content-Type")
	return e.do(req)
}

// klarnaCalls lists the API requests as "METHOD path".
func klarnaCalls(api *fakeAPI) []string {
	var calls []string
	for _, r := range api.asked() {
		calls = append(calls, r.Method+" "+r.URL.Path)
	}
	return calls
}

func klarnaAcks(api *fakeAPI) int {
	n := 0
	for _, call := range klarnaCalls(api) {
		if strings.HasSuffix(call, "/acknowledge") {
			n++
		}
	}
	return n
}

// Agreement: the push's order is fetched with the API credentials, the
// shop receives the envelope built from it once, and only after the
// shop's 2xx is the order acknowledged.
func TestKlarnaPushFetchedForwardedThenAcknowledged(t *testing.T) {
	e, api := startKlarna(t, "")
	setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""))
	acksWhenTheShopAnswered := -1
	e.upstream.setStatusFunc(func() int {
		acksWhenTheShopAnswered = klarnaAcks(api)
		return http.StatusOK
	})
	resp, body := e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
	expectAnswer(t, resp, body, http.StatusOK, "OK")

	wantCalls := []string{"GET /ordermanagement/v1/orders/" + klarnaOrderID, "POST /ordermanagement/v1/orders/" + klarnaOrderID + "/acknowledge"}
	if got := klarnaCalls(api); strings.Join(got, "\n") != strings.Join(wantCalls, "\n") {
		t.Fatalf("API calls %q, want %q", got, wantCalls)
	}
	if acksWhenTheShopAnswered != 0 {
		t.Errorf("the order was acknowledged %d times before the shop answered", acksWhenTheShopAnswered)
	}
	for _, r := range api.asked() {
		if user, password, ok := r.BasicAuth(); !ok || user != klarnaUsername || password != klarnaPassword {
			t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
	}
	if ack := api.asked()[1]; ack.ContentLength != 0 {
		t.Errorf("the acknowledge had a body of %d bytes", ack.ContentLength)
	}
	r, doc := e.onlyDelivery()
	d := doc.Data
	if doc.Source != "payhook/klarna" || doc.Type != "payhook.payment.authorized" || d.Status != "authorized" || d.ProviderStatus != "AUTHORIZED" ||
		d.ProviderReference != klarnaOrderID || d.MerchantReference != "1042" || d.Amount.MinorUnits != 1800 || d.Amount.Currency != "EUR" {
		t.Errorf("envelope: %+v", doc)
	}
	if gjson.GetBytes(r.Body, "data.fetched.klarna_reference").String() != "K4MADNY" || gjson.GetBytes(r.Body, "data.payment_reference").String() != klarnaOrderID ||
		gjson.GetBytes(r.Body, "data.original").Exists() || gjson.GetBytes(r.Body, "data.unverified").Exists() {
		t.Errorf("envelope: %s", r.Body)
	}
	if d.Verification["method"] != "api-fetch" || d.Verification["resource"] != "orders/"+klarnaOrderID || d.Verification["status"] != "AUTHORIZED" {
		t.Errorf("verification = %v", d.Verification)
	}
	if strings.Contains(string(r.Body), klarnaPassword) || strings.Contains(e.rawLog(), klarnaPassword) {
		t.Error("the envelope or the log holds the password")
	}
}

// The shop fails: Klarna's push is answered 502 and the order is not
// acknowledged, so Klarna pushes again; that retry, once the shop is
// back, delivers the event and acknowledges the order.
func TestKlarnaShopFailsNoAcknowledge(t *testing.T) {
	e, api := startKlarna(t, "")
	setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""))
	e.upstream.setStatus(http.StatusInternalServerError)
	resp, body := e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
	expectAnswer(t, resp, body, http.StatusBadGateway, "")
	if n := klarnaAcks(api); n != 0 {
		t.Fatalf("acknowledged %d times though the shop failed", n)
	}
	e.upstream.setStatus(http.StatusOK)
	resp, body = e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := klarnaAcks(api); n != 1 {
		t.Fatalf("acknowledged %d times after the shop took the event, want 1", n)
	}
	if got := e.upstream.received(); len(got) != 2 || got[0].Header.Get(EventIDHeader) != got[1].Header.Get(EventIDHeader) {
		t.Errorf("the shop got %d requests; a retry must carry the same event id", len(got))
	}
}

// A retry of a push the shop took is a duplicate: not forwarded again,
// and still acknowledged (Klarna pushes until it is). An acknowledge that
// fails answers 503, and the next push acknowledges without delivering
// the event again.
func TestKlarnaRetryDedupedAndAcknowledged(t *testing.T) {
	e, api := startKlarna(t, "")
	setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""))
	api.set("/ordermanagement/v1/orders/"+klarnaOrderID+"/acknowledge", 503, `{"error_code":"TEMPORARILY_UNAVAILABLE"}`)
	resp, body := e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
	expectAnswer(t, resp, body, http.StatusServiceUnavailable, "")
	e.expectReason(reasonUnconfirmed)
	if len(e.upstream.received()) != 1 {
		t.Fatal("the event did not reach the shop")
	}
	setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""))
	for range 2 {
		resp, body = e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	if got := len(e.upstream.received()); got != 1 {
		t.Errorf("the shop received %d requests for one order state, want 1", got)
	}
	if n := klarnaAcks(api); n != 3 {
		t.Errorf("%d acknowledge calls, want 3 (the failed one, then one per retry)", n)
	}
	// The failed confirmation is counted apart, under its reason.
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`payhook_callbacks_total\{outcome="forwarded",provider="klarna",reason="confirmation_failed",route="[^"]*"\} [1-9][0-9]*\n`).Match(metrics) {
		t.Errorf("no count of the failed confirmation in the metrics")
	}
}

// The order moved on (captured, then partly refunded): each push that
// finds it changed is a new event with a new id.
func TestKlarnaOrderMovedOnIsANewEvent(t *testing.T) {
	e, api := startKlarna(t, "")
	path := "/kco/push?klarna_order_id=" + klarnaOrderID
	for _, doc := range []string{
		klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""),
		klarnaOrderDoc(klarnaOrderID, "CAPTURED", "ACCEPTED", 1800, 0, "{}", ""),
		klarnaOrderDoc(klarnaOrderID, "CAPTURED", "ACCEPTED", 1800, 500, "{}", "{}"),
	} {
		setKlarnaOrder(api, klarnaOrderID, doc)
		resp, body := e.push(path)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	got := e.upstream.received()
	if len(got) != 3 {
		t.Fatalf("the shop received %d events, want 3", len(got))
	}
	ids := map[string]bool{}
	var statuses []string
	for _, r := range got {
		ids[r.Header.Get(EventIDHeader)] = true
		statuses = append(statuses, gjson.GetBytes(r.Body, "data.status").String()+" "+gjson.GetBytes(r.Body, "data.amount.value").String())
	}
	if len(ids) != 3 || strings.Join(statuses, ", ") != "authorized 1800, captured 1800, partially_refunded 500" {
		t.Errorf("%d ids; statuses %v", len(ids), statuses)
	}
}

// A push naming an order the API does not know is refused (401) and
// remembered: pushed again within verify.UnknownFor it is answered 503
// without asking the API, so a forger's loop costs one request. Nothing
// is acknowledged. A push whose id is no UUID never reaches the API.
func TestKlarnaUnknownOrderRememberedBadIDRefused(t *testing.T) {
	e, api := startKlarna(t, "")
	forged := "/kco/push?klarna_order_id=00000000-0000-4000-8000-000000000000"
	resp, body := e.push(forged)
	expectAnswer(t, resp, body, http.StatusUnauthorized, "")
	e.expectReason("resource_unknown")
	for range 5 {
		resp, body = e.push(forged)
		expectAnswer(t, resp, body, http.StatusServiceUnavailable, "")
	}
	if n := len(api.asked()); n != 1 {
		t.Errorf("the API was asked %d times about one unknown order, want 1", n)
	}
	for _, uri := range []string{
		"/kco/push", "/kco/push?klarna_order_id=12345", "/kco/push?klarna_order_id=" + klarnaOrderID + "%2F..%2F..%2Fpayments",
		"/kco/push?klarna_order_id=" + klarnaOrderID + "&klarna_order_id=" + klarnaOrderID,
	} {
		resp, body = e.push(uri)
		expectAnswer(t, resp, body, http.StatusBadRequest, "")
		e.expectReason("resource_invalid")
	}
	if n := len(api.asked()); n != 1 {
		t.Errorf("the API was asked %d times in all, want 1", n)
	}
	e.expectNothingForwarded()
}

// With the inbox, the event stored durably is the shop's: the order is
// acknowledged while the shop is down, and the inbox delivers it later,
// once.
func TestKlarnaInboxAcknowledgesOnceStored(t *testing.T) {
	e, api := startKlarna(t, "inbox")
	setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "CAPTURED", "ACCEPTED", 1800, 0, "{}", ""))
	e.upstream.setStatus(http.StatusServiceUnavailable)
	resp, body := e.push("/kco/push?klarna_order_id=" + klarnaOrderID)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := klarnaAcks(api); n != 1 {
		t.Fatalf("%d acknowledge calls once the event was stored, want 1", n)
	}
	resp, body = e.push("/kco/push?klarna_order_id=" + klarnaOrderID) // Klarna's retry
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.upstream.setStatus(http.StatusOK)
	e.waitTaken(1, time.Minute)
	time.Sleep(300 * time.Millisecond)
	if got := e.waitTaken(1, 0); len(got) != 1 || gjson.GetBytes(got[0].Body, "data.status").String() != "captured" {
		t.Errorf("the shop took %d events, want 1", len(got))
	}
}

// The order id in a query parameter of the merchant's choosing, or in the
// push URI's path.
func TestKlarnaOrderIDParamAndPath(t *testing.T) {
	for _, tt := range []struct{ extra, uri string }{
		{"order_id_param checkout_uri", "/kco/push?checkout_uri=" + klarnaOrderID},
		{"", "/kco/push?order_id=" + klarnaOrderID},
		{"order_id_in_path", "/kco/push/" + klarnaOrderID},
	} {
		t.Run(tt.uri, func(t *testing.T) {
			e, api := startKlarna(t, tt.extra)
			setKlarnaOrder(api, klarnaOrderID, klarnaOrderDoc(klarnaOrderID, "AUTHORIZED", "ACCEPTED", 0, 0, "", ""))
			resp, body := e.push(tt.uri)
			expectAnswer(t, resp, body, http.StatusOK, "OK")
			if _, doc := e.onlyDelivery(); doc.Data.ProviderReference != klarnaOrderID || klarnaAcks(api) != 1 {
				t.Errorf("envelope %+v, %d acknowledge calls", doc.Data, klarnaAcks(api))
			}
		})
	}
}

// The goldens of normalize/testdata/klarna through Caddy, each case's
// order served by the stand-in. The docs' example order has a masked id
// that is no UUID: its push is refused before anything is asked. An
// answer that is not JSON is the API's failure (503), not the push's.
func TestKlarnaGoldenThroughCaddy(t *testing.T) {
	e, api := startKlarna(t, "dedupe off")
	files, _ := filepath.Glob("../normalize/testdata/klarna/*.in")
	if len(files) == 0 {
		t.Fatal("no goldens")
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			req, _ := readRawRequest(t, in)
			base := strings.TrimSuffix(in, ".in")
			fetched, err := os.ReadFile(base + ".fetched.json")
			if err != nil {
				t.Fatal(err)
			}
			api.set("/ordermanagement/v1/orders/"+klarnaOrderID, 200, string(fetched))
			api.set("/ordermanagement/v1/orders/"+klarnaOrderID+"/acknowledge", 204, "")
			header := req.Header.Clone()
			header.Del("Content-Length")
			r := e.postRequest(req.RequestURI, "", "", header)
			if req.Header.Get("Content-Type") == "" {
				r.Header.Del("Content-Type")
			}
			resp, answer := e.do(r)
			switch {
			case name == "docs_check_order_details":
				expectAnswer(t, resp, answer, http.StatusBadRequest, "")
				e.expectNothingForwarded()
				return
			case name == "reject_not_json":
				expectAnswer(t, resp, answer, http.StatusServiceUnavailable, "")
				e.expectNothingForwarded()
				return
			case strings.HasPrefix(name, "reject_"):
				expectAnswer(t, resp, answer, http.StatusBadRequest, "")
				e.expectNothingForwarded()
				return
			}
			expectAnswer(t, resp, answer, http.StatusOK, "OK")
			golden, err := os.ReadFile(base + ".envelope.json")
			if err != nil {
				t.Fatal(err)
			}
			got := e.upstream.received()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			if got, want := comparable(t, got[0].Body), comparable(t, golden); got != want {
				t.Errorf("upstream's request\n%s\nwant (golden)\n%s", got, want)
			}
		})
	}
}

// `caddy payhook send klarna --api` stores the sample order at the demo's
// stand-in, which payhook then fetches and acknowledges.
func TestSendKlarnaThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_KLARNA_USER", klarnaUsername)
	t.Setenv("PAYHOOK_TEST_KLARNA_PASSWORD", klarnaPassword)
	e := startCaddy(t, `route /kco/push* {
		payhook klarna {
			username {env.PAYHOOK_TEST_KLARNA_USER}
			password {env.PAYHOOK_TEST_KLARNA_PASSWORD}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"authorized", "captured", "refunded", "failed"} {
		t.Run(status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "klarna", e.base+"/kco/push", sendOptions{
				api: standIn.URL, status: status, amount: "12.30", currency: "EUR", reference: "order-8", timeout: 5 * time.Second,
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
	e.t = t
	if _, _, err := sendSample(t.Context(), "klarna", e.base+"/kco/push", sendOptions{status: "captured", amount: "1", currency: "EUR", secret: "x", timeout: time.Second}); err == nil {
		t.Error("--secret for klarna: no error")
	}
}

// Missing credentials, an option for both places of the id, and an
// api_base that is not https are configuration errors naming no secret;
// a region's name is its host.
func TestKlarnaConfiguration(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_KLARNA_CONF", klarnaPassword)
	for _, tt := range []struct {
		p    Klarna
		want string
	}{
		{Klarna{Username: "u"}, "username and password are required"},
		{Klarna{Username: "u", Password: "{env.PAYHOOK_TEST_KLARNA_CONF}", OrderIDParams: []string{"x"}, OrderIDInPath: true}, "exclude each other"},
		{Klarna{Username: "u", Password: "{env.PAYHOOK_TEST_KLARNA_CONF}", API: API{APIBase: "http://api.klarna.com"}}, "must be https"},
		{Klarna{Username: "u", Password: "{env.PAYHOOK_TEST_KLARNA_UNSET}"}, "is empty"},
		{Klarna{Username: "u", Password: "{env.PAYHOOK_TEST_KLARNA_CONF}", API: API{APIBase: "playground-na"}}, ""},
	} {
		p := tt.p
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := p.Provision(ctx)
		cancel()
		if tt.want == "" {
			if err != nil || p.base != "https://api-na.playground.klarna.com" || p.test == nil || !*p.test {
				t.Errorf("playground-na: %v, base %s, test %v", err, p.base, p.test)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), klarnaPassword) {
			t.Errorf("%+v: %v, want %q without the password", tt.p, err, tt.want)
		}
	}
}

// The rejections every provider shares, for Klarna (whose push may come
// without a Content-Type, so that is no refusal here): another method,
// another content type, a compressed body, a body over max_body. Nothing
// is forwarded and the API is never asked.
func TestKlarnaSharedRejections(t *testing.T) {
	e, api := startKlarna(t, "max_body 64KiB")
	uri := "/kco/push?klarna_order_id=" + klarnaOrderID
	big := `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tt := range []struct {
		name, method, contentType, body string
		header                          http.Header
		status                          int
		reason                          string
	}{
		{"GET", http.MethodGet, "", "", nil, 405, "method_not_allowed"},
		{"PUT", http.MethodPut, "", "", nil, 405, "method_not_allowed"},
		{"xml", http.MethodPost, "application/xml", "<a/>", nil, 415, "content_type_not_accepted"},
		{"compressed", http.MethodPost, "application/json", "{}", http.Header{"Content-Encoding": {"gzip"}}, 415, "content_type_not_accepted"},
		{"over max_body", http.MethodPost, "application/json", big, nil, 413, "body_too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			var resp *http.Response
			var answer string
			if tt.body == big {
				resp, answer = e.postUnread(uri, tt.contentType, tt.body, tt.header)
			} else {
				req := e.postRequest(uri, tt.contentType, tt.body, tt.header)
				req.Method = tt.method
				if tt.contentType == "" {
					req.Header.Del("Content-Type")
				}
				resp, answer = e.do(req)
			}
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			entries := e.logEntries(1)
			if last := entries[len(entries)-1]; last["reason"] != tt.reason || last["provider"] != "klarna" {
				t.Errorf("log = %v, want reason %s for klarna", last, tt.reason)
			}
		})
	}
	if len(api.asked()) != 0 {
		t.Error("Klarna's API was asked")
	}
}

// The sample push names a UUID: --id as given, or send's random default
// made one; any other --id is refused.
func TestKlarnaSampleIDs(t *testing.T) {
	p := new(Klarna)
	for id, want := range map[string]string{
		klarnaOrderID:                      klarnaOrderID,
		strings.ToUpper(klarnaOrderID):     klarnaOrderID,
		"123456789012":                     "12345678-9012-0000-0000-000000000000",
		"order-1042":                       "",
		"903e3d51-3b68-4993-be73-2c2f95e8": "",
	} {
		_, _, err := p.Sample(normalize.Sample{Status: normalize.StatusCaptured, Amount: normalize.Amount{MinorUnits: 100, Currency: "EUR"}, ProviderReference: id})
		if want == "" {
			if err == nil {
				t.Errorf("--id %s: no error", id)
			}
			continue
		}
		req := httptest.NewRequest(http.MethodPost, "http://shop.example/kco/push", nil)
		req.Header.Set("Content-Type", "")
		if err != nil || p.SignSample(req, nil, nil) != nil || req.URL.Query().Get("klarna_order_id") != want || len(req.Header.Values("Content-Type")) != 0 {
			t.Errorf("--id %s: %v, %s", id, err, req.URL)
		}
	}
}
