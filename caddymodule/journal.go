package caddymodule

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// The journal records every callback's fate (internal/store's Entry), off
// the callback's path: entries go into a bounded queue, and one writer
// commits them in batches, so that many callbacks share a commit and no
// callback waits for the journal. When the queue is full (the database
// slower than a flood), entries are dropped and counted, never waited for:
// the journal is for finding a callback, the dedupe claims and the inbox
// are what keep it safe.
const (
	journalQueue = 8192
	journalBatch = 512
	journalDelay = 20 * time.Millisecond // how long a batch waits for more
)

type journalWriter struct {
	state   *store.Store
	logger  *zap.Logger
	queue   chan journalItem
	dropped atomic.Int64

	mu     sync.RWMutex
	closed bool // the queue is closed: a callback still finishing during a stop adds nothing
}

// journalItem is an entry or a delivery attempt.
type journalItem struct {
	entry   store.Entry
	attempt *store.Attempt
}

func newJournalWriter(state *store.Store, logger *zap.Logger) *journalWriter {
	return &journalWriter{state: state, logger: logger, queue: make(chan journalItem, journalQueue)}
}

// add queues entries without waiting; what does not fit is dropped.
func (j *journalWriter) add(entries ...store.Entry) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		j.dropped.Add(int64(len(entries)))
		return
	}
	for _, e := range entries {
		j.put(journalItem{entry: e})
	}
}

// addAttempt queues a delivery attempt without waiting.
func (j *journalWriter) addAttempt(a store.Attempt) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		j.dropped.Add(1)
		return
	}
	j.put(journalItem{attempt: &a})
}

// put queues item, or drops it when the queue is full; j.mu is held.
func (j *journalWriter) put(item journalItem) {
	select {
	case j.queue <- item:
	default:
		j.dropped.Add(1)
	}
}

// close ends the writer once it wrote what was queued.
func (j *journalWriter) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.closed {
		j.closed = true
		close(j.queue)
	}
}

// run writes batches until the queue is closed and drained.
func (j *journalWriter) run() {
	batch := make([]journalItem, 0, journalBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		item, ok := <-j.queue
		if !ok {
			return
		}
		batch = append(batch[:0], item)
		timer.Reset(journalDelay)
	collect:
		for len(batch) < journalBatch {
			select {
			case item, ok := <-j.queue:
				if !ok {
					break collect
				}
				batch = append(batch, item)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		j.write(batch)
	}
}

func (j *journalWriter) write(batch []journalItem) {
	var entries []store.Entry
	var attempts []store.Attempt
	for _, item := range batch {
		if item.attempt != nil {
			attempts = append(attempts, *item.attempt)
		} else {
			entries = append(entries, item.entry)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := j.state.RecordBatch(ctx, entries, attempts); err != nil {
		j.logger.Warn("the journal did not record some callbacks", zap.Int("entries", len(entries)), zap.Int("attempts", len(attempts)), zap.Error(err))
	}
	if n := j.dropped.Swap(0); n > 0 {
		j.logger.Warn("the journal dropped entries: callbacks came faster than the database took them", zap.Int64("dropped", n))
	}
}

// journalize queues the callback's entries in the journal: one per event
// it brought, or one for a callback refused before any event was read.
// Routes provisioned without the app (tests) keep no journal.
func (h *Handler) journalize(rec *record) {
	if h.app == nil {
		return
	}
	base := store.Entry{At: rec.start, Route: h.scope().place, Provider: h.name, Outcome: rec.outcome,
		Reason: strings.Clone(rec.reason), VerifiedBy: strings.Clone(rec.verifiedBy), ClientIP: strings.Clone(rec.clientIP)}
	if len(rec.events) == 0 {
		h.app.journal.add(base)
		return
	}
	// The writer reads the entries after the callback ended, when its
	// body's pooled buffer serves another callback: every text taken from
	// an event (references, currency, which may share the body's memory)
	// is copied, and so is the amount.
	entries := make([]store.Entry, len(rec.events))
	for i, ev := range rec.events {
		e := base
		e.EventID, e.EventType, e.Status = strings.Clone(ev.ID()), strings.Clone(ev.Type()), strings.Clone(string(ev.Status))
		e.Merchant, e.Reference = strings.Clone(ev.MerchantReference), strings.Clone(ev.ProviderReference)
		if ev.Amount != nil {
			amount := ev.Amount.MinorUnits
			e.Amount, e.Currency = &amount, strings.Clone(ev.Amount.Currency)
		}
		entries[i] = e
	}
	h.app.journal.add(entries...)
}

// journalAttempt queues a delivery attempt of event id in the journal.
func (h *Handler) journalAttempt(id string, start time.Time, up upstreamResult) {
	if h.app == nil {
		return
	}
	a := store.Attempt{Route: h.scope().place, EventID: strings.Clone(id), At: start, Status: up.status, Latency: time.Since(start)}
	if !up.delivered() {
		a.Error = up.reason()
	}
	h.app.journal.addAttempt(a)
}
