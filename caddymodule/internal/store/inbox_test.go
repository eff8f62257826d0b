package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// event is a pending event of route, in queue.
func event(route, queue, id string, clk *clock) *InboxEvent {
	return &InboxEvent{Route: route, Queue: queue, EventID: id, Provider: "stripe", Type: "payhook.payment.captured",
		ReceivedAt: clk.Now(), Record: []byte(`{"id":"` + id + `"}`)}
}

func enqueue(t *testing.T, s *Store, ev *InboxEvent, claim string) EnqueueResult {
	t.Helper()
	r, err := s.Enqueue(t.Context(), ev, claim, 8*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ids(events []*InboxEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.EventID
	}
	return out
}

func settle(t *testing.T, s *Store, ev *InboxEvent, st InboxState, clk *clock) {
	t.Helper()
	err := s.Settle(t.Context(), ev, Settlement{State: st, NextAt: clk.Now(),
		Attempt: &Attempt{Route: ev.Route, EventID: ev.EventID, At: clk.Now(), Status: 200}})
	if err != nil {
		t.Fatal(err)
	}
}

// Only a queue's head is leased; a lease holds its queue; a settled head
// hands the queue to the next event, in the order enqueued.
func TestInboxOrderPerQueue(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		for _, ev := range []*InboxEvent{
			event("r", "pay-a", "a1", clk), event("r", "pay-a", "a2", clk), event("r", "pay-b", "b1", clk), event("r", "pay-a", "a3", clk),
		} {
			if enqueue(t, s, ev, "") != Enqueued || ev.Seq == 0 {
				t.Fatalf("enqueue %s: not stored", ev.EventID)
			}
		}
		first := must(s.Lease(ctx, "r", 10, time.Minute))(t)
		if got := ids(first); !slices.Equal(got, []string{"a1", "b1"}) {
			t.Fatalf("first lease: %v, want the heads a1 b1", got)
		}
		if string(first[0].Record) != `{"id":"a1"}` {
			t.Errorf("record: %s", first[0].Record)
		}
		if again := must(s.Lease(ctx, "r", 10, time.Minute))(t); len(again) != 0 {
			t.Fatalf("leased while the heads are held: %v", ids(again))
		}
		settle(t, s, first[0], Delivered, clk)
		next := must(s.Lease(ctx, "r", 10, time.Minute))(t)
		if got := ids(next); !slices.Equal(got, []string{"a2"}) {
			t.Fatalf("after a1: %v, want a2", got)
		}
		// A failed head hands its queue on too.
		if err := s.Settle(ctx, next[0], Settlement{State: Failed, Error: "unreadable record"}); err != nil {
			t.Fatal(err)
		}
		if got := ids(must(s.Lease(ctx, "r", 10, time.Minute))(t)); !slices.Equal(got, []string{"a3"}) {
			t.Fatalf("after a2 failed: %v, want a3", got)
		}
		failed := must(s.InboxEvents(ctx, "a2"))(t)
		if len(failed) != 1 || failed[0].State != Failed || failed[0].LastError != "unreadable record" || failed[0].DoneAt.IsZero() {
			t.Errorf("a2: %+v", failed)
		}
	})
}

// A retry waits for its time; the attempt and the outcome are one write.
func TestInboxRetryLaterRecordsTheAttempt(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		enqueue(t, s, event("r", "q", "e1", clk), "")
		ev := must(s.Lease(ctx, "r", 1, time.Minute))(t)[0]
		err := s.Settle(ctx, ev, Settlement{State: Pending, NextAt: clk.Now().Add(10 * time.Second), Refused: true,
			Attempt: &Attempt{Route: "r", EventID: "e1", At: clk.Now(), Status: 500, Error: "shop answered 500"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := must(s.Lease(ctx, "r", 1, time.Minute))(t); len(got) != 0 {
			t.Fatalf("leased before its next attempt: %v", ids(got))
		}
		if at, ok := must3(s.NextDue(ctx, "r"))(t); !ok || !at.Equal(clk.Now().Add(10*time.Second).Truncate(time.Millisecond)) {
			t.Errorf("next due: %v %v", at, ok)
		}
		clk.Advance(10 * time.Second)
		again := must(s.Lease(ctx, "r", 1, time.Minute))(t)
		if len(again) != 1 || again[0].Attempts != 1 || !again[0].Refused || again[0].LastError != "shop answered 500" {
			t.Fatalf("after the backoff: %+v", again)
		}
		attempts := must(s.Attempts(ctx, "r", "e1"))(t)
		if len(attempts) != 1 || attempts[0].Status != 500 {
			t.Errorf("attempts: %+v", attempts)
		}
		// Refresh (the shop is back) leaves an event refused on its own alone.
		settle(t, s, again[0], Pending, clk)
		if err := s.Refresh(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	})
}

func must3[A, B any](a A, b B, err error) func(t *testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// A holder that dies leaves its lease: once it runs out, another leases
// the event, and the first holder's outcome is refused.
func TestInboxLeaseRunsOut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		enqueue(t, s, event("r", "q", "e1", clk), "")
		dead := must(s.Lease(ctx, "r", 1, time.Minute))(t)[0]
		other := another()
		if got := must(other.Lease(ctx, "r", 1, time.Minute))(t); len(got) != 0 {
			t.Fatal("leased while the lease runs")
		}
		clk.Advance(30 * time.Second)
		if err := s.Renew(ctx, dead, time.Minute); err != nil {
			t.Fatal(err)
		}
		clk.Advance(61 * time.Second)
		taken := must(other.Lease(ctx, "r", 1, time.Minute))(t)
		if len(taken) != 1 || taken[0].EventID != "e1" {
			t.Fatalf("after the lease ran out: %v", ids(taken))
		}
		if err := s.Settle(ctx, dead, Settlement{State: Delivered}); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("settle by the dead holder: %v, want ErrLeaseLost", err)
		}
		if err := s.Renew(ctx, dead, time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("renew by the dead holder: %v, want ErrLeaseLost", err)
		}
		if err := other.Release(ctx, taken[0]); err != nil {
			t.Fatal(err)
		}
		if got := must(s.Lease(ctx, "r", 1, time.Minute))(t); len(got) != 1 {
			t.Errorf("a released event is due at once; leased %v", ids(got))
		}
	})
}

// The claim and the event are stored together: a copy is a duplicate.
func TestInboxEnqueueTakesTheClaim(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		if r := enqueue(t, s, event("r", "q", "e1", clk), "scope\x00e1"); r != Enqueued {
			t.Fatalf("first: %v", r)
		}
		if r := enqueue(t, s, event("r", "q", "e1", clk), "scope\x00e1"); r != EnqueueDuplicate {
			t.Fatalf("copy: %v, want duplicate", r)
		}
		if !must(s.Delivered(ctx, "scope\x00e1"))(t) {
			t.Error("the claim of a stored event does not count as taken")
		}
		held := must(s.Claim(ctx, "scope\x00e2", time.Minute))(t)
		if r := enqueue(t, s, event("r", "q", "e2", clk), "scope\x00e2"); r != EnqueueBusy {
			t.Fatalf("while a delivery holds the claim: %v, want busy", r)
		}
		_ = held
		if n := len(must(s.ListInbox(ctx, InboxQuery{}))(t)); n != 1 {
			t.Errorf("%d events stored, want 1", n)
		}
	})
}

// Two routes never share events.
func TestInboxRoutesAreApart(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		enqueue(t, s, event("r1", "q", "e1", clk), "")
		enqueue(t, s, event("r2", "q", "e2", clk), "")
		if got := ids(must(s.Lease(ctx, "r2", 10, time.Minute))(t)); !slices.Equal(got, []string{"e2"}) {
			t.Fatalf("route r2 leased %v", got)
		}
		if got := ids(must(s.Lease(ctx, "r1", 10, time.Minute))(t)); !slices.Equal(got, []string{"e1"}) {
			t.Fatalf("route r1 leased %v (one queue name in two routes is two queues)", got)
		}
		counts := must(s.PendingByRoute(ctx))(t)
		if len(counts) != 2 || counts[0].Route != "r1" || counts[0].Pending != 1 {
			t.Errorf("pending by route: %+v", counts)
		}
	})
}

// Concurrent replays of one event deliver it exactly once more.
func TestInboxConcurrentReplays(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		enqueue(t, s, event("r", "q", "e1", clk), "")
		enqueue(t, s, event("r", "q", "e2", clk), "")
		settle(t, s, must(s.Lease(ctx, "r", 1, time.Minute))(t)[0], Delivered, clk)
		done := must(s.InboxEvents(ctx, "e1"))(t)[0]
		other := another()
		var replayed atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := s
				if i%2 == 1 {
					st = other
				}
				_, err := st.Replay(ctx, done.Seq, done.State, clk.Now())
				switch {
				case err == nil:
					replayed.Add(1)
				case !errors.Is(err, ErrNotFound):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := replayed.Load(); n != 1 {
			t.Fatalf("%d replays took effect, want 1", n)
		}
		rows := must(s.InboxEvents(ctx, "e1"))(t)
		if len(rows) != 1 || rows[0].State != Pending || !rows[0].Replayed || rows[0].Seq <= done.Seq {
			t.Fatalf("after the replays: %+v", rows)
		}
		// It queues behind e2, which was pending before the replay.
		e2 := must(s.Lease(ctx, "r", 10, time.Minute))(t)
		if got := ids(e2); !slices.Equal(got, []string{"e2"}) {
			t.Fatalf("leased %v, want e2 first", got)
		}
		// A pending event's replay makes it due now.
		clk.Advance(time.Second)
		if _, err := s.Replay(ctx, rows[0].Seq, Pending, clk.Now()); err != nil {
			t.Fatal(err)
		}
		// A replay asked of the event while it was pending, which the shop
		// took meanwhile, is no delivery more.
		settle(t, s, e2[0], Delivered, clk)
		got := must(s.Lease(ctx, "r", 10, time.Minute))(t)
		if len(got) != 1 || got[0].EventID != "e1" {
			t.Fatalf("leased %v, want e1", ids(got))
		}
		asked := clk.Now()
		settle(t, s, got[0], Delivered, clk)
		if _, err := s.Replay(ctx, got[0].Seq, Pending, asked); !errors.Is(err, ErrNotFound) {
			t.Errorf("a replay of the pending event after its delivery: %v, want ErrNotFound", err)
		}
		// A replay asked of it as delivered, at the time of the replay
		// that made it: that replay came first.
		if _, err := s.Replay(ctx, got[0].Seq, Delivered, got[0].ReplayedAt); !errors.Is(err, ErrNotFound) {
			t.Errorf("a replay asked at the same time as the one that took effect: %v, want ErrNotFound", err)
		}
		clk.Advance(time.Second)
		if _, err := s.Replay(ctx, got[0].Seq, Delivered, clk.Now()); err != nil {
			t.Errorf("a later replay: %v", err)
		}
	})
}

// A replay is an attempt, not a new receipt: the event keeps the time it
// was received and its merchant reference; its replay's time is kept
// beside, and its retry period and the oldest waiting time run from it.
func TestInboxReplayKeepsTheReceipt(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		ev := event("r", "q", "e1", clk)
		ev.MerchantReference = "order-1042"
		received := clk.Now().Truncate(time.Millisecond)
		enqueue(t, s, ev, "")
		settle(t, s, must(s.Lease(ctx, "r", 1, time.Minute))(t)[0], Failed, clk)
		clk.Advance(time.Hour)
		replayed := must(s.Replay(ctx, ev.Seq, Failed, clk.Now()))(t)
		listed := must(s.ListInbox(ctx, InboxQuery{}))(t)
		if len(listed) != 1 {
			t.Fatalf("listed %d events, want 1", len(listed))
		}
		for _, got := range []*InboxEvent{replayed, listed[0]} {
			if !got.ReceivedAt.Equal(received) || !got.ReplayedAt.Equal(clk.Now().Truncate(time.Millisecond)) ||
				!got.AttemptsSince().Equal(got.ReplayedAt) || got.MerchantReference != "order-1042" {
				t.Errorf("after the replay: received %v, replayed %v, reference %q; want received %v, replayed %v, order-1042",
					got.ReceivedAt, got.ReplayedAt, got.MerchantReference, received, clk.Now())
			}
		}
		if oldest := must(s.PendingByRoute(ctx))(t)[0].Oldest; !oldest.Equal(listed[0].ReplayedAt) {
			t.Errorf("the oldest waiting event waits since %v, want since its replay %v", oldest, listed[0].ReplayedAt)
		}
	})
}

// The pending events of a route no configuration runs move to a route the
// operator names, merged in commit order with its queues.
func TestInboxMove(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		enqueue(t, s, event("gone", "q", "old1", clk), "")
		enqueue(t, s, event("new", "q", "new1", clk), "")
		enqueue(t, s, event("gone", "q", "old2", clk), "")
		if n := must(s.MoveInbox(ctx, "gone", "new"))(t); n != 2 {
			t.Fatalf("moved %d, want 2", n)
		}
		var order []string
		for range 3 {
			got := must(s.Lease(ctx, "new", 10, time.Minute))(t)
			if len(got) != 1 {
				t.Fatalf("leased %v: one queue has one head", ids(got))
			}
			order = append(order, got[0].EventID)
			settle(t, s, got[0], Delivered, clk)
		}
		if !slices.Equal(order, []string{"old1", "new1", "old2"}) {
			t.Errorf("order %v, want the commit order", order)
		}
	})
}

// Instances lease side by side: every event is leased once, and a queue's
// events one after another.
func TestInboxConcurrentLeases(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		ctx := t.Context()
		const queues, per = 40, 3
		for i := range per {
			for q := range queues {
				enqueue(t, s, event("r", fmt.Sprint("q", q), fmt.Sprintf("q%d-%d", q, i), clk), "")
			}
		}
		stores := []*Store{s, another(), another()}
		var mu sync.Mutex
		delivered := map[string][]string{}
		var wg sync.WaitGroup
		for _, st := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for idle := 0; idle < 20; {
					got, err := st.Lease(ctx, "r", 7, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						idle++
						time.Sleep(time.Millisecond)
						continue
					}
					idle = 0
					for _, ev := range got {
						mu.Lock()
						delivered[ev.Queue] = append(delivered[ev.Queue], ev.EventID)
						mu.Unlock()
						if err := st.Settle(ctx, ev, Settlement{State: Delivered}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		for q := range queues {
			var want []string
			for i := range per {
				want = append(want, fmt.Sprintf("q%d-%d", q, i))
			}
			if got := delivered[fmt.Sprint("q", q)]; !slices.Equal(got, want) {
				t.Errorf("queue q%d: %v, want %v", q, got, want)
			}
		}
	})
}

// A write that makes an event due wakes the subscribers: in this process,
// and on PostgreSQL in another.
func TestInboxWakesSubscribers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, another func() *Store) {
		subscribers := []*Store{s}
		if s.Engine() == "postgres" {
			subscribers = append(subscribers, another())
		}
		for _, sub := range subscribers {
			wake, stop := sub.Subscribe()
			defer stop()
			// The listener may connect after the first enqueue: enqueue
			// until the wake-up comes.
			deadline := time.After(30 * time.Second)
			for woken := false; !woken; {
				enqueue(t, s, event("r", "q", fmt.Sprint("e", time.Now().UnixNano()), clk), "")
				select {
				case <-wake:
					woken = true
				case <-time.After(200 * time.Millisecond):
				case <-deadline:
					t.Fatal("no wake-up")
				}
			}
		}
	})
}

// An import run twice stores each event once, with its state.
func TestInboxImport(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store, clk *clock, _ func() *Store) {
		ctx := t.Context()
		done := event("r", "q", "old-delivered", clk)
		done.State, done.DoneAt, done.Attempts = Delivered, clk.Now(), 2
		events := []*InboxEvent{done, event("r", "q", "old-pending", clk)}
		for range 2 {
			if _, err := s.ImportInbox(ctx, events); err != nil {
				t.Fatal(err)
			}
		}
		all := must(s.ListInbox(ctx, InboxQuery{}))(t)
		if len(all) != 2 {
			t.Fatalf("%d events after two imports, want 2", len(all))
		}
		if got := ids(must(s.Lease(ctx, "r", 10, time.Minute))(t)); !slices.Equal(got, []string{"old-pending"}) {
			t.Errorf("leased %v", got)
		}
		clk.Advance(9 * 24 * time.Hour)
		if n := must(s.ExpireInbox(ctx, 8*24*time.Hour))(t); n != 1 {
			t.Errorf("expired %d, want the delivered one", n)
		}
	})
}
