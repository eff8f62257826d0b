package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Entry is one line of the journal: what became of one event of a
// callback, or of a callback that brought none (refused before any event
// was read). It holds no secret and no payload: references, outcome and
// the facts an operator searches by.
type Entry struct {
	Seq        int64     // the journal's own order, set by the store
	At         time.Time // when the callback arrived
	Route      string    // the route's place (its scope)
	Provider   string
	Outcome    string // accepted, rejected, duplicate, queued, delivered, failed, …
	Reason     string // the reason code of a refusal or a failure
	EventID    string
	EventType  string
	Status     string // the canonical status
	Amount     *int64 // minor units, when the event has an amount
	Currency   string
	Merchant   string // the merchant reference
	Reference  string // the provider reference
	VerifiedBy string // how the callback was verified
	ClientIP   string
}

// Attempt is one delivery attempt of an event to the shop.
type Attempt struct {
	Route   string
	EventID string
	At      time.Time
	Status  int           // the shop's answer; 0 when it gave none
	Latency time.Duration // until the shop's answer
	Error   string
}

// Record appends entries to the journal, in one transaction.
func (s *Store) Record(ctx context.Context, entries ...Entry) error {
	return s.RecordBatch(ctx, entries, nil)
}

// RecordBatch appends entries and delivery attempts, in one transaction.
func (s *Store) RecordBatch(ctx context.Context, entries []Entry, attempts []Attempt) error {
	if len(entries) == 0 && len(attempts) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("recording in the journal", err)
	}
	defer func() { _ = tx.Rollback() }()
	insert := s.dialect.q(`INSERT INTO payhook_journal
		(at, route, provider, outcome, reason, event_id, event_type, status, amount, currency, merchant_ref, provider_ref, verified_by, client_ip)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	for _, e := range entries {
		var amount sql.NullInt64
		if e.Amount != nil {
			amount = sql.NullInt64{Int64: *e.Amount, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, insert, millis(e.At), text(e.Route), text(e.Provider), text(e.Outcome), text(e.Reason),
			text(e.EventID), text(e.EventType), text(e.Status), amount, text(e.Currency), text(e.Merchant), text(e.Reference),
			text(e.VerifiedBy), text(e.ClientIP)); err != nil {
			return unavailable("recording in the journal", err)
		}
	}
	for _, a := range attempts {
		if err := s.insertAttempt(ctx, tx, a); err != nil {
			return err
		}
	}
	return unavailable("recording in the journal", tx.Commit())
}

// insertAttempt appends a delivery attempt.
func (s *Store) insertAttempt(ctx context.Context, ex execer, a Attempt) error {
	_, err := ex.ExecContext(ctx, s.dialect.q(`INSERT INTO payhook_attempts (route, event_id, at, status, latency_us, error) VALUES (?, ?, ?, ?, ?, ?)`),
		text(a.Route), text(a.EventID), millis(a.At), a.Status, a.Latency.Microseconds(), text(a.Error))
	return unavailable("recording a delivery attempt", err)
}

// maxText bounds each text of the journal: references and reasons are
// short; a provider's field that is not is cut.
const maxText = 512

// text makes s fit any engine's text column: valid UTF-8 without NUL (which
// PostgreSQL's text cannot hold), at most maxText bytes. Provider fields
// (references) come from the callback: a NUL or a broken byte in one must
// not lose the journal's batch.
func text(s string) string {
	if len(s) > maxText {
		s = s[:maxText]
	}
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// RecordAttempt appends a delivery attempt.
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	return s.RecordBatch(ctx, nil, []Attempt{a})
}

// Attempts lists an event's delivery attempts, oldest first.
func (s *Store) Attempts(ctx context.Context, route, eventID string) ([]Attempt, error) {
	rows, err := s.db.QueryContext(ctx, s.dialect.q(`SELECT at, status, latency_us, error FROM payhook_attempts
		WHERE route = ? AND event_id = ? ORDER BY seq`), text(route), text(eventID))
	if err != nil {
		return nil, unavailable("reading delivery attempts", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		a := Attempt{Route: route, EventID: eventID}
		var at, latency int64
		if err := rows.Scan(&at, &a.Status, &latency, &a.Error); err != nil {
			return nil, unavailable("reading delivery attempts", err)
		}
		a.At, a.Latency = time.UnixMilli(at).UTC(), time.Duration(latency)*time.Microsecond
		out = append(out, a)
	}
	return out, unavailable("reading delivery attempts", rows.Err())
}

// Query selects journal entries. Empty fields select everything.
type Query struct {
	// Ref matches a merchant reference, a provider reference or an event
	// id, exactly.
	Ref      string
	Provider string
	Route    string
	Outcome  string
	Since    time.Time // at or after
	Until    time.Time // before
	// Before pages: only entries older than the entry of this sequence
	// number (the last Seq of the previous page).
	Before int64
	// Limit bounds the answer. Default 100, at most 1000.
	Limit int
}

// Search returns the entries q selects, newest first.
func (s *Store) Search(ctx context.Context, q Query) ([]Entry, error) {
	var where []string
	var args []any
	add := func(clause string, values ...any) {
		where = append(where, clause)
		args = append(args, values...)
	}
	if q.Ref != "" {
		// Three indexed look-ups, not one scan. The indexes are partial
		// (no empty references): each look-up repeats their condition, or
		// SQLite, which cannot tell that col = ? implies it, scans the
		// table (620 ms at a million rows, against well under 1 ms).
		add(`seq IN (SELECT seq FROM payhook_journal WHERE merchant_ref = ? AND merchant_ref <> ''
			UNION SELECT seq FROM payhook_journal WHERE provider_ref = ? AND provider_ref <> ''
			UNION SELECT seq FROM payhook_journal WHERE event_id = ? AND event_id <> '')`, text(q.Ref), text(q.Ref), text(q.Ref))
	}
	for _, f := range []struct{ column, value string }{{"provider", q.Provider}, {"route", q.Route}, {"outcome", q.Outcome}} {
		if f.value != "" {
			add(f.column+" = ?", text(f.value))
		}
	}
	if !q.Since.IsZero() {
		add("at >= ?", millis(q.Since))
	}
	if !q.Until.IsZero() {
		add("at < ?", millis(q.Until))
	}
	if q.Before > 0 {
		add("seq < ?", q.Before)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	statement := `SELECT seq, at, route, provider, outcome, reason, event_id, event_type, status, amount, currency,
		merchant_ref, provider_ref, verified_by, client_ip FROM payhook_journal`
	if len(where) > 0 {
		statement += " WHERE " + strings.Join(where, " AND ")
	}
	statement += fmt.Sprintf(" ORDER BY seq DESC LIMIT %d", limit)
	rows, err := s.db.QueryContext(ctx, s.dialect.q(statement), args...)
	if err != nil {
		return nil, unavailable("searching the journal", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		var amount sql.NullInt64
		if err := rows.Scan(&e.Seq, &at, &e.Route, &e.Provider, &e.Outcome, &e.Reason, &e.EventID, &e.EventType, &e.Status,
			&amount, &e.Currency, &e.Merchant, &e.Reference, &e.VerifiedBy, &e.ClientIP); err != nil {
			return nil, unavailable("searching the journal", err)
		}
		e.At = time.UnixMilli(at).UTC()
		if amount.Valid {
			e.Amount = &amount.Int64
		}
		out = append(out, e)
	}
	return out, unavailable("searching the journal", rows.Err())
}

// Expired counts what Expire deleted.
type Expired struct {
	Claims, Bindings, Journal, Attempts int64
}

// expireBatch bounds the rows one statement of Expire deletes, so that a
// large expiry never holds the database for long.
const expireBatch = 5000

// Expire deletes the claims and bindings whose time ran out (a released
// lease, a record past its window) and the journal's entries and attempts
// older than journalKeep, in batches.
func (s *Store) Expire(ctx context.Context, journalKeep time.Duration) (Expired, error) {
	now := s.now()
	var out Expired
	for _, step := range []struct {
		table, column string
		before        int64
		count         *int64
	}{
		{"payhook_claims", "until", millis(now), &out.Claims},
		{"payhook_bindings", "until", millis(now), &out.Bindings},
		{"payhook_journal", "at", millis(now.Add(-journalKeep)), &out.Journal},
		{"payhook_attempts", "at", millis(now.Add(-journalKeep)), &out.Attempts},
	} {
		for {
			// The primary key (or rowid) of a batch of expired rows, then
			// those rows: portable, and bounded.
			key := "key"
			if step.table == "payhook_journal" || step.table == "payhook_attempts" {
				key = "seq"
			}
			res, err := s.db.ExecContext(ctx, s.dialect.q(fmt.Sprintf(`DELETE FROM %[1]s WHERE %[2]s IN
				(SELECT %[2]s FROM %[1]s WHERE %[3]s <= ? LIMIT %[4]d)`, step.table, key, step.column, expireBatch)), step.before)
			if err != nil {
				return out, unavailable("expiring "+step.table, err)
			}
			n, _ := res.RowsAffected()
			*step.count += n
			if n < expireBatch {
				break
			}
		}
	}
	return out, nil
}

// HourCount is how many callbacks of one provider had one outcome in one
// hour.
type HourCount struct {
	Hour     time.Time // the hour's start
	Provider string
	Outcome  string
	Count    int64
}

// Hourly counts the journal's entries since since, per hour, provider and
// outcome, oldest hour first: what the console's chart draws. It reads the
// index on (at, provider, outcome) over the time range only, never the
// whole journal nor its entries.
func (s *Store) Hourly(ctx context.Context, since time.Time) ([]HourCount, error) {
	const hour = int64(time.Hour / time.Millisecond)
	rows, err := s.db.QueryContext(ctx, s.dialect.q(fmt.Sprintf(`SELECT at / %d, provider, outcome, COUNT(*) FROM payhook_journal
		WHERE at >= ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, hour)), millis(since))
	if err != nil {
		return nil, unavailable("counting the journal", err)
	}
	defer rows.Close()
	var out []HourCount
	for rows.Next() {
		var c HourCount
		var h int64
		if err := rows.Scan(&h, &c.Provider, &c.Outcome, &c.Count); err != nil {
			return nil, unavailable("counting the journal", err)
		}
		c.Hour = time.UnixMilli(h * hour).UTC()
		out = append(out, c)
	}
	return out, unavailable("counting the journal", rows.Err())
}
