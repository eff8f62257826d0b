package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// testStore opens an SQLite store of the test's own; the function it
// returns opens another handle on the same database (another instance).
func testStore(tb testing.TB, now func() time.Time) (*store.Store, func() *store.Store) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "payhook.db")
	open := func() *store.Store {
		s, err := store.OpenSQLite(context.Background(), path, store.Options{Now: now})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

func testDeduper(t *testing.T, window time.Duration) (*deduper, func() *store.Store) {
	state, another := testStore(t, nil)
	d := newDeduper(state, window, zap.NewNop())
	t.Cleanup(d.close)
	return d, another
}

const testEventID = "0123456789abcdef0123456789abcdef"

func TestClaimDeliverThenDuplicate(t *testing.T) {
	d, another := testDeduper(t, time.Hour)
	dup, release, err := d.claim(context.Background(), testEventID)
	if err != nil || dup {
		t.Fatalf("first claim: duplicate %v, %v", dup, err)
	}
	release(true)
	dup, _, err = d.claim(context.Background(), testEventID)
	if err != nil || !dup {
		t.Fatalf("second claim: duplicate %v, %v; want a duplicate", dup, err)
	}
	// A second deduper on the same database (another instance, or after a
	// restart) knows it too, without the memory cache.
	other := newDeduper(another(), time.Hour, zap.NewNop())
	defer other.close()
	if dup, _, err := other.claim(context.Background(), testEventID); err != nil || !dup {
		t.Fatalf("another instance: duplicate %v, %v", dup, err)
	}
}

func TestFailedDeliveryIsNotRemembered(t *testing.T) {
	d, _ := testDeduper(t, time.Hour)
	_, release, _ := d.claim(context.Background(), testEventID)
	release(false)
	dup, release, err := d.claim(context.Background(), testEventID)
	if err != nil || dup {
		t.Fatalf("retry after a failed delivery: duplicate %v, %v; want a new delivery", dup, err)
	}
	release(true)
}

// Concurrent copies: exactly one is delivered; the others learn the outcome
// only after it is known.
func TestConcurrentCopiesWaitForTheDelivery(t *testing.T) {
	d, _ := testDeduper(t, time.Hour)
	var deliveries atomic.Int64
	var deliveredAt atomic.Int64
	var wg sync.WaitGroup
	results := make(chan time.Time, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dup, release, err := d.claim(context.Background(), testEventID)
			if err != nil {
				t.Error(err)
				return
			}
			if !dup {
				deliveries.Add(1)
				time.Sleep(200 * time.Millisecond) // the shop takes its time
				deliveredAt.Store(time.Now().UnixNano())
				release(true)
				return
			}
			results <- time.Now()
		}()
	}
	wg.Wait()
	close(results)
	if n := deliveries.Load(); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
	for answeredAt := range results {
		if answeredAt.UnixNano() < deliveredAt.Load() {
			t.Errorf("a copy was told 'duplicate' before the delivery ended")
		}
	}
}

func TestConcurrentCopiesRetryWhenTheDeliveryFails(t *testing.T) {
	d, _ := testDeduper(t, time.Hour)
	var deliveries atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dup, release, err := d.claim(context.Background(), testEventID)
			if err != nil || dup {
				t.Errorf("duplicate %v, %v: nothing was delivered yet", dup, err)
				return
			}
			deliveries.Add(1)
			time.Sleep(20 * time.Millisecond)
			release(false) // the shop keeps failing
		}()
	}
	wg.Wait()
	if n := deliveries.Load(); n != 5 {
		t.Errorf("%d attempts, want each copy to try in turn (5)", n)
	}
}

// The store's claim keeps two instances (two dedupers) from delivering the
// same event at once.
func TestClaimIsExclusiveAcrossInstances(t *testing.T) {
	a, another := testDeduper(t, time.Hour)
	b := newDeduper(another(), time.Hour, zap.NewNop())
	defer b.close()
	_, releaseA, err := a.claim(context.Background(), testEventID)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bool, 1)
	go func() {
		dup, _, err := b.claim(context.Background(), testEventID)
		if err != nil {
			t.Error(err)
		}
		got <- dup
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("the second instance went ahead while the first held the claim")
	default:
	}
	releaseA(true)
	if dup := <-got; !dup {
		t.Error("the second instance delivered the event again")
	}
}

func TestClaimWaitIsBounded(t *testing.T) {
	d, _ := testDeduper(t, time.Hour)
	_, release, _ := d.claim(context.Background(), testEventID)
	defer release(false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := d.claim(ctx, testEventID)
	if !errors.Is(err, errClaimUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("waiting copy: %v after %s; want errClaimUnavailable, promptly", err, time.Since(start))
	}
}

// A holder that dies leaves its claim: the event is claimed again once
// the claim's lease runs out, not before.
func TestDeadHoldersClaimRunsOut(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	state, another := testStore(t, clock)
	dead := newDeduper(state, time.Hour, zap.NewNop())
	if _, _, err := dead.claim(context.Background(), testEventID); err != nil {
		t.Fatal(err)
	}
	dead.close() // it never releases: killed
	other := newDeduper(another(), time.Hour, zap.NewNop())
	defer other.close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := other.claim(ctx, testEventID); !errors.Is(err, errClaimUnavailable) {
		t.Errorf("within the dead holder's lease: %v, want errClaimUnavailable", err)
	}
	now.Add(int64(claimLease + time.Second))
	dup, release, err := other.claim(context.Background(), testEventID)
	if err != nil || dup {
		t.Fatalf("after the lease: duplicate %v, %v; want a new delivery", dup, err)
	}
	release(true)
}

func TestRecordsExpire(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	state, another := testStore(t, clock)
	d := newDeduper(state, 24*time.Hour, zap.NewNop())
	defer d.close()
	d.now = clock
	_, release, _ := d.claim(context.Background(), testEventID)
	release(true)
	d.flush() // the record is written after the answer
	now = now.Add(25 * time.Hour)
	// An expired record no longer makes a duplicate, even before the
	// janitor ran.
	fresh := newDeduper(another(), 24*time.Hour, zap.NewNop())
	defer fresh.close()
	fresh.now = clock
	dup, release, err := fresh.claim(context.Background(), testEventID)
	if err != nil || dup {
		t.Errorf("an expired record: duplicate %v, %v; want a new delivery", dup, err)
	} else {
		release(false)
	}
}

func TestExpiringSetIsBounded(t *testing.T) {
	c := newExpiringSet(3)
	far := time.Now().Add(time.Hour)
	for _, id := range []string{"a", "b", "c", "d"} {
		c.add(id, far)
	}
	if c.contains("a", time.Now()) || !c.contains("d", time.Now()) || len(c.items) != 3 {
		t.Errorf("cache holds %d items; the oldest must go", len(c.items))
	}
	c.add("e", time.Now().Add(-time.Second))
	if c.contains("e", time.Now()) {
		t.Error("an expired entry counted")
	}
}

var benchEvents atomic.Int64

// BenchmarkDedupe is what deduplication costs per callback on the default
// store (SQLite, each commit synced): a new event (claim, record) and a
// repeat (answered from the memory cache).
func BenchmarkDedupe(b *testing.B) {
	state, _ := testStore(b, nil)
	d := newDeduper(state, time.Hour, zap.NewNop())
	defer d.close()
	ctx := context.Background()
	b.Run("new event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, release, err := d.claim(ctx, fmt.Sprintf("%032x", benchEvents.Add(1)))
			if err != nil {
				b.Fatal(err)
			}
			release(true)
		}
	})
	repeat := fmt.Sprintf("%032x", benchEvents.Add(1))
	if _, release, err := d.claim(ctx, repeat); err == nil {
		release(true)
	}
	b.Run("repeat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if dup, _, err := d.claim(ctx, repeat); err != nil || !dup {
				b.Fatal("not a duplicate", err)
			}
		}
	})
}

// BenchmarkDedupeConcurrent is deduplication's cost with 32 callbacks of
// new events at once, each synced to disk: what group commit is for.
func BenchmarkDedupeConcurrent(b *testing.B) {
	state, _ := testStore(b, nil)
	d := newDeduper(state, time.Hour, zap.NewNop())
	defer d.close()
	ctx := context.Background()
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, release, err := d.claim(ctx, fmt.Sprintf("%032x", benchEvents.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			release(true)
		}
	})
}

// An earlier version's delivery records in Caddy's storage join the store
// once: a route with dedupe_scope, whose keys are the same as before,
// still recognises an event it delivered before the upgrade.
func TestLegacyDeliveryRecordsAreImported(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	state, _ := testStore(t, nil)
	h := &Handler{DedupeScope: "shop-payments", routePlace: new(atomic.Pointer[routeScope])}
	// The key an earlier version wrote for event "evt_1" of that scope:
	// SHA-256 over the scope, the (empty) host and the id.
	sum := sha256.Sum256([]byte("shop-payments\x00\x00evt_1"))
	oldKey := hex.EncodeToString(sum[:16])
	if got := h.dedupeKey("evt_1"); got != oldKey {
		t.Fatalf("a dedupe_scope route's key changed: %s, was %s", got, oldKey)
	}
	now := time.Now().UTC()
	write := func(key string, expires time.Time) {
		raw, _ := json.Marshal(map[string]time.Time{"delivered_at": now.Add(-time.Hour), "expires_at": expires})
		if err := storage.Store(context.Background(), path.Join("payhook/dedupe/events", key[:2], key), raw); err != nil {
			t.Fatal(err)
		}
	}
	expired := strings.Repeat("ab", 16)
	write(oldKey, now.Add(7*24*time.Hour))
	write(expired, now.Add(-time.Minute))

	if err := importLegacyDedupe(context.Background(), storage, state, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if left, _ := storage.List(context.Background(), "payhook/dedupe/events", true); slices.ContainsFunc(left, func(k string) bool { return len(path.Base(k)) == 32 }) {
		t.Errorf("records left in Caddy's storage after the import: %v", left)
	}
	d := newDeduper(state, time.Hour, zap.NewNop())
	defer d.close()
	if dup, _, err := d.claim(context.Background(), h.dedupeKey("evt_1")); err != nil || !dup {
		t.Errorf("the event delivered before the upgrade: duplicate %v, %v", dup, err)
	}
	if dup, release, err := d.claim(context.Background(), expired); err != nil || dup {
		t.Errorf("an expired record: duplicate %v, %v", dup, err)
	} else {
		release(false)
	}
	// Once: a record written after the import is not taken.
	later := strings.Repeat("cd", 16)
	write(later, now.Add(time.Hour))
	if err := importLegacyDedupe(context.Background(), storage, state, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if delivered, _ := state.Delivered(context.Background(), later); delivered {
		t.Error("the import ran twice")
	}
}
