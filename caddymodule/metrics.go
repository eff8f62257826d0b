package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are payhook's collectors. They are created once per process and
// registered into each configuration's registry (Caddy makes a new one on
// every config load), where several payhook handlers share them.
type metrics struct {
	callbacks *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

var collectors = &metrics{
	callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook",
		Name:      "callbacks_total",
		Help:      "Payment callbacks received, by provider, outcome (forwarded, rejected, upstream_failed) and reason.",
	}, []string{"provider", "outcome", "reason"}),
	duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "payhook",
		Name:      "callback_duration_seconds",
		Help:      "Time from receiving a callback to answering the provider, upstream included.",
		Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"provider", "outcome"}),
}

// registerMetrics registers payhook's collectors into registry, tolerating
// a registry that already has them.
func registerMetrics(registry *prometheus.Registry) (*metrics, error) {
	return collectors, register(registry, collectors.callbacks, collectors.duration)
}

// register registers collectors into registry (nil: none), tolerating
// those it already has.
func register(registry *prometheus.Registry, collectors ...prometheus.Collector) error {
	if registry == nil {
		return nil
	}
	for _, c := range collectors {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// observe counts one callback of h's provider. The series of the
// forwarded outcome and of every rejection reason are looked up once per
// handler; other outcomes (rare) are looked up each time.
func (m *metrics) observe(h *Handler, outcome, reason string, d time.Duration) {
	var series outcomeSeries
	switch outcome {
	case outcomeForwarded:
		series = h.forwarded
	case outcomeRejected:
		series = h.rejected[reason]
	}
	if series.callbacks == nil {
		if outcome != outcomeRejected {
			reason = "" // upstream reasons are free text; keep the label set bounded
		}
		series = m.series(h.name, outcome, reason)
	}
	series.callbacks.Inc()
	series.duration.Observe(d.Seconds())
}

// outcomeSeries are the metrics of one provider, outcome and reason.
type outcomeSeries struct {
	callbacks prometheus.Counter
	duration  prometheus.Observer
}

func (m *metrics) series(provider, outcome, reason string) outcomeSeries {
	return outcomeSeries{
		callbacks: m.callbacks.WithLabelValues(provider, outcome, reason),
		duration:  m.duration.WithLabelValues(provider, outcome),
	}
}

// rejectedSeries looks up the series of every rejection reason.
func (m *metrics) rejectedSeries(provider string) map[string]outcomeSeries {
	out := make(map[string]outcomeSeries, len(rejections)+1)
	for _, r := range append(rejections, internalError) {
		out[r.code] = m.series(provider, outcomeRejected, r.code)
	}
	return out
}

// inboxMetrics are the inbox's collectors.
var inboxMetrics = struct {
	pending  *prometheus.GaugeVec
	oldest   *prometheus.GaugeVec
	attempts *prometheus.CounterVec
	failed   *prometheus.CounterVec
	orphaned *prometheus.GaugeVec
}{
	pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "payhook", Name: "inbox_pending",
		Help: "Events in the inbox waiting for the shop, by provider and inbox (counted every 30 s).",
	}, []string{"provider", "inbox"}),
	oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "payhook", Name: "inbox_oldest_pending_age_seconds",
		Help: "Age of the oldest event in the inbox waiting for the shop; 0 when none waits.",
	}, []string{"provider", "inbox"}),
	attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook", Name: "inbox_delivery_attempts_total",
		Help: "Deliveries from the inbox to the shop, by provider and outcome (delivered, failed).",
	}, []string{"provider", "outcome"}),
	failed: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook", Name: "inbox_failed_total",
		Help: "Events the shop did not take within retry_for, kept as failed.",
	}, []string{"provider"}),
	orphaned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "payhook", Name: "inbox_orphaned_events",
		Help: "Events waiting in the inbox of a route no running configuration has: deliver them with caddy payhook inbox move.",
	}, []string{"provider", "inbox"}),
}

// registerInboxMetrics registers the inbox's collectors into registry.
func registerInboxMetrics(registry *prometheus.Registry) error {
	return register(registry, inboxMetrics.pending, inboxMetrics.oldest, inboxMetrics.attempts, inboxMetrics.failed, inboxMetrics.orphaned)
}
