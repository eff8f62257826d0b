package caddymodule

import (
	"testing"
	"time"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// The inbox's scheduling, on a clock of the test's: no sleeps.
func scheduleInbox(now *time.Time) *inbox {
	return &inbox{now: func() time.Time { return *now }, retryFor: DefaultInboxRetryFor, maxEvents: DefaultInboxMaxEvents, parallel: inboxParallel}
}

// While the shop fails, one probe at a time, spaced further each round;
// a delivery ends it.
func TestInboxProbesWhileTheShopFails(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ib := scheduleInbox(&now)
	if n, _ := ib.capacity(now); n != inboxParallel {
		t.Fatalf("a healthy shop: capacity %d, want %d", n, inboxParallel)
	}
	// Eight deliveries fail together: one round.
	for range inboxParallel {
		ib.started()
	}
	for range inboxParallel {
		if own := ib.failed(&store.InboxEvent{}, now); own {
			t.Fatal("a first failure is the shop's, not the event's")
		}
		ib.ended()
	}
	if ib.failures != 1 {
		t.Fatalf("failures of one round count once: %d", ib.failures)
	}
	n, at := ib.capacity(now)
	if n != 0 || !at.After(now) {
		t.Fatalf("right after the failures: capacity %d until %v, want none until the probe", n, at)
	}
	now = at
	if n, _ := ib.capacity(now); n != 1 {
		t.Fatalf("at the probe's time: capacity %d, want 1", n)
	}
	ib.started()
	if n, at := ib.capacity(now); n != 0 || !at.IsZero() {
		t.Fatalf("while the probe runs: %d %v, want nothing until it ends", n, at)
	}
	ib.failed(&store.InboxEvent{}, now)
	ib.ended()
	_, second := ib.capacity(now)
	if second.Sub(now) < inboxBackoffBase {
		t.Errorf("the second probe waits %v; it doubles", second.Sub(now))
	}
	now = second
	if !ib.recovered(now) {
		t.Error("a delivery after failures reports the shop back")
	}
	if n, _ := ib.capacity(now); n != inboxParallel {
		t.Errorf("after the recovery: capacity %d", n)
	}
}

// An event the shop refuses while it takes others is refused on its own:
// it keeps to its backoff and does not put the route into probing.
func TestInboxOwnRefusalDoesNotStopTheOthers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ib := scheduleInbox(&now)
	ev := &store.InboxEvent{LastAt: now.Add(-time.Minute)}
	ib.recovered(now.Add(-time.Second)) // the shop took another event since ev last failed
	if own := ib.failed(ev, now); !own {
		t.Fatal("a refusal while the shop takes others is the event's own")
	}
	if n, _ := ib.capacity(now); n != inboxParallel {
		t.Errorf("after an own refusal: capacity %d, want the route undisturbed", n)
	}
	refused := &store.InboxEvent{Refused: true}
	if own := ib.failed(refused, now); !own {
		t.Error("an event refused on its own stays so")
	}
}

// Backoff doubles from a second, within ±25 %, capped.
func TestInboxBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 30: inboxQueueBackoffCap} {
		for range 50 {
			got := backoff(n, inboxQueueBackoffCap)
			if got < want*3/4 || got > want*5/4 {
				t.Fatalf("backoff(%d) = %v, want %v ± 25 %%", n, got, want)
			}
		}
	}
}
