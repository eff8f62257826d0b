// Package caddymodule is payhook's Caddy glue: the http.handlers.payhook
// module, one guest module per payment provider (http.payhook.providers.*),
// the Caddyfile directive, metrics, and the `caddy payhook` commands.
// Authenticity lives in package verify and the envelope in package
// normalize; this package wires them into Caddy's request pipeline.
package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxBody is the largest body accepted by default.
const DefaultMaxBody = 1 << 20 // 1 MiB

// Handler receives payment-provider callbacks: it verifies each one with
// its provider module, turns it into the canonical envelope, hands the
// envelope to the next handler (normally reverse_proxy to the shop) and
// answers the provider the way the provider expects, with its success
// acknowledgement only when the next handler answered 2xx.
//
// The provider's own options (its secrets, its API) live in its module;
// the handler keeps the options that apply to every provider.
type Handler struct {
	// Provider is the payment provider's module, from the namespace
	// http.payhook.providers: {"name": "ixopay", "secrets": […]}. Its
	// "name" picks the module; the other fields are the module's own.
	ProviderRaw json.RawMessage `json:"provider,omitempty" caddy:"namespace=http.payhook.providers inline_key=name"`

	// MaxBody is the largest body accepted, in bytes; a larger one is
	// answered 413 without being read further. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// URLTokens are secrets the provider must send as the callback URL's
	// "token" query parameter (…/callbacks/pyxis?token=…). Required for
	// providers that sign nothing (pyxis); any provider can add it. Several
	// are accepted, for a rotation. The parameter is removed before the
	// request is forwarded. Use placeholders.
	URLTokens []string `json:"url_tokens,omitempty"`

	// AllowIPs restricts callbacks to these client addresses or CIDRs, as
	// Caddy determines the client address (honouring the server's
	// trusted_proxies). Checked before anything else; others get 403.
	// Default: the addresses the provider publishes, for providers that do
	// (PAYONE), else any.
	AllowIPs []string `json:"allow_ips,omitempty"`

	// Dedupe is how long a delivered event is remembered, so that a later
	// copy of it (a provider retry, a replay) is acknowledged without being
	// forwarded again: a duration ("8d", "36h") or "off". Default: 8d, or
	// a day more than the provider retries for when that is longer (31d
	// for Adyen). The record lives in payhook's store (the payhook app).
	Dedupe string `json:"dedupe,omitempty"`

	// DedupeScope names the set of delivery records this route shares.
	// Default: the route's own, derived from its place in the
	// configuration (the addresses its server listens on and the matchers
	// that lead to it: site, port, path, …), its provider and the
	// provider's account (a Payrexx instance, an API environment), so that
	// two routes never suppress each other's events. Routes that set the
	// same scope share their records on purpose. An inbox is always the
	// route's own, whatever this says.
	DedupeScope string `json:"dedupe_scope,omitempty"`

	// ForwardHeaders names request headers of the provider's that reach the
	// shop too. By default only the envelope's own headers do (and what
	// reverse_proxy adds): the provider's signature, credentials, cookies
	// and anything else a sender put on the request stay behind.
	ForwardHeaders []string `json:"forward_headers,omitempty"`

	// SignUpstream are Standard Webhooks secrets (whsec_…) to sign every
	// forwarded envelope with: webhook-id (the event id),
	// webhook-timestamp and webhook-signature (v1, one per secret, for a
	// rotation), so that the shop can check with any Standard Webhooks
	// library that the envelope is payhook's. Use placeholders.
	SignUpstream []string `json:"sign_upstream,omitempty"`

	// RouteName names the route in the metrics (their route label).
	// Default: the hosts and paths its matchers name, such as
	// "shop.example/callbacks/ixopay*", else its server's ports (":8880").
	// Give routes that the default would not tell apart (the same host and
	// path on two servers) a name each.
	RouteName string `json:"route_name,omitempty"`

	// Inbox, when set, stores every verified event durably (in payhook's
	// store, with its dedupe record, in one transaction) before the
	// provider is acknowledged, and delivers it to the handlers after
	// payhook itself, in order per payment, retrying until the shop takes
	// it. Off by default.
	Inbox *Inbox `json:"inbox,omitempty"`

	provider      Provider
	answerMark    answerMark // AnswerHeader's value on every answer
	name          string
	nameVar       any // name, boxed once for caddyhttp.SetVar
	contentTypes  []string
	urlToken      *verify.URLToken
	tokenIsMethod bool // the URL token is the provider's verification (pyxis)
	allowList     *verify.AllowList
	forwardNames  map[string]bool // canonical names from ForwardHeaders
	upstreamKeys  [][]byte        // decoded SignUpstream secrets
	dedupe        *deduper
	inbox         *inbox
	state         *store.Store                // payhook's store: the app's, unless a test sets it
	app           *App                        // the payhook app, which owns the store and the journal
	server        *caddyhttp.Server           // the server whose routes hold this handler, if any
	routePlace    *atomic.Pointer[routeScope] // derived once the routes are provisioned: scope()
	logger        *zap.Logger
	rejectLog     *logLimiter
	metrics       *metrics
	series        *sync.Once               // looks up forwarded and rejected once the route's label is known
	forwarded     outcomeSeries            // the forwarded outcome's metrics, looked up once
	rejected      map[string]outcomeSeries // by reason
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.payhook",
		New: func() caddy.Module { return new(Handler) },
	}
}

// genericOptions are the handler's options, which apply to every provider,
// by their Caddyfile names.
var genericOptions = []string{"max_body", "url_token", "allow_ips", "dedupe", "dedupe_scope", "route_name", "forward_headers", "sign_upstream", "inbox"}

// Provision loads the provider's module and prepares the generic checks.
// Its errors name the provider and the route, and every unset placeholder
// of the configuration (provisionError).
func (h *Handler) Provision(ctx caddy.Context) (err error) {
	defer func() { err = provisionError(ctx, h, err) }()
	h.logger = ctx.Logger()
	if err := h.Validate(); err != nil {
		return err
	}
	var named struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(h.ProviderRaw, &named); err == nil && named.Name != "" {
		if _, err := NewProvider(named.Name); err != nil {
			return err
		}
	}
	mod, err := ctx.LoadModule(h, "ProviderRaw")
	if err != nil {
		return fmt.Errorf("loading the provider: %w", err)
	}
	p, ok := mod.(Provider)
	if !ok {
		return fmt.Errorf("module %T is not a payhook provider", mod)
	}
	h.provider, h.name, h.contentTypes = p, p.Name(), p.ContentTypes()
	h.answerMark = newAnswerMark(p)
	h.nameVar = h.name
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	_, h.tokenIsMethod = p.(URLTokenVerified)
	if h.tokenIsMethod && len(h.URLTokens) == 0 {
		return fmt.Errorf("%s: url_token is required (url_token {env.PYXIS_CALLBACK_TOKEN}); %s signs nothing", h.name, h.name)
	}
	if len(h.URLTokens) > 0 {
		tokens, err := Secrets(h.logger, "url_token", h.URLTokens)
		if err != nil {
			return err
		}
		h.urlToken = &verify.URLToken{Tokens: tokens}
	}
	allowIPs := h.AllowIPs
	if ranger, ok := p.(SourceRanger); ok && len(allowIPs) == 0 {
		allowIPs = ranger.SourceRanges()
	}
	if len(allowIPs) > 0 {
		if h.allowList, err = verify.ParseAllowList(allowIPs); err != nil {
			return err
		}
	}
	h.forwardNames = make(map[string]bool, len(h.ForwardHeaders))
	for _, name := range h.ForwardHeaders {
		h.forwardNames[http.CanonicalHeaderKey(name)] = true
	}
	if h.upstreamKeys, err = DecodedSecrets(h.logger, "sign_upstream", h.SignUpstream, verify.DecodeStandardWebhooksSecret); err != nil {
		return err
	}
	h.rejectLog = newLogLimiter(rejectLogRate)
	if h.metrics, err = registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.server, _ = ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	h.routePlace = new(atomic.Pointer[routeScope])
	h.series = new(sync.Once)
	window, _ := dedupeWindow(h.Dedupe) // checked by Validate
	if r, ok := p.(Retrier); ok && h.Dedupe == "" {
		window = max(window, r.RetryPeriod()+24*time.Hour)
	}
	if weak, ok := p.(WeaklySigned); ok && window < weak.TransmissionWindow() {
		return weakDedupeError(h.name, h.Dedupe, weak.TransmissionWindow())
	}
	if h.state == nil {
		app, err := ctx.App("payhook")
		if err != nil {
			return fmt.Errorf("loading the payhook app: %w", err)
		}
		h.app = app.(*App)
		h.state = h.app.state
	}
	if window > 0 {
		h.dedupe = newDeduper(h.state, window, h.logger)
		if h.app != nil {
			h.app.dedupers = append(h.app.dedupers, h.dedupe)
		}
	}
	if h.Inbox != nil && h.server == nil {
		return errors.New("inbox: payhook must run in an HTTP server's route")
	}
	if h.server != nil {
		// Every route delivers the events it stored, even once its inbox
		// is turned off; only one with the inbox on stores new ones.
		h.inbox = newInbox(h, h.Inbox, h.server)
		if h.app != nil {
			h.app.deliverer.add(h.inbox)
		}
	}
	return nil
}

// Validate checks what needs no provisioning.
func (h *Handler) Validate() error {
	// Provisioning clears ProviderRaw once the module is loaded.
	if len(h.ProviderRaw) == 0 && h.provider == nil {
		return fmt.Errorf("payhook needs a provider (one of: %s)", joinNames(ProviderNames()))
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body must be positive, got %d", h.MaxBody)
	}
	if h.Inbox != nil && (h.Inbox.RetryFor < 0 || h.Inbox.MaxEvents < 0) {
		return errors.New("inbox: retry_for and max_events must be positive")
	}
	if h.Inbox != nil && (h.Inbox.Parallel < 0 || h.Inbox.Parallel > MaxInboxParallel) {
		return fmt.Errorf("inbox: parallel must be 1 to %d, got %d", MaxInboxParallel, h.Inbox.Parallel)
	}
	if _, err := dedupeWindow(h.Dedupe); err != nil {
		return err
	}
	for _, name := range h.ForwardHeaders {
		if err := checkForwardHeader(name); err != nil {
			return err
		}
	}
	return nil
}

// weakDedupeError refuses a dedupe window shorter than the time a weakly
// signed provider's transmission is accepted: past the window, a crafted
// body could be delivered under a genuine transmission still accepted.
func weakDedupeError(provider, dedupe string, transmissionWindow time.Duration) error {
	if dedupe == "off" {
		return fmt.Errorf("%s: dedupe off is refused: payhook binds each transmission to its first body in the dedupe records, and %s's signature binds the body too weakly to go without (set dedupe to at least max_skew, %s)",
			provider, provider, transmissionWindow)
	}
	return fmt.Errorf("%s: dedupe %s is shorter than max_skew %s: payhook remembers which body a transmission carried for the dedupe window, and a transmission is accepted for max_skew; set dedupe to at least max_skew",
		provider, dedupe, transmissionWindow)
}

// dedupeWindow reads the dedupe option: 0 means off.
func dedupeWindow(value string) (time.Duration, error) {
	switch value {
	case "":
		return DefaultDedupeWindow, nil
	case "off":
		return 0, nil
	}
	window, err := caddy.ParseDuration(value)
	if err != nil || window <= 0 {
		return 0, fmt.Errorf("dedupe: want a duration such as 8d, or off; got %q", value)
	}
	return window, nil
}

// Cleanup releases the delivery claims still held.
func (h *Handler) Cleanup() error {
	if h.dedupe != nil {
		h.dedupe.close()
	}
	return nil
}

// ServeHTTP runs the pipeline: allow → read (bounded) → verify → normalize
// → encode → forward → answer. Each step is one method; a failing step ends
// the request with the provider's answer for that failure.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if d, ok := r.Context().Value(inboxDeliveryKey{}).(*inboxDelivery); ok {
		// A delivery from the inbox, made by this process (nothing from the
		// network can put it there): the event was verified when received.
		h.redeliver(w, r, next, d)
		return nil
	}
	h.answerMark.set(w.Header())
	rec := &record{provider: h.name, start: time.Now(), clientIP: clientIP(r)}
	// Deferred first, so it runs last: the body goes back to its pool only
	// after the log line, whose strings may share its memory.
	var pooledBody *[]byte
	defer func() { releaseBody(pooledBody) }()
	defer h.finish(r, rec)
	caddyhttp.SetVar(r.Context(), "payhook.provider", h.nameVar)

	if err := h.allow(rec.clientIP); err != nil {
		h.reject(w, rec, err)
		return nil
	}
	if challenger, ok := h.provider.(Challenger); ok && r.Method != http.MethodPost {
		h.challenge(w, r, rec, challenger)
		return nil
	}
	cb, in, pooledBody, err := h.read(w, r, rec)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	result, err := h.verify(r, cb, in)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	rec.verifiedBy = result.Method
	events, err := h.provider.Normalize(in, result, rec.eventBuf[:0])
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	rec.events = events
	h.deliver(w, r, next, rec, events, result)
	return nil
}

// allow checks the client address against allow_ips, before anything of
// the request is read.
func (h *Handler) allow(clientIP string) error {
	if h.allowList == nil {
		return nil
	}
	return h.allowList.Allow(clientIP)
}

// challenge answers a provider's check of the callback URL (Challenger),
// once the URL token, when configured, is right; a request that makes no
// check is refused as another method. Nothing is forwarded.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, rec *record, challenger Challenger) {
	method, uri, u := sentRequest(r)
	if h.urlToken != nil {
		if err := h.urlToken.Check(&verify.Callback{Method: method, RequestURI: uri}); err != nil {
			h.reject(w, rec, err)
			return
		}
	}
	answer, err := challenger.Challenge(method, u)
	if errors.Is(err, errNoChallenge) {
		err = fmt.Errorf("%w: %q", errMethod, truncate(method, 16))
	}
	if err != nil {
		h.reject(w, rec, err)
		return
	}
	rec.outcome = outcomeChallenge
	rec.answered = ackText(answer)(w)
}

// verify checks the URL token (when configured: cheap, before anything is
// parsed), binds a weakly signed transmission to its body, then has the
// provider establish the callback's authenticity.
func (h *Handler) verify(r *http.Request, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	if h.urlToken != nil {
		if err := h.urlToken.Check(cb); err != nil {
			return verify.Result{}, err
		}
	}
	if weak, ok := h.provider.(WeaklySigned); ok {
		transmission, err := weak.Transmission(cb)
		if err != nil {
			return verify.Result{}, err
		}
		if transmission != "" {
			if err := h.bindTransmission(r, transmission, cb.Body); err != nil {
				return verify.Result{}, err
			}
		}
	}
	result, err := h.provider.Verify(r.Context(), cb, in)
	if err != nil {
		return verify.Result{}, err
	}
	if h.urlToken != nil && !h.tokenIsMethod {
		result.Also = append(result.Also, h.urlToken.Name())
	}
	if h.allowList != nil {
		result.Also = append(result.Also, h.allowList.Name())
	}
	return result, nil
}

// errTransmissionReused means a transmission that came with another body
// before came again with this one: a body made to match a weak signature,
// refused like a wrong signature.
var errTransmissionReused = errors.New("transmission already received with another body")

// bindTransmission records which body a transmission carried, for schemes
// whose signature binds the body only weakly (WeaklySigned): the first
// body received under a transmission is the only one it may carry,
// whatever became of its verification (PayPal's API down, its rate limit
// spent) or of its delivery. The same body again (a retry of the
// transmission) passes; another is errTransmissionReused. Both records
// live in the route's dedupe records, for the dedupe window, which
// Provision makes at least the transmission window.
func (h *Handler) bindTransmission(r *http.Request, transmission string, body []byte) error {
	if h.dedupe == nil {
		return nil // only a test provisions such a route without dedupe
	}
	digest := sha256.Sum256(body)
	bound, err := h.dedupe.bind(r.Context(), h.dedupeKey("transmission\x00"+transmission), digest[:])
	if err != nil {
		return err
	}
	if !bound {
		return errTransmissionReused
	}
	return nil
}

// deliver forwards the callback's events to the shop in order, each once,
// and answers the provider: its acknowledgement only when every event was
// delivered (now or before: a provider's retry skips what the shop has). At
// the first event the shop does not take, it stops, so that the shop never
// receives a later event before an earlier one.
func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rec *record, events []*normalize.Event, result verify.Result) {
	h.prepareForward(r)
	if h.Inbox != nil && h.inbox != nil {
		h.enqueue(w, r, rec, events, result)
		return
	}
	delivered := 0
	for _, event := range events {
		id := noteEvent(r, rec, event)
		release, duplicate, ok := h.claimEvent(w, r, rec, id)
		switch {
		case !ok:
			return
		case duplicate:
			// A provider's retry or a replay is acknowledged without an
			// envelope: it is encoded only for an event that is forwarded.
			continue
		}
		up := h.forwardClaimed(r, next, id, normalize.Encode(event, result, rec.start), release)
		if !up.delivered() {
			h.answerFailed(w, rec, up)
			return
		}
		rec.noteDelivered(up)
		delivered++
	}
	rec.outcome = outcomeForwarded
	if delivered == 0 {
		rec.outcome = outcomeDuplicate
	}
	if !h.confirm(w, r, rec, result) {
		return
	}
	rec.answered = h.provider.Acknowledge(w)
}

// reasonUnconfirmed is the reason of a callback whose events the shop took
// but whose provider did not take payhook's confirmation (Confirmer).
const reasonUnconfirmed = "confirmation_failed"

// answerUnconfirmed is the answer to a callback whose confirmation failed.
var answerUnconfirmed = newPlainAnswer("event delivered; the confirmation to the provider's API failed; retry later")

// confirm makes a Confirmer provider's confirmation call, once the
// callback's events are the shop's (delivered, or stored in the inbox).
// When it fails, the callback is answered 503 so that the provider sends
// it again; its events, already delivered or stored, are then duplicates.
func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, rec *record, result verify.Result) bool {
	confirmer, ok := h.provider.(Confirmer)
	if !ok {
		return true
	}
	if err := confirmer.Confirm(r.Context(), result); err != nil {
		rec.reason, rec.detail = reasonUnconfirmed, err.Error()
		rec.answered = http.StatusServiceUnavailable
		answerUnconfirmed.write(w, http.StatusServiceUnavailable)
		return false
	}
	return true
}

// noteEvent makes event the one the callback's log line and placeholders
// name, and returns its id.
func noteEvent(r *http.Request, rec *record, event *normalize.Event) string {
	id := event.ID()
	rec.eventID = id
	caddyhttp.SetVar(r.Context(), "payhook.event_id", id)
	caddyhttp.SetVar(r.Context(), "payhook.status", statusVar(event.Status))
	return id
}

// enqueue stores the callback's events in the inbox, in order, each once,
// and acknowledges the provider once all of them are stored: the inbox
// delivers them to the shop, whether or not it is up now. Each event and
// its dedupe claim are stored in one transaction: once it is stored, every
// copy is a duplicate.
func (h *Handler) enqueue(w http.ResponseWriter, r *http.Request, rec *record, events []*normalize.Event, result verify.Result) {
	queued := 0
	for _, event := range events {
		id := noteEvent(r, rec, event)
		claim, keep := "", time.Duration(0)
		if h.dedupe != nil {
			claim, keep = h.dedupeKey(id), h.dedupe.window
			if h.dedupe.cache.contains(claim, h.dedupe.now()) {
				continue
			}
		}
		duplicate, err := h.inbox.enqueue(r.Context(), &inboxRecord{
			ID: id, Provider: h.name, Type: event.Type(), Queue: queueOf(event), ReceivedAt: rec.start, MerchantReference: event.MerchantReference,
			RemoteAddr: r.RemoteAddr, TLS: tlsOf(r.TLS), Method: r.Method, Host: r.Host, URI: sentURI(r), Header: r.Header.Clone(),
			Envelope: normalize.Encode(event, result, rec.start),
		}, claim, keep)
		if err != nil {
			h.reject(w, rec, err)
			return
		}
		if h.dedupe != nil {
			h.dedupe.cache.add(claim, h.dedupe.now().Add(keep))
		}
		if !duplicate {
			queued++
		}
	}
	rec.outcome = outcomeQueued
	if queued == 0 {
		rec.outcome = outcomeDuplicate
	}
	if !h.confirm(w, r, rec, result) {
		return
	}
	rec.answered = h.provider.Acknowledge(w)
}

// redeliver forwards an event from the inbox to the handlers after
// payhook, and answers the inbox what they did.
func (h *Handler) redeliver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, d *inboxDelivery) {
	if h.inbox == nil || h.inbox != d.inbox {
		writePlain(w, http.StatusMisdirectedRequest, "not this inbox's route")
		return
	}
	d.taken = true
	caddyhttp.SetVar(r.Context(), "payhook.provider", h.nameVar)
	caddyhttp.SetVar(r.Context(), "payhook.event_id", d.record.ID)
	d.result = h.forward(r, next, d.record.ID, d.record.Envelope)
	if d.result.delivered() {
		writePlain(w, http.StatusOK, "delivered")
		return
	}
	writePlain(w, http.StatusBadGateway, d.result.reason())
}

// claimEvent takes the dedupe claim on the event id, when dedupe is on.
// It reports an event seen before as a duplicate; when the claim cannot be
// taken it answers the provider and returns ok false. The release it
// returns is never nil (without dedupe there is nothing to release).
func (h *Handler) claimEvent(w http.ResponseWriter, r *http.Request, rec *record, id string) (release func(done bool), duplicate, ok bool) {
	if h.dedupe == nil {
		return func(bool) {}, false, true
	}
	duplicate, release, err := h.dedupe.claim(r.Context(), h.dedupeKey(id))
	if err != nil {
		h.reject(w, rec, err)
		return nil, false, false
	}
	return release, duplicate, true
}

// forwardClaimed forwards an event this request has claimed and releases
// the claim on every path, a panic of the next handler included (which
// then goes on), saying whether the shop took the event.
func (h *Handler) forwardClaimed(r *http.Request, next caddyhttp.Handler, id string, envelope []byte, release func(delivered bool)) (up upstreamResult) {
	delivered := false
	defer func() { release(delivered) }()
	up = h.forward(r, next, id, envelope)
	delivered = up.delivered()
	return up
}

// forward hands one envelope to the next handler in place of the
// provider's body and reports what it answered.
//
// reverse_proxy panics with http.ErrAbortHandler when the shop's answer
// breaks after its status line (the connection closes mid-body). The
// answer it aborts is the one to payhook's recorder, not to the provider,
// so payhook takes the panic as the shop's answer: the status line is the
// shop's decision, and payhook discards the body anyway. Any other panic
// goes on up to Caddy.
func (h *Handler) forward(r *http.Request, next caddyhttp.Handler, id string, envelope []byte) (up upstreamResult) {
	setEnvelope(r, id, envelope)
	if len(h.upstreamKeys) > 0 {
		signEnvelope(r, h.upstreamKeys, id, envelope, time.Now())
	}
	rw := new(upstreamRecorder)
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			up = upstreamResult{status: rw.status, aborted: true}
		}
		if _, fromInbox := r.Context().Value(inboxDeliveryKey{}).(*inboxDelivery); !fromInbox {
			// The inbox records its attempts with their outcome.
			h.journalAttempt(id, start, up)
		}
	}()
	err := next.ServeHTTP(rw, r)
	return upstreamResult{status: rw.status, err: err}
}

// answerFailed tells the provider that the shop did not take an event: a
// 502, so that the provider retries, never its acknowledgement.
func (h *Handler) answerFailed(w http.ResponseWriter, rec *record, up upstreamResult) {
	rec.upstreamStatus = up.status
	rec.outcome, rec.reason = outcomeUpstreamFailed, up.reason()
	rec.answered = http.StatusBadGateway
	writePlain(w, http.StatusBadGateway, "upstream did not take the event; retry later")
}

// reject answers a callback that failed a step with the status its error
// maps to; one that concerns no payment is acknowledged instead.
func (h *Handler) reject(w http.ResponseWriter, rec *record, err error) {
	if errors.Is(err, normalize.ErrNotAPayment) {
		// Not refused: a refusal would only make the provider send it
		// again. Nothing is forwarded; the answer is the provider's
		// acknowledgement, as for any callback taken.
		rec.outcome, rec.reason, rec.detail = outcomeIgnored, "not_a_payment", err.Error()
		rec.answered = h.provider.Acknowledge(w)
		return
	}
	rej := classify(err)
	rec.outcome, rec.reason, rec.detail = outcomeRejected, rej.code, err.Error()
	if rej.hint != "" {
		rec.detail += "; " + rej.hint
	}
	rec.answered = rej.status
	if rej.status == http.StatusMethodNotAllowed {
		allow := http.MethodPost
		if _, ok := h.provider.(QueryNotified); ok {
			allow = "GET, POST"
		}
		w.Header().Set("Allow", allow)
	}
	rej.answer().write(w, rej.status)
}

// upstreamResult is what the next handler did with an envelope.
type upstreamResult struct {
	status  int // 0 when nothing was written
	err     error
	aborted bool // the shop's answer broke after its status line
}

func (u upstreamResult) delivered() bool {
	return u.err == nil && u.status >= 200 && u.status < 300
}

// reason explains a failed delivery for the log.
func (u upstreamResult) reason() string {
	switch {
	case u.err != nil:
		var he caddyhttp.HandlerError
		if errors.As(u.err, &he) && he.StatusCode != 0 {
			return fmt.Sprintf("upstream unreachable (%d)", he.StatusCode)
		}
		return "upstream unreachable"
	case u.aborted && u.status == 0:
		return "upstream answer broken"
	case u.aborted:
		return fmt.Sprintf("upstream answered %d, then its answer broke", u.status)
	case u.status == 0:
		return "no handler after payhook answered; add reverse_proxy after payhook"
	default:
		return fmt.Sprintf("upstream answered %d", u.status)
	}
}

// statusVars are the canonical statuses boxed once, so that setting the
// {http.vars.payhook.status} placeholder costs no allocation.
var statusVars = func() map[normalize.Status]any {
	m := make(map[normalize.Status]any)
	for _, s := range normalize.Statuses() {
		m[s] = string(s)
	}
	return m
}()

// outcomeVars are the outcomes boxed once, for the
// {http.vars.payhook.outcome} placeholder: only those of a callback
// answered without forwarding anything in its request. The request's vars
// are a map without a lock, and a dial reverse_proxy started for the
// request may still read them after the shop answered (net/http lets a
// dial finish in the background): a forwarded or failed callback leaves
// the placeholder empty, and its answer's status tells it.
var outcomeVars = func() map[string]any {
	m := make(map[string]any)
	for _, o := range []string{outcomeDuplicate, outcomeQueued, outcomeRejected, outcomeChallenge, outcomeIgnored} {
		m[o] = o
	}
	return m
}()

func statusVar(s normalize.Status) any {
	if v, ok := statusVars[s]; ok {
		return v
	}
	return string(s)
}

func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}

// Header values of payhook's own answers, shared: net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
	noSniff   = []string{"nosniff"}
)

// writePlain writes a short text/plain answer.
func writePlain(w http.ResponseWriter, status int, body string) {
	newPlainAnswer(body).write(w, status)
}

// plainAnswer is a short text/plain answer prepared once: its body, ending
// in a newline, and its Content-Length. It goes out in a single write (each
// write through Caddy resets the connection's write deadline).
type plainAnswer struct {
	body   []byte
	length []string
}

func newPlainAnswer(text string) plainAnswer {
	body := []byte(text + "\n")
	return plainAnswer{body: body, length: []string{strconv.Itoa(len(body))}}
}

func (a plainAnswer) write(w http.ResponseWriter, status int) {
	header := w.Header()
	header["Content-Type"] = textPlain
	header["Content-Length"] = a.length
	header["Cache-Control"] = noStore
	header["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(a.body)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
