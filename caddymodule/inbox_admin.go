package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(inboxAdmin{})
}

// inboxes are the running inboxes of this process, for the admin API.
var inboxes = struct {
	sync.Mutex
	set map[*inbox]bool
}{set: map[*inbox]bool{}}

func registerInbox(ib *inbox) {
	inboxes.Lock()
	inboxes.set[ib] = true
	inboxes.Unlock()
}

func unregisterInbox(ib *inbox) {
	inboxes.Lock()
	delete(inboxes.set, ib)
	inboxes.Unlock()
}

// runningInboxes returns one running inbox per scope (a reload briefly runs
// two), in a stable order.
func runningInboxes() []*inbox {
	inboxes.Lock()
	defer inboxes.Unlock()
	byScope := map[string]*inbox{}
	for ib := range inboxes.set {
		byScope[ib.key()] = ib
	}
	list := make([]*inbox, 0, len(byScope))
	for _, ib := range byScope {
		list = append(list, ib)
	}
	slices.SortFunc(list, func(a, b *inbox) int { return strings.Compare(a.key(), b.key()) })
	return list
}

// inboxSummary is an event in a list: its state, never its content.
type inboxSummary struct {
	ID          string    `json:"id"`
	Inbox       string    `json:"inbox"`
	Provider    string    `json:"provider"`
	Type        string    `json:"type"`
	State       string    `json:"state"`
	ReceivedAt  time.Time `json:"received_at"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	DoneAt      time.Time `json:"done_at,omitzero"`
}

func summarize(scope string, rec *inboxRecord) inboxSummary {
	s := inboxSummary{ID: rec.ID, Inbox: scope, Provider: rec.Provider, Type: rec.Type, State: rec.State, ReceivedAt: rec.ReceivedAt,
		Attempts: len(rec.Attempts), NextAttempt: rec.NextAttempt, DoneAt: rec.DoneAt}
	if n := len(rec.Attempts); n > 0 {
		s.LastError = rec.Attempts[n-1].Error
	}
	return s
}

// list returns up to limit events in state ("" for all), newest first.
func (ib *inbox) list(ctx context.Context, state string, limit int) ([]inboxSummary, error) {
	var out []inboxSummary
	if state == "" || state == statePending {
		keys, err := ib.storage.List(ctx, ib.dir("pending"), true)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		slices.SortFunc(keys, func(a, b string) int { return strings.Compare(path.Base(b), path.Base(a)) })
		for _, key := range keys {
			if len(out) >= limit {
				break
			}
			if rec, err := ib.load(ctx, key); err == nil {
				out = append(out, summarize(ib.key(), rec))
			}
		}
	}
	for _, done := range []string{stateFailed, stateDelivered} {
		if state != "" && state != done {
			continue
		}
		keys, err := ib.storage.List(ctx, ib.dir(done), false)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		type keyed struct {
			key string
			at  time.Time
		}
		var found []keyed
		for _, key := range keys {
			if info, err := ib.storage.Stat(ctx, key); err == nil {
				found = append(found, keyed{key, info.Modified})
			}
		}
		slices.SortFunc(found, func(a, b keyed) int { return b.at.Compare(a.at) })
		for _, k := range found {
			if len(out) >= limit {
				break
			}
			if rec, err := ib.load(ctx, k.key); err == nil {
				out = append(out, summarize(ib.key(), rec))
			}
		}
	}
	return out, nil
}

func (ib *inbox) load(ctx context.Context, key string) (*inboxRecord, error) {
	raw, err := ib.storage.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	var rec inboxRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// find returns an event's record and its key.
func (ib *inbox) find(ctx context.Context, id string) (*inboxRecord, string, error) {
	for _, state := range []string{stateDelivered, stateFailed} {
		key := ib.dir(state, id)
		if rec, err := ib.load(ctx, key); err == nil {
			return rec, key, nil
		}
	}
	keys, err := ib.storage.List(ctx, ib.dir("pending"), true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	for _, key := range keys {
		if strings.HasSuffix(key, "-"+id) {
			rec, err := ib.load(ctx, key)
			return rec, key, err
		}
	}
	return nil, "", fs.ErrNotExist
}

// replay delivers an event again: a delivered or failed one goes back to
// the end of its payment's queue (its attempts kept, a replay marked); a
// pending one is tried now.
func (ib *inbox) replay(ctx context.Context, id string) (*inboxRecord, error) {
	rec, key, err := ib.find(ctx, id)
	if err != nil {
		return nil, err
	}
	now := ib.now()
	if rec.State == statePending {
		ib.mu.Lock()
		if q := ib.queues[rec.Queue]; q != nil {
			q.nextAt, q.attempts = now, 0
		}
		ib.failures, ib.probeAt = 0, time.Time{}
		ib.mu.Unlock()
		ib.poke()
		return rec, nil
	}
	rec.Attempts = append(rec.Attempts, inboxAttempt{At: now, Replay: true})
	rec.DoneAt, rec.NextAttempt = time.Time{}, time.Time{}
	rec.ReceivedAt = now // retry_for runs from the replay
	if err := ib.enqueue(ctx, rec, 0); err != nil {
		return nil, err
	}
	if err := ib.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return rec, nil
}

// inboxAdmin is the admin API's /payhook/ endpoints:
//
//	GET  /payhook/inbox[?state=pending|delivered|failed&limit=100]  events, newest first, without content
//	GET  /payhook/inbox/<id>                                        one event: its envelope and attempts
//	POST /payhook/inbox/<id>/replay                                 deliver it again
//	POST /payhook/inbox/retry-failed                                replay every failed event
type inboxAdmin struct{}

// CaddyModule returns the Caddy module information.
func (inboxAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.payhook", New: func() caddy.Module { return new(inboxAdmin) }}
}

// Routes are the admin API's payhook routes.
func (inboxAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/payhook/inbox", Handler: caddy.AdminHandlerFunc(handleInboxList)},
		{Pattern: "/payhook/inbox/", Handler: caddy.AdminHandlerFunc(handleInboxEvent)},
	}
}

func apiError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

func handleInboxList(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiError(http.StatusMethodNotAllowed, "GET only")
	}
	state := r.URL.Query().Get("state")
	if state != "" && state != statePending && state != stateDelivered && state != stateFailed {
		return apiError(http.StatusBadRequest, "state: pending, delivered or failed")
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			return apiError(http.StatusBadRequest, "limit: 1 to 10000")
		}
		limit = n
	}
	events := []inboxSummary{}
	for _, ib := range runningInboxes() {
		list, err := ib.list(r.Context(), state, limit)
		if err != nil {
			return apiError(http.StatusInternalServerError, "listing the inbox: %v", err)
		}
		events = append(events, list...)
	}
	slices.SortFunc(events, func(a, b inboxSummary) int {
		return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), strings.Compare(a.ID, b.ID))
	})
	if len(events) > limit {
		events = events[:limit]
	}
	return writeJSON(w, map[string]any{"events": events})
}

func handleInboxEvent(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/payhook/inbox/")
	if rest == "retry-failed" {
		if r.Method != http.MethodPost {
			return apiError(http.StatusMethodNotAllowed, "POST only")
		}
		replayed := []string{}
		for _, ib := range runningInboxes() {
			failed, err := ib.list(r.Context(), stateFailed, 1<<30)
			if err != nil {
				return apiError(http.StatusInternalServerError, "listing failed events: %v", err)
			}
			for _, s := range failed {
				if _, err := ib.replay(r.Context(), s.ID); err != nil {
					return apiError(http.StatusServiceUnavailable, "replaying %s: %v", s.ID, err)
				}
				replayed = append(replayed, s.ID)
			}
		}
		return writeJSON(w, map[string]any{"replayed": replayed})
	}
	id, action, _ := strings.Cut(rest, "/")
	if id == "" || strings.ContainsAny(id, "./\\") || len(id) > 128 {
		return apiError(http.StatusNotFound, "no such event")
	}
	for _, ib := range runningInboxes() {
		switch {
		case action == "" && r.Method == http.MethodGet:
			rec, _, err := ib.find(r.Context(), id)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return apiError(http.StatusInternalServerError, "reading the event: %v", err)
			}
			return writeJSON(w, eventView(ib.key(), rec))
		case action == "replay" && r.Method == http.MethodPost:
			rec, err := ib.replay(r.Context(), id)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return apiError(http.StatusServiceUnavailable, "replaying: %v", err)
			}
			return writeJSON(w, summarize(ib.key(), rec))
		case action != "" && action != "replay":
			return apiError(http.StatusNotFound, "unknown action %q", action)
		default:
			return apiError(http.StatusMethodNotAllowed, "GET an event, POST …/replay")
		}
	}
	return apiError(http.StatusNotFound, "no event %s in any inbox", id)
}

// eventView is one event for the admin API's caller: its envelope and its
// attempts; the forwarded request's header names, not their values.
func eventView(scope string, rec *inboxRecord) map[string]any {
	names := make([]string, 0, len(rec.Header))
	for name := range rec.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	return map[string]any{
		"summary": summarize(scope, rec), "method": rec.Method, "host": rec.Host, "uri": rec.URI,
		"header_names": names, "envelope": rec.Envelope, "attempts": rec.Attempts,
	}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Interface guard.
var _ caddy.AdminRouter = inboxAdmin{}
