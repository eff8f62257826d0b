package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func testDeduper(t *testing.T, window time.Duration) (*deduper, *certmagic.FileStorage) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	d := newDeduper(storage, window, zap.NewNop())
	t.Cleanup(func() {
		select {
		case <-d.stop:
		default:
			d.close()
		}
	})
	return d, storage
}

const testEventID = "0123456789abcdef0123456789abcdef"

func TestClaimDeliverThenDuplicate(t *testing.T) {
	d, _ := testDeduper(t, time.Hour)
	dup, release, err := d.claim(context.Background(), testEventID)
	if err != nil || dup {
		t.Fatalf("first claim: duplicate %v, %v", dup, err)
	}
	release(true)
	dup, _, err = d.claim(context.Background(), testEventID)
	if err != nil || !dup {
		t.Fatalf("second claim: duplicate %v, %v; want a duplicate", dup, err)
	}
	// A second deduper on the same storage (another instance, or after a
	// restart) knows it too, without the memory cache.
	other := newDeduper(d.storage, time.Hour, zap.NewNop())
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

// The storage lock keeps two instances (two dedupers) from delivering the
// same event at once.
func TestClaimIsExclusiveAcrossInstances(t *testing.T) {
	a, storage := testDeduper(t, time.Hour)
	b := newDeduper(storage, time.Hour, zap.NewNop())
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

// Cleanup (close) releases claims still held: nothing stays locked.
func TestCloseReleasesHeldClaims(t *testing.T) {
	d, storage := testDeduper(t, time.Hour)
	if _, _, err := d.claim(context.Background(), testEventID); err != nil {
		t.Fatal(err)
	}
	d.close()
	locks, _ := filepath.Glob(filepath.Join(storage.Path, "locks", "*"))
	if len(locks) != 0 {
		t.Errorf("locks left after close: %v", locks)
	}
	other := newDeduper(storage, time.Hour, zap.NewNop())
	defer other.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, release, err := other.claim(ctx, testEventID); err != nil {
		t.Errorf("claim after close: %v", err)
	} else {
		release(false)
	}
}

func TestRecordsExpire(t *testing.T) {
	d, storage := testDeduper(t, 24*time.Hour)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	ids := []string{"aa" + testEventID[2:], "bb" + testEventID[2:]}
	_, release, _ := d.claim(context.Background(), ids[0])
	release(true) // expires 2026-11-02 12:00
	now = now.Add(48 * time.Hour)
	_, release, _ = d.claim(context.Background(), ids[1])
	release(true) // expires 2026-11-04 12:00

	// An expired record no longer makes a duplicate, even before the janitor ran.
	fresh := newDeduper(storage, 24*time.Hour, zap.NewNop())
	defer fresh.close()
	fresh.now = d.now
	if dup, release, _ := fresh.claim(context.Background(), ids[0]); dup {
		t.Error("an expired record still made a duplicate")
	} else {
		release(false)
	}
	// The janitor deletes whole expired days, and only those.
	d.expire(context.Background())
	if _, err := os.Stat(filepath.Join(storage.Path, eventKey(ids[0]))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("expired record still stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(storage.Path, expiryDir("2026-11-02"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("expired day still stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(storage.Path, eventKey(ids[1]))); err != nil {
		t.Errorf("live record deleted: %v", err)
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

// BenchmarkDedupe is what deduplication costs per callback on Caddy's
// default file-system storage: a new event (look up, claim, record,
// release) and a repeat (answered from the memory cache).
func BenchmarkDedupe(b *testing.B) {
	d := newDeduper(&certmagic.FileStorage{Path: b.TempDir()}, time.Hour, zap.NewNop())
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
