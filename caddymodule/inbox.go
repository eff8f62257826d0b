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
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
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
	// Parallel bounds the deliveries to the shop under way at once, per
	// route and instance. Default: 16.
	Parallel int `json:"parallel,omitempty"`
}

// Defaults and bounds of the inbox.
const (
	DefaultInboxRetryFor  = 7 * 24 * time.Hour
	DefaultInboxMaxEvents = 100000
	// inboxLease is how long a delivery holds its event without news of
	// its holder; the holder renews it at half while it delivers. A holder
	// that dies (kill -9) leaves the event to others once it runs out: the
	// event is then delivered again, under the same id.
	inboxLease = 30 * time.Second
	// inboxAttemptTimeout bounds one delivery attempt.
	inboxAttemptTimeout = 2 * time.Minute
	// inboxStoreWait bounds how long a callback waits for the store to
	// take its event.
	inboxStoreWait = 5 * time.Second
	// inboxParallel is the default bound of the deliveries one route
	// runs at once; MaxInboxParallel bounds the parallel option.
	inboxParallel    = 16
	MaxInboxParallel = 256
	// Backoff: an event's own retries double from inboxBackoffBase up to
	// inboxQueueBackoffCap; while the shop fails, a single probe is sent,
	// its interval doubling up to inboxProbeCap. When a probe gets through,
	// every waiting event is due at once, not at its own next time. An
	// event the shop refuses again after it has taken others since is the
	// shop's answer to that event, not the shop failing: it keeps to its
	// own backoff, and neither holds the others to probes nor is tried
	// again with every delivery of theirs.
	inboxBackoffBase     = time.Second
	inboxQueueBackoffCap = 5 * time.Minute
	inboxProbeCap        = 30 * time.Second
	// inboxKeep is how long delivered and failed events stay for inspection.
	inboxKeep = 8 * 24 * time.Hour
)

var (
	// errInboxFull means the inbox holds max_events: 503, the provider keeps
	// the event.
	errInboxFull = errors.New("inbox full")
	// errInboxUnavailable means the store did not take the event: 503.
	errInboxUnavailable = errors.New("inbox unavailable")
)

// inboxRecord is what the store keeps of an event to deliver it: the
// request as the provider sent it (less a url_token) and the envelope.
// The store keeps its state and attempts beside it. Earlier versions kept
// the whole record, state and attempts included, in Caddy's storage: the
// import reads those fields (inbox_import.go).
type inboxRecord struct {
	ID         string    `json:"id"`
	Provider   string    `json:"provider"`
	Type       string    `json:"type"`
	Queue      string    `json:"queue"`
	ReceivedAt time.Time `json:"received_at"`
	// MerchantReference is the shop's reference of the event (its order),
	// for the listing: the store keeps it beside the event.
	MerchantReference string `json:"merchant_reference,omitempty"`
	// RemoteAddr is the address the callback came from: a delivery comes
	// from it too, so that the route's matchers and {client_ip} see the
	// provider, as for the callback itself.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// TLS is the callback's connection, when it came over HTTPS: a
	// delivery is made as one ({scheme}, X-Forwarded-Proto, matchers).
	TLS      *inboxTLS       `json:"tls,omitempty"`
	Method   string          `json:"method"`
	Host     string          `json:"host"`
	URI      string          `json:"uri"`
	Header   http.Header     `json:"header,omitempty"`
	Envelope json.RawMessage `json:"envelope"`

	// Only in records of earlier versions.
	State    string         `json:"state,omitempty"`
	Attempts []inboxAttempt `json:"attempts,omitempty"`
	DoneAt   time.Time      `json:"done_at,omitzero"`
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

// inboxAttempt is a delivery attempt in an earlier version's record.
type inboxAttempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// The states of an event, as the admin API names them.
var (
	statePending   = store.Pending.String()
	stateDelivered = store.Delivered.String()
	stateFailed    = store.Failed.String()
)

// inbox is a route's inbox: how its events are stored and delivered. Every
// payhook route has one, so that a route whose inbox was turned off still
// delivers the events it stored before; only a route with the inbox on
// stores new ones. The events live in payhook's store under the route's
// place (route.go); the payhook app's deliverer (delivery.go) leases them
// and delivers each through the route's own handlers.
type inbox struct {
	handler   *Handler
	enabled   bool // the route stores its events (the inbox option)
	retryFor  time.Duration
	maxEvents int
	parallel  int
	server    *caddyhttp.Server
	logger    *zap.Logger
	now       func() time.Time

	// pending counts the route's waiting events: read from the store now
	// and then, kept between by enqueues and deliveries.
	pending atomic.Int64

	mu       sync.Mutex
	running  int       // deliveries under way
	failures int       // consecutive failed attempts: the shop is down
	probeAt  time.Time // while failures > 0, when the next probe may go
	// delivered is when the shop last took an event.
	delivered time.Time
}

func newInbox(h *Handler, cfg *Inbox, server *caddyhttp.Server) *inbox {
	ib := &inbox{handler: h, server: server, logger: h.logger.Named("inbox"), now: time.Now,
		retryFor: DefaultInboxRetryFor, maxEvents: DefaultInboxMaxEvents, parallel: inboxParallel}
	if cfg != nil {
		ib.enabled = true
		if cfg.RetryFor > 0 {
			ib.retryFor = time.Duration(cfg.RetryFor)
		}
		if cfg.Parallel > 0 {
			ib.parallel = cfg.Parallel
		}
		if cfg.MaxEvents > 0 {
			ib.maxEvents = cfg.MaxEvents
		}
	}
	return ib
}

// key names the inbox in the store: its route's place (route.go).
func (ib *inbox) key() string { return ib.handler.scope().inbox }

// place is the route's place as the journal names it.
func (ib *inbox) place() string { return ib.handler.scope().place }

// label is the route's label in the metrics.
func (ib *inbox) label() string { return ib.handler.scope().label }

// queueOf is the queue of an event within its route: its payment (the
// payment's reference, else the provider's reference of the transaction),
// or the event alone when it names none.
func queueOf(ev *normalize.Event) string {
	key := ev.Provider + "\x00" + cmp.Or(ev.PaymentReference, ev.ProviderReference)
	if ev.PaymentReference == "" && ev.ProviderReference == "" {
		key = "event\x00" + ev.ID()
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:10])
}

// enqueue stores an event, with its dedupe claim when claim is set, in one
// transaction, before the provider is acknowledged. duplicate is true when
// the claim says the event was taken before: nothing is stored.
func (ib *inbox) enqueue(ctx context.Context, rec *inboxRecord, claim string, keep time.Duration) (duplicate bool, err error) {
	if n := ib.pending.Load(); n >= int64(ib.maxEvents) {
		return false, fmt.Errorf("%w: %d events wait for the shop (max_events)", errInboxFull, ib.maxEvents)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	ev := &store.InboxEvent{Route: ib.key(), Queue: rec.Queue, EventID: rec.ID, Provider: rec.Provider, Type: rec.Type,
		ReceivedAt: rec.ReceivedAt, MerchantReference: rec.MerchantReference, Record: raw}
	// A provider waits for its answer: past inboxStoreWait, a store that
	// does not take the event is answered 503, and the provider retries.
	ctx, cancel := context.WithTimeout(ctx, inboxStoreWait)
	defer cancel()
	result, err := ib.handler.state.Enqueue(ctx, ev, claim, keep)
	switch {
	case err != nil:
		return false, fmt.Errorf("%w: %v", errInboxUnavailable, err)
	case result == store.EnqueueDuplicate:
		return true, nil
	case result == store.EnqueueBusy:
		return false, fmt.Errorf("%w: another copy is being delivered", errClaimUnavailable)
	}
	ib.pending.Add(1)
	return false, nil
}

// capacity tells how many deliveries the route may start now; when none,
// the time it may start one (zero when a delivery's end decides).
func (ib *inbox) capacity(now time.Time) (int, time.Time) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.failures > 0 {
		switch {
		case ib.running > 0:
			return 0, time.Time{}
		case now.Before(ib.probeAt):
			return 0, ib.probeAt
		}
		return 1, time.Time{} // the probe
	}
	return max(ib.parallel-ib.running, 0), time.Time{}
}

func (ib *inbox) started() {
	ib.mu.Lock()
	ib.running++
	ib.mu.Unlock()
}

func (ib *inbox) ended() {
	ib.mu.Lock()
	ib.running--
	ib.mu.Unlock()
}

// failed notes a failed attempt of ev and says whether the refusal is the
// event's own: the shop has taken another event since ev's previous
// failure, and nothing says it is failing now. Otherwise the shop is
// (still) failing, and the next probe waits longer; failures of
// deliveries that ran together count once.
func (ib *inbox) failed(ev *store.InboxEvent, now time.Time) (own bool) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	own = ev.Refused || (ib.failures == 0 && !ev.LastAt.IsZero() && ib.delivered.After(ev.LastAt))
	if own {
		return true
	}
	if ib.failures > 0 && now.Before(ib.probeAt) {
		return false // another failure of the same round (deliveries run in parallel)
	}
	ib.failures++
	ib.probeAt = now.Add(backoff(ib.failures, inboxProbeCap))
	return false
}

// recovered notes a delivery, and tells whether the shop was failing
// until now: every waiting event is then due at once.
func (ib *inbox) recovered(now time.Time) (wasFailing bool) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if now.After(ib.delivered) {
		ib.delivered = now
	}
	wasFailing = ib.failures > 0
	ib.failures, ib.probeAt = 0, time.Time{}
	return wasFailing
}

// nextProbe is, while the shop fails, when the route's next probe may go;
// zero when the shop does not fail.
func (ib *inbox) nextProbe() time.Time {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.failures == 0 {
		return time.Time{}
	}
	return ib.probeAt
}

// resetFailures makes the shop count as up: a replay asks for an attempt now.
func (ib *inbox) resetFailures() {
	ib.mu.Lock()
	ib.failures, ib.probeAt = 0, time.Time{}
	ib.mu.Unlock()
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
func (ib *inbox) send(ctx context.Context, rec *inboxRecord) (up upstreamResult) {
	u, err := url.ParseRequestURI(rec.URI)
	if err != nil {
		return upstreamResult{err: fmt.Errorf("stored request URI: %w", err)}
	}
	d := &inboxDelivery{inbox: ib, record: rec}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, inboxDeliveryKey{}, d), inboxAttemptTimeout)
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
		return upstreamResult{status: rw.status, err: errors.New("the request no longer leads to this route's payhook handler")}
	}
	return d.result
}

func attemptOutcome(up upstreamResult) string {
	if up.delivered() {
		return "delivered"
	}
	return "failed"
}
