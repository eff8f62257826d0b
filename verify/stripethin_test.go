package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckStripeObjectPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa", true},
		{"/v1/billing/meters/mtr_test_61R9", true},
		{"/v2/core/accounts/acct_1", true},
		{"/v1/", false},
		{"/v3/x", false},
		{"https://evil.example/v1/payment_intents/pi_1", false},
		{"//evil.example/v1/x", false},
		{"/v1/../admin", false},
		{"/v1/payment_intents/pi_1?expand[]=customer", false},
		{"/v1/payment_intents//pi_1", false},
		{"/v1/payment_intents/pi%2F1", false},
		{"/v1/payment_intents/pi_1\\x", false},
	} {
		if err := CheckStripeObjectPath(tt.path); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadResource)) {
			t.Errorf("CheckStripeObjectPath(%q) = %v, want ok %v", tt.path, err, tt.ok)
		}
	}
}

// Fetch sends the key, the context and the trigger, and refuses an answer
// about another object or a context that could smuggle a header.
func TestStripeThinFetch(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		switch r.URL.Path {
		case "/v1/payment_intents/pi_1":
			_, _ = w.Write([]byte(`{"id":"pi_1","object":"payment_intent"}`))
		case "/v1/payment_intents/pi_2":
			_, _ = w.Write([]byte(`{"id":"pi_other","object":"payment_intent"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	f := NewFetcher(FetchLimits{})
	defer f.Close()
	v := &StripeThin{APIBase: srv.URL, APIKey: []byte("rk_test_1"), Fetcher: f}
	doc, err := v.Fetch(context.Background(), "evt_1", "pi_1", "/v1/payment_intents/pi_1", "acct_1")
	if err != nil || string(doc) != `{"id":"pi_1","object":"payment_intent"}` {
		t.Fatalf("Fetch = %s, %v", doc, err)
	}
	if got.Get("Authorization") != "Bearer rk_test_1" || got.Get("Stripe-Context") != "acct_1" || got.Get("Stripe-Request-Trigger") != "event=evt_1" {
		t.Errorf("headers %v", got)
	}
	if _, err := v.Fetch(context.Background(), "evt_1", "pi_2", "/v1/payment_intents/pi_2", ""); !errors.Is(err, ErrAPIResponse) {
		t.Errorf("another object: %v, want ErrAPIResponse", err)
	}
	if _, err := v.Fetch(context.Background(), "evt_1", "pi_3", "/v1/payment_intents/pi_3", ""); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("an unknown object: %v, want ErrUnknownResource", err)
	}
	if _, err := v.Fetch(context.Background(), "evt_1", "pi_1", "/v1/payment_intents/pi_1", "acct_1\r\nX-Evil: 1"); !errors.Is(err, ErrBadResource) {
		t.Errorf("a context with a line break: %v, want ErrBadResource", err)
	}
}
