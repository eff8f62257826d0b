package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The conformance suite: every guarantee of the store, on every engine.
// Each test gets a database of its own and a clock it moves by hand: no
// test sleeps.

// clock is a test's time, moved by hand.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.now.Store(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }
func (c *clock) options() Options        { return Options{Now: c.Now} }
func digest(body string) []byte          { sum := sha256.Sum256([]byte(body)); return sum[:] }
func ptr[T any](v T) *T                  { return &v }
func keyOf(i int) string                 { return fmt.Sprintf("scope-a\x00evt_%04d", i) }

// must returns v, failing the test on err: must(s.Claim(…))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// engine opens databases of one engine: a new database for a test, and a
// second handle on the same database (another process, or another
// instance of a cluster).
type engine struct {
	name string
	// open returns a new database's store, and a function opening another
	// store on the same database.
	open func(t *testing.T, opts Options) (*Store, func(Options) *Store)
}

func engines(t *testing.T) []engine {
	list := []engine{{name: "sqlite", open: func(t *testing.T, opts Options) (*Store, func(Options) *Store) {
		path := filepath.Join(t.TempDir(), "payhook.db")
		open := func(opts Options) *Store {
			s, err := OpenSQLite(context.Background(), path, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(opts), open
	}}}
	if postgresEngine != nil {
		list = append(list, *postgresEngine)
	}
	return list
}

// postgresEngine is set by the test file that starts a real PostgreSQL.
var postgresEngine *engine

// forEachEngine runs test on every engine, with a clock of its own.
func forEachEngine(t *testing.T, test func(t *testing.T, s *Store, clk *clock, another func() *Store)) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			clk := newClock()
			s, open := e.open(t, clk.options())
			test(t, s, clk, func() *Store { return open(clk.options()) })
		})
	}
}

func TestClaimDeliverDuplicate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		c := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		if c.State != ClaimNew {
			t.Fatalf("first claim: %v, want new", c.State)
		}
		if again := must(s.Claim(ctx, keyOf(1), time.Minute))(t); again.State != ClaimBusy {
			t.Errorf("claim while the first holds it: %v, want busy", again.State)
		}
		if err := s.Finish(ctx, c, true, 8*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if again := must(s.Claim(ctx, keyOf(1), time.Minute))(t); again.State != ClaimDelivered {
			t.Errorf("claim after the delivery: %v, want delivered", again.State)
		}
		if !must(s.Delivered(ctx, keyOf(1)))(t) || must(s.Delivered(ctx, keyOf(2)))(t) {
			t.Errorf("Delivered disagrees with the claims")
		}
		// Past the window the record no longer counts.
		clk.Advance(8*24*time.Hour + time.Millisecond)
		if again := must(s.Claim(ctx, keyOf(1), time.Minute))(t); again.State != ClaimNew {
			t.Errorf("claim past the window: %v, want new", again.State)
		}
	})
}

func TestFailedDeliveryReleasesTheClaim(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		c := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		if err := s.Finish(ctx, c, false, time.Hour); err != nil {
			t.Fatal(err)
		}
		if again := must(s.Claim(ctx, keyOf(1), time.Minute))(t); again.State != ClaimNew {
			t.Errorf("claim after a failed delivery: %v, want new at once", again.State)
		}
	})
}

// A holder that dies leaves its lease: once it runs out, the event is
// claimed again, and the dead holder's late outcome is refused.
func TestLeaseRunsOut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		dead := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		clk.Advance(59 * time.Second)
		if c := must(s.Claim(ctx, keyOf(1), time.Minute))(t); c.State != ClaimBusy {
			t.Errorf("within the lease: %v, want busy", c.State)
		}
		clk.Advance(2 * time.Second)
		taker := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		if taker.State != ClaimNew {
			t.Fatalf("after the lease: %v, want new", taker.State)
		}
		if err := s.Finish(ctx, dead, true, time.Hour); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("the dead holder's outcome: %v, want ErrLeaseLost", err)
		}
		if err := s.Extend(ctx, dead, time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("the dead holder's extension: %v, want ErrLeaseLost", err)
		}
		if err := s.Extend(ctx, taker, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
		if c := must(s.Claim(ctx, keyOf(1), time.Minute))(t); c.State != ClaimBusy {
			t.Errorf("within the extended lease: %v, want busy", c.State)
		}
		if err := s.Finish(ctx, taker, true, time.Hour); err != nil {
			t.Errorf("the taker's outcome: %v", err)
		}
	})
}

// Many concurrent claims of one event, through two handles on one
// database (two processes, two instances): exactly one is new.
func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		stores := []*Store{s, another()}
		for event := range 20 {
			var wg sync.WaitGroup
			var news atomic.Int32
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := stores[i%2].Claim(ctx, keyOf(event), time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if c.State == ClaimNew {
						news.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := news.Load(); n != 1 {
				t.Fatalf("event %d: %d concurrent claims were new, want 1", event, n)
			}
		}
	})
}

func TestTransmissionBindsItsFirstBody(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		other := another()
		if !must(s.Bind(ctx, "tx-1", digest("genuine"), 4*24*time.Hour))(t) {
			t.Fatal("the first body was refused")
		}
		if !must(other.Bind(ctx, "tx-1", digest("genuine"), 4*24*time.Hour))(t) {
			t.Error("the same body again (a retry) was refused")
		}
		if must(other.Bind(ctx, "tx-1", digest("crafted"), 4*24*time.Hour))(t) {
			t.Error("another body under the transmission was accepted")
		}
		if !must(s.Bind(ctx, "tx-2", digest("crafted"), 4*24*time.Hour))(t) {
			t.Error("another transmission's first body was refused")
		}
		clk.Advance(4*24*time.Hour + time.Millisecond)
		if !must(s.Bind(ctx, "tx-1", digest("crafted"), time.Hour))(t) {
			t.Error("past its window the binding still held")
		}
	})
}

func TestConcurrentBindingsHaveOneBody(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		stores := []*Store{s, another()}
		var wg sync.WaitGroup
		var accepted sync.Map
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf("body-%d", i)
				ok, err := stores[i%2].Bind(ctx, "tx-race", digest(body), time.Hour)
				if err != nil {
					t.Error(err)
				} else if ok {
					accepted.Store(body, true)
				}
			}()
		}
		wg.Wait()
		n := 0
		accepted.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Errorf("%d bodies were bound to one transmission, want 1", n)
		}
	})
}

func TestJournalSearch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		start := clk.Now()
		entries := []Entry{
			{At: start, Route: "r1", Provider: "ixopay", Outcome: "delivered", EventID: "evt-1", EventType: "payment.captured",
				Status: "captured", Amount: ptr(int64(999)), Currency: "EUR", Merchant: "order-1234", Reference: "uuid-1", VerifiedBy: "signature"},
			{At: start.Add(time.Minute), Route: "r1", Provider: "ixopay", Outcome: "rejected", Reason: "signature_mismatch"},
			{At: start.Add(2 * time.Minute), Route: "r2", Provider: "stripe", Outcome: "duplicate", EventID: "evt_2", Merchant: "order-1234", Reference: "pi_2"},
			{At: start.Add(3 * time.Minute), Route: "r2", Provider: "stripe", Outcome: "delivered", EventID: "evt_3", Merchant: "order-99", Reference: "order-1234"},
		}
		if err := s.Record(ctx, entries...); err != nil {
			t.Fatal(err)
		}
		ids := func(q Query) []string {
			t.Helper()
			var out []string
			for _, e := range must(s.Search(ctx, q))(t) {
				out = append(out, fmt.Sprintf("%s/%s", e.Provider, e.Outcome))
			}
			return out
		}
		for _, tt := range []struct {
			name string
			q    Query
			want string
		}{
			{"everything, newest first", Query{}, "[stripe/delivered stripe/duplicate ixopay/rejected ixopay/delivered]"},
			{"a reference, merchant's or provider's", Query{Ref: "order-1234"}, "[stripe/delivered stripe/duplicate ixopay/delivered]"},
			{"an event id", Query{Ref: "evt_2"}, "[stripe/duplicate]"},
			{"provider", Query{Provider: "ixopay"}, "[ixopay/rejected ixopay/delivered]"},
			{"outcome", Query{Outcome: "delivered"}, "[stripe/delivered ixopay/delivered]"},
			{"route and a time range", Query{Route: "r1", Since: start.Add(30 * time.Second), Until: start.Add(2 * time.Minute)}, "[ixopay/rejected]"},
			{"a page", Query{Limit: 2}, "[stripe/delivered stripe/duplicate]"},
			{"nothing", Query{Ref: "order-0"}, "[]"},
		} {
			if got := fmt.Sprint(ids(tt.q)); got != tt.want {
				t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
			}
		}
		// The next page starts after the last entry of the previous one.
		page := must(s.Search(ctx, Query{Limit: 2}))(t)
		if got := fmt.Sprint(ids(Query{Before: page[1].Seq})); got != "[ixopay/rejected ixopay/delivered]" {
			t.Errorf("second page: %s", got)
		}
		first := must(s.Search(ctx, Query{Ref: "evt-1"}))(t)[0]
		if first.Amount == nil || *first.Amount != 999 || first.Currency != "EUR" || !first.At.Equal(start) || first.VerifiedBy != "signature" {
			t.Errorf("the entry read back: %+v", first)
		}
		if refused := must(s.Search(ctx, Query{Outcome: "rejected"}))(t)[0]; refused.Amount != nil || refused.Reason != "signature_mismatch" {
			t.Errorf("a refusal read back: %+v", refused)
		}
	})
}

// The chart's counts: per hour, provider and outcome, from since on.
func TestJournalHourly(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		noon := clk.Now() // 12:00 sharp
		var entries []Entry
		for _, e := range []struct {
			at                time.Duration
			provider, outcome string
		}{
			{-25 * time.Hour, "ixopay", "forwarded"}, // before since: not counted
			{-90 * time.Minute, "ixopay", "forwarded"},
			{-61 * time.Minute, "ixopay", "rejected"},
			{-59 * time.Minute, "ixopay", "forwarded"},
			{-time.Minute, "ixopay", "forwarded"},
			{0, "ixopay", "forwarded"},
			{time.Minute, "stripe", "rejected"},
			{2 * time.Minute, "stripe", "rejected"},
		} {
			entries = append(entries, Entry{At: noon.Add(e.at), Route: "r", Provider: e.provider, Outcome: e.outcome})
		}
		if err := s.Record(ctx, entries...); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range must(s.Hourly(ctx, noon.Add(-24*time.Hour)))(t) {
			got = append(got, fmt.Sprintf("%s %s/%s %d", c.Hour.Format("15:04"), c.Provider, c.Outcome, c.Count))
		}
		want := "[10:00 ixopay/forwarded 1 10:00 ixopay/rejected 1 11:00 ixopay/forwarded 2 12:00 ixopay/forwarded 1 12:00 stripe/rejected 2]"
		if fmt.Sprint(got) != want {
			t.Errorf("hourly counts:\n got %v\nwant %s", got, want)
		}
	})
}

func TestAttemptsAndExpiry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		for i, status := range []int{0, 503, 200} {
			a := Attempt{Route: "r1", EventID: "evt-1", At: clk.Now().Add(time.Duration(i) * time.Second), Status: status, Latency: 1500 * time.Microsecond}
			if status == 0 {
				a.Error = "upstream unreachable"
			}
			if err := s.RecordAttempt(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		got := must(s.Attempts(ctx, "r1", "evt-1"))(t)
		if len(got) != 3 || got[0].Error != "upstream unreachable" || got[2].Status != 200 || got[1].Latency != 1500*time.Microsecond {
			t.Errorf("attempts read back: %+v", got)
		}
		if other := must(s.Attempts(ctx, "r2", "evt-1"))(t); len(other) != 0 {
			t.Errorf("another route's attempts: %+v", other)
		}

		if err := s.Record(ctx, Entry{At: clk.Now(), Route: "r1", Provider: "ixopay", Outcome: "delivered"}); err != nil {
			t.Fatal(err)
		}
		delivered := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		if err := s.Finish(ctx, delivered, true, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		must(s.Claim(ctx, keyOf(2), time.Minute))(t) // a lease left by a dead holder
		must(s.Bind(ctx, "tx-1", digest("body"), 48*time.Hour))(t)

		if n := must(s.Expire(ctx, 30*24*time.Hour))(t); n != (Expired{}) {
			t.Errorf("nothing expired yet, but Expire deleted %+v", n)
		}
		clk.Advance(25 * time.Hour)
		if n := must(s.Expire(ctx, 30*24*time.Hour))(t); n != (Expired{Claims: 2}) {
			t.Errorf("after a day: %+v, want the record and the dead lease", n)
		}
		clk.Advance(30 * 24 * time.Hour)
		if n := must(s.Expire(ctx, 30*24*time.Hour))(t); n != (Expired{Bindings: 1, Journal: 1, Attempts: 3}) {
			t.Errorf("after the journal's keep: %+v", n)
		}
	})
}

// Expiry in batches deletes everything that ran out, however much.
func TestExpireInBatches(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		const n = 2*expireBatch + 17
		entries := make([]Entry, n)
		for i := range entries {
			entries[i] = Entry{At: clk.Now(), Route: "r", Provider: "p", Outcome: "rejected"}
		}
		if err := s.Record(ctx, entries...); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if got := must(s.Expire(ctx, time.Minute))(t); got.Journal != n {
			t.Errorf("expired %d entries, want %d", got.Journal, n)
		}
	})
}

// Opening a database migrates it once, and a second process opening it
// meanwhile or later finds it ready.
func TestReopenKeepsTheState(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		c := must(s.Claim(ctx, keyOf(1), time.Minute))(t)
		if err := s.Finish(ctx, c, true, time.Hour); err != nil {
			t.Fatal(err)
		}
		if again := must(another().Claim(ctx, keyOf(1), time.Minute))(t); again.State != ClaimDelivered {
			t.Errorf("a second handle on the database: %v, want delivered", again.State)
		}
	})
}

// A provider's field may hold any bytes: a NUL or broken UTF-8 in a
// reference is recorded (replaced), never loses the batch, and is found.
func TestJournalTakesAnyBytes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		odd := "order-\x00\xff-7"
		long := strings.Repeat("r", 2*maxText)
		if err := s.Record(ctx, Entry{At: clk.Now(), Route: "r", Provider: "p", Outcome: "delivered", Merchant: odd},
			Entry{At: clk.Now(), Route: "r", Provider: "p", Outcome: "delivered", Reference: long}); err != nil {
			t.Fatal(err)
		}
		if got := must(s.Search(ctx, Query{Ref: odd}))(t); len(got) != 1 || got[0].Merchant != "order-\uFFFD\uFFFD-7" {
			t.Errorf("an odd reference: %+v", got)
		}
		if got := must(s.Search(ctx, Query{Ref: long}))(t); len(got) != 1 || len(got[0].Reference) != maxText {
			t.Errorf("a long reference: %d entries", len(got))
		}
	})
}

// An earlier version's delivery records join the store: live ones count
// as delivered, expired ones are left out, and a key the store already
// has keeps its row.
func TestImportDeliveryRecords(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		held := must(s.Claim(ctx, keyOf(3), time.Minute))(t)
		n := must(s.Import(ctx, map[string]time.Time{
			keyOf(1): clk.Now().Add(time.Hour),
			keyOf(2): clk.Now().Add(-time.Hour),
			keyOf(3): clk.Now().Add(time.Hour),
		}))(t)
		if n != 1 {
			t.Errorf("imported %d records, want the live one not yet in the store", n)
		}
		if c := must(s.Claim(ctx, keyOf(1), time.Minute))(t); c.State != ClaimDelivered {
			t.Errorf("an imported record: %v, want delivered", c.State)
		}
		if c := must(s.Claim(ctx, keyOf(2), time.Minute))(t); c.State != ClaimNew {
			t.Errorf("an expired record: %v, want new", c.State)
		}
		if err := s.Finish(ctx, held, false, time.Hour); err != nil {
			t.Errorf("the claim held during the import: %v", err)
		}
	})
}
