package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The scale test fills a database to the sizes of issue #25 and measures
// what grows with it: the database's size on disk, a duplicate's claim, a
// journal search, and the queries the inbox's deliverer runs while the
// shop is down. It runs in every `go test` with small sizes, which checks
// only that it works; the figures come from:
//
//	go test ./caddymodule/internal/store -run TestScale -v -timeout 60m \
//		-scale.records 1000000 -scale.pending 100000
//
// Figures only: a speed or size goal is never an assertion.
var (
	scaleRecords = flag.Int("scale.records", 2000, "delivery records (and as many journal rows) the scale test fills the database with")
	scalePending = flag.Int("scale.pending", 500, "pending inbox events the scale test measures the deliverer's queries with")
	scaleSamples = flag.Int("scale.samples", 200, "samples of each measured operation (fewer when they take more than 20 s)")
)

// scaleClaimKey is the i-th delivery record's key, as dedupe derives one:
// the hex of 16 bytes of SHA-256 (random order, as in life).
func scaleClaimKey(i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "scope\x00\x00evt-%d", i))
	return hex.EncodeToString(sum[:16])
}

// scaleEntry is the i-th journal row: an accepted IXOPAY event with its
// references, as the journal records one.
func scaleEntry(i int, at time.Time) Entry {
	uuid := scaleClaimKey(i)[:20]
	amount := int64(100 + i%50000)
	return Entry{At: at, Route: "srv0/route0", Provider: "ixopay", Outcome: "accepted",
		EventID: "ixopay_" + scaleClaimKey(i), EventType: "payment", Status: "captured", Amount: &amount, Currency: "EUR",
		Merchant: "order-" + uuid, Reference: uuid, VerifiedBy: "signature", ClientIP: "203.0.113.7"}
}

func TestScale(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			clk := newClock()
			s, _ := e.open(t, clk.options())
			scaleRecordsAndJournal(t, s, clk)
			scaleInbox(t, s, clk)
		})
	}
}

// scaleRecordsAndJournal grows the delivery records and the journal to
// 1e4 rows each and then to -scale.records, measuring a duplicate's claim
// at each size, then the size on disk and the journal's search.
func scaleRecordsAndJournal(t *testing.T, s *Store, clk *clock) {
	ctx := context.Background()
	target := *scaleRecords
	sizes := []int{min(10000, target)}
	if target > sizes[0] {
		sizes = append(sizes, target)
	}
	filled := 0
	for _, size := range sizes {
		began := time.Now()
		fillClaims(t, s, clk, filled, size)
		fillJournal(t, s, clk, filled, size)
		t.Logf("%s: filled to %d delivery records and %d journal rows in %s", s.Engine(), size, size, time.Since(began).Round(time.Millisecond))
		filled = size

		// A duplicate that the in-memory cache does not hold (older than
		// its 10,000 events, or after a restart) asks the store: the claim
		// finds the delivery record. Sequential, so each is measured alone.
		r := rand.New(rand.NewPCG(uint64(size), 1))
		dup := measure(t, *scaleSamples, func(int) {
			c, err := s.Claim(ctx, scaleClaimKey(r.IntN(size)), 2*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != ClaimDelivered {
				t.Fatalf("a delivered event's claim found %s", c.State)
			}
		})
		// A new event: claimed, then recorded delivered (two commits).
		fresh := measure(t, min(*scaleSamples, 500), func(i int) {
			c, err := s.Claim(ctx, fmt.Sprintf("new-%d-%d", size, i), 2*time.Minute)
			if err != nil || c.State != ClaimNew {
				t.Fatalf("a new event's claim: %v %v", c.State, err)
			}
			if err := s.Finish(ctx, c, true, 8*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s at %d delivery records: duplicate claim %s; new event claim+finish %s", s.Engine(), size, dup, fresh)
	}

	t.Logf("%s with %d delivery records and %d journal rows: %s on disk", s.Engine(), target, target, diskSize(t, s))

	r := rand.New(rand.NewPCG(7, 7))
	for _, field := range []struct {
		name string
		ref  func(Entry) string
	}{
		{"merchant reference", func(e Entry) string { return e.Merchant }},
		{"provider reference", func(e Entry) string { return e.Reference }},
		{"event id", func(e Entry) string { return e.EventID }},
		{"absent reference", func(Entry) string { return "order-no-such-reference" }},
	} {
		search := measure(t, min(*scaleSamples, 1000), func(int) {
			i := r.IntN(target)
			ref := field.ref(scaleEntry(i, time.Time{}))
			got, err := s.Search(ctx, Query{Ref: ref})
			if err != nil {
				t.Fatal(err)
			}
			if want := boolInt(field.name != "absent reference"); len(got) != want {
				t.Fatalf("search %q found %d entries, want %d", ref, len(got), want)
			}
		})
		t.Logf("%s: journal search by %s at %d rows: %s", s.Engine(), field.name, target, search)
	}
}

// fillClaims adds the delivery records [from, to), many to a statement.
func fillClaims(t *testing.T, s *Store, clk *clock, from, to int) {
	until := millis(clk.Now().Add(8 * 24 * time.Hour))
	bulkInsert(t, s, `INSERT INTO payhook_claims (key, state, owner, until) VALUES `, "(?, 2, '', ?)", from, to, 500,
		func(i int) []any { return []any{[]byte(scaleClaimKey(i)), until} })
}

// fillJournal adds the journal rows [from, to) as the journal's writer
// does: batches of entries, one transaction each.
func fillJournal(t *testing.T, s *Store, clk *clock, from, to int) {
	const batch = 512 // the journal writer's batch
	entries := make([]Entry, 0, batch)
	for i := from; i < to; i++ {
		entries = append(entries, scaleEntry(i, clk.Now()))
		if len(entries) == batch || i == to-1 {
			if err := s.Record(context.Background(), entries...); err != nil {
				t.Fatal(err)
			}
			entries = entries[:0]
		}
	}
}

// bulkInsert inserts rows [from, to) with statements of perStatement rows
// each, in transactions of 20,000 rows.
func bulkInsert(t *testing.T, s *Store, head, row string, from, to, perStatement int, args func(i int) []any) {
	t.Helper()
	ctx := context.Background()
	for start := from; start < to; start += 20000 {
		end := min(start+20000, to)
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := start; i < end; i += perStatement {
			n := min(perStatement, end-i)
			values := make([]any, 0, n*4)
			for j := i; j < i+n; j++ {
				values = append(values, args(j)...)
			}
			statement := head + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
			if _, err := tx.ExecContext(ctx, s.dialect.q(statement), values...); err != nil {
				tx.Rollback()
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// diskSize is what the database takes on disk: SQLite's file (its
// write-ahead log checkpointed into it first), or PostgreSQL's database.
func diskSize(t *testing.T, s *Store) string {
	t.Helper()
	ctx := context.Background()
	const mib = 1 << 20
	if s.Engine() == "sqlite" {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		var pages, size, free int64
		if err := s.db.QueryRowContext(ctx, `SELECT p.page_count, s.page_size, f.freelist_count FROM pragma_page_count() p, pragma_page_size() s, pragma_freelist_count() f`).
			Scan(&pages, &size, &free); err != nil {
			t.Fatal(err)
		}
		var claims, journal int64
		for _, table := range []struct {
			name string
			size *int64
		}{{"payhook_claims", &claims}, {"payhook_journal", &journal}} {
			// dbstat is compiled into modernc's SQLite; without it only the total is known.
			_ = s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? OR name IN
				(SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?)`, table.name, table.name).Scan(table.size)
		}
		return fmt.Sprintf("%d MiB (delivery records %d MiB, journal %d MiB, free pages %d MiB)",
			pages*size/mib, claims/mib, journal/mib, free*size/mib)
	}
	var database, claims, journal int64
	if _, err := s.db.ExecContext(ctx, `VACUUM ANALYZE payhook_claims, payhook_journal`); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT pg_database_size(current_database()), pg_total_relation_size('payhook_claims'),
		pg_total_relation_size('payhook_journal')`).Scan(&database, &claims, &journal); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d MiB (delivery records %d MiB, journal %d MiB, with their indexes)", database/mib, claims/mib, journal/mib)
}

// scaleInbox fills the inbox with -scale.pending pending events, each its
// own payment (so each is a queue's head: the worst case), and measures
// what the deliverer asks the store while the shop is down: per route, a
// lease of one due head (the probe) and its settle back to pending, the
// next due time, and every 30 s the count of the waiting events.
func scaleInbox(t *testing.T, s *Store, clk *clock) {
	ctx := context.Background()
	pending := *scalePending
	record := []byte(`{"id":"ixopay_x","provider":"ixopay","type":"payment","queue":"ixopay:p","received_at":"2026-12-07T12:00:00Z","remote_addr":"203.0.113.7:40000","method":"POST","host":"shop.example","uri":"/callbacks/ixopay","header":{"Content-Type":["application/json; charset=utf-8"],"Date":["Mon, 07 Dec 2026 12:00:00 GMT"],"X-Signature":["` +
		strings.Repeat("s", 88) + `"]},"envelope":` + `{"pad":"` + strings.Repeat("x", 900) + `"}}`)

	began := time.Now()
	var wg sync.WaitGroup
	var failed sync.Once
	const writers = 32
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < pending; i += writers {
				ev := &InboxEvent{Route: "srv0/route0", Queue: fmt.Sprintf("pay-%d", i), EventID: fmt.Sprintf("ixopay_%d", i),
					Provider: "ixopay", Type: "payment", ReceivedAt: clk.Now(), Record: record}
				if res, err := s.Enqueue(ctx, ev, "inbox-"+scaleClaimKey(i), 8*24*time.Hour); err != nil || res != Enqueued {
					failed.Do(func() { t.Errorf("enqueueing: %v %v", res, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	elapsed := time.Since(began)
	t.Logf("%s: %d events enqueued by %d writers in %s (%.0f/s)", s.Engine(), pending, writers, elapsed.Round(time.Millisecond), float64(pending)/elapsed.Seconds())

	probe := measure(t, min(*scaleSamples, 500, pending), func(int) {
		leased, err := s.Lease(ctx, "srv0/route0", 1, 30*time.Second)
		if err != nil || len(leased) != 1 {
			t.Fatalf("leasing the probe: %d events, %v", len(leased), err)
		}
		if err := s.Settle(ctx, leased[0], Settlement{State: Pending, NextAt: clk.Now().Add(30 * time.Second),
			Attempt: &Attempt{Route: "srv0/route0", EventID: leased[0].EventID, At: clk.Now(), Status: 503, Error: "shop answered 503"}}); err != nil {
			t.Fatal(err)
		}
	})
	nextDue := measure(t, *scaleSamples, func(int) {
		if _, ok, err := s.NextDue(ctx, "srv0/route0"); err != nil || !ok {
			t.Fatalf("next due: %v %v", ok, err)
		}
	})
	count := measure(t, min(*scaleSamples, 100), func(int) {
		counts, err := s.PendingByRoute(ctx)
		if err != nil || len(counts) != 1 || counts[0].Pending != pending {
			t.Fatalf("pending by route: %v %v", counts, err)
		}
	})
	t.Logf("%s with %d pending events: probe lease+settle %s; next due %s; pending by route %s", s.Engine(), pending, probe, nextDue, count)
}

// timings are a measured operation's durations.
type timings []time.Duration

func (l timings) String() string {
	return fmt.Sprintf("p50 %s p99 %s max %s (n=%d)", round(l[len(l)/2]), round(l[len(l)*99/100]), round(l[len(l)-1]), len(l))
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// measure runs op n times, one at a time, and returns the sorted
// durations; it stops early, after 20 samples at least, once the samples
// took 20 s (a slow search at a million rows).
func measure(t *testing.T, n int, op func(i int)) timings {
	t.Helper()
	l := make(timings, 0, n)
	start := time.Now()
	for i := range n {
		if i >= 20 && time.Since(start) > 20*time.Second {
			break
		}
		began := time.Now()
		op(i)
		l = append(l, time.Since(began))
	}
	slices.Sort(l)
	return l
}

// BenchmarkClaimFinish claims and records delivered new events from 32
// goroutines at once, as 32 connections' callbacks do with dedupe on, on
// SQLite (the group commit): throughput, and the process's CPU per event.
//
//	go test ./caddymodule/internal/store -run '^$' -bench ClaimFinish -count 6
func BenchmarkClaimFinish(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "payhook.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	cpu := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := s.Claim(ctx, scaleClaimKey(int(next.Add(1))), 2*time.Minute)
			if err != nil || c.State != ClaimNew {
				b.Errorf("claim: %v %v", c.State, err)
				return
			}
			if err := s.Finish(ctx, c, true, 8*24*time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
}

// processCPU is the CPU time (user and system) the test process used so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
