package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// Versions before payhook's store kept each route's inbox in Caddy's
// storage, under payhook/inbox/<inbox>/: pending/<queue>/<seq> for an event
// waiting for the shop, delivered/<id> and failed/<id> afterwards. Older
// ones still named the directory after the provider and its account alone
// (or after dedupe_scope), so that two routes of one provider shared it.
//
// When the deliveries start, each route's events move into the store, the
// waiting ones in their order, and leave Caddy's storage: under its old
// directory, and under the older name unless several running routes had
// that name (whose event is whose could then not be told, and importing
// them could deliver an event to the wrong shop: they stay, and the log
// says so). An import cut short is taken up again at the next start; the
// store takes each event once. Each old queue is imported under its old
// lock, so that an instance of the earlier version still running in the
// cluster is not delivering its head meanwhile.

const legacyInboxPrefix = "payhook/inbox"

// importLegacyInbox moves the inbox events of Caddy's storage into the
// store, for the routes of the configuration.
func importLegacyInbox(ctx context.Context, storage certmagic.Storage, state *store.Store, routes map[string]*inbox, logger *zap.Logger) {
	if storage == nil {
		return
	}
	// The older names, and how many routes had each.
	older := map[string]map[string]bool{}
	for key, ib := range routes {
		name := ib.handler.legacyInbox()
		if older[name] == nil {
			older[name] = map[string]bool{}
		}
		older[name][key] = true
	}
	for key, ib := range routes {
		dirs := []string{key}
		if name := ib.handler.legacyInbox(); name != key {
			if len(older[name]) == 1 {
				dirs = append(dirs, name)
			} else if found, _ := storage.List(ctx, path.Join(legacyInboxPrefix, name), false); len(found) > 0 {
				logger.Error("events stored by an earlier version of payhook wait in an inbox that several routes shared; they are not delivered, since whose they are cannot be told: each record in the directory names the host and URI its callback came to",
					zap.String("directory", path.Join(legacyInboxPrefix, name)), zap.Int("routes", len(older[name])))
			}
		}
		for _, dir := range dirs {
			n, err := importInboxDir(ctx, storage, state, key, path.Join(legacyInboxPrefix, dir))
			if err != nil && ctx.Err() == nil {
				logger.Warn("importing the inbox events of Caddy's storage; trying again at the next start",
					zap.String("directory", path.Join(legacyInboxPrefix, dir)), zap.Int("imported", n), zap.Error(err))
			}
			if n > 0 {
				logger.Info("imported the inbox events an earlier version kept in Caddy's storage",
					zap.String("directory", path.Join(legacyInboxPrefix, dir)), zap.String("inbox", key), zap.String("route", ib.place()),
					zap.Int("events", n))
			}
		}
	}
}

// importInboxDir imports one old inbox directory into route, and deletes
// what it imported; it returns how many events it imported.
func importInboxDir(ctx context.Context, storage certmagic.Storage, state *store.Store, route, dir string) (int, error) {
	keys, err := storage.List(ctx, dir, true)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(keys) == 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	imported := 0
	var done []string // delivered and failed, in no order
	queues := map[string][]string{}
	for _, key := range keys {
		parts := strings.Split(strings.TrimPrefix(key, dir+"/"), "/")
		switch {
		case len(parts) == 3 && parts[0] == "pending" && isSeq(parts[2]):
			queues[parts[1]] = append(queues[parts[1]], key)
		case len(parts) == 2 && (parts[0] == stateDelivered || parts[0] == stateFailed):
			done = append(done, key)
		}
	}
	n, err := importInboxKeys(ctx, storage, state, route, "", done)
	imported += n
	if err != nil {
		return imported, err
	}
	names := make([]string, 0, len(queues))
	for name := range queues {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, queue := range names {
		keys := queues[queue]
		slices.Sort(keys) // seq: the order received
		n, err := func() (int, error) {
			lockCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			lock := "payhook-inbox-" + path.Base(dir) + "-" + queue
			if err := storage.Lock(lockCtx, lock); err != nil {
				return 0, fmt.Errorf("an earlier version's inbox queue is busy: %w", err)
			}
			defer func() { _ = storage.Unlock(context.Background(), lock) }()
			return importInboxKeys(ctx, storage, state, route, queue, keys)
		}()
		imported += n
		if err != nil {
			return imported, err
		}
	}
	return imported, nil
}

// importInboxKeys imports records in the order given, then deletes them.
func importInboxKeys(ctx context.Context, storage certmagic.Storage, state *store.Store, route, queue string, keys []string) (int, error) {
	events := make([]*store.InboxEvent, 0, len(keys))
	loaded := make([]string, 0, len(keys))
	for _, key := range keys {
		raw, err := storage.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // imported by another instance meanwhile
		}
		if err != nil {
			return 0, err
		}
		events = append(events, legacyEvent(route, queue, key, raw))
		loaded = append(loaded, key)
	}
	n, err := state.ImportInbox(ctx, events)
	if err != nil {
		return n, err
	}
	for _, key := range loaded {
		if err := storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
	}
	return n, nil
}

// legacyEvent reads an earlier version's record. One that cannot be read
// is imported as failed, so that it is listed and blocks nothing.
func legacyEvent(route, queue, key string, raw []byte) *store.InboxEvent {
	var rec inboxRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.ID == "" {
		id := path.Base(key)
		if _, _, seqID, ok := splitSeq(id); ok {
			id = seqID
		}
		return &store.InboxEvent{Route: route, Queue: cmp.Or(queue, "unreadable"), EventID: id, State: store.Failed,
			DoneAt: time.Now(), LastError: "unreadable record of an earlier version", Record: raw}
	}
	ev := &store.InboxEvent{Route: route, Queue: cmp.Or(queue, rec.Queue), EventID: rec.ID, Provider: rec.Provider, Type: rec.Type,
		ReceivedAt: rec.ReceivedAt, Attempts: len(rec.Attempts), DoneAt: rec.DoneAt}
	switch rec.State {
	case stateDelivered:
		ev.State = store.Delivered
	case stateFailed:
		ev.State = store.Failed
	}
	if n := len(rec.Attempts); n > 0 {
		ev.LastAt, ev.LastError = rec.Attempts[n-1].At, rec.Attempts[n-1].Error
	}
	if ev.State != store.Pending && ev.DoneAt.IsZero() {
		ev.DoneAt = time.Now()
	}
	rec.State, rec.Attempts, rec.DoneAt = "", nil, time.Time{}
	ev.Record, _ = json.Marshal(&rec)
	return ev
}

// seqOf sorts an event within an earlier version's queue: the time
// received, the event's place in its callback, its id.
func seqOf(received time.Time, index int, id string) string {
	return fmt.Sprintf("%020d-%04d-%s", received.UnixNano(), index, id)
}

// splitSeq reads a name made by seqOf.
func splitSeq(name string) (nanos, index, id string, ok bool) {
	nanos, rest, ok := strings.Cut(name, "-")
	if !ok || len(nanos) != 20 || !allDigits(nanos) {
		return "", "", "", false
	}
	index, id, ok = strings.Cut(rest, "-")
	if !ok || len(index) != 4 || !allDigits(index) || id == "" || strings.ContainsAny(id, "/.") {
		return "", "", "", false
	}
	return nanos, index, id, true
}

// isSeq tells a pending event's name (seqOf) from anything else in its
// directory, such as a temporary file a storage left when its process died.
func isSeq(name string) bool {
	_, _, _, ok := splitSeq(name)
	return ok
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
