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
	if registry == nil {
		return collectors, nil
	}
	for _, c := range []prometheus.Collector{collectors.callbacks, collectors.duration} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
		}
	}
	return collectors, nil
}

func (m *metrics) observe(provider, outcome, reason string, d time.Duration) {
	if outcome != outcomeRejected {
		reason = "" // upstream reasons are free text; keep the label set bounded
	}
	m.callbacks.WithLabelValues(provider, outcome, reason).Inc()
	m.duration.WithLabelValues(provider, outcome).Observe(d.Seconds())
}

// forwarded is observe for the common case, with the series looked up once.
type forwardedSeries struct {
	callbacks prometheus.Counter
	duration  prometheus.Observer
}

func (m *metrics) forwardedSeries(provider string) forwardedSeries {
	return forwardedSeries{
		callbacks: m.callbacks.WithLabelValues(provider, outcomeForwarded, ""),
		duration:  m.duration.WithLabelValues(provider, outcomeForwarded),
	}
}
