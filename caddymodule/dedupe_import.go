package caddymodule

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// Versions before payhook's store kept delivery records in Caddy's storage:
// payhook/dedupe/events/<key[:2]>/<key>, each {delivered_at, expires_at}.
// The store takes them once, under their keys, until they expire, and they
// leave Caddy's storage. The keys
// of routes that set dedupe_scope are the same now, so those routes still
// recognise what they delivered before the upgrade; other routes' scopes
// changed (route scopes), and their old records are imported but never
// match. Nothing acknowledged depends on them: they only keep a copy of an
// event from reaching the shop twice.

// legacyDedupeImported names the fact that the import ran.
const legacyDedupeImported = "imported the delivery records of Caddy's storage"

// legacyImportBatch bounds the records imported in one go.
const legacyImportBatch = 500

// importLegacyDedupe imports an earlier version's delivery records from
// storage into state, once per database (however many instances share it:
// importing twice changes nothing).
func importLegacyDedupe(ctx context.Context, storage certmagic.Storage, state *store.Store, logger *zap.Logger) error {
	if _, done, err := state.Meta(ctx, legacyDedupeImported); err != nil || done {
		return err
	}
	keys, err := storage.List(ctx, path.Join(dedupePrefix, "events"), true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	found, imported := 0, 0
	batch := make(map[string]time.Time, legacyImportBatch)
	var batchKeys []string
	// A batch taken, its records leave Caddy's storage: payhook keeps no
	// state there any more.
	flush := func() error {
		n, err := state.Import(ctx, batch)
		imported += n
		clear(batch)
		if err != nil {
			return err
		}
		for _, key := range batchKeys {
			if err := storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		batchKeys = batchKeys[:0]
		return nil
	}
	for _, key := range keys {
		name := path.Base(key)
		if _, err := hex.DecodeString(name); err != nil || len(name) != 32 {
			continue // a directory, or not a record
		}
		raw, err := storage.Load(ctx, key)
		if err != nil {
			continue // deleted meanwhile, or unreadable: nothing to keep
		}
		var rec struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if json.Unmarshal(raw, &rec) != nil {
			continue
		}
		found++
		batch[name] = rec.ExpiresAt
		batchKeys = append(batchKeys, key)
		if len(batch) == legacyImportBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if found > 0 {
		logger.Info("imported the delivery records an earlier version kept in Caddy's storage, and deleted them there",
			zap.Int("found", found), zap.Int("still_kept", imported))
	}
	return state.SetMeta(ctx, legacyDedupeImported, time.Now().UTC().Format(time.RFC3339))
}

// dedupePrefix is where earlier versions kept their delivery records.
const dedupePrefix = "payhook/dedupe"
