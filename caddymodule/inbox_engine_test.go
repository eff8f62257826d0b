package caddymodule

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/caddymodule/internal/pgtest"
	"github.com/payhook/payhook/caddymodule/internal/store"
	"github.com/payhook/payhook/normalize"
)

// The inbox's guarantees, each through a real Caddy, on both engines:
// SQLite in Caddy's data directory (the default) and a real PostgreSQL.

// engineCase is one engine for an integration test: its store option
// (empty for the default SQLite) and how a test opens the same database.
type engineCase struct {
	name      string
	storeLine string
	dsn       string // PostgreSQL's
}

func forEngines(t *testing.T, test func(t *testing.T, engine engineCase)) {
	t.Run("sqlite", func(t *testing.T) { test(t, engineCase{name: "sqlite"}) })
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t)
		test(t, engineCase{name: "postgres", storeLine: "postgres " + dsn, dsn: dsn})
	})
}

// open opens a second handle on the test's database, as another process.
func (c engineCase) open(t *testing.T, e *env) *store.Store {
	t.Helper()
	var s *store.Store
	var err error
	if c.dsn != "" {
		s, err = store.OpenPostgres(t.Context(), c.dsn, store.Options{})
	} else {
		s, err = store.OpenSQLite(t.Context(), e.database(), store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func siteOf(body string) string { return "http://localhost:{port} {\n\t" + body + "\n}\n" }

func sendOK(t *testing.T, e *env, body string) {
	t.Helper()
	resp, answer := e.send(ixopayCallback(body))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
}

// inboxRoutes lists the inboxes the admin API knows.
func inboxRoutes(t *testing.T) []routeView {
	t.Helper()
	status, body := adminCall(t, http.MethodGet, "/payhook/inbox/routes")
	if status != http.StatusOK {
		t.Fatalf("GET /payhook/inbox/routes: %d %s", status, body)
	}
	var out struct{ Inboxes []routeView }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Inboxes
}

// A reload that changes a route's options, then one that turns its inbox
// off, keeps its waiting events: the route delivers them once the shop is
// back, in order.
func TestInboxKeepsItsEventsAcrossReloads(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		up.setStatus(http.StatusServiceUnavailable)
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payR", "DEBIT", "PENDING"))
		sendOK(t, e, payment("payR", "DEBIT", "OK"))
		sendOK(t, e, payment("payS", "DEBIT", "OK"))
		e.reload("", siteOf(inboxSite(" {\n\t\t\t\tretry_for 3d\n\t\t\t}")))
		e.reload("", siteOf(defaultSite))
		if views := inboxRoutes(t); len(views) != 1 || views[0].Orphaned || views[0].Enabled || views[0].Pending != 3 {
			t.Fatalf("after the reloads: %+v, want one running route, inbox off, 3 waiting", views)
		}
		up.setStatus(http.StatusOK)
		got := statuses(e.waitTaken(3, time.Minute))
		if strings.Join(got, ",") != "payR pending,payR captured,payS captured" && strings.Join(got, ",") != "payR pending,payS captured,payR captured" &&
			strings.Join(got, ",") != "payS captured,payR pending,payR captured" {
			t.Errorf("the shop took %v", got)
		}
	})
}

// A reload that changes a route's matchers makes it another route: its
// waiting events are reported (log, metric, admin API) and are delivered
// through the route the operator names.
func TestInboxEventsOfAGoneRouteAreReportedAndMoved(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		up.setStatus(http.StatusServiceUnavailable)
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payG", "DEBIT", "OK"))
		sendOK(t, e, payment("payH", "DEBIT", "OK"))
		e.reload("", siteOf(strings.Replace(inboxSite(""), "route /callbacks/ixopay*", "route /callbacks/*", 1)))
		up.setStatus(http.StatusOK)
		var gone, running routeView
		for _, v := range inboxRoutes(t) {
			if v.Orphaned {
				gone = v
			} else {
				running = v
			}
		}
		if gone.Pending != 2 || running.Route == "" || !strings.Contains(running.Route, "/callbacks/*") {
			t.Fatalf("routes: gone %+v, running %+v", gone, running)
		}
		if !strings.Contains(e.rawLog(), "events wait in the inbox of a route no running configuration has") {
			t.Error("no error logged for the gone route's events")
		}
		if _, metrics := adminCall(t, http.MethodGet, "/metrics"); !strings.Contains(string(metrics), `payhook_inbox_orphaned_events{inbox="`+gone.Inbox+`",provider="ixopay"} 2`) {
			t.Error("no payhook_inbox_orphaned_events gauge for the gone route")
		}
		status, body := adminCall(t, http.MethodGet, "/payhook/inbox?state=pending")
		if status != http.StatusOK || gjson.GetBytes(body, "events.#(orphaned==true)#|#").Int() != 2 {
			t.Errorf("the admin list does not show the 2 orphaned events: %s", body)
		}
		time.Sleep(500 * time.Millisecond)
		if n := len(taken(up.received())); n != 0 {
			t.Fatalf("the shop took %d events before they were moved", n)
		}
		// caddy payhook inbox routes names both; caddy payhook inbox move
		// hands the gone route's events to the running one.
		var out strings.Builder
		if err := listInboxRoutes("localhost:2999", false, &out); err != nil || !strings.Contains(out.String(), gone.Inbox) ||
			!strings.Contains(out.String(), "(gone") {
			t.Errorf("caddy payhook inbox routes: %v\n%s", err, out.String())
		}
		move := inboxMoveCommand()
		out.Reset()
		move.SetOut(&out)
		move.SetArgs([]string{"--address", "localhost:2999", "--from", gone.Inbox, "--to", running.Inbox})
		if err := move.Execute(); err != nil || !strings.HasPrefix(out.String(), "2 events moved") {
			t.Fatalf("caddy payhook inbox move: %v\n%s", err, out.String())
		}
		if status, _ := adminCall(t, http.MethodPost, "/payhook/inbox/move?"+url.Values{"from": {running.Inbox}, "to": {running.Inbox}}.Encode()); status != http.StatusBadRequest {
			t.Errorf("moving a running route's events: %d, want 400", status)
		}
		e.waitTaken(2, time.Minute)
		if views := inboxRoutes(t); len(views) != 1 {
			t.Errorf("after the move: %+v", views)
		}
	})
}

// A graceful reload lets the delivery in flight finish: the shop takes the
// event once, and it is recorded as delivered.
func TestInboxGracefulReloadFinishesTheDeliveryInFlight(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		release := up.holdRequests()
		defer release()
		globals := "grace_period 20s"
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, globals, siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payF", "DEBIT", "OK"))
		for deadline := time.Now().Add(10 * time.Second); len(up.received()) == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the delivery did not reach the shop")
			}
			time.Sleep(10 * time.Millisecond)
		}
		go func() {
			time.Sleep(time.Second)
			release()
		}()
		e.reload(globals, siteOf(inboxSite(" {\n\t\t\t\tretry_for 2d\n\t\t\t}")))
		time.Sleep(2 * time.Second)
		if n := len(up.received()); n != 1 {
			t.Fatalf("the shop received the event %d times, want once", n)
		}
		id := up.received()[0].Header.Get("Payhook-Event-Id")
		waitState(t, id, stateDelivered)
	})
}

// A record that cannot be read is moved to failed, listed and logged; the
// event behind it in its payment's queue is delivered.
func TestInboxUnreadableRecordBlocksNothing(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		up.setStatus(http.StatusServiceUnavailable)
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payU", "DEBIT", "PENDING")) // makes the route's inbox known
		views := inboxRoutes(t)
		if len(views) != 1 {
			t.Fatalf("routes: %+v", views)
		}
		other := engine.open(t, e)
		queue := queueOf(&normalize.Event{Provider: "ixopay", PaymentReference: "payU"})
		if _, err := other.Enqueue(t.Context(), &store.InboxEvent{Route: views[0].Inbox, Queue: queue, EventID: "evt-unreadable",
			Provider: "ixopay", Type: "payhook.payment.captured", ReceivedAt: time.Now(), Record: []byte(`{"id":`)}, "", 0); err != nil {
			t.Fatal(err)
		}
		sendOK(t, e, payment("payU", "DEBIT", "OK"))
		up.setStatus(http.StatusOK)
		got := statuses(e.waitTaken(2, time.Minute))
		if strings.Join(got, ",") != "payU pending,payU captured" {
			t.Errorf("the shop took %v", got)
		}
		waitState(t, "evt-unreadable", stateFailed)
		status, body := adminCall(t, http.MethodGet, "/payhook/inbox?state=failed")
		if status != http.StatusOK || !strings.Contains(gjson.GetBytes(body, "events.0.last_error").String(), "unreadable record") {
			t.Errorf("failed list: %s", body)
		}
		if !strings.Contains(e.rawLog(), "record cannot be read") {
			t.Error("the unreadable record was not logged")
		}
		// Retrying every failed event replays it once: it fails again at
		// once, and the request still ends.
		status, body = adminCall(t, http.MethodPost, "/payhook/inbox/retry-failed")
		if status != http.StatusOK || gjson.GetBytes(body, "replayed.#").Int() != 1 {
			t.Errorf("retry-failed: %d %s", status, body)
		}
		waitState(t, "evt-unreadable", stateFailed)
	})
}

// Concurrent replays of one event deliver it exactly once more.
func TestInboxConcurrentReplaysDeliverOnceMore(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payP", "DEBIT", "OK"))
		first := e.waitTaken(1, 30*time.Second)[0]
		id := first.Header.Get("Payhook-Event-Id")
		waitState(t, id, stateDelivered)
		// The shop holds the replayed delivery while the replays are
		// asked: all of them are asked while the first one's delivery is
		// under way.
		release := up.holdRequests()
		defer release()
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], _ = adminCall(t, http.MethodPost, "/payhook/inbox/"+url.PathEscape(id)+"/replay")
			}()
		}
		wg.Wait()
		release()
		e.waitTaken(2, 30*time.Second)
		time.Sleep(time.Second)
		if n := len(taken(up.received())); n != 2 {
			t.Errorf("the shop took the event %d times after 8 concurrent replays (answered %v), want twice", n, statuses)
		}
		// The journal, on this engine: the callback queued, and both
		// deliveries as its attempts; caddy payhook events says the same.
		status, body := adminCall(t, http.MethodGet, "/payhook/events?ref="+url.QueryEscape(id))
		if status != http.StatusOK || gjson.GetBytes(body, "events.0.outcome").String() != "queued" ||
			gjson.GetBytes(body, "events.0.attempts.#(status==200)#|#").Int() != 2 {
			t.Errorf("GET /payhook/events?ref=%s: %d %s", id, status, body)
		}
		var out strings.Builder
		if err := listEvents("localhost:2999", url.Values{"ref": {"order-payP"}}, false, &out); err != nil || !strings.Contains(out.String(), "queued") {
			t.Errorf("caddy payhook events --ref order-payP: %v\n%s", err, out.String())
		}
	})
}

// A store that fails answers 503 (the provider retries), keeps what it
// acknowledged, and deliveries resume by themselves once it is back: here
// PostgreSQL refusing every connection of payhook's database, as while it
// restarts.
func TestInboxStoreOutageOnPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := path.Base(u.Path)
	up := newUpstream(t)
	up.setStatus(http.StatusServiceUnavailable)
	e := startCaddyStore(t, t.TempDir(), "postgres "+dsn, "", siteOf(inboxSite("")), up)
	sendOK(t, e, payment("payO", "DEBIT", "PENDING"))
	pgtest.Exec(t, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false")
	pgtest.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+name+"'")
	up.setStatus(http.StatusOK)
	resp, answer := e.send(ixopayCallback(payment("payO", "DEBIT", "OK")))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the store down: %d %q, want 503", resp.StatusCode, answer)
	}
	time.Sleep(2 * time.Second)
	during := len(up.received())
	pgtest.Exec(t, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
	sendOK(t, e, payment("payO", "DEBIT", "OK")) // the provider's retry
	// The delivery in flight when the store went may reach the shop while
	// its record cannot be written: it is delivered once more, same event,
	// once the store is back (the issue allows that one copy, never a loop).
	taken := e.waitTaken(2, time.Minute)
	if taken[0].Header.Get(EventIDHeader) == taken[1].Header.Get(EventIDHeader) {
		taken = e.waitTaken(3, time.Minute)[1:]
	}
	got := statuses(taken)
	if strings.Join(got, ",") != "payO pending,payO captured" {
		t.Errorf("the shop took %v", statuses(e.upstream.received()))
	}
	if during > 1 {
		t.Errorf("the shop received %d requests while the store was down: at most the one in flight", during)
	}
}

// The same on SQLite: another process holds the database's write lock
// longer than payhook waits for it (as a backup tool or a stuck process
// would). Callbacks are answered 503, nothing acknowledged is lost, and
// deliveries resume by themselves once the lock is gone.
func TestInboxStoreOutageOnSQLite(t *testing.T) {
	up := newUpstream(t)
	up.setStatus(http.StatusServiceUnavailable)
	e := startCaddyStore(t, t.TempDir(), "", "", siteOf(inboxSite("")), up)
	sendOK(t, e, payment("payL", "DEBIT", "PENDING"))
	db, err := sql.Open("sqlite", "file:"+e.database()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	up.setStatus(http.StatusOK)
	// payhook gives up on the store after 5 s; a write already handed to
	// it may wait for the lock as long again: a provider's patience.
	resp, answer := e.doWith(&http.Client{Timeout: 30 * time.Second}, e.callbackRequest(ixopayCallback(payment("payL", "DEBIT", "OK"))))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the store locked: %d %q, want 503", resp.StatusCode, answer)
	}
	during := len(up.received())
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	sendOK(t, e, payment("payL", "DEBIT", "OK")) // the provider's retry
	got := statuses(e.waitTaken(2, time.Minute))
	if strings.Join(got, ",") != "payL pending,payL captured" {
		t.Errorf("the shop took %v", got)
	}
	if during > 1 {
		t.Errorf("the shop received %d requests while the store was locked: at most the one in flight", during)
	}
}

// Order per payment, where payment means the payment: an IXOPAY refund is
// a transaction of its own (its own uuid) that names its payment in
// referenceUuid, and it queues behind the payment's capture, which the
// shop refuses twice before taking it.
func TestInboxRefundQueuesBehindItsCapture(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		up := newUpstream(t)
		var mu sync.Mutex
		refusals := 0
		up.setStatusByBody(func(body []byte) int {
			mu.Lock()
			defer mu.Unlock()
			if gjson.GetBytes(body, "data.status").String() == "captured" && refusals < 2 {
				refusals++
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), up)
		sendOK(t, e, payment("payQ", "DEBIT", "OK"))
		sendOK(t, e, `{"result":"OK","uuid":"refQ","referenceUuid":"payQ","merchantTransactionId":"order-payQ-refund","transactionType":"REFUND","amount":"9.99","currency":"EUR"}`)
		got := statuses(e.waitTaken(2, time.Minute))
		if strings.Join(got, ",") != "payQ captured,refQ refunded" {
			t.Errorf("the shop took %v, want the capture before its refund", got)
		}
		for _, r := range up.received() {
			if ref := gjson.GetBytes(r.Body, "data.payment_reference").String(); ref != "payQ" {
				t.Errorf("payment_reference %q, want payQ", ref)
			}
		}
	})
}
