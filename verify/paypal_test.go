package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadPayPalTransmission(t *testing.T) {
	good := http.Header{
		"Paypal-Transmission-Id":   {"69cd13f0-d67a-11e5-baa3-778b53f4ae01"},
		"Paypal-Transmission-Time": {"2026-11-20T10:34:47Z"},
		"Paypal-Transmission-Sig":  {"bm90IGEgc2lnbmF0dXJl"},
		"Paypal-Cert-Url":          {"https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"},
		"Paypal-Auth-Algo":         {"SHA256withRSA"},
	}
	if _, err := ReadPayPalTransmission(good); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		header, value string
		want          error
	}{
		{"Paypal-Cert-Url", "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1", nil},
		{"Paypal-Cert-Url", "https://api.paypal.com:8443/v1/notifications/certs/CERT-1", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://user@api.paypal.com/v1/notifications/certs/CERT-1", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://api.paypal.com/v1/notifications/certs/../../oauth2/token", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://paypal.com.evil.example/v1/notifications/certs/CERT-1", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://evilpaypal.com/v1/notifications/certs/CERT-1", ErrMalformedSignature},
		{"Paypal-Cert-Url", "https://api.paypal.com/other/CERT-1", ErrMalformedSignature},
		{"Paypal-Auth-Algo", "sha256withrsa", ErrMalformedSignature},
		{"Paypal-Transmission-Sig", "not base64!", ErrMalformedSignature},
		{"Paypal-Transmission-Id", "has space", ErrMalformedSignature},
		{"Paypal-Transmission-Id", "", ErrMalformedSignature},
		{"Paypal-Transmission-Time", "2026-11-20 10:34:47", ErrMalformedDate},
	} {
		h := good.Clone()
		h.Set(tt.header, tt.value)
		if _, err := ReadPayPalTransmission(h); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s %q: %v, want %v", tt.header, tt.value, err, tt.want)
		}
	}
	if _, err := ReadPayPalTransmission(http.Header{}); !errors.Is(err, ErrNotSigned) {
		t.Errorf("no headers: %v", err)
	}
}

// The token is cached until a minute before it expires, then asked for
// again.
func TestPayPalTokenCachedUntilItExpires(t *testing.T) {
	var tokens atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/oauth2/token" {
			n := tokens.Add(1)
			fmt.Fprintf(w, `{"access_token":"t%d","expires_in":61}`, n) // usable for 1s
			return
		}
		_, _ = io.WriteString(w, `{"verification_status":"SUCCESS"}`)
	}))
	defer api.Close()
	v := &PayPal{APIBase: api.URL, ClientID: []byte("id"), ClientSecret: []byte("secret"), WebhookID: "W1", Fetcher: NewFetcher(FetchLimits{})}
	tx := PayPalTransmission{ID: "1", Time: "2026-11-20T10:34:47Z", Sig: "c2ln", CertURL: "https://api.paypal.com/v1/notifications/certs/C", AuthAlgo: "SHA256withRSA"}
	for range 3 {
		if _, err := v.Verify(context.Background(), tx, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Load(); n != 1 {
		t.Errorf("%d token requests for three verifications, want 1", n)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := v.Verify(context.Background(), tx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if n := tokens.Load(); n != 2 {
		t.Errorf("%d token requests after the token expired, want 2", n)
	}
}

// FuzzPayPalTransmission: any PAYPAL-* headers are read without a panic,
// and a certificate URL accepted is https on a PayPal host.
func FuzzPayPalTransmission(f *testing.F) {
	f.Add("69cd13f0-d67a-11e5-baa3-778b53f4ae01", "2026-11-20T10:34:47Z", "c2ln", "https://api.paypal.com/v1/notifications/certs/CERT-1", "SHA256withRSA")
	f.Add("x", "2026-13-45T99:99:99Z", "!!", "https://api.paypal.com.evil/v1/notifications/certs/", "SHA256withRSA")
	f.Fuzz(func(t *testing.T, id, at, sig, certURL, algo string) {
		h := http.Header{}
		for name, v := range map[string]string{"Paypal-Transmission-Id": id, "Paypal-Transmission-Time": at, "Paypal-Transmission-Sig": sig, "Paypal-Cert-Url": certURL, "Paypal-Auth-Algo": algo} {
			h.Set(name, v)
		}
		if _, err := ReadPayPalTransmission(h); err == nil {
			u, perr := url.Parse(h.Get("Paypal-Cert-Url"))
			if perr != nil || u.Scheme != "https" || !strings.HasSuffix(strings.ToLower(u.Hostname()), ".paypal.com") {
				t.Fatalf("accepted certificate URL %q", certURL)
			}
		}
	})
}
