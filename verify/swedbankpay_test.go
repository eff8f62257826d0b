package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func TestCheckPSPPath(t *testing.T) {
	for _, ok := range []string{
		"/psp/paymentorders/5adc265f-f87f-4313-577e-08d3dca1a26c",
		"/psp/creditcard/payments/5adc265f-f87f-4313-577e-08d3dca1a26c/transactions/12345678-1234-1234-1234-123456789012",
		"/psp/paymentorders/ABC_def-123",
	} {
		if err := CheckPSPPath(ok); err != nil {
			t.Errorf("CheckPSPPath(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "/", "/psp/", "/psp", "psp/paymentorders/1", "/PSP/paymentorders/1", "/api/paymentorders/1",
		"https://evil.example/psp/paymentorders/1", "//evil.example/psp/paymentorders/1",
		"/psp/../admin", "/psp/paymentorders/../../x", "/psp/paymentorders/./1", "/psp//paymentorders/1",
		"/psp/paymentorders/1/", "/psp/paymentorders/1?x=1", "/psp/paymentorders/1#f", "/psp/paymentorders/%2e%2e",
		"/psp/paymentorders/1%2F..", "/psp/paymentorders\\..\\x", "/psp/paymentorders/1@evil.example",
		"/psp/paymentorders/1:443", "/psp/paymentorders/ 1", "/psp/paymentorders/1\n", "/psp/paymentorders/é",
		"/psp/" + strings.Repeat("a", 300),
	} {
		if err := CheckPSPPath(bad); !errors.Is(err, ErrBadResource) {
			t.Errorf("CheckPSPPath(%q) = %v, want ErrBadResource", bad, err)
		}
	}
}

// FuzzCheckPSPPath: whatever passes, joined to the API base, must parse as a
// URL on the same host whose path is exactly the input.
func FuzzCheckPSPPath(f *testing.F) {
	for _, s := range []string{"/psp/paymentorders/1", "/psp/../x", "//evil/psp/x", "/psp/a%2fb", "/psp/a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if CheckPSPPath(path) != nil {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "https://api.payex.com"+path, nil)
		if err != nil {
			t.Fatalf("accepted %q, but it is not a URL: %v", path, err)
		}
		if req.URL.Host != "api.payex.com" || req.URL.Path != path || req.URL.RawQuery != "" || req.URL.Fragment != "" || strings.Contains(path, "..") {
			t.Fatalf("accepted %q, which leaves the API: host %q path %q", path, req.URL.Host, req.URL.Path)
		}
	})
}

const (
	poPath = "/psp/paymentorders/5adc265f-f87f-4313-577e-08d3dca1a26c"
	poDoc  = `{"paymentOrder":{"id":"` + poPath + `","status":"Paid","currency":"SEK","amount":1500,"transactionType":"Sale"}}`
	trPath = "/psp/creditcard/payments/11111111-2222-3333-4444-555555555555/transactions/99999999-2222-3333-4444-555555555555"
	pyPath = "/psp/creditcard/payments/11111111-2222-3333-4444-555555555555"
)

func swedbankVerifier(base string) *SwedbankPay {
	return &SwedbankPay{APIBase: base, Token: []byte("bearer-secret"), Fetcher: NewFetcher(FetchLimits{Timeout: time.Second})}
}

func TestSwedbankPayFetchesThePaymentOrder(t *testing.T) {
	api := newFakePayrexx(t, func(path string) (int, string) {
		if path == poPath {
			return 200, poDoc
		}
		return 404, `{"type":"https://api.payex.com/psp/errordetail/notfound","title":"Not found","status":404}`
	})
	v := swedbankVerifier(api.URL)
	res, err := v.Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "api-fetch" || res.Status != "Paid" || res.Resource != poPath || string(res.Fetched) != poDoc {
		t.Errorf("result = %+v", res)
	}
	if got := api.requests[0].Header.Get("Authorization"); got != "Bearer bearer-secret" {
		t.Errorf("Authorization = %q", got)
	}
	// v2 and v3.0 orders carry the merchant's references only in payeeInfo;
	// v3 orders list their captures and reversals in financialtransactions.
	if got := api.requests[0].URL.Query().Get("$expand"); got != "payeeInfo,financialtransactions" {
		t.Errorf("$expand = %q, want payeeInfo,financialtransactions", got)
	}
	_, err = v.Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: "/psp/paymentorders/unknown"}})
	if !errors.Is(err, ErrUnknownResource) {
		t.Errorf("unknown order: %v", err)
	}
}

func TestSwedbankPayExpandsATransactionsPayment(t *testing.T) {
	api := newFakePayrexx(t, func(path string) (int, string) {
		switch path {
		case trPath:
			return 200, `{"payment":"` + pyPath + `","transaction":{"id":"` + trPath + `","type":"Capture","state":"Completed","amount":1500,"payeeReference":"cap-1"}}`
		case pyPath:
			return 200, `{"payment":{"id":"` + pyPath + `","currency":"NOK","amount":1500,"state":"Ready"}}`
		}
		return 404, ``
	})
	res, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "transaction", ID: trPath}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "Capture Completed" || gjson.GetBytes(res.Fetched, "payment.currency").String() != "NOK" ||
		gjson.GetBytes(res.Fetched, "transaction.payeeReference").String() != "cap-1" {
		t.Errorf("result %+v fetched %s", res, res.Fetched)
	}
	if len(api.requests) != 2 || api.requests[0].URL.RawQuery != "" || api.requests[1].URL.Query().Get("$expand") != "payeeInfo" {
		t.Errorf("want the transaction as is, then its payment with payeeInfo expanded; asked %v", api.requests)
	}
}

// A Checkout v2 order has no financial transactions to expand: should the
// API refuse that, the order is asked for with payeeInfo alone.
func TestSwedbankPayV2OrderWithoutFinancialTransactions(t *testing.T) {
	var api *fakePayrexx
	api = newFakePayrexx(t, func(string) (int, string) {
		api.mu.Lock()
		expand := api.requests[len(api.requests)-1].URL.Query().Get("$expand")
		api.mu.Unlock()
		if strings.Contains(expand, "financialtransactions") {
			return 400, `{"type":"https://api.payex.com/psp/errordetail/inputerror","status":400}`
		}
		return 200, poDoc
	})
	res, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}})
	if err != nil || res.Status != "Paid" {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	if len(api.requests) != 2 || api.requests[1].URL.Query().Get("$expand") != "payeeInfo" {
		t.Errorf("want the order asked for again with payeeInfo alone; got %v", api.requests)
	}
}

// Should the API refuse $expand, the payment order is asked for as it is:
// its callback then lacks the references, but it is not refused as unknown.
func TestSwedbankPayWithoutExpansionWhenTheAPIRefusesIt(t *testing.T) {
	var api *fakePayrexx
	api = newFakePayrexx(t, func(string) (int, string) {
		api.mu.Lock()
		expanded := api.requests[len(api.requests)-1].URL.RawQuery != ""
		api.mu.Unlock()
		if expanded {
			return 400, `{"type":"https://api.payex.com/psp/errordetail/inputerror","status":400}`
		}
		return 200, poDoc
	})
	res, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}})
	if err != nil || res.Status != "Paid" {
		t.Fatalf("Verify = %+v, %v; want the order fetched without $expand", res, err)
	}
	if len(api.requests) != 3 || api.requests[0].URL.RawQuery == "" || api.requests[1].URL.RawQuery == "" || api.requests[2].URL.RawQuery != "" {
		t.Errorf("want the order asked for with both expansions, with payeeInfo, then without; got %d requests", len(api.requests))
	}
	// An id the API cannot parse is still unknown, after the second try.
	refusing := newFakePayrexx(t, func(string) (int, string) { return 400, `{"status":400}` })
	if _, err := swedbankVerifier(refusing.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}}); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("400 twice: %v, want ErrUnknownResource", err)
	}
}

func TestSwedbankPayNeverLeavesTheAPI(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, poDoc })
	for _, claim := range []Claim{
		{Kind: "paymentorder", ID: "https://evil.example/psp/paymentorders/1"},
		{Kind: "paymentorder", ID: "//evil.example/psp/x"},
		{Kind: "paymentorder", ID: "/psp/../../admin"},
		{Kind: "paymentorder", ID: "/psp/paymentorders/%2e%2e/x"},
		{Kind: "paymentorder", ID: "/psp/paymentorders/1?redirect=https://evil.example"},
		{Kind: "other", ID: poPath},
	} {
		if _, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: claim}); !errors.Is(err, ErrBadResource) {
			t.Errorf("claim %+v: %v, want ErrBadResource", claim, err)
		}
	}
	// A transaction document naming a payment elsewhere is refused too.
	evil := newFakePayrexx(t, func(string) (int, string) {
		return 200, `{"payment":"https://evil.example/psp/x","transaction":{"id":"` + trPath + `","type":"Sale","state":"Completed"}}`
	})
	if _, err := swedbankVerifier(evil.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "transaction", ID: trPath}}); !errors.Is(err, ErrBadResource) {
		t.Errorf("payment link off the API: %v, want ErrBadResource", err)
	}
	if len(api.requests) != 0 {
		t.Errorf("%d requests were made for forged paths", len(api.requests))
	}
}

func TestSwedbankPayAnswers(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   error
	}{
		{404, ``, ErrUnknownResource},
		{400, `{"title":"Bad request"}`, ErrUnknownResource},
		{401, ``, ErrAPIRefused},
		{403, ``, ErrAPIRefused},
		{500, ``, ErrAPIUnavailable},
		{503, ``, ErrAPIUnavailable},
		{200, `not json`, ErrAPIResponse},
		{200, `{"paymentOrder":{"id":"/psp/paymentorders/other","status":"Paid"}}`, ErrAPIResponse},
		{200, `{"transaction":{}}`, ErrAPIResponse},
	} {
		api := newFakePayrexx(t, func(string) (int, string) { return tt.status, tt.body })
		_, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}})
		if !errors.Is(err, tt.want) {
			t.Errorf("%d %s: %v, want %v", tt.status, tt.body, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "bearer-secret") {
			t.Errorf("error reveals the token: %v", err)
		}
	}
}

// TestSwedbankPayLegacyTransactionInsideItsKind: the developer portal's
// legacy callbacks name …/captures/<id>, …/authorizations/<id>, …/sales/<id>
// and so on, and GET on such a path answers the transaction inside an
// object named after its kind ({"capture": {"id": …, "transaction": {…}}}).
// Expecting a top-level "transaction" there refused every such callback
// with a 503 that repeated on every retry.
func TestSwedbankPayLegacyTransactionInsideItsKind(t *testing.T) {
	base := "/psp/creditcard/payments/5adc265f-f87f-4313-577e-08d3dca1a26c"
	for _, tt := range []struct{ collection, field, kind string }{
		{"captures", "capture", "Capture"}, {"authorizations", "authorization", "Authorization"},
		{"reversals", "reversal", "Reversal"}, {"reversal", "reversal", "Reversal"},
		{"cancellations", "cancellation", "Cancellation"}, {"sales", "sale", "Sale"},
	} {
		path := base + "/" + tt.collection + "/7e6cdfc3-1276-44e9-9992-7cf4419750e1"
		api := newFakePayrexx(t, func(p string) (int, string) {
			switch p {
			case path:
				return 200, `{"payment":"` + base + `","` + tt.field + `":{"id":"` + path + `","transaction":{"id":"` + base + `/transactions/7e6cdfc3-1276-44e9-9992-7cf4419750e1","type":"` + tt.kind + `","state":"Completed","amount":1500}}}`
			case base:
				return 200, `{"payment":{"id":"` + base + `","currency":"SEK","amount":1500,"state":"Ready"}}`
			}
			return 404, ``
		})
		res, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "transaction", ID: path}})
		if err != nil {
			t.Errorf("%s: %v", tt.collection, err)
			continue
		}
		if res.Status != tt.kind+" Completed" || gjson.GetBytes(res.Fetched, "payment.currency").String() != "SEK" ||
			gjson.GetBytes(res.Fetched, "transaction.amount").Int() != 1500 {
			t.Errorf("%s: result %+v fetched %s", tt.collection, res, res.Fetched)
		}
	}
	// An answer without the object the path names is still unexpected.
	if _, err := SwedbankPayTransactionDocument(base+"/captures/1", []byte(`{"payment":"`+base+`","reversal":{}}`), nil); !errors.Is(err, ErrAPIResponse) {
		t.Errorf("capture answered as a reversal: %v", err)
	}
}

// TestSwedbankPayV2AnswerSpellsPaymentorderInLowerCase: the developer
// portal prints most Checkout v2 answers as {"paymentorder": {…}} with a
// state (Ready) where v3 has a status. Expecting "paymentOrder" refused
// such an answer with a 503 on every retry.
func TestSwedbankPayV2AnswerSpellsPaymentorderInLowerCase(t *testing.T) {
	doc := `{"paymentorder":{"id":"` + poPath + `","operation":"Purchase","state":"Ready","currency":"SEK","amount":1500}}`
	api := newFakePayrexx(t, func(path string) (int, string) {
		if path == poPath {
			return 200, doc
		}
		return 404, ``
	})
	res, err := swedbankVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "paymentorder", ID: poPath}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "Ready" || string(res.Fetched) != doc {
		t.Errorf("result = %+v", res)
	}
}

// FuzzSwedbankPayTransactionDocument: whatever the API answers, joining a
// legacy transaction with its payment never panics and, when it succeeds,
// gives valid JSON holding the transaction.
func FuzzSwedbankPayTransactionDocument(f *testing.F) {
	f.Add("/psp/creditcard/payments/1/captures/2", []byte(`{"payment":"/psp/creditcard/payments/1","capture":{"id":"/psp/creditcard/payments/1/captures/2","transaction":{"type":"Capture","state":"Completed"}}}`), []byte(`{"payment":{"id":"/psp/creditcard/payments/1","currency":"SEK"}}`))
	f.Add("/psp/swish/payments/1/transactions/2", []byte(`{"payment":"/psp/swish/payments/1","transaction":{"id":"x","transaction":{"id":"2"}}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, path string, answer, payment []byte) {
		doc, err := SwedbankPayTransactionDocument(path, answer, payment)
		if err != nil {
			return
		}
		if !gjson.ValidBytes(doc) || !gjson.GetBytes(doc, "transaction").IsObject() {
			t.Fatalf("joined document %s", doc)
		}
	})
}

// Issue 24: api_rate bounds the requests sent to the API, not the lookups.
// A forged payment order costs three requests with the merchant's token
// (the API answers 400, and each expansion falls back to a lesser one):
// 600 forged callbacks once cost 1,800 requests. The stand-in's count must
// stay within the rate's burst plus the rate times the time elapsed (a
// clock the test moves: 600 callbacks in 6 s), every lookup past it
// answered ErrAPIThrottled (retry later), before its first request or
// midway.
func TestSwedbankPayForgedLookupsAreBoundedInRequests(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) {
		return 400, `{"type":"https://api.payex.com/psp/errordetail/inputerror","title":"Error in input data","status":400}`
	})
	const perSecond = 50
	f, clock := newClockedFetcher(perSecond)
	v := &SwedbankPay{APIBase: api.URL, Token: []byte("bearer-secret"), Fetcher: f}
	lookup := func(path string) error {
		cb := &Callback{Claim: Claim{Kind: "paymentorder", ID: path}}
		_, err := f.Lookup(context.Background(), "paymentorder "+path, func(ctx context.Context) (Result, error) { return v.Verify(ctx, cb) })
		return err
	}
	start := clock.Now()
	var unknown, throttled int
	var midway string // a lookup throttled after its first request
	for i := range 600 {
		path := fmt.Sprintf("/psp/paymentorders/forged-%d", i)
		before := requestCount(api)
		switch err := lookup(path); {
		case errors.Is(err, ErrUnknownResource):
			unknown++
		case errors.Is(err, ErrAPIThrottled):
			throttled++
			if requestCount(api) > before && midway == "" {
				midway = path
			}
		default:
			t.Fatalf("lookup %d: %v, want ErrUnknownResource or ErrAPIThrottled", i, err)
		}
		clock.Advance(10 * time.Millisecond)
	}
	elapsed := clock.Now().Sub(start)
	bound := 2*perSecond + int(perSecond*elapsed.Seconds())
	requests := requestCount(api)
	t.Logf("600 forged lookups in %s: %d requests (bound %d), %d answered unknown, %d throttled", elapsed, requests, bound, unknown, throttled)
	if requests > bound {
		t.Errorf("600 forged lookups in %s sent %d requests, over the rate's %d", elapsed, requests, bound)
	}
	if unknown == 0 || requests < 3*unknown {
		t.Errorf("%d lookups answered unknown with %d requests: each should have cost three", unknown, requests)
	}
	// Throttled midway, a lookup is not taken for one of an unknown
	// resource: once the rate allows, the API is asked again.
	if midway == "" {
		t.Fatal("no lookup was throttled midway")
	}
	clock.Advance(time.Minute)
	before := requestCount(api)
	if err := lookup(midway); !errors.Is(err, ErrUnknownResource) || requestCount(api) != before+3 {
		t.Errorf("the lookup throttled midway, asked again: %v after %d requests, want ErrUnknownResource after 3", err, requestCount(api)-before)
	}
}
