package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// Only an allowlist of headers reaches the shop: whatever else the sender
// put on the request (X-Original-URL, X-Rewrite-URL, X-Forwarded-User,
// cookies, credentials, its signature) stays behind, unless the merchant
// names it in forward_headers.
func TestForwardedHeadersAreAnAllowlist(t *testing.T) {
	hostile := http.Header{
		"X-Original-Url":    {"/admin/refund-all"},
		"X-Rewrite-Url":     {"/admin"},
		"X-Forwarded-User":  {"admin"},
		"Cookie":            {"session=stolen"},
		"Authorization":     {"Bearer forged"},
		"X-Http-Method":     {"DELETE"},
		"X-Provider-Trace":  {"trace-7"},
		"X-Forwarded-Proto": {"gopher"},
	}
	for _, tt := range []struct {
		name    string
		extra   string
		wantYes []string
		wantNo  []string
	}{
		{"default", "", nil, []string{"X-Original-Url", "X-Rewrite-Url", "X-Forwarded-User", "Cookie", "Authorization", "X-Http-Method", "X-Provider-Trace", "X-Signature", "Date"}},
		{"forward_headers", "forward_headers X-Provider-Trace", []string{"X-Provider-Trace"}, []string{"X-Original-Url", "Cookie", "Authorization"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startCaddy(t, strings.Replace(defaultSite, "max_body 8KiB", "max_body 8KiB\n\t\t\t"+tt.extra, 1))
			c := ixopayCallback(debitOK)
			c.header = hostile
			resp, body := e.send(c)
			expectAnswer(t, resp, body, http.StatusOK, "OK")
			r, doc := e.onlyDelivery()
			for _, name := range tt.wantNo {
				if v := r.Header.Get(name); v != "" {
					t.Errorf("the shop received %s: %q", name, v)
				}
			}
			for _, name := range tt.wantYes {
				if r.Header.Get(name) != hostile.Get(name) {
					t.Errorf("the shop did not receive %s", name)
				}
			}
			if r.Header.Get(EventIDHeader) != doc.ID {
				t.Errorf("%s = %q, want the event id %s", EventIDHeader, r.Header.Get(EventIDHeader), doc.ID)
			}
			// reverse_proxy's own forwarding headers: it overwrites what an
			// untrusted client sent.
			if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("X-Forwarded-Proto = %q, want reverse_proxy's own", got)
			}
		})
	}
}

// A flood of forged callbacks writes a bounded number of log lines, while
// the metrics count every one; a long URL or header never lands whole in a
// line.
func TestRejectionLogIsSampledUnderAFlood(t *testing.T) {
	e := startCaddy(t, defaultSite)
	// The collectors outlive each test's Caddy, and every route has its
	// series: count what this flood adds to all of them.
	mismatches := func() int {
		resp, err := http.Get("http://localhost:2999/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		metrics, _ := io.ReadAll(resp.Body)
		n := 0
		for _, m := range regexp.MustCompile(`payhook_callbacks_total\{outcome="rejected",provider="ixopay",reason="signature_mismatch",route="[^"]*"\} (\d+)`).FindAllSubmatch(metrics, -1) {
			count, _ := strconv.Atoi(string(m[1]))
			n += count
		}
		return n
	}
	before := mismatches()
	const forged = 200
	for range forged {
		c := ixopayCallback(debitOK)
		c.secret = "forger"
		resp, _ := e.send(c)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged callback answered %d", resp.StatusCode)
		}
	}
	// Once the flood is over, the next line says how many were dropped.
	time.Sleep(300 * time.Millisecond)
	// (Caddy itself answers a request with an overlong method.)
	req := e.postRequest("/callbacks/ixopay?"+strings.Repeat("q", 4000), strings.Repeat("x", 4000), "{}", nil)
	e.do(req)

	var entries []map[string]any
	suppressed := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		entries, suppressed = e.logEntries(1), 0
		for _, entry := range entries {
			if n, ok := entry["suppressed_before"].(float64); ok {
				suppressed += int(n)
			}
		}
		if len(entries)+suppressed >= forged+1 {
			break
		}
	}
	if len(entries) > 2*rejectLogRate+10 {
		t.Errorf("%d forged callbacks wrote %d log lines; want them sampled", forged, len(entries))
	}
	for _, entry := range entries {
		line, _ := json.Marshal(entry)
		if strings.Contains(string(line), strings.Repeat("q", 100)) || strings.Contains(string(line), strings.Repeat("x", 100)) {
			t.Errorf("a log line holds a long URL or header whole: %.300s…", line)
		}
	}
	if len(entries)+suppressed != forged+1 {
		t.Errorf("%d lines written and %d reported suppressed, want %d in all", len(entries), suppressed, forged+1)
	}
	if n := mismatches() - before; n < forged {
		t.Errorf("metrics counted %d forged callbacks, want at least %d", n, forged)
	}
	t.Logf("%d forged callbacks: %d log lines, %d suppressed lines reported", forged, len(entries), suppressed)
}

// The cheap checks run before anything is parsed: a Payrexx webhook
// without its signature (signature_secret set), or with a wrong URL token,
// is refused whatever its body, and the API is not asked.
func TestCheapChecksRunBeforeParsing(t *testing.T) {
	deep := strings.Repeat("[", 100000)
	for _, tt := range []struct {
		name   string
		extra  string
		uri    string
		header http.Header
		status int
	}{
		{"signature_secret, no signature", "signature_secret webhook-secret", "/callbacks/payrexx", nil, http.StatusUnauthorized},
		{"signature_secret, wrong signature", "signature_secret webhook-secret", "/callbacks/payrexx",
			http.Header{"X-Webhook-Signature": {verify.SignHexHMACSHA256([]byte("wrong"), []byte(deep))}}, http.StatusUnauthorized},
		{"url_token wrong", "url_token {env.PAYHOOK_TEST_SECRET}", "/callbacks/payrexx?token=wrong", nil, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, api := startPayrexx(t, "payrexx", tt.extra)
			resp, body := e.post(tt.uri, "application/json", deep, tt.header)
			expectAnswer(t, resp, body, tt.status, "")
			if n := len(api.asked()); n != 0 {
				t.Errorf("the API was asked %d times", n)
			}
			entries := e.logEntries(1)
			if len(entries) != 1 || !strings.HasPrefix(entries[0]["reason"].(string), map[int]string{401: "signature", 400: "payload"}[tt.status]) && !strings.HasPrefix(entries[0]["reason"].(string), "token") {
				t.Errorf("log = %v", entries)
			}
		})
	}
	// Past the cheap checks, the deep body is refused by the bounded
	// parser, 400, without asking the API either.
	e, api := startPayrexx(t, "payrexx", "")
	resp, body := e.post("/callbacks/payrexx", "application/json", deep, nil)
	expectAnswer(t, resp, body, http.StatusBadRequest, "")
	if n := len(api.asked()); n != 0 {
		t.Errorf("the API was asked %d times", n)
	}
	if r := gjson.Get(e.rawLog(), "reason"); r.Exists() && r.String() != "payload_malformed" {
		t.Errorf("reason = %s", r)
	}
}
