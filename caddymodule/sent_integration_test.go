package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// What is verified is what the provider sent: a provider signs the URI it
// called, and routes that rewrite it before payhook (handle_path, uri
// strip_prefix, rewrite) must not turn genuine callbacks into 401s.

// rewritingRoutes wraps a payhook block and its reverse_proxy in each way
// a Caddyfile rewrites the URI before payhook sees it; prefix is what the
// provider calls.
func rewritingRoutes(prefix, block string) map[string]string {
	return map[string]string{
		"handle_path": `handle_path ` + prefix + `* {
		` + block + `
		reverse_proxy {upstream}
	}`,
		"uri strip_prefix": `route ` + prefix + `* {
		uri strip_prefix ` + prefix + `
		` + block + `
		reverse_proxy {upstream}
	}`,
		"rewrite": `route ` + prefix + `* {
		rewrite * /internal{uri}
		` + block + `
		reverse_proxy {upstream}
	}`,
	}
}

// IXOPAY signs the request URI: under every rewrite, a genuine callback is
// verified against the URI IXOPAY called (query string included) and
// delivered; a forged one is still refused.
func TestIXOPAYUnderHandlePathAndRewrites(t *testing.T) {
	for name, site := range rewritingRoutes("/callbacks/ixopay", payhookBlock) {
		t.Run(name, func(t *testing.T) {
			e := startCaddy(t, site)
			c := ixopayCallback(debitOK)
			c.uri = "/callbacks/ixopay/notify?order=1042"
			resp, body := e.send(c)
			expectAnswer(t, resp, body, http.StatusOK, "OK")
			e.onlyDelivery()
			e.upstream.reset()
			forged := ixopayCallback(payment("forged", "DEBIT", "OK"))
			forged.uri = c.uri
			forged.secret = "forger"
			resp, body = e.send(forged)
			expectAnswer(t, resp, body, http.StatusUnauthorized, "")
			e.expectNothingForwarded()
		})
	}
}

// With the inbox under handle_path, the stored event goes back through the
// route the way the callback came, and reaches the shop.
func TestInboxUnderHandlePathDelivers(t *testing.T) {
	block := strings.Replace(payhookBlock, "max_body 8KiB", "max_body 8KiB\n\t\t\tinbox", 1)
	e := startCaddy(t, rewritingRoutes("/callbacks/ixopay", block)["handle_path"])
	e.upstream.setStatus(http.StatusServiceUnavailable)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	time.Sleep(300 * time.Millisecond)
	e.upstream.setStatus(http.StatusOK)
	got := e.waitTaken(1, 30*time.Second)
	if got[0].RequestURI != "/" {
		t.Errorf("the shop was called at %q, want the route's rewritten URI /", got[0].RequestURI)
	}
}

// hmacRoute is a configurable HMAC route whose signature covers content.
func hmacRoute(content string) string {
	return `payhook hmac {
			name urlsigned
			secret {env.PAYHOOK_TEST_SECRET}
			header X-Test-Signature
			signature_encoding base64
			content ` + content + `
			map {
				id id
				status status
			}
		}`
}

// Templates that name the URL or the URI see the ones the provider
// called: {url}, {http.request.uri}, {http.request.uri.path},
// {http.request.uri.query} and {http.request.method}, under every rewrite.
func TestHMACTemplatesUnderHandlePathSeeTheSentURI(t *testing.T) {
	const uri = "/hooks/urlsigned/in?shop=7&lang=de"
	body := `{"id":"evt-url-1","status":"paid"}`
	for _, tt := range []struct {
		name    string
		content string
		signed  func(base string) string
	}{
		{"url", "{url}{body}", func(base string) string { return base + uri + body }},
		{"method and uri", `{http.request.method}\n{http.request.uri}\n{body}`, func(string) string { return "POST\n" + uri + "\n" + body }},
		{"path and query", `{http.request.uri.path}?{http.request.uri.query}{body}`, func(string) string { return uri + body }},
	} {
		for name, site := range rewritingRoutes("/hooks/urlsigned", hmacRoute(tt.content)) {
			t.Run(tt.name+" under "+name, func(t *testing.T) {
				e := startCaddy(t, site)
				mac := hmac.New(sha256.New, []byte(testSecret))
				mac.Write([]byte(tt.signed(e.base)))
				req := e.postRequest(uri, "application/json", body, http.Header{"X-Test-Signature": {base64.StdEncoding.EncodeToString(mac.Sum(nil))}})
				resp, answer := e.do(req)
				expectAnswer(t, resp, answer, http.StatusOK, "")
				e.onlyDelivery()
			})
		}
	}
}

// Square signs the notification URL and the body: the preset verifies a
// callback under handle_path.
func TestSquarePresetUnderHandlePath(t *testing.T) {
	site := "payhook square {\n\tsecret {env.SQUARE_SIGNATURE_KEY}\n}"
	const key = "square-signature-key-0123"
	t.Setenv("SQUARE_SIGNATURE_KEY", key)
	e := startCaddy(t, rewritingRoutes("/hooks/square", site)["handle_path"])
	body := `{"merchant_id":"6SSW7HV8K2ST5","type":"payment.updated","event_id":"13b867cf-db3d-4b1c-90b6-2f32a9d78124","created_at":"2026-11-20T10:34:47.000Z","data":{"type":"payment","id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","object":{"payment":{"id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","status":"COMPLETED","amount_money":{"amount":1000,"currency":"USD"},"reference_id":"order-5"}}}}`
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(e.base + "/hooks/square" + body))
	req := e.postRequest("/hooks/square", "application/json", body, http.Header{"X-Square-Hmacsha256-Signature": {base64.StdEncoding.EncodeToString(mac.Sum(nil))}})
	resp, answer := e.do(req)
	expectAnswer(t, resp, answer, http.StatusOK, "")
	e.onlyDelivery()
}
