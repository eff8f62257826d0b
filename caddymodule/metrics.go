package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are payhook's collectors. They are created once per process and
// registered into each configuration's registry (Caddy makes a new one on
// every config load), where several payhook handlers share them.
//
// The route label names the payhook route a series counts: its route_name,
// else the hosts and paths its matchers name ("shop.example/callbacks/
// ixopay*"; route.go: routeLabel). It has as many values as the
// configuration has payhook routes. Earlier versions had no route label on
// the callbacks' series, and named an inbox's gauges by an opaque hash
// (inbox="0e50bd144d260fe5"): payhook_inbox_pending and
// payhook_inbox_oldest_pending_age_seconds now carry route instead;
// payhook_inbox_orphaned_events keeps inbox, the key that `caddy payhook
// inbox move --from` takes, since a gone route has no label.
type metrics struct {
	callbacks *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

var collectors = &metrics{
	callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook",
		Name:      "callbacks_total",
		Help:      "Payment callbacks received, by provider, route, outcome (forwarded, rejected, upstream_failed) and reason.",
	}, []string{"provider", "route", "outcome", "reason"}),
	duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "payhook",
		Name:      "callback_duration_seconds",
		Help:      "Time from receiving a callback to answering the provider, upstream included, by provider, route and outcome.",
		Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"provider", "route", "outcome"}),
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

// observe counts one callback of h's route. The series of the forwarded
// outcome and of every rejection reason are looked up once per handler,
// at its first callback, when its route's label is known; other outcomes
// (rare) are looked up each time.
func (m *metrics) observe(h *Handler, outcome, reason string, d time.Duration) {
	route := h.scope().label
	h.series.Do(func() {
		h.forwarded = m.series(h.name, route, outcomeForwarded, "")
		h.rejected = m.rejectedSeries(h.name, route)
	})
	var series outcomeSeries
	switch {
	case outcome == outcomeForwarded && reason == "":
		series = h.forwarded
	case outcome == outcomeRejected:
		series = h.rejected[reason]
	}
	if series.callbacks == nil {
		if outcome != outcomeRejected && reason != reasonUnconfirmed {
			reason = "" // upstream reasons are free text; keep the label set bounded
		}
		series = m.series(h.name, route, outcome, reason)
	}
	series.callbacks.Inc()
	series.duration.Observe(d.Seconds())
}

// outcomeSeries are the metrics of one provider, route, outcome and reason.
type outcomeSeries struct {
	callbacks prometheus.Counter
	duration  prometheus.Observer
}

func (m *metrics) series(provider, route, outcome, reason string) outcomeSeries {
	return outcomeSeries{
		callbacks: m.callbacks.WithLabelValues(provider, route, outcome, reason),
		duration:  m.duration.WithLabelValues(provider, route, outcome),
	}
}

// rejectedSeries looks up the series of every rejection reason.
func (m *metrics) rejectedSeries(provider, route string) map[string]outcomeSeries {
	out := make(map[string]outcomeSeries, len(rejections)+1)
	for _, r := range append(rejections, internalError) {
		out[r.code] = m.series(provider, route, outcomeRejected, r.code)
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
		Help: "Events in the inbox waiting for the shop, by provider and route (counted every 30 s).",
	}, []string{"provider", "route"}),
	oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "payhook", Name: "inbox_oldest_pending_age_seconds",
		Help: "Age of the oldest event in the inbox waiting for the shop (since its receipt or its replay), by provider and route; 0 when none waits.",
	}, []string{"provider", "route"}),
	attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook", Name: "inbox_delivery_attempts_total",
		Help: "Deliveries from the inbox to the shop, by provider, route and outcome (delivered, failed).",
	}, []string{"provider", "route", "outcome"}),
	failed: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "payhook", Name: "inbox_failed_total",
		Help: "Events the shop did not take within retry_for, kept as failed, by provider and route.",
	}, []string{"provider", "route"}),
	orphaned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "payhook", Name: "inbox_orphaned_events",
		Help: "Events waiting in the inbox of a route no running configuration has: deliver them with caddy payhook inbox move.",
	}, []string{"provider", "inbox"}),
}

// registerInboxMetrics registers the inbox's collectors into registry.
func registerInboxMetrics(registry *prometheus.Registry) error {
	return register(registry, inboxMetrics.pending, inboxMetrics.oldest, inboxMetrics.attempts, inboxMetrics.failed, inboxMetrics.orphaned)
}
