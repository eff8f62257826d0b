package store

import (
	"context"
	"fmt"
)

// The schema, as numbered migrations per engine: a database records the
// number it reached in payhook_schema, and a newer payhook applies the rest
// when it opens the database. A migration is never edited once released.
//
// Times are Unix milliseconds. payhook_claims holds one row per event being
// delivered (state 1, until: the end of its lease) or delivered (state 2,
// until: the end of the dedupe window); payhook_bindings one per weakly
// signed transmission; payhook_journal one per event of a callback (or per
// callback refused before any event), payhook_attempts one per delivery
// attempt.
var (
	sqliteMigrations = []string{`
		CREATE TABLE payhook_claims (
			key BLOB PRIMARY KEY,
			state INTEGER NOT NULL,
			owner TEXT NOT NULL,
			until INTEGER NOT NULL
		) WITHOUT ROWID;
		CREATE INDEX payhook_claims_until ON payhook_claims (until);
		CREATE TABLE payhook_bindings (
			key BLOB PRIMARY KEY,
			digest BLOB NOT NULL,
			until INTEGER NOT NULL
		) WITHOUT ROWID;
		CREATE INDEX payhook_bindings_until ON payhook_bindings (until);
		CREATE TABLE payhook_journal (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			at INTEGER NOT NULL,
			route TEXT NOT NULL,
			provider TEXT NOT NULL,
			outcome TEXT NOT NULL,
			reason TEXT NOT NULL,
			event_id TEXT NOT NULL,
			event_type TEXT NOT NULL,
			status TEXT NOT NULL,
			amount INTEGER,
			currency TEXT NOT NULL,
			merchant_ref TEXT NOT NULL,
			provider_ref TEXT NOT NULL,
			verified_by TEXT NOT NULL,
			client_ip TEXT NOT NULL
		);
		CREATE INDEX payhook_journal_at ON payhook_journal (at);
		CREATE INDEX payhook_journal_merchant_ref ON payhook_journal (merchant_ref) WHERE merchant_ref <> '';
		CREATE INDEX payhook_journal_provider_ref ON payhook_journal (provider_ref) WHERE provider_ref <> '';
		CREATE INDEX payhook_journal_event_id ON payhook_journal (event_id) WHERE event_id <> '';
		CREATE TABLE payhook_attempts (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			route TEXT NOT NULL,
			event_id TEXT NOT NULL,
			at INTEGER NOT NULL,
			status INTEGER NOT NULL,
			latency_us INTEGER NOT NULL,
			error TEXT NOT NULL
		);
		CREATE INDEX payhook_attempts_event ON payhook_attempts (event_id, route);
		CREATE INDEX payhook_attempts_at ON payhook_attempts (at);`,
		metaMigration,
		inboxMigration("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "INTEGER"),
		inboxReceiptMigration,
		journalHourlyMigration,
	}

	postgresMigrations = []string{`
		CREATE TABLE payhook_claims (
			key BYTEA PRIMARY KEY,
			state SMALLINT NOT NULL,
			owner TEXT NOT NULL,
			until BIGINT NOT NULL
		);
		CREATE INDEX payhook_claims_until ON payhook_claims (until);
		CREATE TABLE payhook_bindings (
			key BYTEA PRIMARY KEY,
			digest BYTEA NOT NULL,
			until BIGINT NOT NULL
		);
		CREATE INDEX payhook_bindings_until ON payhook_bindings (until);
		CREATE TABLE payhook_journal (
			seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			at BIGINT NOT NULL,
			route TEXT NOT NULL,
			provider TEXT NOT NULL,
			outcome TEXT NOT NULL,
			reason TEXT NOT NULL,
			event_id TEXT NOT NULL,
			event_type TEXT NOT NULL,
			status TEXT NOT NULL,
			amount BIGINT,
			currency TEXT NOT NULL,
			merchant_ref TEXT NOT NULL,
			provider_ref TEXT NOT NULL,
			verified_by TEXT NOT NULL,
			client_ip TEXT NOT NULL
		);
		CREATE INDEX payhook_journal_at ON payhook_journal (at);
		CREATE INDEX payhook_journal_merchant_ref ON payhook_journal (merchant_ref) WHERE merchant_ref <> '';
		CREATE INDEX payhook_journal_provider_ref ON payhook_journal (provider_ref) WHERE provider_ref <> '';
		CREATE INDEX payhook_journal_event_id ON payhook_journal (event_id) WHERE event_id <> '';
		CREATE TABLE payhook_attempts (
			seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			route TEXT NOT NULL,
			event_id TEXT NOT NULL,
			at BIGINT NOT NULL,
			status INTEGER NOT NULL,
			latency_us BIGINT NOT NULL,
			error TEXT NOT NULL
		);
		CREATE INDEX payhook_attempts_event ON payhook_attempts (event_id, route);
		CREATE INDEX payhook_attempts_at ON payhook_attempts (at);`,
		metaMigration,
		inboxMigration("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "SMALLINT"),
		inboxReceiptMigration,
		journalHourlyMigration,
	}
)

// metaMigration keeps facts about the database itself (what was imported
// into it), the same on both engines.
const metaMigration = `CREATE TABLE payhook_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);`

// inboxMigration is the inbox (inbox.go), the same on both engines but
// for the types of its key, its record and its small numbers. Its indexes:
// the due heads of a route (leases), a queue's pending events in order
// (its next head), an event by id, the done events by age (expiry).
func inboxMigration(key, blob, small string) string {
	return fmt.Sprintf(`
		CREATE TABLE payhook_inbox (
			seq %[1]s,
			route TEXT NOT NULL,
			queue TEXT NOT NULL,
			event_id TEXT NOT NULL,
			provider TEXT NOT NULL,
			event_type TEXT NOT NULL,
			state %[3]s NOT NULL,
			head %[3]s NOT NULL,
			received_at BIGINT NOT NULL,
			next_at BIGINT NOT NULL,
			done_at BIGINT NOT NULL,
			owner TEXT NOT NULL,
			last_at BIGINT NOT NULL,
			attempts INTEGER NOT NULL,
			refused %[3]s NOT NULL,
			last_error TEXT NOT NULL,
			replayed %[3]s NOT NULL,
			record %[2]s NOT NULL
		);
		CREATE INDEX payhook_inbox_due ON payhook_inbox (route, next_at, seq) WHERE state = 0 AND head = 1;
		CREATE INDEX payhook_inbox_queue ON payhook_inbox (route, queue, seq) WHERE state = 0;
		CREATE INDEX payhook_inbox_event ON payhook_inbox (event_id);
		CREATE INDEX payhook_inbox_done ON payhook_inbox (done_at) WHERE state <> 0;`, key, blob, small)
}

// inboxReceiptMigration keeps an event's receipt apart from its replay:
// received_at stays the time the callback arrived, replayed_at is the last
// replay (0: none), from which a replayed event's retry period runs; and
// merchant_ref is the shop's reference of the event, for the listing.
// A replay before it overwrote received_at: those rows keep that time as
// their replay, the only one known.
const inboxReceiptMigration = `
	ALTER TABLE payhook_inbox ADD COLUMN replayed_at BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE payhook_inbox ADD COLUMN merchant_ref TEXT NOT NULL DEFAULT '';
	UPDATE payhook_inbox SET replayed_at = received_at WHERE replayed <> 0;`

// journalHourlyMigration makes the journal's index on at cover the
// console's chart (Hourly: entries per hour, provider and outcome since a
// time): its count reads the index only, not the entries. The same on
// both engines.
const journalHourlyMigration = `
	DROP INDEX payhook_journal_at;
	CREATE INDEX payhook_journal_at ON payhook_journal (at, provider, outcome);`

// migrate brings the database's schema to the newest, in one transaction:
// lock (whatever the engine needs so that two processes opening one
// database at once migrate it once), read the version, apply the rest.
func (s *Store) migrate(ctx context.Context, lock string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("migrating the schema", err)
	}
	defer func() { _ = tx.Rollback() }()
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return unavailable("locking the schema", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS payhook_schema (version INTEGER NOT NULL)`); err != nil {
		return unavailable("migrating the schema", err)
	}
	version := 0
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM payhook_schema`).Scan(&version); err != nil {
		return unavailable("reading the schema version", err)
	}
	if version > len(s.dialect.migrations) {
		return fmt.Errorf("the database's schema is version %d, newer than this payhook knows (%d): run the newer payhook, or a database of its own", version, len(s.dialect.migrations))
	}
	for i := version; i < len(s.dialect.migrations); i++ {
		if _, err := tx.ExecContext(ctx, s.dialect.migrations[i]); err != nil {
			return fmt.Errorf("migrating the schema to version %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, s.dialect.q(`INSERT INTO payhook_schema (version) VALUES (?)`), i+1); err != nil {
			return unavailable("migrating the schema", err)
		}
	}
	return unavailable("migrating the schema", tx.Commit())
}
