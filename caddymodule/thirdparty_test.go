// This file is a provider module as a third party would ship it, as an
// xcaddy plugin of its own: it uses nothing of payhook but what payhook
// exports, which the external test package enforces.
package caddymodule_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/caddymodule"
	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(AcmePay{})
}

// AcmePay is a made-up provider: JSON callbacks signed with a hex
// HMAC-SHA256 of the body in the Acme-Signature header.
type AcmePay struct {
	// Secret is the webhook secret.
	Secret string `json:"secret,omitempty"`

	key []byte
}

func (AcmePay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: caddymodule.ProvidersNamespace + ".acmepay", New: func() caddy.Module { return new(AcmePay) }}
}

func (p *AcmePay) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	for d.NextBlock(0) {
		switch d.Val() {
		case "secret":
			if !d.AllArgs(&p.Secret) {
				return d.ArgErr()
			}
		default:
			return caddymodule.UnrecognizedOption(d, "acmepay", "secret")
		}
	}
	return nil
}

func (p *AcmePay) Provision(ctx caddy.Context) error {
	if p.Secret == "" {
		return errors.New("secret is required")
	}
	var err error
	p.key, err = caddymodule.Secret(ctx.Logger(), "secret", p.Secret)
	return err
}

func (*AcmePay) Name() string           { return "acmepay" }
func (*AcmePay) ContentTypes() []string { return []string{"application/json"} }

func (p *AcmePay) Verify(_ context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	header := cb.Header.Get("Acme-Signature")
	if header == "" {
		return verify.Result{}, verify.ErrNotSigned
	}
	sig, err := hex.DecodeString(header)
	if err != nil {
		return verify.Result{}, verify.ErrMalformedSignature
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write(cb.Body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return verify.Result{}, verify.ErrBadSignature
	}
	return verify.Result{Method: "hmac-sha256"}, nil
}

var acmeStatus = map[string]normalize.Status{"paid": normalize.StatusCaptured, "failed": normalize.StatusFailed}

func (p *AcmePay) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	if err := normalize.Decode(in); err != nil {
		return events, err
	}
	doc := gjson.ParseBytes(in.Original)
	status, known := acmeStatus[doc.Get("status").String()]
	if !known {
		status = normalize.StatusUnknown
	}
	amount, err := normalize.ParseDecimalAmount(doc.Get("amount").String(), strings.ToUpper(doc.Get("currency").String()))
	if err != nil {
		return events, err
	}
	return append(events, &normalize.Event{
		Provider:          in.Provider,
		Object:            normalize.ObjectPayment,
		Status:            status,
		ProviderStatus:    doc.Get("status").String(),
		MerchantReference: doc.Get("order").String(),
		ProviderReference: doc.Get("id").String(),
		Amount:            &amount,
		Original:          in.Original,
		NotificationID:    doc.Get("notification").String(),
		Unmapped:          !known,
	}), nil
}

func (*AcmePay) Acknowledge(w http.ResponseWriter) int {
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

var (
	_ caddymodule.Provider  = (*AcmePay)(nil)
	_ caddyfile.Unmarshaler = (*AcmePay)(nil)
)

// A provider defined outside payhook, registered by its own init(), is
// listed among the providers and serves callbacks through real Caddy like
// the built-in ones: verified, normalized, forwarded, acknowledged its way.
func TestThirdPartyProviderModule(t *testing.T) {
	found := false
	for _, info := range caddy.GetModules(caddymodule.ProvidersNamespace) {
		found = found || info.ID == "http.payhook.providers.acmepay"
	}
	if !found {
		t.Fatal("acmepay is not among the registered providers")
	}

	var mu sync.Mutex
	var got [][]byte
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
	}))
	defer shop.Close()
	t.Setenv("ACME_TEST_SECRET", "acme-webhook-secret")
	// Caddy goes on writing to its storage after the test; t.TempDir's
	// cleanup would race it.
	storage, err := os.MkdirTemp("", "payhook-acmepay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(storage) })
	caddytest.NewTester(t).InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9170
	grace_period 1ns
	skip_install_trust
	storage file_system %s
}
http://localhost:9170 {
	payhook acmepay {
		secret {env.ACME_TEST_SECRET}
		dedupe off
	}
	reverse_proxy %s
}`, storage, strings.TrimPrefix(shop.URL, "http://")), "caddyfile")

	send := func(secret, body string) int {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest(http.MethodPost, "http://localhost:9170/hooks/acme", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Acme-Signature", hex.EncodeToString(mac.Sum(nil)))
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"notification":"ntf_1","id":"pay_42","status":"paid","amount":"12.50","currency":"eur","order":"order-9"}`
	if status := send("acme-webhook-secret", body); status != http.StatusNoContent {
		t.Fatalf("a signed callback was answered %d, want the provider's own 204", status)
	}
	if status := send("forger", body); status != http.StatusUnauthorized {
		t.Errorf("a forged callback was answered %d, want 401", status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the shop received %d envelopes, want 1", len(got))
	}
	envelope := gjson.ParseBytes(got[0])
	if envelope.Get("source").String() != "payhook/acmepay" || envelope.Get("type").String() != "payhook.payment.captured" ||
		envelope.Get("data.amount.value").Int() != 1250 || envelope.Get("subject").String() != "order-9" {
		t.Errorf("envelope: %s", got[0])
	}
}
