package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckUnzerPaymentID(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"s-pay-1", true}, {"p-pay-774", true}, {"s-pay-0a6f2c1e-8d2b-4c3a-9f1e-2b3c4d5e6f70", true},
		{"s-pay-", false}, {"x-pay-1", false}, {"s-chg-1", false}, {"S-PAY-1", false}, {"s-pay-A", false},
		{"s-pay-1/../../keypair", false}, {"s-pay-1?x=1", false}, {"s-pay-1#x", false}, {"s-pay-1%2F", false},
		{"s-pay-1 ", false}, {"s-pay-\x00", false}, {"merchant-order-1", false}, {"s-pay-" + strings.Repeat("1", 60), false},
	} {
		err := CheckUnzerPaymentID(tt.id)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadResource)) {
			t.Errorf("%q: %v", tt.id, err)
		}
	}
}

func TestUnzerEnvironment(t *testing.T) {
	for in, want := range map[string]string{"s-priv-x": "s", "p-pub-x": "p", "s-pay-1": "s", "x-priv-1": "", "s": "", "sk-priv": "", "": ""} {
		if got := UnzerEnvironment(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The payment is fetched with the private key as the basic-auth user and
// an empty password, at /v1/payments/{id} under the configured base only.
func TestUnzerFetch(t *testing.T) {
	const payment = `{"id":"s-pay-1","state":{"id":1,"name":"completed"},"amount":{"total":"10.0000","charged":"10.0000","canceled":"0.0000","remaining":"0.0000"},"currency":"EUR"}`
	for _, tt := range []struct {
		name   string
		id     string
		status int
		answer string
		err    error
		asked  bool
	}{
		{"found", "s-pay-1", 200, payment, nil, true},
		{"not found", "s-pay-1", 404, `{"id":"s-err-1","isError":true,"errors":[{"code":"API.310.100.003","merchantMessage":"Payment not found"}]}`, ErrUnknownResource, true},
		{"not found with 200", "s-pay-1", 200, `{"errors":[{"code":"API.310.100.003"}]}`, ErrUnknownResource, true},
		{"another error with 200", "s-pay-1", 200, `{"errors":[{"code":"API.000.000.999"}]}`, ErrAPIResponse, true},
		{"key refused", "s-pay-1", 401, `{"errors":[{"code":"API.000.000.001"}]}`, ErrAPIRefused, true},
		{"bad request", "s-pay-1", 400, `{}`, ErrUnknownResource, true},
		{"server error", "s-pay-1", 502, ``, ErrAPIUnavailable, true},
		{"another payment", "s-pay-1", 200, strings.Replace(payment, "s-pay-1", "s-pay-2", 1), ErrAPIResponse, true},
		{"not JSON", "s-pay-1", 200, `<html>`, ErrAPIResponse, true},
		{"a path for an id", "s-pay-1/../keypair", 200, payment, ErrBadResource, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var asked []*http.Request
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = append(asked, r)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.answer))
			}))
			defer api.Close()
			v := &Unzer{APIBase: api.URL + "/", PrivateKey: []byte("s-priv-test"), Fetcher: NewFetcher(FetchLimits{})}
			res, err := v.Fetch(context.Background(), tt.id)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			} else if err != nil || res.Method != "api-fetch" || res.Resource != "payments/s-pay-1" || res.Status != "completed" || string(res.Fetched) != payment {
				t.Fatalf("got %+v, %v", res, err)
			}
			if len(asked) != map[bool]int{true: 1, false: 0}[tt.asked] {
				t.Fatalf("asked %d times", len(asked))
			}
			if tt.asked {
				r := asked[0]
				user, password, ok := r.BasicAuth()
				if r.Method != http.MethodGet || r.URL.Path != "/v1/payments/s-pay-1" || r.URL.RawQuery != "" || !ok || user != "s-priv-test" || password != "" {
					t.Errorf("asked %s %s with %q", r.Method, r.URL, r.Header.Get("Authorization"))
				}
			}
			if err != nil && strings.Contains(err.Error(), "s-priv-test") {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}
