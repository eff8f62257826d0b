package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
)

// envelopeDoc is the part of the envelope the tests look at.
type envelopeDoc struct {
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Source      string `json:"source"`
	Type        string `json:"type"`
	Subject     string `json:"subject"`
	Data        struct {
		Provider          string            `json:"provider"`
		Status            string            `json:"status"`
		ProviderStatus    string            `json:"provider_status"`
		MerchantReference string            `json:"merchant_reference"`
		ProviderReference string            `json:"provider_reference"`
		Amount            *normalize.Amount `json:"amount"`
		Verification      map[string]any    `json:"verification"`
		Original          json.RawMessage   `json:"original"`
	} `json:"data"`
}

// onlyDelivery returns the one request the upstream received, checked
// against the forwarding contract and the JSON Schema.
func (e *env) onlyDelivery() (received, envelopeDoc) {
	e.t.Helper()
	got := e.upstream.received()
	if len(got) != 1 {
		e.t.Fatalf("upstream received %d requests, want exactly 1", len(got))
	}
	r := got[0]
	if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents+json; charset=utf-8" {
		e.t.Errorf("upstream Content-Type = %q", ct)
	}
	if r.ContentLength != int64(len(r.Body)) || len(r.TransferEncoding) != 0 {
		e.t.Errorf("upstream got Content-Length %d, Transfer-Encoding %v for a %d-byte envelope; want an exact length, never chunked",
			r.ContentLength, r.TransferEncoding, len(r.Body))
	}
	for _, h := range []string{"X-Signature", "X-Date", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			e.t.Errorf("upstream received the provider's %s header: %q", h, v)
		}
	}
	envelopetest.Check(e.t, r.Body)
	var doc envelopeDoc
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		e.t.Fatalf("envelope: %v\n%s", err, r.Body)
	}
	return r, doc
}

func (e *env) expectNothingForwarded() {
	e.t.Helper()
	if got := e.upstream.received(); len(got) != 0 {
		e.t.Errorf("upstream received %d requests, want none; first: %s %s", len(got), got[0].Method, got[0].Body)
	}
}

// expectReason checks the reason of the last callback logged.
func (e *env) expectReason(reason string) {
	e.t.Helper()
	entries := e.logEntries(1)
	if last := entries[len(entries)-1]; last["reason"] != reason {
		e.t.Errorf("reason = %v, want %s", last["reason"], reason)
	}
}

func expectAnswer(t *testing.T, resp *http.Response, body string, status int, wantBody string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("provider was answered %d %q, want %d", resp.StatusCode, body, status)
	}
	if wantBody != "" && body != wantBody {
		t.Errorf("provider was answered body %q, want %q", body, wantBody)
	}
}

// Contract row: verified, upstream answered 2xx → IXOPAY gets 200 "OK"
// text/plain, and the upstream got the envelope.
func TestVerifiedCallbackIsForwardedAndAcknowledged(t *testing.T) {
	e := startCaddy(t, defaultSite)
	c := ixopayCallback(debitOK)
	c.uri = "/callbacks/ixopay?shop=main&lang=de"
	resp, body := e.send(c)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("acknowledgement Content-Type = %q, want text/plain", ct)
	}

	r, doc := e.onlyDelivery()
	if r.Method != http.MethodPost || r.RequestURI != "/callbacks/ixopay?shop=main&lang=de" {
		t.Errorf("upstream got %s %s, want the provider's method and path with query", r.Method, r.RequestURI)
	}
	if doc.SpecVersion != "1.0" || doc.Source != "payhook/ixopay" || doc.Type != "payhook.payment.captured" || doc.Subject != "order-1042" {
		t.Errorf("envelope attributes: %+v", doc)
	}
	d := doc.Data
	if d.Status != "captured" || d.ProviderStatus != "DEBIT OK" || d.MerchantReference != "order-1042" ||
		d.ProviderReference != "d94c0d72f3a36e21f16e" || d.Amount == nil || *d.Amount != (normalize.Amount{MinorUnits: 999, Currency: "EUR"}) {
		t.Errorf("envelope data: %+v", d)
	}
	if d.Verification["method"] != "hmac-sha512" || d.Verification["date"] != c.date {
		t.Errorf("verification = %v", d.Verification)
	}
	if string(d.Original) != debitOK {
		t.Errorf("data.original = %s, want the payload as received", d.Original)
	}
	// The placeholders reach later handlers.
	if r.Header.Get("X-Payhook-Provider") != "ixopay" || r.Header.Get("X-Payhook-Status") != "captured" || r.Header.Get("X-Payhook-Event-Id") != doc.ID {
		t.Errorf("placeholders: provider %q status %q event_id %q (envelope id %s)",
			r.Header.Get("X-Payhook-Provider"), r.Header.Get("X-Payhook-Status"), r.Header.Get("X-Payhook-Event-Id"), doc.ID)
	}
}

// A retry of the same event (fresh Date, fresh signature) carries the same id.
func TestRetryKeepsTheEventID(t *testing.T) {
	e := startCaddy(t, noDedupe(defaultSite))
	e.send(ixopayCallback(debitOK))
	_, first := e.onlyDelivery()
	e.upstream.reset()
	retry := ixopayCallback(debitOK)
	retry.date = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
	e.send(retry)
	_, second := e.onlyDelivery()
	if first.ID != second.ID {
		t.Errorf("retry got id %s, first delivery %s", second.ID, first.ID)
	}
}

func TestChunkedCallbackIsForwardedWithContentLength(t *testing.T) {
	e := startCaddy(t, defaultSite)
	c := ixopayCallback(debitOK)
	c.chunked = true
	resp, body := e.send(c)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery() // checks Content-Length and no Transfer-Encoding
}

func TestPreviousSecretIsAcceptedDuringRotation(t *testing.T) {
	e := startCaddy(t, defaultSite)
	c := ixopayCallback(debitOK)
	c.secret = testPreviousSecret
	resp, body := e.send(c)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
}

// Contract row: verified, upstream answered non-2xx or unreachable → a
// non-2xx, never the acknowledgement, so the provider retries.
func TestUpstreamFailureIsNotAcknowledged(t *testing.T) {
	e := startCaddy(t, defaultSite)
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusNotFound, http.StatusConflict, http.StatusFound} {
		e.upstream.reset()
		e.upstream.setStatus(status)
		resp, body := e.send(ixopayCallback(debitOK))
		if resp.StatusCode != http.StatusBadGateway || strings.TrimSpace(body) == "OK" {
			t.Errorf("upstream %d: provider answered %d %q, want 502 and never OK", status, resp.StatusCode, body)
		}
		if n := len(e.upstream.received()); n != 1 {
			t.Errorf("upstream %d: delivery tried %d times, want 1", status, n)
		}
	}
	// Any 2xx from the shop is a delivery.
	e.upstream.reset()
	e.upstream.setStatus(http.StatusNoContent)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
}

func TestUnreachableUpstreamIsNotAcknowledged(t *testing.T) {
	e := startCaddy(t, strings.ReplaceAll(defaultSite, "{upstream}", "127.0.0.1:1"))
	resp, body := e.send(ixopayCallback(debitOK))
	if resp.StatusCode < 500 || strings.TrimSpace(body) == "OK" {
		t.Errorf("provider answered %d %q, want a 5xx and never OK", resp.StatusCode, body)
	}
	entries := e.logEntries(1)
	if len(entries) == 0 || entries[len(entries)-1]["outcome"] != "upstream_failed" || entries[len(entries)-1]["level"] != "error" {
		t.Errorf("log = %v, want an error line with outcome upstream_failed", entries)
	}
}

// Without a handler after payhook nothing took the event: not acknowledged.
func TestNoHandlerAfterPayhookIsNotAcknowledged(t *testing.T) {
	e := startCaddy(t, "route /callbacks/ixopay* {\n\t\t"+payhookBlock+"\n\t}")
	resp, body := e.send(ixopayCallback(debitOK))
	if resp.StatusCode != http.StatusBadGateway || body == "OK" {
		t.Errorf("provider answered %d %q, want 502", resp.StatusCode, body)
	}
}

// The directive orders itself before reverse_proxy outside a route block.
func TestDirectiveOrderOutsideRoute(t *testing.T) {
	e := startCaddy(t, payhookBlock+"\n\treverse_proxy {upstream}")
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
}

// Contract rows: every rejection gets its status and nothing reaches the upstream.
func TestRejectionsForwardNothing(t *testing.T) {
	e := startCaddy(t, defaultSite)
	stale := time.Now().Add(-6 * time.Minute).UTC().Format(http.TimeFormat)
	future := time.Now().Add(6 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		modify func(c *callback)
		status int
		reason string
	}{
		{"signature missing", func(c *callback) { c.secret = "" }, http.StatusUnauthorized, "signature_missing"},
		{"signature wrong", func(c *callback) { c.secret = "not-the-secret" }, http.StatusUnauthorized, "signature_mismatch"},
		{"signature garbage", func(c *callback) { c.header = http.Header{"X-Signature": {"%%%"}} }, http.StatusUnauthorized, "signature_malformed"},
		{"body changed after signing", func(c *callback) {
			c.header = http.Header{"X-Signature": {e.sign(c)}}
			c.body = []byte(strings.Replace(string(c.body), "9.99", "0.01", 1))
		}, http.StatusUnauthorized, "signature_mismatch"},
		{"date missing", func(c *callback) { c.date = "" }, http.StatusUnauthorized, "date_missing"},
		{"date malformed", func(c *callback) { c.date = "yesterday" }, http.StatusUnauthorized, "date_malformed"},
		{"date stale", func(c *callback) { c.date = stale }, http.StatusUnauthorized, "date_outside_window"},
		{"date in the future", func(c *callback) { c.date = future }, http.StatusUnauthorized, "date_outside_window"},
		{"body not JSON", func(c *callback) { c.body = []byte(`result=OK`) }, http.StatusBadRequest, "payload_malformed"},
		{"required field missing", func(c *callback) { c.body = []byte(`{"result":"OK","transactionType":"DEBIT"}`) }, http.StatusBadRequest, "field_missing"},
		{"amount not exact", func(c *callback) {
			c.body = []byte(`{"result":"OK","uuid":"u1","transactionType":"DEBIT","amount":"9.999","currency":"EUR"}`)
		}, http.StatusBadRequest, "amount_inexact"},
		{"currency unknown", func(c *callback) {
			c.body = []byte(`{"result":"OK","uuid":"u1","transactionType":"DEBIT","amount":"9.99","currency":"XAU"}`)
		}, http.StatusBadRequest, "currency_unknown"},
		{"content type not accepted", func(c *callback) { c.contentType = "text/plain" }, http.StatusUnsupportedMediaType, "content_type_not_accepted"},
		{"content type missing", func(c *callback) { c.contentType = "" }, http.StatusUnsupportedMediaType, "content_type_not_accepted"},
		{"compressed body", func(c *callback) { c.header = http.Header{"Content-Encoding": {"gzip"}} }, http.StatusUnsupportedMediaType, "content_type_not_accepted"},
		{"body over the limit", func(c *callback) { c.body = []byte(`{"pad":"` + strings.Repeat("x", 9000) + `"}`) }, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"chunked body over the limit", func(c *callback) {
			c.body = []byte(`{"pad":"` + strings.Repeat("x", 9000) + `"}`)
			c.chunked = true
		}, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"method GET", func(c *callback) { c.method = http.MethodGet; c.body = nil }, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"method PUT", func(c *callback) { c.method = http.MethodPut }, http.StatusMethodNotAllowed, "method_not_allowed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			c := ixopayCallback(debitOK)
			tt.modify(c)
			resp, body := e.send(c)
			expectAnswer(t, resp, body, tt.status, "")
			if strings.TrimSpace(body) == "OK" {
				t.Errorf("rejection answered with the acknowledgement")
			}
			if tt.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			e.expectNothingForwarded()
			entries := e.logEntries(i + 1)
			if len(entries) <= i {
				t.Fatalf("%d log lines, want %d", len(entries), i+1)
			}
			last := entries[i]
			if last["outcome"] != "rejected" || last["reason"] != tt.reason || last["level"] != "warn" ||
				last["client_ip"] == "" || last["provider"] != "ixopay" || last["answer"] != float64(tt.status) {
				t.Errorf("log line = %v, want outcome rejected, reason %s", last, tt.reason)
			}
		})
	}
}

// sign returns the signature of c as it stands.
func (e *env) sign(c *callback) string {
	c2 := *c
	req, _ := http.NewRequest(c2.method, e.base+c2.uri, nil)
	req.Header.Set("Content-Type", c2.contentType)
	signIXOPAYAt(req, c2.body, []byte(c2.secret), c2.date)
	return req.Header.Get("X-Signature")
}

// One log line per callback, and never a secret or payload content, at any level.
func TestLogsHoldNoSecretOrPayload(t *testing.T) {
	e := startCaddy(t, defaultSite)
	e.send(ixopayCallback(debitOK))
	bad := ixopayCallback(debitOK)
	bad.secret = "forger"
	e.send(bad)
	entries := e.logEntries(2)
	if len(entries) != 2 {
		t.Fatalf("%d payhook log lines for 2 callbacks, want 2:\n%s", len(entries), e.rawLog())
	}
	first := entries[0]
	for _, field := range []string{"provider", "outcome", "event_id", "status", "client_ip", "duration"} {
		if _, ok := first[field]; !ok {
			t.Errorf("log line lacks %s: %v", field, first)
		}
	}
	raw := e.rawLog()
	// The card's digits themselves ("1111") can turn up in any timestamp;
	// their field's name cannot.
	for _, secret := range []string{testSecret, testPreviousSecret, "Lovelace", "ada@example.org", "d94c0d72f3a36e21f16e", "order-1042", "lastFourDigits"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the DEBUG log contains %q:\n%s", secret, raw)
		}
	}
}

// The admin API shows the placeholder, never the expanded secret.
func TestAdminAPIDoesNotExposeSecrets(t *testing.T) {
	startCaddy(t, defaultSite)
	resp, err := http.Get("http://localhost:2999/config/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	config, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(config), testSecret) || !strings.Contains(string(config), "{env.PAYHOOK_TEST_SECRET}") {
		t.Errorf("admin config: %s", config)
	}
}

func TestMetricsAreExposed(t *testing.T) {
	e := startCaddy(t, defaultSite)
	e.send(ixopayCallback(debitOK))
	bad := ixopayCallback(debitOK)
	bad.secret = "forger"
	e.send(bad)
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`payhook_callbacks_total{outcome="forwarded",provider="ixopay",reason="",route="localhost/callbacks/ixopay*"}`,
		`payhook_callbacks_total{outcome="rejected",provider="ixopay",reason="signature_mismatch",route="localhost/callbacks/ixopay*"}`,
		`payhook_callback_duration_seconds_bucket{outcome="forwarded",provider="ixopay",route="localhost/callbacks/ixopay*",le=`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The metrics name a route by its route_name, else by the hosts and paths
// its matchers name: never by a hash.
func TestMetricsNameTheRoute(t *testing.T) {
	// Paths of their own: the counters are the process's, other tests count too.
	unnamed := strings.Replace(defaultSite, "route /callbacks/ixopay*", "route /shop-a/ixopay*", 1)
	named := strings.Replace(strings.Replace(defaultSite, "route /callbacks/ixopay*", "route /shop-b/ixopay*", 1),
		"max_body 8KiB", "max_body 8KiB\n\t\t\troute_name shop-b", 1)
	e := startCaddy(t, unnamed+"\n\t"+named)
	for _, path := range []string{"/shop-a/ixopay", "/shop-b/ixopay"} {
		c := ixopayCallback(debitOK)
		c.uri = path
		resp, answer := e.send(c)
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
	}
	_, metrics := adminCall(t, http.MethodGet, "/metrics")
	for _, want := range []string{
		`payhook_callbacks_total{outcome="forwarded",provider="ixopay",reason="",route="localhost/shop-a/ixopay*"} 1`,
		`payhook_callbacks_total{outcome="forwarded",provider="ixopay",reason="",route="shop-b"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// `caddy payhook send` signs with the verifier's code: its callback is accepted.
func TestSendCommandDeliversThroughCaddy(t *testing.T) {
	e := startCaddy(t, defaultSite)
	for _, status := range []string{"captured", "refund_failed", "chargeback"} {
		e.upstream.reset()
		resp, body, err := sendSample(t.Context(), "ixopay", e.base+"/callbacks/ixopay?x=1", sendOptions{
			secret: testSecret, status: status, amount: "12.30", currency: "chf", reference: "order-7", timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, resp, string(body), http.StatusOK, "OK")
		_, doc := e.onlyDelivery()
		if doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Data.Amount.Currency != "CHF" || doc.Subject != "order-7" {
			t.Errorf("send %s delivered %+v", status, doc.Data)
		}
	}
	if _, _, err := sendSample(t.Context(), "ixopay", e.base+"/callbacks/ixopay", sendOptions{status: "captured", amount: "1", currency: "EUR", timeout: time.Second}); err == nil {
		t.Error("send without --secret succeeded")
	}
}

// An unknown transaction type is forwarded as unknown, never dropped, and
// logged at warn level.
func TestUnknownStatusIsForwardedWithAWarning(t *testing.T) {
	e := startCaddy(t, defaultSite)
	resp, body := e.send(ixopayCallback(`{"result":"OK","uuid":"st1","transactionType":"SETTLEMENT","amount":"1.00","currency":"EUR"}`))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	_, doc := e.onlyDelivery()
	if doc.Data.Status != "unknown" || doc.Data.ProviderStatus != "SETTLEMENT OK" || doc.Type != "payhook.payment.unknown" {
		t.Errorf("envelope: type %s status %s provider_status %s", doc.Type, doc.Data.Status, doc.Data.ProviderStatus)
	}
	entries := e.logEntries(1)
	if len(entries) != 1 || entries[0]["level"] != "warn" || entries[0]["outcome"] != "forwarded" || entries[0]["provider_status"] != "SETTLEMENT OK" {
		t.Errorf("log = %v, want one warn line for the forwarded unknown status", entries)
	}
}
