package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/normalize"
)

func inboxSite(options string) string {
	return strings.Replace(defaultSite, "max_body 8KiB", "max_body 8KiB\n\t\t\tinbox"+options, 1)
}

// payment is an IXOPAY callback about payment uuid.
func payment(uuid, transactionType, result string) string {
	return fmt.Sprintf(`{"result":%q,"uuid":%q,"merchantTransactionId":"order-%s","transactionType":%q,"amount":"9.99","currency":"EUR"}`,
		result, uuid, uuid, transactionType)
}

// waitTaken waits until the shop has taken n events, and returns the
// requests it answered 2xx.
func (e *env) waitTaken(n int, within time.Duration) []received {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ok []received
		for _, r := range e.upstream.received() {
			if r.Status >= 200 && r.Status < 300 {
				ok = append(ok, r)
			}
		}
		if len(ok) >= n || time.Now().After(deadline) {
			if len(ok) < n {
				e.t.Fatalf("the shop took %d events within %s, want %d", len(ok), within, n)
			}
			return ok
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statuses lists "<provider_reference> <status>" of the requests.
func statuses(requests []received) []string {
	var out []string
	for _, r := range requests {
		out = append(out, gjson.GetBytes(r.Body, "data.provider_reference").String()+" "+gjson.GetBytes(r.Body, "data.status").String())
	}
	return out
}

// With the inbox, the provider is acknowledged while the shop is down;
// once the shop is back, each event reaches it once, in order per payment.
func TestInboxAcknowledgesWhileTheShopIsDown(t *testing.T) {
	e := startCaddy(t, inboxSite(""))
	e.upstream.setStatus(http.StatusServiceUnavailable)
	for _, body := range []string{
		payment("payA", "DEBIT", "PENDING"),
		payment("payB", "DEBIT", "OK"),
		payment("payA", "DEBIT", "OK"),
		payment("payA", "CHARGEBACK", "OK"),
	} {
		resp, answer := e.send(ixopayCallback(body))
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
	}
	// A provider's retry of a stored event: acknowledged, not stored twice.
	resp, answer := e.send(ixopayCallback(payment("payB", "DEBIT", "OK")))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	time.Sleep(1500 * time.Millisecond)
	if len(taken(e.upstream.received())) != 0 {
		t.Fatal("the shop took events while it was down")
	}
	if len(e.upstream.received()) == 0 {
		t.Fatal("the inbox did not try the shop")
	}

	recovered := time.Now()
	e.upstream.setStatus(http.StatusOK)
	e.waitTaken(4, time.Minute)
	t.Logf("all four delivered %s after the shop came back", time.Since(recovered).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // nothing more may follow
	got := e.waitTaken(4, 0)
	if len(got) != 4 {
		t.Errorf("the shop took %d events, want 4: %v", len(got), statuses(got))
	}
	var payA []string
	for _, s := range statuses(got) {
		if strings.HasPrefix(s, "payA ") {
			payA = append(payA, s)
		}
	}
	if want := []string{"payA pending", "payA captured", "payA chargeback"}; !slices.Equal(payA, want) {
		t.Errorf("payment A reached the shop as %v, want %v", payA, want)
	}
	ids := taken(got)
	if slices.Sort(ids); len(slices.Compact(ids)) != 4 {
		t.Errorf("an event reached the shop twice: %v", ids)
	}
	for _, entry := range e.logEntries(5) {
		if entry["msg"] != "callback stored in the inbox" && entry["outcome"] != "duplicate" {
			t.Errorf("log: %v", entry)
		}
	}
}

// refusePayment makes the shop refuse (422) every event about payment uuid
// and take the others.
func refusePayment(e *env, uuid string) {
	e.upstream.setStatusByBody(func(body []byte) int {
		if isPayment(body, uuid) {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
}

func isPayment(envelope []byte, uuid string) bool {
	return bytes.Contains(envelope, []byte(`"`+uuid+`"`))
}

// One payment's failing event holds back that payment only.
func TestInboxOnePaymentDoesNotHoldOthers(t *testing.T) {
	e := startCaddy(t, inboxSite(""))
	refusePayment(e, "payStuck")
	for _, body := range []string{payment("payStuck", "DEBIT", "PENDING"), payment("payStuck", "DEBIT", "OK"), payment("payFree", "DEBIT", "OK")} {
		resp, answer := e.send(ixopayCallback(body))
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
	}
	e.waitTaken(1, 30*time.Second)
	time.Sleep(2 * time.Second)
	got := e.waitTaken(1, 0)
	if s := statuses(got); len(s) != 1 || s[0] != "payFree captured" {
		t.Errorf("the shop took %v; want payFree only", s)
	}
	// payStuck's second event waits behind its first: never tried.
	for _, r := range e.upstream.received() {
		if s := statuses([]received{r})[0]; s == "payStuck captured" {
			t.Error("a payment's later event was delivered before its earlier one")
		}
	}
}

// An event the shop keeps refusing while it takes others is retried on its
// own backoff: the others' deliveries do not count as "the shop is back" for
// it (which retried it after every one of them), and its refusals do not
// hold the others to one probe at a time.
func TestInboxRefusedEventBacksOffWhileOthersFlow(t *testing.T) {
	e := startCaddy(t, inboxSite(""))
	refusePayment(e, "payStuck")
	resp, answer := e.send(ixopayCallback(payment("payStuck", "DEBIT", "OK")))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	const others = 20
	start := time.Now()
	for i := range others {
		resp, answer := e.send(ixopayCallback(payment(fmt.Sprintf("payFlow%02d", i), "DEBIT", "OK")))
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
		time.Sleep(200 * time.Millisecond)
	}
	e.waitTaken(others, 30*time.Second)
	elapsed := time.Since(start)
	stuck := 0
	for _, r := range e.upstream.received() {
		if isPayment(r.Body, "payStuck") {
			stuck++
		}
	}
	// Its own backoff, from 1 s doubling (±25 %), allows one attempt at
	// once and about log2(elapsed) more; retried after each of the others'
	// deliveries it was tried about as often as they were delivered.
	t.Logf("the refused event was tried %d times in %v while %d others were delivered", stuck, elapsed.Round(time.Millisecond), others)
	if limit := 3 + int(math.Log2(elapsed.Seconds()+1)); stuck > limit {
		t.Errorf("the refused event was tried %d times in %v while %d others were delivered; want at most %d", stuck, elapsed.Round(time.Millisecond), others, limit)
	}
}

// A route that admits only the provider's addresses (Caddy's remote_ip
// matcher) still leads the inbox's deliveries to payhook: a delivery goes
// through the server from the address the callback came from, not from
// the loopback, so the same matchers (and {client_ip}) apply to it.
func TestInboxDeliveryKeepsTheProvidersAddress(t *testing.T) {
	site := "@provider remote_ip 127.0.0.2/32\n\thandle @provider {\n\t" + inboxSite("") + "\n\t}\n\thandle {\n\t\trespond \"not from the provider\" 403\n\t}"
	e := startCaddy(t, strings.Replace(site, "header_up X-Payhook-Status {http.vars.payhook.status}",
		"header_up X-Payhook-Status {http.vars.payhook.status}\n\t\t\theader_up X-Client-Ip {client_ip}", 1))
	provider := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	resp, answer := e.doWith(provider, e.callbackRequest(ixopayCallback(debitOK)))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	resp, answer = e.send(ixopayCallback(debitOK)) // from 127.0.0.1: not the provider
	expectAnswer(t, resp, answer, http.StatusForbidden, "not from the provider")

	got := e.waitTaken(1, 10*time.Second)
	if ip := got[0].Header.Get("X-Client-Ip"); ip != "127.0.0.2" {
		t.Errorf("the delivery's {client_ip} = %q, want the provider's 127.0.0.2", ip)
	}
}

// A callback that came over HTTPS is delivered as one: reverse_proxy tells
// the shop X-Forwarded-Proto https for the inbox's deliveries as for live
// callbacks (a shop that redirects plain-HTTP requests, as Django's and
// Laravel's HTTPS settings do behind a proxy, would otherwise refuse every
// delivery).
func TestInboxDeliveryOverTLSStaysHTTPS(t *testing.T) {
	e := startCaddyAt(t, t.TempDir(), "", "https://localhost:9443", "tls internal\n\t"+inboxSite(""))
	provider := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // Caddy's internal CA
	}}
	// Caddy obtains its certificate in the background: until it has,
	// handshakes fail.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := provider.Get("https://localhost:9443/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	req := e.callbackRequest(ixopayCallback(debitOK))
	req.URL.Scheme, req.URL.Host = "https", "localhost:9443"
	resp, answer := e.doWith(provider, req)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	got := e.waitTaken(1, 10*time.Second)
	if proto := got[0].Header.Get("X-Forwarded-Proto"); proto != "https" {
		t.Errorf("the delivery's X-Forwarded-Proto = %q, want https", proto)
	}
}

// adminGet and adminPost call the test Caddy's admin API.
func adminCall(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://localhost:2999"+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// An event the shop does not take within retry_for is kept as failed,
// logged at error level, listed by the admin API, and delivered by a
// replay; a delivered event can be replayed too.
func TestInboxRetryForAndReplay(t *testing.T) {
	e := startCaddy(t, inboxSite(" {\n\t\t\t\tretry_for 2s\n\t\t\t}"))
	e.upstream.setStatus(http.StatusBadGateway)
	resp, answer := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")

	var failed []inboxSummary
	deadline := time.Now().Add(30 * time.Second)
	for len(failed) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		status, body := adminCall(t, http.MethodGet, "/payhook/inbox?state=failed")
		var list struct{ Events []inboxSummary }
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("admin list: %d %s", status, body)
		}
		failed = list.Events
	}
	if len(failed) != 1 || failed[0].State != "failed" || failed[0].Attempts < 2 || failed[0].LastError != "upstream answered 502" {
		t.Fatalf("failed events: %+v", failed)
	}
	id := failed[0].ID
	if !strings.Contains(e.rawLog(), `"event not delivered within retry_for`) {
		t.Error("no error log for the failed event")
	}
	// The list shows the merchant reference and no other content; the
	// single view shows the envelope.
	_, list := adminCall(t, http.MethodGet, "/payhook/inbox")
	if !bytes.Contains(list, []byte(`"merchant_reference": "order-1042"`)) || bytes.Contains(list, []byte("Lovelace")) {
		t.Errorf("the list shows payload content: %s", list)
	}
	status, one := adminCall(t, http.MethodGet, "/payhook/inbox/"+id)
	if status != http.StatusOK || gjson.GetBytes(one, "envelope.id").String() != id || gjson.GetBytes(one, "summary.state").String() != "failed" {
		t.Errorf("event view: %d %s", status, one)
	}

	// caddy payhook inbox lists it, with its merchant reference, without
	// its content.
	var out strings.Builder
	if err := listInbox("localhost:2999", "failed", 10, false, &out); err != nil || !strings.Contains(out.String(), id) ||
		!strings.Contains(out.String(), "upstream answered 502") || !strings.Contains(out.String(), "order-1042") ||
		strings.Contains(out.String(), "Lovelace") {
		t.Errorf("caddy payhook inbox: %v\n%s", err, out.String())
	}
	// The metrics count the failed attempts and the failed event.
	_, metrics := adminCall(t, http.MethodGet, "/metrics")
	for _, want := range []string{
		`payhook_inbox_delivery_attempts_total{outcome="failed",provider="ixopay",route="localhost/callbacks/ixopay*"}`,
		`payhook_inbox_failed_total{provider="ixopay",route="localhost/callbacks/ixopay*"} `, // a counter of the process: other tests count too
		`payhook_inbox_pending{provider="ixopay",route="localhost/callbacks/ixopay*"}`,
		`payhook_inbox_oldest_pending_age_seconds{provider="ixopay",route="localhost/callbacks/ixopay*"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The shop is back: retry the failed ones.
	e.upstream.setStatus(http.StatusOK)
	status, body := adminCall(t, http.MethodPost, "/payhook/inbox/retry-failed")
	if status != http.StatusOK || !strings.Contains(string(body), id) {
		t.Fatalf("retry-failed: %d %s", status, body)
	}
	got := e.waitTaken(1, 30*time.Second)
	if taken(got)[0] != id {
		t.Errorf("delivered %v, want %s", taken(got), id)
	}
	// A replay of the delivered event: the shop gets it again, same id.
	waitState(t, id, "delivered")
	if _, err := replayEvent("localhost:2999", id, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	got = e.waitTaken(2, 30*time.Second)
	if ids := taken(got); ids[1] != id {
		t.Errorf("replay delivered %v", ids)
	}
	if status, _ := adminCall(t, http.MethodPost, "/payhook/inbox/nosuchevent/replay"); status != http.StatusNotFound {
		t.Errorf("replay of an unknown event: %d", status)
	}
}

// waitState waits until the admin API reports event id in state.
func waitState(t *testing.T, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, one := adminCall(t, http.MethodGet, "/payhook/inbox/"+id)
		if gjson.GetBytes(one, "summary.state").String() == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s is %s, want %s", id, gjson.GetBytes(one, "summary.state"), state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A full inbox answers 503, so the provider keeps the event, and says so.
func TestInboxFullAnswers503(t *testing.T) {
	e := startCaddy(t, inboxSite(" {\n\t\t\t\tmax_events 2\n\t\t\t}"))
	e.upstream.setStatus(http.StatusServiceUnavailable)
	for i, uuid := range []string{"full1", "full2", "full3"} {
		resp, answer := e.send(ixopayCallback(payment(uuid, "DEBIT", "OK")))
		want := http.StatusOK
		if i == 2 {
			want = http.StatusServiceUnavailable
		}
		expectAnswer(t, resp, answer, want, "")
	}
	entries := e.logEntries(3)
	if last := entries[2]; last["reason"] != "inbox_full" || last["level"] != "error" {
		t.Errorf("log: %v", last)
	}
	// Once the shop took them, there is room again.
	e.upstream.setStatus(http.StatusOK)
	e.waitTaken(2, time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, answer := e.send(ixopayCallback(payment("full3", "DEBIT", "OK")))
		if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
			expectAnswer(t, resp, answer, http.StatusOK, "OK")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sign_upstream signs what the inbox delivers too.
func TestInboxDeliveriesAreSigned(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SHOP_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	e := startCaddy(t, inboxSite("\n\t\t\tsign_upstream {env.PAYHOOK_TEST_SHOP_SECRET}"))
	resp, answer := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	got := e.waitTaken(1, 30*time.Second)
	if h := got[0].Header; h.Get("Webhook-Id") != h.Get("Payhook-Event-Id") || !strings.HasPrefix(h.Get("Webhook-Signature"), "v1,") ||
		h.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" {
		t.Errorf("headers: %v", h)
	}
}

// A claim left by an instance that died between creating its lock file and
// writing it (an empty file, which the file storage's TryLock never
// clears), and a temporary file the storage left beside the events: the
// event is delivered all the same, once the claim is older than any
// delivery could be.
func TestInboxClaimLeftByADeadInstance(t *testing.T) {
	storage := t.TempDir()
	sum := sha256.Sum256([]byte("provider\x00ixopay"))
	queue := queueOf(&normalize.Event{Provider: "ixopay", ProviderReference: "payDead"})
	lock := filepath.Join(storage, "locks", "payhook-inbox-"+hex.EncodeToString(sum[:8])+"-"+queue+".lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(storage, "payhook", "inbox", hex.EncodeToString(sum[:8]), "pending", queue, "1234567890")
	if err := os.MkdirAll(filepath.Dir(temp), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(temp, []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startCaddyOn(t, storage, "", inboxSite(""))
	began := time.Now()
	resp, answer := e.send(ixopayCallback(payment("payDead", "DEBIT", "OK")))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.waitTaken(1, time.Minute)
	t.Logf("delivered %s after the callback, past the dead claim", time.Since(began).Round(100*time.Millisecond))
}
