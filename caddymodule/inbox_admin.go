package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

func init() {
	caddy.RegisterModule(inboxAdmin{})
}

// inboxSummary is an event in a list: its state, never its content.
type inboxSummary struct {
	ID    string `json:"id"`
	Inbox string `json:"inbox"`
	// Route is the place of the route that delivers it, when a running
	// route does; Orphaned is set when none does.
	Route    string `json:"route,omitempty"`
	Orphaned bool   `json:"orphaned,omitempty"`
	Provider string `json:"provider"`
	Type     string `json:"type"`
	State    string `json:"state"`
	// MerchantReference is the shop's reference of the event (its order).
	MerchantReference string `json:"merchant_reference,omitempty"`
	// ReceivedAt is when the callback arrived; a replay leaves it, and
	// ReplayedAt says when the event was last replayed.
	ReceivedAt time.Time `json:"received_at"`
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
	Attempts   int       `json:"attempts"`
	// NextAttempt is, for a pending event, when it is tried next: while
	// the shop fails, not before the route's next probe. It is never
	// before the time of the answer (Now): an event due is tried now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	Replayed    bool      `json:"replayed,omitempty"`
}

// summarize describes an event of the store for the admin API, as it
// stands at now.
func (a *App) summarize(ev *store.InboxEvent, now time.Time) inboxSummary {
	s := inboxSummary{ID: ev.EventID, Inbox: ev.Route, Provider: ev.Provider, Type: ev.Type, State: ev.State.String(),
		MerchantReference: ev.MerchantReference, ReceivedAt: ev.ReceivedAt, ReplayedAt: ev.ReplayedAt, Attempts: ev.Attempts,
		LastError: ev.LastError, DoneAt: ev.DoneAt, Replayed: ev.Replayed}
	ib := a.deliverer.routes[ev.Route]
	if ev.State == store.Pending {
		// The store's time is the event's own; while the shop fails, the
		// route sends one probe at a time, and the event waits for it.
		s.NextAttempt = ev.NextAt
		if ib != nil {
			s.NextAttempt = latest(s.NextAttempt, ib.nextProbe())
		}
		s.NextAttempt = latest(s.NextAttempt, now)
	}
	if ib != nil {
		s.Route = ib.place()
	} else if ev.State == store.Pending {
		s.Orphaned = true
	}
	return s
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// inboxAdmin is the admin API's /payhook/inbox endpoints:
//
//	GET  /payhook/inbox[?state=pending|delivered|failed&inbox=…&limit=100&before=<seq>]  events, newest first, without content
//	GET  /payhook/inbox/routes                                       each inbox: its route, waiting events, orphaned or not
//	GET  /payhook/inbox/<id>[?envelope=no]                           one event: its envelope (unless envelope=no) and attempts
//	POST /payhook/inbox/<id>/replay[?inbox=…]                        deliver it again (exactly once more)
//	POST /payhook/inbox/retry-failed[?inbox=…]                       replay every failed event (of one inbox)
//	POST /payhook/inbox/move?from=<inbox>&to=<inbox>                 deliver a gone route's events through a running one
//
// They answer from the payhook app of the configuration the admin API was
// loaded with: the running one. A POST from a browser must come from the
// console's page (console.go: same origin, the session's CSRF token).
type inboxAdmin struct {
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (inboxAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.payhook", New: func() caddy.Module { return new(inboxAdmin) }}
}

// Provision keeps the configuration's context, where the app is found.
func (a *inboxAdmin) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// app is the payhook app of the admin API's configuration.
func (a *inboxAdmin) app() (*App, error) {
	app, err := configuredApp(a.ctx)
	if err != nil {
		return nil, apiError(http.StatusNotFound, "%v", err)
	}
	return app, nil
}

// Routes are the admin API's payhook routes.
func (a *inboxAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/payhook/inbox", Handler: caddy.AdminHandlerFunc(a.handleList)},
		{Pattern: "/payhook/inbox/", Handler: caddy.AdminHandlerFunc(a.handleEvent)},
	}
}

func apiError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

func (a *inboxAdmin) handleList(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiError(http.StatusMethodNotAllowed, "GET only")
	}
	app, err := a.app()
	if err != nil {
		return err
	}
	q := store.InboxQuery{Limit: 100}
	if v := r.URL.Query().Get("state"); v != "" {
		st, ok := store.ParseInboxState(v)
		if !ok {
			return apiError(http.StatusBadRequest, "state: pending, delivered or failed")
		}
		q.State = &st
	}
	if v := r.URL.Query().Get("inbox"); v != "" {
		q.Routes = []string{v}
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			return apiError(http.StatusBadRequest, "limit: 1 to 10000")
		}
		q.Limit = n
	}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return apiError(http.StatusBadRequest, "before: the seq of a page's last event")
		}
		q.Before = n
	}
	list, err := app.state.ListInbox(r.Context(), q)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "listing the inbox: %v", err)
	}
	events := make([]inboxSummary, 0, len(list))
	var last int64
	now := time.Now()
	for _, ev := range list {
		events = append(events, app.summarize(ev, now))
		last = ev.Seq
	}
	out := map[string]any{"events": events, "now": now.UTC()}
	if len(list) == q.Limit {
		out["next_before"] = last
	}
	return writeJSON(w, out)
}

// routeView is one inbox in GET /payhook/inbox/routes.
type routeView struct {
	Inbox    string    `json:"inbox"`
	Route    string    `json:"route,omitempty"`
	Provider string    `json:"provider"`
	Enabled  bool      `json:"enabled"`
	Orphaned bool      `json:"orphaned,omitempty"`
	Pending  int       `json:"pending"`
	Oldest   time.Time `json:"oldest,omitzero"`
	Failed   int       `json:"failed"`
}

func (a *inboxAdmin) handleRoutes(w http.ResponseWriter, r *http.Request, app *App) error {
	counts, err := app.state.PendingByRoute(r.Context())
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "counting the inbox: %v", err)
	}
	failed, err := app.state.FailedByRoute(r.Context())
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "counting the failed events: %v", err)
	}
	byKey := map[string]store.RoutePending{}
	for _, c := range counts {
		byKey[c.Route] = c
	}
	views := []routeView{}
	for key, ib := range app.deliverer.routes {
		c := byKey[key]
		delete(byKey, key)
		views = append(views, routeView{Inbox: key, Route: ib.place(), Provider: ib.handler.name, Enabled: ib.enabled,
			Pending: c.Pending, Oldest: c.Oldest, Failed: failed[key]})
		delete(failed, key)
	}
	for key, c := range byKey {
		views = append(views, routeView{Inbox: key, Provider: c.Provider, Orphaned: true, Pending: c.Pending, Oldest: c.Oldest, Failed: failed[key]})
		delete(failed, key)
	}
	for key, n := range failed {
		// A gone route with failed events only: nothing waits, but an
		// operator may replay them once moved.
		views = append(views, routeView{Inbox: key, Orphaned: true, Failed: n})
	}
	slices.SortFunc(views, func(a, b routeView) int {
		return cmp.Or(strings.Compare(a.Route, b.Route), strings.Compare(a.Inbox, b.Inbox))
	})
	return writeJSON(w, map[string]any{"inboxes": views})
}

func (a *inboxAdmin) handleEvent(w http.ResponseWriter, r *http.Request) error {
	asked := time.Now() // a replay applies to the event as it was when asked
	if r.Method == http.MethodPost {
		if err := checkConsolePost(r, false); err != nil {
			return err
		}
	}
	app, err := a.app()
	if err != nil {
		return err
	}
	rest := strings.TrimPrefix(r.URL.Path, "/payhook/inbox/")
	switch rest {
	case "routes":
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, "GET only")
		}
		return a.handleRoutes(w, r, app)
	case "retry-failed":
		if r.Method != http.MethodPost {
			return apiError(http.StatusMethodNotAllowed, "POST only")
		}
		return a.retryFailed(w, r, app, asked)
	case "move":
		if r.Method != http.MethodPost {
			return apiError(http.StatusMethodNotAllowed, "POST only")
		}
		return a.move(w, r, app)
	}
	id, action, _ := strings.Cut(rest, "/")
	if id == "" || len(id) > 256 {
		return apiError(http.StatusNotFound, "no such event")
	}
	rows, err := app.state.InboxEvents(r.Context(), id)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "reading the event: %v", err)
	}
	if inbox := r.URL.Query().Get("inbox"); inbox != "" {
		rows = slices.DeleteFunc(rows, func(ev *store.InboxEvent) bool { return ev.Route != inbox })
	}
	if len(rows) == 0 {
		return apiError(http.StatusNotFound, "no event %s in any inbox", id)
	}
	ev := rows[0] // the newest
	switch {
	case action == "" && r.Method == http.MethodGet:
		view := app.eventView(r.Context(), ev)
		if r.URL.Query().Get("envelope") == "no" {
			// Its state and attempts only: the envelope holds personal
			// data, shown on an explicit request.
			for _, content := range []string{"envelope", "method", "host", "uri", "header_names"} {
				delete(view, content)
			}
		}
		return writeJSON(w, view)
	case action == "replay" && r.Method == http.MethodPost:
		replayed, err := app.replay(r.Context(), ev, asked)
		if errors.Is(err, store.ErrNotFound) {
			return apiError(http.StatusConflict, "event %s changed meanwhile (another replay, or its delivery, came first): %v", id, err)
		}
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "replaying: %v", err)
		}
		return writeJSON(w, app.summarize(replayed, time.Now()))
	case action != "" && action != "replay":
		return apiError(http.StatusNotFound, "unknown action %q", action)
	default:
		return apiError(http.StatusMethodNotAllowed, "GET an event, POST …/replay")
	}
}

// replay delivers an event again: the store makes sure concurrent replays
// deliver it once more, not once each.
func (a *App) replay(ctx context.Context, ev *store.InboxEvent, asked time.Time) (*store.InboxEvent, error) {
	replayed, err := a.state.Replay(ctx, ev.Seq, ev.State, asked)
	if err != nil {
		return nil, err
	}
	if ib := a.deliverer.routes[ev.Route]; ib != nil {
		ib.resetFailures() // an operator asks for an attempt now
		if ev.State != store.Pending {
			ib.pending.Add(1)
		}
	}
	a.deliverer.wake()
	return replayed, nil
}

func (a *inboxAdmin) retryFailed(w http.ResponseWriter, r *http.Request, app *App, asked time.Time) error {
	failed := store.Failed
	q := store.InboxQuery{State: &failed, Limit: 500}
	if inbox := r.URL.Query().Get("inbox"); inbox != "" {
		q.Routes = []string{inbox}
	}
	replayed := []string{}
	for {
		// One pass over the failed events, page by page down the
		// sequence: an event whose replay fails again at once (an
		// unreadable record) is failed again at or above the cursor, so
		// it is replayed once per request, never in a loop.
		page, err := app.state.ListInbox(r.Context(), q)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "listing failed events: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			if _, err := app.replay(r.Context(), ev, asked); err != nil && !errors.Is(err, store.ErrNotFound) {
				return apiError(http.StatusServiceUnavailable, "replaying %s: %v", ev.EventID, err)
			}
			replayed = append(replayed, ev.EventID)
			q.Before = ev.Seq
		}
	}
	return writeJSON(w, map[string]any{"replayed": replayed})
}

// move hands a gone route's waiting events to a running route, which
// delivers them through its handlers from then on.
func (a *inboxAdmin) move(w http.ResponseWriter, r *http.Request, app *App) error {
	from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
	if from == "" || to == "" {
		return apiError(http.StatusBadRequest, "move takes from=<inbox> and to=<inbox> (see GET /payhook/inbox/routes)")
	}
	target := app.deliverer.routes[to]
	if target == nil {
		return apiError(http.StatusBadRequest, "to: %s is not the inbox of a running route", to)
	}
	if app.deliverer.routes[from] != nil {
		return apiError(http.StatusBadRequest, "from: %s is the inbox of a running route; only a gone route's events move", from)
	}
	moved, err := app.state.MoveInbox(r.Context(), from, to)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "moving: %v", err)
	}
	target.pending.Add(int64(moved))
	app.deliverer.wake()
	app.logger.Info("moved a gone route's waiting events to a running route", zap.String("from", from), zap.String("to", to),
		zap.String("route", target.place()), zap.Int("events", moved))
	return writeJSON(w, map[string]any{"moved": moved, "to": to, "route": target.place()})
}

// eventView is one event for the admin API's caller: its envelope and its
// attempts; the forwarded request's header names, not their values.
func (a *App) eventView(ctx context.Context, ev *store.InboxEvent) map[string]any {
	view := map[string]any{"summary": a.summarize(ev, time.Now())}
	var rec inboxRecord
	if err := json.Unmarshal(ev.Record, &rec); err != nil {
		view["error"] = "unreadable record: " + err.Error()
	} else {
		names := make([]string, 0, len(rec.Header))
		for name := range rec.Header {
			names = append(names, name)
		}
		slices.Sort(names)
		view["method"], view["host"], view["uri"], view["header_names"], view["envelope"] = rec.Method, rec.Host, rec.URI, names, rec.Envelope
	}
	place := ""
	if ib := a.deliverer.routes[ev.Route]; ib != nil {
		place = ib.place()
	}
	if attempts, err := a.state.Attempts(ctx, place, ev.EventID); err == nil && place != "" {
		view["attempts"] = viewAttempts(attempts)
	}
	return view
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Interface guard.
var (
	_ caddy.AdminRouter = (*inboxAdmin)(nil)
	_ caddy.Provisioner = (*inboxAdmin)(nil)
)
