package caddymodule

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/time/rate"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// Outcomes of a callback, as logged and counted.
const (
	outcomeForwarded      = "forwarded"
	outcomeDuplicate      = "duplicate"
	outcomeQueued         = "queued"
	outcomeRejected       = "rejected"
	outcomeUpstreamFailed = "upstream_failed"
	// outcomeChallenge: a provider's check of the callback URL, answered
	// (Challenger).
	outcomeChallenge = "challenge_answered"
	// outcomeIgnored: a notification that concerns no payment
	// (normalize.ErrNotAPayment), acknowledged as the provider expects and
	// not forwarded.
	outcomeIgnored = "ignored"
)

// record collects what happened to one callback for its log line and metrics.
type record struct {
	provider       string
	start          time.Time
	clientIP       string
	outcome        string
	reason         string // stable reason code or short explanation
	verifiedBy     string // the verification's method, once verified
	detail         string // the error's message: sentinel words plus safe facts
	events         []*normalize.Event
	eventBuf       [1]*normalize.Event // events' room for the usual one
	eventID        string              // of the last event handled
	answered       int                 // HTTP status sent to the provider
	upstreamStatus int

	// The request as the provider sees it, in the record's allocation.
	callback     verify.Callback
	input        normalize.Input
	placeholders sentPlaceholders
}

// finish writes the callback's one log line and updates the metrics. The
// line never holds a secret or payload content: only the provider, the
// outcome, the reason, the event's id and canonical status, the client
// address and timings. Under a flood, rejection lines are sampled (the
// metrics still count every one), and a line not written costs nothing.
// The outcome of a callback not forwarded in its request is also the
// {http.vars.payhook.outcome} placeholder, for access logs (outcomeVars).
func (h *Handler) finish(r *http.Request, rec *record) {
	duration := time.Since(rec.start)
	if v, ok := outcomeVars[rec.outcome]; ok {
		caddyhttp.SetVar(r.Context(), "payhook.outcome", v)
	}
	h.metrics.observe(h, rec.outcome, rec.reason, duration)
	h.journalize(rec)

	unmapped := false
	for _, ev := range rec.events {
		unmapped = unmapped || ev.Unmapped
	}
	level, msg := zapcore.InfoLevel, "callback forwarded"
	switch {
	case rec.reason == reasonUnconfirmed:
		level, msg = zapcore.ErrorLevel, "the shop has the callback's events, but the provider's API did not take payhook's confirmation; the provider will send the callback again"
	case rec.outcome == outcomeDuplicate:
		msg = "callback was a duplicate; acknowledged, not forwarded"
	case rec.outcome == outcomeChallenge:
		msg = "the provider's check of the callback URL answered"
	case rec.outcome == outcomeIgnored:
		msg = "callback concerns no payment; acknowledged, not forwarded"
	case rec.outcome == outcomeQueued && unmapped:
		level, msg = zapcore.WarnLevel, "callback stored in the inbox with unknown status"
	case rec.outcome == outcomeQueued:
		msg = "callback stored in the inbox"
	case rec.outcome == outcomeRejected && rec.answered >= 500:
		level, msg = zapcore.ErrorLevel, "callback failed"
	case rec.outcome == outcomeRejected:
		level, msg = zapcore.WarnLevel, "callback rejected"
	case rec.outcome == outcomeUpstreamFailed:
		level, msg = zapcore.ErrorLevel, "callback not delivered"
	case unmapped:
		level, msg = zapcore.WarnLevel, "callback forwarded with unknown status"
	}
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	var suppressed int64
	if (rec.outcome == outcomeRejected && rec.answered < 500) || rec.outcome == outcomeIgnored {
		// Neither was verified, so a flood of them is sampled alike.
		var ok bool
		if suppressed, ok = h.rejectLog.allow(); !ok {
			return
		}
	}

	fields := make([]zap.Field, 0, 12)
	fields = append(fields,
		zap.String("provider", rec.provider),
		zap.String("outcome", rec.outcome),
		zap.String("client_ip", rec.clientIP),
		zap.Int("answer", rec.answered),
		zap.Duration("duration", duration),
	)
	if rec.reason != "" {
		fields = append(fields, zap.String("reason", rec.reason))
	}
	if rec.detail != "" {
		fields = append(fields, zap.String("detail", rec.detail))
	}
	if rec.eventID != "" {
		fields = append(fields, zap.String("event_id", rec.eventID))
	}
	switch n := len(rec.events); {
	case n == 1:
		ev := rec.events[0]
		fields = append(fields, zap.String("status", string(ev.Status)), zap.String("provider_status", truncate(ev.ProviderStatus, 64)))
	case n > 1:
		fields = append(fields, zap.Int("events", n))
	}
	if rec.upstreamStatus != 0 {
		fields = append(fields, zap.Int("upstream_status", rec.upstreamStatus))
	}
	if suppressed > 0 {
		fields = append(fields, zap.Int64("suppressed_before", suppressed))
	}
	ce.Write(fields...)
}

// noteDelivered records a delivery's facts for the log line.
func (rec *record) noteDelivered(up upstreamResult) {
	rec.upstreamStatus = up.status
	if up.aborted {
		rec.detail = fmt.Sprintf("the shop answered %d, then its answer broke; payhook counts its status line as the answer", up.status)
	}
}

// rejectLogRate bounds the rejection lines a handler writes per second
// (bursts of twice as many); beyond it lines are dropped and counted, and
// the next line written says how many were.
const rejectLogRate = 10

// logLimiter samples log lines under a flood.
type logLimiter struct {
	limiter    *rate.Limiter
	suppressed atomic.Int64
}

func newLogLimiter(perSecond int) *logLimiter {
	return &logLimiter{limiter: rate.NewLimiter(rate.Limit(perSecond), 2*perSecond)}
}

// allow reports whether a line may be written now and, if so, how many
// were dropped since the last one written.
func (l *logLimiter) allow() (suppressed int64, ok bool) {
	if !l.limiter.Allow() {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}
