package caddymodule

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/payhook/payhook/normalize"
)

// Inbox is the configuration of a route's inbox: with it, a verified event
// is stored durably before the provider is acknowledged, and payhook
// delivers it to the shop itself, with retries.
type Inbox struct {
	// RetryFor bounds how long payhook keeps trying to deliver an event;
	// then it is kept as failed. Default: 7d.
	RetryFor caddy.Duration `json:"retry_for,omitempty"`
	// MaxEvents bounds the events waiting for the shop; when as many wait,
	// callbacks are answered 503 (the provider keeps them) instead of
	// acknowledged. Default: 100000.
	MaxEvents int `json:"max_events,omitempty"`
}

// Defaults and bounds of the inbox.
const (
	DefaultInboxRetryFor  = 7 * 24 * time.Hour
	DefaultInboxMaxEvents = 100000
	inboxPrefix           = "payhook/inbox"
	// inboxRescan is how often the storage is listed again, for events
	// other instances stored and for those a crashed instance left.
	inboxRescan = 5 * time.Second
	// inboxParallel bounds the deliveries one inbox runs at once.
	inboxParallel = 8
	// Backoff: an event's own retries double from inboxBackoffBase up to
	// inboxQueueBackoffCap; while the shop fails, a single probe is sent,
	// its interval doubling up to inboxProbeCap. When a probe gets through,
	// every waiting event is tried at once, not at its own next time. An
	// event the shop refuses again after it has taken others since is the
	// shop's answer to that event, not the shop failing: it keeps to its
	// own backoff, and neither holds the others to probes nor is tried
	// again with every delivery of theirs.
	inboxBackoffBase     = time.Second
	inboxQueueBackoffCap = 5 * time.Minute
	inboxProbeCap        = 30 * time.Second
	// inboxKeep is how long delivered and failed events stay for inspection.
	inboxKeep = 8 * 24 * time.Hour
	// inboxStaleClaim is how long a queue's claim may be refused before
	// payhook asks the storage's Lock, which clears a stale claim (never a
	// live one), rather than its TryLock: past the storages' own staleness.
	inboxStaleClaim = 15 * time.Second
	// inboxMaxAttempts bounds the attempts an event's record keeps.
	inboxMaxAttempts = 20
)

var (
	// errInboxFull means the inbox holds max_events: 503, the provider keeps
	// the event.
	errInboxFull = errors.New("inbox full")
	// errInboxUnavailable means the storage did not take the event: 503.
	errInboxUnavailable = errors.New("inbox unavailable")
)

// inboxRecord is one event in the inbox's storage: what is needed to
// deliver it again (the request as forwarded, the envelope) and what
// happened to it.
type inboxRecord struct {
	ID         string    `json:"id"`
	Provider   string    `json:"provider"`
	Type       string    `json:"type"`
	Queue      string    `json:"queue"`
	ReceivedAt time.Time `json:"received_at"`
	Server     string    `json:"server,omitempty"`
	// RemoteAddr is the address the callback came from: a delivery comes
	// from it too, so that the route's matchers and {client_ip} see the
	// provider, as for the callback itself.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// TLS is the callback's connection, when it came over HTTPS: a
	// delivery is made as one ({scheme}, X-Forwarded-Proto, matchers).
	TLS         *inboxTLS       `json:"tls,omitempty"`
	Method      string          `json:"method"`
	Host        string          `json:"host"`
	URI         string          `json:"uri"`
	Header      http.Header     `json:"header,omitempty"`
	Envelope    json.RawMessage `json:"envelope"`
	State       string          `json:"state"`
	Attempts    []inboxAttempt  `json:"attempts,omitempty"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
	DoneAt      time.Time       `json:"done_at,omitzero"`
}

// inboxTLS is what a delivery's request says of the callback's TLS
// connection (not its ALPN protocol: a delivery is an HTTP/1.1 request).
type inboxTLS struct {
	Version     uint16 `json:"version"`
	CipherSuite uint16 `json:"cipher_suite"`
	ServerName  string `json:"server_name,omitempty"`
}

func tlsOf(state *tls.ConnectionState) *inboxTLS {
	if state == nil {
		return nil
	}
	return &inboxTLS{Version: state.Version, CipherSuite: state.CipherSuite, ServerName: state.ServerName}
}

func (t *inboxTLS) state() *tls.ConnectionState {
	if t == nil {
		return nil
	}
	return &tls.ConnectionState{Version: t.Version, CipherSuite: t.CipherSuite, ServerName: t.ServerName, HandshakeComplete: true}
}

// inboxAttempt is one delivery attempt.
type inboxAttempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
	Replay bool      `json:"replay,omitempty"`
}

// States of an event.
const (
	statePending   = "pending"
	stateDelivered = "delivered"
	stateFailed    = "failed"
)

// inbox stores a route's events durably and delivers them to the shop
// through the route's own handlers, in order per payment.
//
// Storage layout, under payhook/inbox/<scope>/: pending/<queue>/<seq> holds
// an event waiting for the shop (a queue is one payment: events about the
// same provider reference, delivered in the order received; seq sorts
// them); delivered/<id> and failed/<id> hold it afterwards. Every instance
// on the storage delivers: a queue's head is claimed with the storage's
// lock, so each event reaches the shop once between them.
type inbox struct {
	storage   certmagic.Storage
	handler   *Handler
	logger    *zap.Logger
	retryFor  time.Duration
	maxEvents int
	server    *caddyhttp.Server
	now       func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	deliveries sync.WaitGroup // deliveries under way, waited for by close

	mu       sync.Mutex
	queues   map[string]*inboxQueue
	pending  int // the events of all queues: kept by setKeys
	running  int
	failures int       // consecutive failed attempts: the shop is down
	probeAt  time.Time // while failures > 0, when the next probe may go
	lastScan time.Time
	// delivered is when the shop last took an event.
	delivered time.Time
}

// inboxQueue is one payment's waiting events, as last seen.
type inboxQueue struct {
	keys      []string // sorted: the head is keys[0]
	nextAt    time.Time
	attempts  int
	running   bool
	claimFrom time.Time // since when its claim has been refused; zero when not
	// failedAt is when its last attempt failed; refused is set when that
	// was its own (the shop had taken another event since its previous
	// failure): it then keeps to its own backoff.
	failedAt time.Time
	refused  bool
}

// contended notes that a queue's claim was refused (or, with claimed, that
// it was obtained) and returns for how long it has been refused.
func (ib *inbox) contended(queue string, claimed bool) time.Duration {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	q := ib.queues[queue]
	if q == nil {
		return 0
	}
	now := ib.now()
	switch {
	case claimed:
		q.claimFrom = time.Time{}
	case q.claimFrom.IsZero():
		q.claimFrom = now
	}
	if q.claimFrom.IsZero() {
		return 0
	}
	return now.Sub(q.claimFrom)
}

// setKeys replaces a queue's events with keys (sorted here), keeping the
// count of pending events; ib.mu is held.
func (ib *inbox) setKeys(q *inboxQueue, keys []string) {
	slices.Sort(keys)
	ib.pending += len(keys) - len(q.keys)
	q.keys = keys
}

func newInbox(h *Handler, storage certmagic.Storage, cfg Inbox, server *caddyhttp.Server) *inbox {
	retryFor, maxEvents := time.Duration(cfg.RetryFor), cfg.MaxEvents
	if retryFor <= 0 {
		retryFor = DefaultInboxRetryFor
	}
	if maxEvents <= 0 {
		maxEvents = DefaultInboxMaxEvents
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &inbox{
		storage: storage, handler: h, logger: h.logger.Named("inbox"),
		retryFor: retryFor, maxEvents: maxEvents, server: server, now: time.Now,
		ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{}),
		queues: map[string]*inboxQueue{},
	}
}

// key names the inbox in the storage: its route's place (route.go).
func (ib *inbox) key() string { return ib.handler.scope().inbox }

func (ib *inbox) dir(parts ...string) string {
	return path.Join(append([]string{inboxPrefix, ib.key()}, parts...)...)
}

// queueOf is the queue of an event: its payment (provider and reference),
// or the event alone when it names none.
func queueOf(ev *normalize.Event) string {
	key := ev.Provider + "\x00" + ev.ProviderReference
	if ev.ProviderReference == "" {
		key = "event\x00" + ev.ID()
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:10])
}

// seqOf sorts an event within its queue: the time received, the event's
// place in its callback, its id.
func seqOf(received time.Time, index int, id string) string {
	return fmt.Sprintf("%020d-%04d-%s", received.UnixNano(), index, id)
}

// enqueue stores an event durably (the file storage writes it to a
// temporary file, fsyncs it and renames it) before the provider is
// acknowledged.
func (ib *inbox) enqueue(ctx context.Context, rec *inboxRecord, index int) error {
	ib.mu.Lock()
	full := ib.pending >= ib.maxEvents
	ib.mu.Unlock()
	if full {
		return fmt.Errorf("%w: %d events wait for the shop (max_events)", errInboxFull, ib.maxEvents)
	}
	rec.State = statePending
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := ib.dir("pending", rec.Queue, seqOf(rec.ReceivedAt, index, rec.ID))
	if err := ib.storage.Store(ctx, key, raw); err != nil {
		return fmt.Errorf("%w: %v", errInboxUnavailable, err)
	}
	ib.mu.Lock()
	q := ib.queues[rec.Queue]
	if q == nil {
		q = &inboxQueue{nextAt: ib.now()}
		ib.queues[rec.Queue] = q
	}
	ib.setKeys(q, append(q.keys, key))
	ib.mu.Unlock()
	ib.poke()
	return nil
}

func (ib *inbox) poke() {
	select {
	case ib.wake <- struct{}{}:
	default:
	}
}

// run delivers until the inbox is closed.
func (ib *inbox) run() {
	defer close(ib.done)
	// The server's handler chain is ready once its configuration runs.
	for !serverRunning(ib.server) {
		select {
		case <-ib.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	ib.adoptLegacy()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	janitor := time.NewTicker(time.Hour)
	defer janitor.Stop()
	for {
		if ib.now().Sub(ib.lastScan) >= inboxRescan {
			ib.scan()
		}
		ib.dispatch()
		ib.observe()
		select {
		case <-ib.ctx.Done():
			return
		case <-ib.wake:
		case <-ticker.C:
		case <-janitor.C:
			ib.prune()
		}
	}
}

// serverRunning tells whether server belongs to the running configuration
// (Caddy makes it active once every app has started; one being validated,
// or replaced, never is).
func serverRunning(server *caddyhttp.Server) bool {
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return false
	}
	http, ok := app.(*caddyhttp.App)
	if !ok {
		return false
	}
	for _, s := range http.Servers {
		if s == server {
			return true
		}
	}
	return false
}

// scan lists the waiting events in the storage: those other instances
// stored, and those left by an instance that stopped.
func (ib *inbox) scan() {
	keys, err := ib.storage.List(ib.ctx, ib.dir("pending"), true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		ib.logger.Error("listing the inbox", zap.Error(err))
		return
	}
	byQueue := map[string][]string{}
	prefix := ib.dir("pending") + "/"
	for _, key := range keys {
		queue, seq, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		if !ok || !isSeq(seq) {
			continue // a directory, or a storage's temporary file
		}
		byQueue[queue] = append(byQueue[queue], key)
	}
	ib.mu.Lock()
	defer ib.mu.Unlock()
	ib.lastScan = ib.now()
	for name, keys := range byQueue {
		q := ib.queues[name]
		if q == nil {
			q = &inboxQueue{nextAt: ib.now()}
			ib.queues[name] = q
		}
		ib.setKeys(q, keys)
	}
	for name, q := range ib.queues {
		if _, ok := byQueue[name]; !ok {
			ib.setKeys(q, nil)
			if !q.running {
				delete(ib.queues, name)
			}
		}
	}
}

// dispatch starts the deliveries that are due: while the shop fails, one
// probe at a time.
func (ib *inbox) dispatch() {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	now := ib.now()
	due := func(q *inboxQueue) bool { return !q.running && len(q.keys) > 0 && !now.Before(q.nextAt) }
	if ib.failures > 0 {
		if now.Before(ib.probeAt) || ib.running > 0 {
			return
		}
		// The probe: the event least likely to be refused for itself, one
		// the shop has not refused on its own and that failed least.
		var probe string
		var best *inboxQueue
		for name, q := range ib.queues {
			if due(q) && (best == nil || probeBefore(q, name, best, probe)) {
				probe, best = name, q
			}
		}
		if best != nil {
			ib.start(probe)
		}
		return
	}
	for name, q := range ib.queues {
		if ib.running >= inboxParallel {
			return
		}
		if due(q) {
			ib.start(name)
		}
	}
}

// probeBefore orders the candidates for a probe: first the queues the shop
// has not refused on their own, then the fewest failed attempts, then the
// name (so that the choice does not depend on a map's order).
func probeBefore(q *inboxQueue, name string, other *inboxQueue, otherName string) bool {
	if q.refused != other.refused {
		return !q.refused
	}
	if q.attempts != other.attempts {
		return q.attempts < other.attempts
	}
	return name < otherName
}

// start delivers a queue's head in the background; ib.mu is held.
func (ib *inbox) start(name string) {
	q := ib.queues[name]
	q.running = true
	ib.running++
	ib.deliveries.Add(1)
	go ib.deliverHead(name, q.keys[0])
}

// deliverHead delivers a queue's first event, holding the queue's claim.
func (ib *inbox) deliverHead(queue, key string) {
	tried := false
	defer func() {
		ib.mu.Lock()
		if q := ib.queues[queue]; q != nil {
			q.running = false
		}
		ib.running--
		ib.mu.Unlock()
		if tried {
			ib.poke()
		}
		ib.deliveries.Done()
	}()
	release, ok := ib.claim(queue)
	if !ok {
		return // another instance delivers it
	}
	defer release()
	// The queue as the storage has it now: another instance may have
	// stored an earlier event of this payment, or delivered the head.
	if listed, err := ib.storage.List(ib.ctx, ib.dir("pending", queue), false); err == nil {
		keys := slices.DeleteFunc(listed, func(k string) bool { return !isSeq(path.Base(k)) })
		ib.mu.Lock()
		if q := ib.queues[queue]; q != nil {
			ib.setKeys(q, keys)
		}
		ib.mu.Unlock()
		if len(keys) == 0 {
			ib.forget(queue, key)
			return
		}
		key = keys[0]
	}
	raw, err := ib.storage.Load(ib.ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		ib.forget(queue, key) // delivered by another instance meanwhile
		return
	}
	var rec inboxRecord
	if err == nil {
		err = json.Unmarshal(raw, &rec)
	}
	if err != nil {
		ib.logger.Error("reading an inbox event", zap.String("key", key), zap.Error(err))
		ib.backOff(queue, 1)
		return
	}
	tried = true
	up := ib.send(&rec)
	now := ib.now()
	attempt := inboxAttempt{At: now, Status: up.status}
	if !up.delivered() {
		attempt.Error = up.reason()
	}
	rec.Attempts = append(rec.Attempts, attempt)
	if len(rec.Attempts) > inboxMaxAttempts {
		rec.Attempts = append(rec.Attempts[:1], rec.Attempts[len(rec.Attempts)-inboxMaxAttempts+1:]...)
	}
	switch {
	case up.delivered():
		rec.State, rec.DoneAt, rec.NextAttempt = stateDelivered, now, time.Time{}
		ib.finish(queue, key, &rec, ib.dir("delivered", rec.ID))
		ib.recovered(now)
	case now.Sub(rec.ReceivedAt) >= ib.retryFor:
		rec.State, rec.DoneAt, rec.NextAttempt = stateFailed, now, time.Time{}
		ib.failed(queue, now) // before finish, which makes the next event the head
		ib.finish(queue, key, &rec, ib.dir("failed", rec.ID))
		ib.logger.Error("event not delivered within retry_for; kept as failed (replay it with caddy payhook replay)",
			zap.String("event_id", rec.ID), zap.String("provider", rec.Provider), zap.Duration("retry_for", ib.retryFor),
			zap.String("last_error", attempt.Error), zap.Int("attempts", len(rec.Attempts)))
	default:
		next := ib.backOff(queue, 0)
		rec.NextAttempt = next
		if raw, err := json.Marshal(&rec); err == nil {
			if err := ib.storage.Store(context.Background(), key, raw); err != nil {
				ib.logger.Error("recording a delivery attempt", zap.String("event_id", rec.ID), zap.Error(err))
			}
		}
		ib.failed(queue, now)
		ib.logger.Warn("shop did not take an event from the inbox; retrying",
			zap.String("event_id", rec.ID), zap.String("provider", rec.Provider), zap.String("reason", attempt.Error),
			zap.Time("next_attempt", next))
	}
	inboxMetrics.attempts.WithLabelValues(rec.Provider, attemptOutcome(up)).Inc()
}

// claim takes a queue's claim in the storage, and returns its release. A
// claim refused for longer than inboxStaleClaim is asked of the storage's
// Lock, which clears one that a dead instance left and that its TryLock
// never gives up (the file storage's, when the process died between
// creating its lock file and writing it); it never takes a live one.
func (ib *inbox) claim(queue string) (release func(), ok bool) {
	lock := "payhook-inbox-" + ib.key() + "-" + queue
	if claimed, _ := tryLock(ib.ctx, ib.storage, lock); !claimed {
		if ib.contended(queue, false) <= inboxStaleClaim {
			return nil, false
		}
		ctx, cancel := context.WithTimeout(ib.ctx, 5*time.Second)
		err := ib.storage.Lock(ctx, lock)
		cancel()
		if err != nil {
			ib.logger.Error("cannot claim an inbox queue", zap.String("queue", queue), zap.Error(err))
			return nil, false
		}
	}
	ib.contended(queue, true)
	return func() {
		if err := ib.storage.Unlock(context.Background(), lock); err != nil {
			ib.logger.Error("releasing an inbox claim", zap.Error(err))
		}
	}, true
}

func attemptOutcome(up upstreamResult) string {
	if up.delivered() {
		return "delivered"
	}
	return "failed"
}

// finish moves a delivered or failed event out of its queue.
func (ib *inbox) finish(queue, key string, rec *inboxRecord, to string) {
	// Not ib.ctx: an outcome is recorded even while the inbox closes.
	ctx := context.Background()
	raw, err := json.Marshal(rec)
	if err == nil {
		err = ib.storage.Store(ctx, to, raw)
	}
	if err == nil {
		err = ib.storage.Delete(ctx, key)
	}
	if err != nil {
		// Kept pending: delivered once more at worst, under the same id.
		ib.logger.Error("moving an event out of the inbox", zap.String("event_id", rec.ID), zap.Error(err))
		return
	}
	ib.forget(queue, key)
	if rec.State == stateFailed {
		inboxMetrics.failed.WithLabelValues(rec.Provider).Inc()
	}
}

// forget removes a key from its queue.
func (ib *inbox) forget(queue, key string) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	q := ib.queues[queue]
	if q == nil {
		return
	}
	ib.setKeys(q, slices.DeleteFunc(slices.Clone(q.keys), func(k string) bool { return k == key }))
	// The next event is a new head: nothing refused yet.
	q.attempts, q.failedAt, q.refused = 0, time.Time{}, false
	q.nextAt = ib.now()
	if len(q.keys) == 0 && !q.running {
		delete(ib.queues, queue)
	}
}

// backOff schedules a queue's next attempt after a failure (extra adds
// to its count) and returns when it is.
func (ib *inbox) backOff(queue string, extra int) time.Time {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	q := ib.queues[queue]
	if q == nil {
		return ib.now()
	}
	q.attempts += 1 + extra
	q.nextAt = ib.now().Add(backoff(q.attempts, inboxQueueBackoffCap))
	return q.nextAt
}

// failed notes a failed attempt of a queue. If the shop has taken another
// event since the queue's previous failure (and nothing says it is failing
// now), the refusal is the queue's own: it keeps to its backoff. Otherwise
// the shop is (still) failing, and the next probe waits longer; failures
// of deliveries that ran together count once.
func (ib *inbox) failed(queue string, now time.Time) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if q := ib.queues[queue]; q != nil {
		own := ib.failures == 0 && !q.failedAt.IsZero() && ib.delivered.After(q.failedAt)
		q.failedAt, q.refused = now, own || q.refused
		if q.refused {
			return
		}
	}
	if ib.failures > 0 && now.Before(ib.probeAt) {
		return // another failure of the same round (deliveries run in parallel)
	}
	ib.failures++
	ib.probeAt = now.Add(backoff(ib.failures, inboxProbeCap))
}

// recovered notes a delivery: if the shop was failing, every waiting event
// is due now rather than at its own next time, but for those the shop
// refused on their own.
func (ib *inbox) recovered(now time.Time) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if now.After(ib.delivered) {
		ib.delivered = now
	}
	if ib.failures == 0 {
		return
	}
	ib.failures = 0
	for _, q := range ib.queues {
		if !q.refused {
			q.attempts = 0
			q.nextAt = now
		}
	}
}

// backoff is the wait after n failures: doubling from inboxBackoffBase,
// capped, with ±25 % jitter so that instances do not retry in step.
func backoff(n int, limit time.Duration) time.Duration {
	d := inboxBackoffBase
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// inboxDelivery marks a request the inbox makes through the server: the
// payhook handler that owns the inbox forwards the stored envelope in its
// place; any other refuses it. Only this process can put it in a
// request's context.
type inboxDelivery struct {
	inbox  *inbox
	record *inboxRecord
	result upstreamResult
	taken  bool // the inbox's own handler took it
}

type inboxDeliveryKey struct{}

// send delivers an event through the server's handlers: the request goes
// the way the provider's did (host, method, path), reaches this route's
// payhook handler, which hands the envelope to the handlers after it.
func (ib *inbox) send(rec *inboxRecord) (up upstreamResult) {
	u, err := url.ParseRequestURI(rec.URI)
	if err != nil {
		return upstreamResult{err: fmt.Errorf("stored request URI: %w", err)}
	}
	d := &inboxDelivery{inbox: ib, record: rec}
	ctx, cancel := context.WithTimeout(context.WithValue(ib.ctx, inboxDeliveryKey{}, d), 2*time.Minute)
	defer cancel()
	req := (&http.Request{
		Method: rec.Method, URL: u, RequestURI: rec.URI, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.Header.Clone(), Host: rec.Host, RemoteAddr: cmp.Or(rec.RemoteAddr, "127.0.0.1:0"), TLS: rec.TLS.state(), Body: http.NoBody,
	}).WithContext(ctx)
	if req.Header == nil {
		req.Header = http.Header{}
	}
	rw := new(upstreamRecorder)
	func() {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				ib.logger.Error("delivering from the inbox panicked", zap.Any("panic", v))
				d.result = upstreamResult{err: fmt.Errorf("panic: %v", v)}
			}
		}()
		ib.server.ServeHTTP(rw, req)
	}()
	if !d.taken {
		return upstreamResult{status: rw.status, err: errors.New("the route no longer leads to this inbox's payhook handler")}
	}
	return d.result
}

// tryLock claims name without waiting when the storage can; otherwise it
// waits briefly.
func tryLock(ctx context.Context, storage certmagic.Storage, name string) (bool, error) {
	if t, ok := storage.(certmagic.TryLocker); ok {
		return t.TryLock(ctx, name)
	}
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := storage.Lock(ctx, name); err != nil {
		return false, nil
	}
	return true, nil
}

// observe updates the inbox's gauges.
func (ib *inbox) observe() {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	inboxMetrics.pending.WithLabelValues(ib.handler.name, ib.key()).Set(float64(ib.pending))
	oldest := time.Duration(0)
	now := ib.now()
	for _, q := range ib.queues {
		if len(q.keys) == 0 {
			continue
		}
		if at, ok := seqTime(q.keys[0]); ok && now.Sub(at) > oldest {
			oldest = now.Sub(at)
		}
	}
	inboxMetrics.oldest.WithLabelValues(ib.handler.name, ib.key()).Set(oldest.Seconds())
}

// isSeq tells a pending event's name (seqOf) from anything else in its
// directory, such as a temporary file a storage left when its process died.
func isSeq(name string) bool {
	nanos, rest, ok := strings.Cut(name, "-")
	if !ok || len(nanos) != 20 || !allDigits(nanos) {
		return false
	}
	index, id, ok := strings.Cut(rest, "-")
	return ok && len(index) == 4 && allDigits(index) && id != "" && !strings.ContainsAny(id, "/.")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// seqTime reads the receive time from a pending key.
func seqTime(key string) (time.Time, bool) {
	seq := path.Base(key)
	nanos, _, ok := strings.Cut(seq, "-")
	n, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// prune deletes delivered and failed events older than inboxKeep.
func (ib *inbox) prune() {
	for _, state := range []string{stateDelivered, stateFailed} {
		keys, err := ib.storage.List(ib.ctx, ib.dir(state), false)
		if err != nil {
			continue
		}
		for _, key := range keys {
			info, err := ib.storage.Stat(ib.ctx, key)
			if err == nil && ib.now().Sub(info.Modified) > inboxKeep {
				_ = ib.storage.Delete(ib.ctx, key)
			}
		}
	}
}

// close stops the deliveries; those under way finish (they are cut short
// by the cancelled context, and their outcome is recorded).
func (ib *inbox) close() {
	ib.cancel()
	<-ib.done
	ib.deliveries.Wait()
}
