package caddymodule

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Defaults of deduplication.
const (
	DefaultDedupeWindow = 8 * 24 * time.Hour // IXOPAY retries for 7 days
	// claimWait bounds how long a copy of an event waits for another copy's
	// delivery before answering 503 (the provider retries later).
	claimWait = 10 * time.Second
	// dedupeCacheSize bounds the in-memory cache of delivered events.
	dedupeCacheSize = 10000
	janitorInterval = time.Hour
	dedupePrefix    = "payhook/dedupe"
)

// errClaimUnavailable means the event could be neither found nor claimed in
// time (storage failing, or another copy still delivering): 503, retry.
var errClaimUnavailable = errors.New("delivery record unavailable")

// deduper makes each distinct event reach the shop once. Delivered events
// are recorded in Caddy's configured storage (the file system by default,
// or Redis, Postgres, Consul, … in a cluster), so the record survives
// restarts and is shared by every Caddy instance using that storage. A
// delivery in progress is claimed with the storage's lock; copies of the
// event wait for its outcome. A small in-memory cache keeps hot repeats off
// the storage.
//
// Storage layout: events/<id[:2]>/<id> holds a record {delivered_at,
// expires_at}; expiry/<YYYY-MM-DD>/<id> indexes it by the day it expires, so
// that the janitor deletes whole expired days without looking at the rest.
type deduper struct {
	storage certmagic.Storage
	window  time.Duration
	logger  *zap.Logger
	now     func() time.Time

	cache *expiringSet

	mu      sync.Mutex
	flights map[string]*flight // deliveries in progress in this process
	held    map[string]bool    // storage locks this process holds

	stop chan struct{}
}

// flight is one delivery in progress; done is closed when it ends.
type flight struct {
	done      chan struct{}
	delivered bool
}

// deliveryRecord is what the storage keeps per delivered event.
type deliveryRecord struct {
	DeliveredAt time.Time `json:"delivered_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func newDeduper(storage certmagic.Storage, window time.Duration, logger *zap.Logger) *deduper {
	return &deduper{
		storage: storage,
		window:  window,
		logger:  logger,
		now:     time.Now,
		cache:   newExpiringSet(dedupeCacheSize),
		flights: make(map[string]*flight),
		held:    make(map[string]bool),
		stop:    make(chan struct{}),
	}
}

func eventKey(id string) string    { return path.Join(dedupePrefix, "events", id[:2], id) }
func claimName(id string) string   { return "payhook-dedupe-" + id }
func expiryDir(day string) string  { return path.Join(dedupePrefix, "expiry", day) }
func expiryDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// claim decides what to do with event id: duplicate is true when it was
// delivered before (answer the provider's acknowledgement, forward nothing);
// otherwise the caller delivers it and must call release with the outcome.
// An error means the event can be neither recognised nor claimed now.
func (d *deduper) claim(ctx context.Context, id string) (duplicate bool, release func(delivered bool), err error) {
	if len(id) < 2 {
		return false, nil, fmt.Errorf("%w: event id %q", errClaimUnavailable, id)
	}
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
	if delivered, err := d.delivered(ctx, id); err != nil || delivered {
		finish(delivered)
		return delivered, nil, err
	}
	// Across instances sharing the storage, the storage's lock is the claim.
	name := claimName(id)
	if err := d.storage.Lock(ctx, name); err != nil {
		finish(false)
		return false, nil, fmt.Errorf("%w: %v", errClaimUnavailable, err)
	}
	d.setHeld(name, true)
	unlock := func() {
		if d.setHeld(name, false) {
			if err := d.storage.Unlock(context.Background(), name); err != nil {
				d.logger.Error("releasing a delivery claim", zap.String("event_id", id), zap.Error(err))
			}
		}
	}
	// Another instance may have delivered it while we waited for the lock.
	if delivered, err := d.delivered(ctx, id); err != nil || delivered {
		unlock()
		finish(delivered)
		return delivered, nil, err
	}
	return false, func(delivered bool) {
		if delivered {
			d.remember(id)
		}
		unlock()
		finish(delivered)
	}, nil
}

// delivered looks the event up in the storage.
func (d *deduper) delivered(ctx context.Context, id string) (bool, error) {
	raw, err := d.storage.Load(ctx, eventKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: reading the storage: %v", errClaimUnavailable, err)
	}
	var rec deliveryRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		d.logger.Warn("unreadable delivery record; treating the event as new", zap.String("event_id", id))
		return false, nil
	}
	if d.now().After(rec.ExpiresAt) {
		return false, nil
	}
	d.cache.add(id, rec.ExpiresAt)
	return true, nil
}

// remember records a delivered event. A failure is logged: the shop has the
// event, so the provider is still told so, but a later copy would be
// forwarded again.
func (d *deduper) remember(id string) {
	now := d.now().UTC()
	rec := deliveryRecord{DeliveredAt: now, ExpiresAt: now.Add(d.window)}
	d.cache.add(id, rec.ExpiresAt)
	raw, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), claimWait)
	defer cancel()
	err := d.storage.Store(ctx, path.Join(expiryDir(expiryDay(rec.ExpiresAt)), id), []byte{})
	if err == nil {
		err = d.storage.Store(ctx, eventKey(id), raw)
	}
	if err != nil {
		d.logger.Error("recording a delivered event failed; a repeat of it would be forwarded again",
			zap.String("event_id", id), zap.Error(err))
	}
}

// setHeld records whether this process holds the named lock and reports
// whether the state changed.
func (d *deduper) setHeld(name string, held bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held[name] == held {
		return false
	}
	if held {
		d.held[name] = true
	} else {
		delete(d.held, name)
	}
	return true
}

// close stops the janitor and releases every claim still held, so a reload
// or a stop leaves nothing locked.
func (d *deduper) close() {
	close(d.stop)
	d.mu.Lock()
	names := make([]string, 0, len(d.held))
	for name := range d.held {
		names = append(names, name)
	}
	d.mu.Unlock()
	for _, name := range names {
		if d.setHeld(name, false) {
			_ = d.storage.Unlock(context.Background(), name)
		}
	}
}

// lastJanitorRun spaces janitor runs of all payhook handlers in this process.
var lastJanitorRun atomic.Int64

// janitor deletes expired records every hour, day by day.
func (d *deduper) janitor() {
	ticker := time.NewTicker(janitorInterval)
	defer ticker.Stop()
	for {
		last := lastJanitorRun.Load()
		if now := d.now().Unix(); now-last >= int64(janitorInterval/time.Second) && lastJanitorRun.CompareAndSwap(last, now) {
			d.expire(context.Background())
		}
		select {
		case <-d.stop:
			return
		case <-ticker.C:
		}
	}
}

// expire deletes the records of every day that has fully passed: it lists
// only the expired days, never the live records.
func (d *deduper) expire(ctx context.Context) {
	days, err := d.storage.List(ctx, path.Join(dedupePrefix, "expiry"), false)
	if err != nil {
		return // nothing recorded yet
	}
	today := expiryDay(d.now())
	for _, dayKey := range days {
		if day := path.Base(dayKey); day >= today || len(day) != len(today) {
			continue
		}
		ids, _ := d.storage.List(ctx, dayKey, false)
		for _, idKey := range ids {
			id := path.Base(idKey)
			if len(id) >= 2 && !strings.ContainsAny(id, "/\\") {
				_ = d.storage.Delete(ctx, eventKey(id))
			}
		}
		if err := d.storage.Delete(ctx, dayKey); err != nil {
			d.logger.Warn("deleting expired delivery records", zap.String("day", path.Base(dayKey)), zap.Error(err))
		}
	}
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
