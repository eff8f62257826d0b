package caddymodule

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/payhook/payhook/verify"
)

// A later copy of a delivered event (a retry, a replay: fresh Date and
// signature) is acknowledged and not forwarded; the log says duplicate.
func TestDuplicateIsAcknowledgedNotForwarded(t *testing.T) {
	e := startCaddy(t, defaultSite)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
	e.upstream.reset()
	replay := ixopayCallback(debitOK)
	replay.date = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	resp, body = e.send(replay)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.expectNothingForwarded()
	entries := e.logEntries(2)
	if len(entries) != 2 || entries[1]["outcome"] != "duplicate" || entries[1]["event_id"] != entries[0]["event_id"] {
		t.Errorf("log = %v, want the second line to say duplicate", entries)
	}
	// Another event of the same payment (a refund) is a new event.
	refund := strings.Replace(strings.Replace(debitOK, `"DEBIT"`, `"REFUND"`, 1), `"uuid":"d94c0d72f3a36e21f16e"`, `"uuid":"r1"`, 1)
	resp, body = e.send(ixopayCallback(refund))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
}

func TestFailedDeliveryIsRetriedByTheProvider(t *testing.T) {
	e := startCaddy(t, defaultSite)
	e.upstream.setStatus(http.StatusServiceUnavailable)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusBadGateway, "")
	e.upstream.reset()
	e.upstream.setStatus(http.StatusOK)
	resp, body = e.send(ixopayCallback(debitOK)) // the provider's retry
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
}

func TestDedupeOff(t *testing.T) {
	e := startCaddy(t, noDedupe(defaultSite))
	for range 2 {
		resp, body := e.send(ixopayCallback(debitOK))
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	if n := len(e.upstream.received()); n != 2 {
		t.Errorf("with dedupe off the upstream got %d copies, want 2", n)
	}
}

func TestDedupeWindowEnds(t *testing.T) {
	e := startCaddy(t, strings.Replace(defaultSite, "max_body 8KiB", "max_body 8KiB\n\t\t\tdedupe 1s", 1))
	e.send(ixopayCallback(debitOK))
	time.Sleep(1100 * time.Millisecond)
	e.send(ixopayCallback(debitOK))
	if n := len(e.upstream.received()); n != 2 {
		t.Errorf("after the window the upstream got %d copies, want 2", n)
	}
}

// Concurrent copies of one new event through Caddy: one is forwarded; every
// copy hears OK, and none before the shop answered.
func TestConcurrentCopiesThroughCaddy(t *testing.T) {
	e := startCaddy(t, defaultSite)
	release := e.upstream.holdRequests()
	go func() { time.Sleep(300 * time.Millisecond); release() }()
	shopAnswered := &e.upstream.answeredAt
	var wg sync.WaitGroup
	var oks atomic.Int64
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := e.send(ixopayCallback(debitOK))
			if resp.StatusCode == http.StatusOK && body == "OK" {
				oks.Add(1)
				if time.Now().UnixNano() < shopAnswered.Load() || shopAnswered.Load() == 0 {
					t.Error("a copy heard OK before the shop had taken the event")
				}
			}
		}()
	}
	wg.Wait()
	if n := len(e.upstream.received()); n != 1 {
		t.Errorf("the upstream got %d copies, want exactly 1", n)
	}
	if oks.Load() != 12 {
		t.Errorf("%d of 12 copies heard OK", oks.Load())
	}
}

// The record lives in Caddy's storage: a new configuration (new handler,
// empty memory) on the same storage still knows the event.
func TestDedupeSurvivesAReload(t *testing.T) {
	storage := t.TempDir()
	e := startCaddyOn(t, storage, "", defaultSite)
	e.send(ixopayCallback(debitOK))
	e.onlyDelivery()
	e = startCaddyOn(t, storage, "", strings.Replace(defaultSite, "max_body 8KiB", "max_body 16KiB", 1))
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.expectNothingForwarded()
}

// A reload while a callback is in flight lets it finish, records it, and
// leaves nothing locked.
func TestReloadWithACallbackInFlight(t *testing.T) {
	storage := t.TempDir()
	e := startCaddyOn(t, storage, "", defaultSite)
	release := e.upstream.holdRequests()
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp, body := e.send(ixopayCallback(debitOK))
		done <- result{resp.StatusCode, body}
	}()
	time.Sleep(200 * time.Millisecond) // the callback is at the shop now
	upstream := e.upstream
	e = startCaddyOn(t, storage, "", strings.ReplaceAll(defaultSite, "{upstream}", strings.TrimPrefix(upstream.URL, "http://")))
	release()
	select {
	case r := <-done:
		if r.status != http.StatusOK || r.body != "OK" {
			t.Errorf("the in-flight callback was answered %d %q", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight callback never finished")
	}
	time.Sleep(100 * time.Millisecond)
	if locks, _ := filepath.Glob(filepath.Join(storage, "locks", "payhook*")); len(locks) != 0 {
		t.Errorf("locks left behind: %v", locks)
	}
	upstream.reset()
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := len(upstream.received()); n != 0 {
		t.Errorf("the event delivered during the reload was forwarded again")
	}
	if _, err := os.Stat(storage); err != nil {
		t.Fatal(err)
	}
}

// A shop that answers 2xx and then breaks its answer (the connection closes
// mid-body) makes reverse_proxy panic with http.ErrAbortHandler. The shop's
// status line counts: the provider is acknowledged, the delivery recorded,
// and the next copy is a duplicate answered at once. The claim used to stay
// held: every later copy waited 10 s for 503, until a restart.
func TestShopBreakingItsAnswerAfter2xxIsADelivery(t *testing.T) {
	e := startCaddy(t, defaultSite)
	e.upstream.breakAnswers()
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()

	resp, body = e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := len(e.upstream.received()); n != 1 {
		t.Errorf("the shop received the event %d times, want once", n)
	}
	entries := e.logEntries(2)
	if len(entries) != 2 || entries[0]["outcome"] != "forwarded" || entries[1]["outcome"] != "duplicate" {
		t.Fatalf("log = %v, want forwarded then duplicate", entries)
	}
	if detail, _ := entries[0]["detail"].(string); !strings.Contains(detail, "then its answer broke") {
		t.Errorf("log detail = %q, want it to say the answer broke", detail)
	}
}

// A shop that answers 500 and breaks its answer did not take the event:
// 502 to the provider, and the next copy is forwarded again at once.
func TestShopBreakingItsAnswerAfter5xxIsNotADelivery(t *testing.T) {
	e := startCaddy(t, defaultSite)
	e.upstream.breakAnswers()
	e.upstream.setStatus(http.StatusInternalServerError)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusBadGateway, "")

	e.upstream.mu.Lock()
	e.upstream.truncate = false
	e.upstream.mu.Unlock()
	e.upstream.setStatus(http.StatusOK)
	resp, body = e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := len(e.upstream.received()); n != 2 {
		t.Errorf("the shop received %d requests, want 2 (the broken delivery and the retry)", n)
	}
}

// panicOnce is a handler for tests that panics (not with ErrAbortHandler)
// the first time it is called, then passes requests on.
type panicOnce struct{}

var panicOnceCalls atomic.Int64

func (panicOnce) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.payhook_test_panic_once", New: func() caddy.Module { return new(panicOnce) }}
}

func (panicOnce) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if panicOnceCalls.Add(1) == 1 {
		panic("a handler after payhook failed")
	}
	return next.ServeHTTP(w, r)
}

func init() {
	caddy.RegisterModule(panicOnce{})
	httpcaddyfile.RegisterHandlerDirective("payhook_test_panic_once", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		return panicOnce{}, nil
	})
}

// A handler after payhook that panics: the panic goes on to Caddy (the
// provider's connection is aborted), the claim is released on the way, and
// the provider's retry is delivered at once instead of waiting 10 s for 503.
func TestPanicAfterPayhookReleasesTheClaim(t *testing.T) {
	panicOnceCalls.Store(0)
	e := startCaddy(t, `route /callbacks/ixopay* {
		`+payhookBlock+`
		payhook_test_panic_once
		reverse_proxy {upstream}
	}`)
	c := ixopayCallback(debitOK)
	req, _ := http.NewRequest(c.method, e.base+c.uri, strings.NewReader(string(c.body)))
	req.Header.Set("Content-Type", c.contentType)
	req.Header.Set("Date", c.date)
	req.Header.Set("X-Signature", verify.SignIXOPAY([]byte(c.secret), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: c.method, ContentType: c.contentType, Date: c.date, RequestURI: c.uri, Body: c.body,
	}))
	if resp, err := testClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("the provider was acknowledged although nothing took the event")
		}
	}
	e.expectNothingForwarded()

	start := time.Now()
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
	if waited := time.Since(start); waited > claimWait {
		t.Errorf("the retry waited %s for a claim nobody held", waited)
	}
}
