package caddymodule

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Versions before route scopes named a route's inbox after its provider
// and account alone (or after dedupe_scope), so that two routes of one
// provider shared an inbox, and each delivered the other's events. An
// inbox now belongs to its route (route.go). When it starts, it adopts the
// events its route left in the old place, the waiting ones first in
// their order, unless another running route had the same old place: whose
// event is whose can then not be told, and adopting them could deliver an
// event to the wrong shop, so they stay where they are and the log says
// so.

// adoptLegacy moves the events of the route's old inbox into its own. It
// runs once, when the inbox starts.
func (ib *inbox) adoptLegacy() {
	legacy := ib.handler.legacyInbox()
	if legacy == ib.key() {
		return
	}
	legacyDir := path.Join(inboxPrefix, legacy)
	keys, err := ib.storage.List(ib.ctx, legacyDir, true)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(keys) == 0) {
		return
	}
	if err != nil {
		ib.logger.Error("listing the inbox of an earlier version", zap.String("directory", legacyDir), zap.Error(err))
		return
	}
	if others := routesSharingLegacy(ib, legacy); others > 0 {
		ib.logger.Error("events stored by an earlier version of payhook wait in an inbox that several routes shared; they are not delivered, since whose they are cannot be told: each record in the directory names the host and URI its callback came to",
			zap.String("directory", legacyDir), zap.Int("other_routes", others))
		return
	}
	moved := 0
	byQueue := map[string][]string{}
	for _, key := range keys {
		parts := strings.Split(strings.TrimPrefix(key, legacyDir+"/"), "/")
		switch {
		case len(parts) == 3 && parts[0] == "pending" && isSeq(parts[2]):
			byQueue[parts[1]] = append(byQueue[parts[1]], key)
		case len(parts) == 2 && (parts[0] == stateDelivered || parts[0] == stateFailed):
			if ib.move(key, ib.dir(parts...)) {
				moved++
			}
		}
	}
	for queue, keys := range byQueue {
		moved += ib.adoptQueue(legacy, queue, keys)
	}
	if moved > 0 {
		ib.logger.Info("adopted the events an earlier version of payhook stored for this route",
			zap.String("directory", legacyDir), zap.Int("events", moved))
	}
}

// adoptQueue moves one payment's waiting events, under the old queue's
// claim, so that an instance of an earlier version still running in the
// cluster is not delivering its head meanwhile.
func (ib *inbox) adoptQueue(legacy, queue string, keys []string) int {
	ctx, cancel := context.WithTimeout(ib.ctx, 10*time.Second)
	defer cancel()
	lock := "payhook-inbox-" + legacy + "-" + queue
	if err := ib.storage.Lock(ctx, lock); err != nil {
		ib.logger.Warn("an earlier version's inbox queue is busy; adopting it at the next start", zap.String("queue", queue), zap.Error(err))
		return 0
	}
	defer func() { _ = ib.storage.Unlock(context.Background(), lock) }()
	moved := 0
	for _, key := range keys {
		if ib.move(key, ib.dir("pending", queue, path.Base(key))) {
			moved++
		}
	}
	return moved
}

// move stores the record at from under to, then deletes it at from.
func (ib *inbox) move(from, to string) bool {
	raw, err := ib.storage.Load(ib.ctx, from)
	if errors.Is(err, fs.ErrNotExist) {
		return false // another instance moved it
	}
	if err == nil {
		err = ib.storage.Store(ib.ctx, to, raw)
	}
	if err == nil {
		err = ib.storage.Delete(ib.ctx, from)
	}
	if err != nil {
		ib.logger.Error("adopting an event of an earlier version's inbox", zap.String("key", from), zap.Error(err))
		return false
	}
	return true
}

// routesSharingLegacy counts the other running routes whose inbox had the
// same old place as ib's.
func routesSharingLegacy(ib *inbox, legacy string) int {
	inboxes.Lock()
	list := make([]*inbox, 0, len(inboxes.set))
	for other := range inboxes.set {
		list = append(list, other)
	}
	inboxes.Unlock()
	routes := map[string]bool{}
	for _, other := range list {
		if other != ib && serverRunning(other.server) && other.handler.legacyInbox() == legacy && other.key() != ib.key() {
			routes[other.key()] = true
		}
	}
	return len(routes)
}
