package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckMultiSafepayOrderID(t *testing.T) {
	for _, id := range []string{"12345", "my-order-id", "ORDER-12345", "apitool_9290377", "a.b:c@d", strings.Repeat("x", 100)} {
		if err := CheckMultiSafepayOrderID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "../keys", "..", ".", "a?b", "a#b", "a%2F", "a b", "a\\b", "é", "a\x00", strings.Repeat("x", 101)} {
		if err := CheckMultiSafepayOrderID(id); !errors.Is(err, ErrBadResource) {
			t.Errorf("%q: %v, want ErrBadResource", id, err)
		}
	}
}

func TestMultiSafepayFetch(t *testing.T) {
	const order = `{"amount":1000,"currency":"EUR","financial_status":"completed","order_id":"o-1","status":"completed","transaction_id":"42"}`
	for _, tt := range []struct {
		name   string
		id     string
		status int
		answer string
		err    error
		asked  bool
	}{
		{"found", "o-1", 200, `{"success":true,"data":` + order + `}`, nil, true},
		{"not found", "o-1", 404, `{"success":false,"data":{},"error_code":1006,"error_info":"Invalid transaction ID"}`, ErrUnknownResource, true},
		{"not found with 200", "o-1", 200, `{"success":false,"data":{},"error_code":1006,"error_info":"Invalid transaction ID"}`, ErrUnknownResource, true},
		{"key refused", "o-1", 401, `{"success":false,"error_code":1032,"error_info":"Invalid API key"}`, ErrAPIRefused, true},
		{"another error", "o-1", 200, `{"success":false,"error_code":1000}`, ErrAPIResponse, true},
		{"server error", "o-1", 502, ``, ErrAPIUnavailable, true},
		{"another order", "o-1", 200, `{"success":true,"data":` + strings.Replace(order, "o-1", "o-2", 1) + `}`, ErrAPIResponse, true},
		{"no data", "o-1", 200, `{"success":true}`, ErrAPIResponse, true},
		{"not JSON", "o-1", 200, `<html>`, ErrAPIResponse, true},
		{"a path for an id", "o-1/../../gateways", 200, ``, ErrBadResource, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var asked []*http.Request
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = append(asked, r)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.answer))
			}))
			defer api.Close()
			v := &MultiSafepay{APIBase: api.URL + "/v1/json/", APIKey: []byte("msp-key-test"), Fetcher: NewFetcher(FetchLimits{})}
			res, err := v.Fetch(context.Background(), tt.id)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			} else if err != nil || res.Method != "api-fetch" || res.Resource != "orders/o-1" || res.Status != "completed" || string(res.Fetched) != order {
				t.Fatalf("got %+v, %v", res, err)
			}
			if len(asked) != map[bool]int{true: 1, false: 0}[tt.asked] {
				t.Fatalf("asked %d times", len(asked))
			}
			if tt.asked {
				r := asked[0]
				if r.Method != http.MethodGet || r.URL.Path != "/v1/json/orders/o-1" || r.URL.RawQuery != "" || r.Header.Get("api_key") != "msp-key-test" {
					t.Errorf("asked %s %s with api_key %q", r.Method, r.URL, r.Header.Get("api_key"))
				}
			}
			if err != nil && strings.Contains(err.Error(), "msp-key-test") {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}
