package caddymodule

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// Defaults of deduplication.
const (
	DefaultDedupeWindow = 8 * 24 * time.Hour // IXOPAY retries for 7 days
	// claimWait bounds how long a copy of an event waits for another copy's
	// delivery before answering 503 (the provider retries later).
	claimWait = 10 * time.Second
	// claimLease is how long a claim holds an event without news of its
	// holder: a holder that dies (kill -9, a lost machine) leaves its
	// events to others once its leases run out. A holder renews its lease
	// at half of it while it delivers.
	claimLease = 2 * time.Minute
	// dedupeCacheSize bounds the in-memory cache of delivered events.
	dedupeCacheSize = 10000
)

// errClaimUnavailable means the event could be neither found nor claimed in
// time (the store failing, or another copy still delivering): 503, retry.
var errClaimUnavailable = errors.New("delivery record unavailable")

// deduper makes each distinct event reach the shop once. Delivered events
// are recorded in payhook's store (internal/store: SQLite by default, or
// PostgreSQL shared by every instance of a cluster), so the record survives
// restarts. A delivery in progress is the store's claim, with a lease;
// copies of the event wait for its outcome: in this process on the claim's
// flight, in another by asking the store again. A small in-memory cache
// keeps hot repeats off the store.
type deduper struct {
	state  *store.Store
	window time.Duration
	logger *zap.Logger
	now    func() time.Time

	cache *expiringSet

	mu      sync.Mutex
	flights map[string]*flight // deliveries in progress in this process
	renew   map[*time.Timer]bool
	// recording counts the delivery records being written after the
	// provider was answered (see claim); flush waits for them.
	recording sync.WaitGroup
}

// flight is one delivery in progress; done is closed when it ends.
type flight struct {
	done      chan struct{}
	delivered bool
}

func newDeduper(state *store.Store, window time.Duration, logger *zap.Logger) *deduper {
	return &deduper{
		state:   state,
		window:  window,
		logger:  logger,
		now:     time.Now,
		cache:   newExpiringSet(dedupeCacheSize),
		flights: make(map[string]*flight),
		renew:   make(map[*time.Timer]bool),
	}
}

// claim decides what to do with event id: duplicate is true when it was
// delivered before (answer the provider's acknowledgement, forward nothing);
// otherwise the caller delivers it and must call release with the outcome.
// An error means the event can be neither recognised nor claimed now.
func (d *deduper) claim(ctx context.Context, id string) (duplicate bool, release func(delivered bool), err error) {
	ctx, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	for {
		if d.cache.contains(id, d.now()) {
			return true, nil, nil
		}
		d.mu.Lock()
		f, busy := d.flights[id]
		if !busy {
			f = &flight{done: make(chan struct{})}
			d.flights[id] = f
		}
		d.mu.Unlock()
		if !busy {
			break // this request owns the event in this process
		}
		select {
		case <-f.done:
			if f.delivered {
				return true, nil, nil
			}
			// The other copy's delivery failed: try it ourselves.
		case <-ctx.Done():
			return false, nil, fmt.Errorf("%w: another copy is still being delivered", errClaimUnavailable)
		}
	}

	finish := func(delivered bool) {
		d.mu.Lock()
		f := d.flights[id]
		delete(d.flights, id)
		d.mu.Unlock()
		f.delivered = delivered
		close(f.done)
	}
	// Across processes the store's claim decides; a copy another process
	// is delivering is asked about again, less and less often.
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		c, err := d.state.Claim(ctx, id, claimLease)
		if err != nil {
			finish(false)
			return false, nil, fmt.Errorf("%w: %v", errClaimUnavailable, err)
		}
		switch c.State {
		case store.ClaimDelivered:
			d.cache.add(id, c.Until)
			finish(true)
			return true, nil, nil
		case store.ClaimNew:
			renewal := d.keepLease(c)
			return false, func(delivered bool) {
				if !delivered {
					d.stopRenewal(renewal)
					d.record(id, c, false)
					finish(false)
					return
				}
				// The shop took the event: this process knows it at once
				// (the cache, the copies waiting on the flight), and the
				// provider is answered without waiting for the record's
				// sync. Until the record is committed the claim's lease
				// holds the event, so a copy at another instance waits for
				// it, as for a delivery; a crash before the commit is the
				// crash between the shop's answer and the record that the
				// operations page's limits describe (the lease runs out, a later
				// copy is delivered again, same id). With the sync in the
				// answer's path a new event waited for two commits; now for
				// one (its claim).
				d.cache.add(id, d.now().Add(d.window))
				finish(true)
				d.recording.Add(1)
				go func() {
					defer d.recording.Done()
					d.record(id, c, true)
					d.stopRenewal(renewal)
				}()
			}, nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			finish(false)
			return false, nil, fmt.Errorf("%w: another instance is still delivering it", errClaimUnavailable)
		}
	}
}

// record stores a claim's outcome. A failure is logged: when the shop has
// the event, the provider is still told so, and the event stays claimed
// until its lease runs out (this process answers its copies from the
// cache meanwhile): at most one more delivery then, never a loop.
func (d *deduper) record(id string, c store.Claim, delivered bool) {
	ctx, cancel := context.WithTimeout(context.Background(), claimWait)
	defer cancel()
	err := d.state.Finish(ctx, c, delivered, d.window)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLeaseLost):
		d.logger.Error("a delivery outlasted its claim's lease, and another copy claimed the event meanwhile; the shop may receive it twice",
			zap.String("event_id", id))
	case delivered:
		d.logger.Error("recording a delivered event failed; a copy of it arriving after its claim's lease may be forwarded again",
			zap.String("event_id", id), zap.Error(err))
	default:
		d.logger.Warn("releasing a claim failed; the event waits for its lease to run out", zap.String("event_id", id), zap.Error(err))
	}
}

// keepLease renews a held claim's lease at half of it, until stopRenewal.
func (d *deduper) keepLease(c store.Claim) *time.Timer {
	var timer *time.Timer
	timer = time.AfterFunc(claimLease/2, func() {
		ctx, cancel := context.WithTimeout(context.Background(), claimWait)
		defer cancel()
		if err := d.state.Extend(ctx, c, claimLease); err != nil {
			return
		}
		d.mu.Lock()
		if d.renew[timer] {
			timer.Reset(claimLease / 2)
		}
		d.mu.Unlock()
	})
	d.mu.Lock()
	d.renew[timer] = true
	d.mu.Unlock()
	return timer
}

func (d *deduper) stopRenewal(timer *time.Timer) {
	d.mu.Lock()
	delete(d.renew, timer)
	d.mu.Unlock()
	timer.Stop()
}

// flush waits for the delivery records being written.
func (d *deduper) flush() { d.recording.Wait() }

// close stops renewing the leases of claims still held (a stop or a
// reload): a delivery that goes on past its lease may then be taken over.
// It first waits for the delivery records being written.
func (d *deduper) close() {
	d.flush()
	d.mu.Lock()
	defer d.mu.Unlock()
	for timer := range d.renew {
		timer.Stop()
		delete(d.renew, timer)
	}
}

// bind ties a weakly signed transmission (key) to the body whose digest is
// given, for the dedupe window; it reports whether the body is the bound
// one.
func (d *deduper) bind(ctx context.Context, key string, digest []byte) (bool, error) {
	ok, err := d.state.Bind(ctx, key, digest, d.window)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errClaimUnavailable, err)
	}
	return ok, nil
}

// expiringSet is a bounded LRU of keys that count until they expire: the
// delivered events, the resources a provider's API just called unknown.
type expiringSet struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type cacheEntry struct {
	id      string
	expires time.Time
}

func newExpiringSet(max int) *expiringSet {
	return &expiringSet{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *expiringSet) add(id string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		el.Value.(*cacheEntry).expires = expires
		c.order.MoveToFront(el)
		return
	}
	c.items[id] = c.order.PushFront(&cacheEntry{id, expires})
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).id)
	}
}

func (c *expiringSet) contains(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return false
	}
	if now.After(el.Value.(*cacheEntry).expires) {
		c.order.Remove(el)
		delete(c.items, id)
		return false
	}
	c.order.MoveToFront(el)
	return true
}

// dedupeKey is the key of event id in this route's dedupe scope: the
// lowercase hex of the first 16 bytes of SHA-256 over the scope and the id.
func (h *Handler) dedupeKey(id string) string {
	sum := sha256.New()
	sum.Write([]byte(h.scope().dedupe))
	// Two zero bytes: the place where versions before route scopes put
	// the callback's host, empty with dedupe_scope, whose records an
	// upgrade therefore keeps.
	sum.Write([]byte{0, 0})
	sum.Write([]byte(id))
	var out [sha256.Size]byte
	return hex.EncodeToString(sum.Sum(out[:0])[:16])
}
