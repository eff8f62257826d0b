package caddymodule

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/payhook/payhook/normalize"
)

// Outcomes of a callback, as logged and counted.
const (
	outcomeForwarded      = "forwarded"
	outcomeDuplicate      = "duplicate"
	outcomeRejected       = "rejected"
	outcomeUpstreamFailed = "upstream_failed"
)

// record collects what happened to one callback for its log line and metrics.
type record struct {
	provider       string
	start          time.Time
	clientIP       string
	outcome        string
	reason         string // stable reason code or short explanation
	detail         string // the error's message: sentinel words plus safe facts
	event          *normalize.Event
	eventID        string
	answered       int // HTTP status sent to the provider
	upstreamStatus int
}

// finish writes the callback's one log line and updates the metrics. The
// line never holds a secret or payload content: only the provider, the
// outcome, the reason, the event's id and canonical status, the client
// address and timings.
func (h *Handler) finish(rec *record) {
	duration := time.Since(rec.start)
	if rec.outcome == outcomeForwarded {
		h.forwarded.callbacks.Inc()
		h.forwarded.duration.Observe(duration.Seconds())
	} else {
		h.metrics.observe(rec.provider, rec.outcome, rec.reason, duration)
	}

	fields := []zap.Field{
		zap.String("provider", rec.provider),
		zap.String("outcome", rec.outcome),
		zap.String("client_ip", rec.clientIP),
		zap.Int("answer", rec.answered),
		zap.Duration("duration", duration),
	}
	if rec.reason != "" {
		fields = append(fields, zap.String("reason", rec.reason))
	}
	if rec.detail != "" {
		fields = append(fields, zap.String("detail", rec.detail))
	}
	if rec.eventID != "" {
		fields = append(fields, zap.String("event_id", rec.eventID))
	}
	if rec.event != nil {
		fields = append(fields, zap.String("status", string(rec.event.Status)), zap.String("provider_status", rec.event.ProviderStatus))
	}
	if rec.upstreamStatus != 0 {
		fields = append(fields, zap.Int("upstream_status", rec.upstreamStatus))
	}

	level, msg := zapcore.InfoLevel, "callback forwarded"
	switch {
	case rec.outcome == outcomeDuplicate:
		msg = "callback was a duplicate; acknowledged, not forwarded"
	case rec.outcome == outcomeRejected && rec.answered >= 500:
		level, msg = zapcore.ErrorLevel, "callback failed"
	case rec.outcome == outcomeRejected:
		level, msg = zapcore.WarnLevel, "callback rejected"
	case rec.outcome == outcomeUpstreamFailed:
		level, msg = zapcore.ErrorLevel, "callback not delivered"
	case rec.event != nil && rec.event.Unmapped:
		level, msg = zapcore.WarnLevel, "callback forwarded with unknown status"
	}
	if ce := h.logger.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}
