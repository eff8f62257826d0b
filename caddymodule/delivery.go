package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// The deliverer is the payhook app's: it delivers the inbox events of the
// configuration's routes to their shops. It sleeps until an event is due
// (the store wakes it when a write makes one due sooner, here or, on
// PostgreSQL, in another instance), leases the due heads of each route's
// queues, and delivers each through its route's handlers. Every instance
// on one database delivers: a lease gives each event to one of them.
//
// A stop (a reload, or Caddy stopping) leases nothing more and lets the
// deliveries under way finish within the server's grace period; one cut
// short is given back, and delivered again under the same id.

const (
	// deliveryRefresh spaces the counts of each route's waiting events
	// (max_events, the gauges) and the search for events whose route is
	// gone.
	deliveryRefresh = 30 * time.Second
	// deliveryIdle bounds a sleep with nothing due, in case a wake-up was
	// lost (a listening connection that broke).
	deliveryIdle = 30 * time.Second
	// orphanLogEvery spaces the error logged for a gone route's events.
	orphanLogEvery = time.Hour
)

type deliverer struct {
	state  *store.Store
	logger *zap.Logger
	now    func() time.Time
	added  []*inbox          // the routes of the configuration, as provisioned
	routes map[string]*inbox // the same by route key: set at start

	// ctx ends the deliveries under way: only when a stop's grace period
	// runs out.
	ctx      context.Context
	cancel   context.CancelFunc
	stopping chan struct{}
	done     chan struct{}
	poke     chan struct{}
	running  sync.WaitGroup

	mu         sync.Mutex
	orphans    map[string]store.RoutePending // routes no configuration here runs, with waiting events
	orphanLogs map[string]time.Time
	storeDown  time.Time // since when leasing fails; zero when it works
}

func newDeliverer(state *store.Store, logger *zap.Logger) *deliverer {
	ctx, cancel := context.WithCancel(context.Background())
	return &deliverer{state: state, logger: logger.Named("inbox"), now: time.Now, routes: map[string]*inbox{},
		ctx: ctx, cancel: cancel, stopping: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1),
		orphans: map[string]store.RoutePending{}, orphanLogs: map[string]time.Time{}}
}

// add makes a route's events deliverable; before start.
func (d *deliverer) add(ib *inbox) {
	d.added = append(d.added, ib)
}

// start runs the deliveries, once every route is provisioned (a route's
// key is its place among them); before, it hands the events an earlier
// version left in Caddy's storage to the store.
func (d *deliverer) start(importLegacy func(ctx context.Context, routes map[string]*inbox)) {
	for _, ib := range d.added {
		d.routes[ib.key()] = ib
	}
	ctx, cancel := context.WithCancel(d.ctx)
	go func() {
		select {
		case <-d.stopping:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer cancel()
		if importLegacy != nil {
			importLegacy(ctx, d.routes)
		}
		d.run()
	}()
}

func (d *deliverer) wake() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// run delivers until stop.
func (d *deliverer) run() {
	defer close(d.done)
	wake, unsubscribe := d.state.Subscribe()
	defer unsubscribe()
	refresh := time.NewTicker(deliveryRefresh)
	defer refresh.Stop()
	d.refresh()
	for {
		next := d.dispatch()
		timer := time.NewTimer(max(next.Sub(d.now()), time.Millisecond))
		select {
		case <-d.stopping:
			timer.Stop()
			return
		case <-wake:
		case <-d.poke:
		case <-timer.C:
		case <-refresh.C:
			d.refresh()
		}
		timer.Stop()
	}
}

// dispatch leases what is due and starts its deliveries; it returns when
// to look again.
func (d *deliverer) dispatch() time.Time {
	now := d.now()
	next := now.Add(deliveryIdle)
	for key, ib := range d.routes {
		n, at := ib.capacity(now)
		if n == 0 {
			if !at.IsZero() && at.Before(next) {
				next = at
			}
			continue
		}
		events, err := d.state.Lease(d.ctx, key, n, inboxLease)
		if err != nil {
			d.leaseFailed(err)
			if retry := now.Add(time.Second); retry.Before(next) {
				next = retry
			}
			continue
		}
		d.leaseWorks()
		for _, ev := range events {
			ib.started()
			d.running.Add(1)
			go d.deliver(ib, ev)
		}
		if len(events) == n {
			continue // the delivery's end looks again
		}
		if due, ok, err := d.state.NextDue(d.ctx, key); err == nil && ok && due.Before(next) {
			next = due
		}
	}
	return next
}

// leaseFailed logs that the store does not answer, once per outage.
func (d *deliverer) leaseFailed(err error) {
	d.mu.Lock()
	first := d.storeDown.IsZero()
	if first {
		d.storeDown = d.now()
	}
	d.mu.Unlock()
	if first && d.ctx.Err() == nil {
		d.logger.Error("the store does not answer; the inbox's deliveries wait for it and resume by themselves", zap.Error(err))
	}
}

func (d *deliverer) leaseWorks() {
	d.mu.Lock()
	down := d.storeDown
	d.storeDown = time.Time{}
	d.mu.Unlock()
	if !down.IsZero() {
		d.logger.Info("the store answers again; the inbox's deliveries resume", zap.Duration("after", d.now().Sub(down)))
	}
}

// deliver makes one attempt of a leased event and records its outcome.
func (d *deliverer) deliver(ib *inbox, ev *store.InboxEvent) {
	defer d.running.Done()
	defer d.wake()
	defer ib.ended()
	var rec inboxRecord
	if err := json.Unmarshal(ev.Record, &rec); err != nil || rec.URI == "" || rec.Method == "" {
		if err == nil {
			err = errors.New("no request to make")
		}
		d.logger.Error("an inbox event's record cannot be read; it is kept as failed and blocks nothing",
			zap.String("event_id", ev.EventID), zap.String("inbox", ev.Route), zap.Error(err))
		d.settle(ib, ev, store.Settlement{State: store.Failed, Error: "unreadable record: " + err.Error()})
		inboxMetrics.failed.WithLabelValues(ev.Provider, ib.label()).Inc()
		return
	}
	renewal := d.keepLease(ev)
	start := d.now()
	up := ib.send(d.ctx, &rec)
	close(renewal)
	now := d.now()
	if !up.delivered() && d.ctx.Err() != nil {
		// Cut short by a stop past its grace period: given back, delivered
		// again (the same id) by whoever leases it next.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.state.Release(ctx, ev); err != nil {
			d.logger.Warn("giving back an event whose delivery a stop cut short; it is due again when its lease runs out",
				zap.String("event_id", ev.EventID), zap.Error(err))
		}
		return
	}
	attempt := &store.Attempt{Route: ib.place(), EventID: ev.EventID, At: start, Status: up.status, Latency: now.Sub(start)}
	inboxMetrics.attempts.WithLabelValues(ev.Provider, ib.label(), attemptOutcome(up)).Inc()
	if up.delivered() {
		d.settle(ib, ev, store.Settlement{State: store.Delivered, Attempt: attempt})
		if ib.recovered(now) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.state.Refresh(ctx, ev.Route); err != nil {
				d.logger.Warn("making the waiting events due after the shop came back", zap.Error(err))
			}
		}
		return
	}
	attempt.Error = up.reason()
	if now.Sub(ev.AttemptsSince()) >= ib.retryFor { // a replay starts a new retry period
		d.settle(ib, ev, store.Settlement{State: store.Failed, Attempt: attempt})
		ib.failed(ev, now)
		inboxMetrics.failed.WithLabelValues(ev.Provider, ib.label()).Inc()
		d.logger.Error("event not delivered within retry_for; kept as failed (replay it with caddy payhook replay)",
			zap.String("event_id", ev.EventID), zap.String("provider", ev.Provider), zap.Duration("retry_for", ib.retryFor),
			zap.String("last_error", attempt.Error), zap.Int("attempts", ev.Attempts+1))
		return
	}
	own := ib.failed(ev, now)
	next := now.Add(backoff(ev.Attempts+1, inboxQueueBackoffCap))
	d.settle(ib, ev, store.Settlement{State: store.Pending, NextAt: next, Refused: own, Attempt: attempt})
	d.logger.Warn("shop did not take an event from the inbox; retrying",
		zap.String("event_id", ev.EventID), zap.String("provider", ev.Provider), zap.String("reason", attempt.Error),
		zap.Time("next_attempt", next))
}

// settle records an attempt's outcome. When the store fails, the event
// stays leased until its lease runs out, and is delivered again then, at
// most once more, never in a loop.
func (d *deliverer) settle(ib *inbox, ev *store.InboxEvent, out store.Settlement) {
	ctx, cancel := context.WithTimeout(context.Background(), claimWait)
	defer cancel()
	err := d.state.Settle(ctx, ev, out)
	switch {
	case err == nil:
		if out.State != store.Pending {
			ib.pending.Add(-1)
		}
	case errors.Is(err, store.ErrLeaseLost):
		d.logger.Error("a delivery outlasted its lease, and another instance took the event over meanwhile; the shop may receive it twice, under one id",
			zap.String("event_id", ev.EventID))
	default:
		d.logger.Error("recording a delivery attempt failed; the event is tried again when its lease runs out",
			zap.String("event_id", ev.EventID), zap.String("outcome", out.State.String()), zap.Error(err))
	}
}

// keepLease renews a delivery's lease at half of it until the returned
// channel is closed.
func (d *deliverer) keepLease(ev *store.InboxEvent) chan<- struct{} {
	stop := make(chan struct{})
	go func() {
		ticker := time.NewTicker(inboxLease / 2)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				ctx, cancel := context.WithTimeout(context.Background(), claimWait)
				err := d.state.Renew(ctx, ev, inboxLease)
				cancel()
				if err != nil {
					d.logger.Warn("renewing a delivery's lease", zap.String("event_id", ev.EventID), zap.Error(err))
				}
			}
		}
	}()
	return stop
}

// refresh counts each route's waiting events, sets the gauges, and
// reports the events whose route no running configuration has.
func (d *deliverer) refresh() {
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	counts, err := d.state.PendingByRoute(ctx)
	if err != nil {
		return // leasing logs the outage
	}
	now := d.now()
	seen := map[string]bool{}
	orphans := map[string]store.RoutePending{}
	for _, c := range counts {
		if ib := d.routes[c.Route]; ib != nil {
			seen[c.Route] = true
			ib.pending.Store(int64(c.Pending))
			inboxMetrics.pending.WithLabelValues(ib.handler.name, ib.label()).Set(float64(c.Pending))
			inboxMetrics.oldest.WithLabelValues(ib.handler.name, ib.label()).Set(now.Sub(c.Oldest).Seconds())
			continue
		}
		orphans[c.Route] = c
		inboxMetrics.orphaned.WithLabelValues(c.Provider, c.Route).Set(float64(c.Pending))
	}
	for key, ib := range d.routes {
		if !seen[key] {
			ib.pending.Store(0)
			inboxMetrics.pending.WithLabelValues(ib.handler.name, ib.label()).Set(0)
			inboxMetrics.oldest.WithLabelValues(ib.handler.name, ib.label()).Set(0)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, c := range d.orphans {
		if _, still := orphans[key]; !still {
			inboxMetrics.orphaned.WithLabelValues(c.Provider, key).Set(0)
		}
	}
	d.orphans = orphans
	for key, c := range orphans {
		if last, ok := d.orphanLogs[key]; ok && now.Sub(last) < orphanLogEvery {
			continue
		}
		d.orphanLogs[key] = now
		d.logger.Error("events wait in the inbox of a route no running configuration has (its matchers, ports or provider changed, or it was removed); deliver them through a route you name: caddy payhook inbox move --from <inbox> --to <inbox>",
			zap.String("inbox", key), zap.String("provider", c.Provider), zap.Int("pending", c.Pending), zap.Time("oldest", c.Oldest))
	}
}

// orphaned returns the routes with waiting events that this configuration
// does not run.
func (d *deliverer) orphaned() map[string]store.RoutePending {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]store.RoutePending, len(d.orphans))
	for k, v := range d.orphans {
		out[k] = v
	}
	return out
}

// stop leases nothing more and waits for the deliveries under way, for
// grace at most; then it cuts them short (their events are given back).
func (d *deliverer) stop(grace time.Duration) {
	close(d.stopping)
	<-d.done
	finished := make(chan struct{})
	go func() {
		d.running.Wait()
		close(finished)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-finished:
	case <-timer.C:
		d.logger.Warn("the grace period ran out with deliveries under way; they are cut short and delivered again later, under the same id")
		d.cancel()
		<-finished
	}
	d.cancel()
}
