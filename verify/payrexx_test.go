package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePayrexx is a Payrexx API: it answers GET /v1.14/{Kind}/{id}/ from a
// table and records what it was asked.
type fakePayrexx struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	conns    int
	answer   func(path string) (int, string)
}

func newFakePayrexx(t *testing.T, answer func(path string) (int, string)) *fakePayrexx {
	f := &fakePayrexx{answer: answer}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		f.mu.Unlock()
		status, body := f.answer(r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	f.Server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

const payrexxConfirmed = `{"status":"success","data":[{"id":4711,"uuid":"a1b2c3d4","status":"confirmed","amount":1990,"invoice":{"currency":"CHF"}}]}`

func payrexxVerifier(base string) *Payrexx {
	return &Payrexx{APIBase: base, Instance: "myshop", APIKey: []byte("api-secret"), Fetcher: NewFetcher(FetchLimits{Timeout: time.Second})}
}

func TestPayrexxFetchesTheClaimedTransaction(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, payrexxConfirmed })
	v := payrexxVerifier(api.URL)
	res, err := v.Verify(context.Background(), &Callback{Claim: Claim{Kind: "Transaction", ID: "4711", Status: "waiting"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "api-fetch" || res.Resource != "Transaction/4711" || res.Status != "confirmed" || res.ClaimedStatus != "waiting" {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(string(res.Fetched), `"uuid":"a1b2c3d4"`) {
		t.Errorf("fetched = %s", res.Fetched)
	}
	r := api.requests[0]
	if r.Method != http.MethodGet || r.URL.Path != "/v1.14/Transaction/4711/" || r.URL.Query().Get("instance") != "myshop" || r.Header.Get("X-Api-Key") != "api-secret" {
		t.Errorf("API asked %s %s with key %q", r.Method, r.URL, r.Header.Get("X-Api-Key"))
	}
}

func TestPayrexxAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"unknown id: 404", 404, `{"status":"error","message":"No Transaction found with id 4711"}`, ErrUnknownResource},
		{"unknown id: empty data", 200, `{"status":"success","data":[]}`, ErrUnknownResource},
		{"unknown id: error with 200", 200, `{"status":"error","message":"Transaction not found"}`, ErrUnknownResource},
		{"unknown id: 400", 400, `{"status":"error","message":"Invalid id"}`, ErrUnknownResource},
		{"key refused: 401", 401, `{"status":"error","message":"The API key is invalid"}`, ErrAPIRefused},
		{"key refused: 403", 403, `{}`, ErrAPIRefused},
		{"key refused: error with 200", 200, `{"status":"error","message":"Invalid API Signature"}`, ErrAPIRefused},
		{"instance not found", 200, `{"status":"error","message":"Instance not found"}`, ErrAPIRefused},
		{"server error", 500, `oops`, ErrAPIUnavailable},
		{"bad gateway", 502, ``, ErrAPIUnavailable},
		{"rate limited", 429, `{}`, ErrAPIUnavailable},
		{"not JSON", 200, `<html>maintenance</html>`, ErrAPIResponse},
		{"other id", 200, `{"status":"success","data":[{"id":1,"status":"confirmed"}]}`, ErrAPIResponse},
		{"unknown status word", 200, `{"status":"maybe"}`, ErrAPIResponse},
		{"redirect", 302, ``, ErrAPIResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakePayrexx(t, func(string) (int, string) { return tt.status, tt.body })
			_, err := payrexxVerifier(api.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "Transaction", ID: "4711"}})
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "api-secret") {
				t.Errorf("error reveals the API key: %v", err)
			}
		})
	}
}

func TestPayrexxUnreachableOrSlowAPI(t *testing.T) {
	// Nothing listens on a closed server's address.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if _, err := payrexxVerifier(closed.URL).Verify(context.Background(), &Callback{Claim: Claim{Kind: "Transaction", ID: "1"}}); !errors.Is(err, ErrAPIUnavailable) {
		t.Errorf("closed port: %v, want ErrAPIUnavailable", err)
	}
	slow := newFakePayrexx(t, func(string) (int, string) { time.Sleep(2 * time.Second); return 200, payrexxConfirmed })
	v := payrexxVerifier(slow.URL)
	v.Fetcher = NewFetcher(FetchLimits{Timeout: 200 * time.Millisecond})
	start := time.Now()
	if _, err := v.Verify(context.Background(), &Callback{Claim: Claim{Kind: "Transaction", ID: "4711"}}); !errors.Is(err, ErrAPIUnavailable) {
		t.Errorf("slow API: %v, want ErrAPIUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("slow API held the callback %s; the fetch timeout is 200ms", elapsed)
	}
}

func TestPayrexxRefusesClaimsThatAreNotIDs(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, payrexxConfirmed })
	for _, claim := range []Claim{
		{Kind: "Transaction", ID: ""},
		{Kind: "Transaction", ID: "../Gateway/1"},
		{Kind: "Transaction", ID: "1?instance=other"},
		{Kind: "Invoice", ID: "1"},
		{Kind: "", ID: "1"},
	} {
		if _, err := payrexxVerifier(api.URL).Verify(context.Background(), &Callback{Claim: claim}); !errors.Is(err, ErrUnknownResource) {
			t.Errorf("claim %+v: %v, want ErrUnknownResource", claim, err)
		}
	}
	if len(api.requests) != 0 {
		t.Errorf("the API was asked %d times for claims that are not ids", len(api.requests))
	}
}

func TestPayrexxReusesConnections(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, payrexxConfirmed })
	v := payrexxVerifier(api.URL)
	for range 5 {
		if _, err := v.Verify(context.Background(), &Callback{Claim: Claim{Kind: "Transaction", ID: "4711"}}); err != nil {
			t.Fatal(err)
		}
	}
	if api.conns != 1 {
		t.Errorf("5 fetches opened %d connections, want 1", api.conns)
	}
}

func TestPayrexxOptionalSignature(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, payrexxConfirmed })
	body := []byte(`{"transaction":{"id":4711}}`)
	good := SignHexHMACSHA256([]byte("whsec"), body)
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"valid", good, nil},
		{"valid, upper case hex", strings.ToUpper(good), nil},
		{"missing", "", ErrNotSigned},
		{"wrong", SignHexHMACSHA256([]byte("other"), body), ErrBadSignature},
		{"not hex", "zz", ErrMalformedSignature},
		{"too short", good[:10], ErrMalformedSignature},
	}
	for _, tt := range tests {
		v := payrexxVerifier(api.URL)
		v.SignatureSecrets = [][]byte{[]byte("whsec")}
		cb := &Callback{Header: http.Header{}, Body: body, Claim: Claim{Kind: "Transaction", ID: "4711"}}
		if tt.header != "" {
			cb.Header.Set("X-Webhook-Signature", tt.header)
		}
		before := len(api.requests)
		res, err := v.Verify(context.Background(), cb)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.want)
		}
		if err == nil && (len(res.Also) != 1 || res.Also[0] != "hmac-sha256") {
			t.Errorf("%s: result %+v does not record the signature", tt.name, res)
		}
		if err != nil && len(api.requests) != before {
			t.Errorf("%s: a bad signature still fetched from the API", tt.name)
		}
	}
}

// Lookup bounds what forged callbacks cost: an id the API just called
// unknown is not asked about again (and is answered "retry later", never
// refused outright), and past the rate the API is not asked at all.
func TestFetcherLookupBoundsTheAPIRequests(t *testing.T) {
	f := NewFetcher(FetchLimits{Rate: 5})
	calls := 0
	unknown := func(context.Context) (Result, error) { calls++; return Result{}, ErrUnknownResource }
	if _, err := f.Lookup(context.Background(), "Transaction/1", unknown); !errors.Is(err, ErrUnknownResource) {
		t.Fatalf("first lookup: %v", err)
	}
	for range 3 {
		if _, err := f.Lookup(context.Background(), "Transaction/1", unknown); !errors.Is(err, ErrRecentlyUnknown) {
			t.Fatalf("repeat: %v, want ErrRecentlyUnknown", err)
		}
	}
	if calls != 1 {
		t.Errorf("the API was asked %d times about one unknown id, want 1", calls)
	}
	// A burst of fresh ids: twice the rate gets through, then throttled.
	throttled := 0
	for i := range 20 {
		_, err := f.Lookup(context.Background(), fmt.Sprintf("Transaction/%d", 100+i), unknown)
		if errors.Is(err, ErrAPIThrottled) {
			throttled++
		}
	}
	if calls > 1+2*5 || throttled < 20-2*5 {
		t.Errorf("20 fresh ids at a rate of 5/s: the API was asked %d times, %d throttled", calls, throttled)
	}
}
