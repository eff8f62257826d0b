package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// multisafepayCases reads testdata/multisafepay/cases.json: MultiSafepay's
// official vectors, its published orders and its SDK's check (the tests
// the multisafepay preset had, kept for the provider that replaced it).
func multisafepayCases(t *testing.T) presetCases {
	t.Helper()
	raw, err := os.ReadFile("testdata/multisafepay/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases presetCases
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("testdata/multisafepay/cases.json: %v", err)
	}
	return cases
}

// multisafepayAt is a provider that checks signatures with apiKey at now,
// without provisioning (no API: the signed path asks none).
func multisafepayAt(t *testing.T, apiKey string, now time.Time) *MultiSafepay {
	t.Helper()
	sig, err := verify.MultiSafepaySignature([][]byte{[]byte(apiKey)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !now.IsZero() {
		sig.Now = func() time.Time { return now }
	}
	return &MultiSafepay{signature: sig}
}

// The official vectors (MultiSafepay's PHP SDK test, its webhook page)
// verify, and map as published; a changed body or Auth is refused.
func TestMultiSafepayOfficialVectors(t *testing.T) {
	for i, vec := range multisafepayCases(t).Vectors {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := multisafepayAt(t, vec.Secret, vec.Now)
			body, err := os.ReadFile(filepath.Join("testdata/multisafepay", vec.Body))
			if err != nil {
				t.Fatal(err)
			}
			callback := func(body []byte, header http.Header) (*verify.Callback, *normalize.Input) {
				return &verify.Callback{Method: http.MethodPost, RequestURI: "/hooks/multisafepay?transactionid=1&timestamp=2", Header: header, Body: body},
					&normalize.Input{Provider: "multisafepay", ContentType: "application/json", Body: body}
			}
			cb, in := callback(body, vec.Header)
			res, err := p.Verify(context.Background(), cb, in)
			if err != nil || res.Method != "hmac-sha512" {
				t.Fatalf("the official vector: %+v, %v", res, err)
			}
			events, err := p.Normalize(in, res, nil)
			if err != nil || len(events) != vec.Events {
				t.Fatalf("Normalize = %d events, %v", len(events), err)
			}
			if ev := events[0]; ev.Status != vec.Status || ev.Amount == nil || ev.Amount.MinorUnits != vec.Amount || ev.Amount.Currency != vec.Currency {
				t.Errorf("event: %s %+v, want %s %d %s", ev.Status, ev.Amount, vec.Status, vec.Amount, vec.Currency)
			}
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)/2] ^= 1
			cb, in = callback(tampered, vec.Header)
			if _, err := p.Verify(context.Background(), cb, in); !errors.Is(err, verify.ErrBadSignature) {
				t.Errorf("a changed body: %v, want ErrBadSignature", err)
			}
			auth := []byte(vec.Header.Get("Auth"))
			auth[len(auth)-3] ^= 1
			cb, in = callback(body, http.Header{"Auth": {string(auth)}})
			if _, err := p.Verify(context.Background(), cb, in); err == nil {
				t.Error("a changed Auth verifies")
			}
			late := multisafepayAt(t, vec.Secret, vec.Now.Add(11*time.Minute))
			cb, in = callback(body, vec.Header)
			if _, err := late.Verify(context.Background(), cb, in); !errors.Is(err, verify.ErrDateOutsideWindow) {
				t.Errorf("11 minutes later: %v, want ErrDateOutsideWindow", err)
			}
		})
	}
}

// MultiSafepay's published orders map as the preset mapped them.
func TestMultiSafepayPublishedExamples(t *testing.T) {
	for _, ex := range multisafepayCases(t).Examples {
		t.Run(ex.File, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata/multisafepay", ex.File))
			if err != nil {
				t.Fatal(err)
			}
			events, err := new(MultiSafepay).Normalize(&normalize.Input{Provider: "multisafepay", ContentType: "application/json", Body: body}, verify.Result{}, nil)
			if err != nil || len(events) != 1 {
				t.Fatalf("Normalize = %d events, %v", len(events), err)
			}
			ev := events[0]
			if ev.Status != ex.Status || ev.ProviderStatus != ex.ProviderStatus || ev.Unmapped {
				t.Errorf("status %s (%q), want %s (%q)", ev.Status, ev.ProviderStatus, ex.Status, ex.ProviderStatus)
			}
			if ev.Amount == nil || ev.Amount.MinorUnits != ex.Amount || ev.Amount.Currency != ex.Currency {
				t.Errorf("amount %+v, want %d %s", ev.Amount, ex.Amount, ex.Currency)
			}
			if ev.MerchantReference != ex.MerchantReference || ev.ProviderReference != ex.ProviderReference {
				t.Errorf("references %q %q, want %q %q", ev.MerchantReference, ev.ProviderReference, ex.MerchantReference, ex.ProviderReference)
			}
			if (ev.Failure == nil) != (ex.Failure == nil) || (ev.Failure != nil && *ev.Failure != *ex.Failure) {
				t.Errorf("failure %+v, want %+v", ev.Failure, ex.Failure)
			}
			// The same order fetched after a legacy notification is the
			// same event: one order state notified both ways dedupes.
			fetched, err := new(MultiSafepay).Normalize(&normalize.Input{Provider: "multisafepay"}, verify.Result{Fetched: body}, nil)
			if err != nil || fetched[0].ID() != ev.ID() {
				t.Errorf("fetched: id %s, %v; signed: id %s", fetched[0].ID(), err, ev.ID())
			}
		})
	}
}

// What `caddy payhook send multisafepay --secret` signs, MultiSafepay's own
// check (a line-by-line port of its PHP SDK's verifyNotification) accepts,
// and refuses with another key or a changed body.
func TestMultiSafepaySignsAsItsOwnCode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is needed for MultiSafepay's verification code")
		}
		t.Skip("node is not installed")
	}
	sdk := multisafepayCases(t).SDK
	script, err := os.ReadFile(filepath.Join("testdata/multisafepay", sdk.Script))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "0123456789abcdef0123456789abcdef"
	sender := new(MultiSafepay)
	body, _, err := sender.Sample(normalize.Sample{Status: normalize.StatusCaptured,
		Amount: normalize.Amount{MinorUnits: 1234, Currency: "EUR"}, MerchantReference: "order-1042", ProviderReference: "4711"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "https://shop.example.com/hooks/payments?a=1", bytes.NewReader(body))
	if err := sender.SignSample(r, body, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	if r.Method != http.MethodPost || r.URL.Query().Get("transactionid") != "order-1042" || r.URL.Query().Get("timestamp") == "" {
		t.Fatalf("signed sample: %s %s", r.Method, r.URL)
	}
	dir := t.TempDir()
	judge := func(secret string, body []byte) string {
		arg, _ := json.Marshal(map[string]any{"secret": secret, "method": r.Method, "url": r.URL.String(),
			"headers": map[string]string{"Auth": r.Header.Get("Auth")}, "body": string(body)})
		return runNode(t, dir, string(script), string(arg))
	}
	if got := judge(secret, body); got != "valid" {
		t.Fatalf("MultiSafepay's code refuses payhook's signature: %s\n%s", got, body)
	}
	if got := judge(secret+"0", body); got == "valid" {
		t.Fatal("MultiSafepay's code accepts another key: the script checks nothing")
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)/2] ^= 1
	if got := judge(secret, tampered); got == "valid" {
		t.Fatal("MultiSafepay's code accepts a changed body")
	}
	// Without a key, the sample is the legacy notification: a GET naming
	// the order alone.
	legacy := httptest.NewRequest(http.MethodPost, "https://shop.example.com/hooks/payments", bytes.NewReader(body))
	legacy.Header.Set("Content-Type", "application/json")
	if err := sender.SignSample(legacy, body, nil); err != nil {
		t.Fatal(err)
	}
	if legacy.Method != http.MethodGet || legacy.ContentLength != 0 || legacy.Header.Get("Auth") != "" ||
		!strings.Contains(legacy.URL.RawQuery, "transactionid=order-1042") {
		t.Errorf("legacy sample: %s %s %v", legacy.Method, legacy.URL, legacy.Header)
	}
}

// api_base is live, test, or a stand-in on loopback; the API key goes to
// no other host.
func TestMultiSafepayAPIBase(t *testing.T) {
	for _, tt := range []struct {
		option, base string
		test         string
		ok           bool
	}{
		{"", verify.MultiSafepayAPI, "false", true},
		{"live", verify.MultiSafepayAPI, "false", true},
		{"test", verify.MultiSafepayTestAPI, "true", true},
		{"http://127.0.0.1:9/v1/json", "http://127.0.0.1:9/v1/json", "nil", true},
		{"https://localhost:9", "https://localhost:9", "nil", true},
		{"https://api.multisafepay.com.evil.example/v1/json", "", "", false},
		{"https://api.multisafepay.com/v1/json", "", "", false},
		{"http://10.0.0.1/", "", "", false},
	} {
		base, test, err := multisafepayAPIBase(tt.option)
		if (err == nil) != tt.ok || base != tt.base {
			t.Errorf("%q: %q, %v", tt.option, base, err)
			continue
		}
		got := "nil"
		if test != nil {
			got = fmt.Sprint(*test)
		}
		if tt.ok && got != tt.test {
			t.Errorf("%q: test %s, want %s", tt.option, got, tt.test)
		}
	}
}

// A route written for the former multisafepay preset (secret) keeps
// working; an option the provider does not take is named.
func TestMultiSafepayCaddyfile(t *testing.T) {
	p := new(MultiSafepay)
	if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("multisafepay {\n\tsecret {env.MSP_KEY}\n\tmax_skew 5m\n\tapi_base test\n}")); err != nil {
		t.Fatal(err)
	}
	if len(p.Secrets) != 1 || p.Secrets[0] != "{env.MSP_KEY}" || time.Duration(p.MaxSkew) != 5*time.Minute || p.APIBase != "test" {
		t.Errorf("%+v", p)
	}
	err := new(MultiSafepay).UnmarshalCaddyfile(caddyfile.NewTestDispenser("multisafepay {\n\tmap {\n\t}\n}"))
	if err == nil || !strings.Contains(err.Error(), "api_key") {
		t.Errorf("map: %v", err)
	}
	if err := new(MultiSafepay).Validate(); err == nil {
		t.Error("no api_key validates")
	}
}
