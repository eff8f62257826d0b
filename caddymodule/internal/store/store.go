// Package store keeps payhook's state in a database: the claims that make
// each event reach the shop once, the bindings of weakly signed
// transmissions to their bodies, and the journal of every callback. One
// implementation over database/sql serves two engines: SQLite embedded in
// the process (the default: no setup) and PostgreSQL (for a cluster: every
// instance on one database). Both run the same conformance tests.
//
// The store knows nothing of Caddy or of providers: its keys are opaque
// strings the caller derives (a route's scope and an event id), its times
// come from an injectable clock.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of the store.
var (
	// ErrUnavailable means the database did not answer or refused the
	// operation (disk full, read-only, a restarted server): the caller
	// answers "try again later".
	ErrUnavailable = errors.New("store unavailable")
	// ErrLeaseLost means a claim's lease ran out and another claimed the
	// event meanwhile: the outcome of this claim is no longer recorded.
	ErrLeaseLost = errors.New("claim lease lost")
)

// Options configure a store.
type Options struct {
	// Now is the store's clock. Default: time.Now.
	Now func() time.Time
}

// Store is payhook's state in one database.
type Store struct {
	db      *sql.DB
	dialect *dialect
	now     func() time.Time
	group   *groupWriter // SQLite's group commit; nil on PostgreSQL
	wake    wakers
}

func newStore(db *sql.DB, d *dialect, opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, dialect: d, now: now, wake: wakers{stop: make(chan struct{})}}
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.dialect.name }

// Close closes the database, once the writes under way are committed.
func (s *Store) Close() error {
	close(s.wake.stop)
	s.wake.done.Wait()
	if s.group != nil {
		s.group.close()
	}
	return s.db.Close()
}

// millis is t in Unix milliseconds, the store's unit of time.
func millis(t time.Time) int64 { return t.UnixMilli() }

// unavailable wraps a database error as ErrUnavailable, keeping the
// context's own errors recognisable.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

// newToken is a claim's owner: random, so that no two claims, in any
// process, share one.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dialect is what differs between the engines: the schema, and how a
// statement writes its parameters.
type dialect struct {
	name       string
	migrations []string
	// numbered is true where parameters are $1, $2, … (PostgreSQL), false
	// where they are ? (SQLite).
	numbered bool
}

// q writes a statement written with ? parameters in the dialect's form.
func (d *dialect) q(statement string) string {
	if !d.numbered {
		return statement
	}
	var b strings.Builder
	n := 0
	for _, r := range statement {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Meta reads a fact about the database (set by SetMeta).
func (s *Store) Meta(ctx context.Context, name string) (value string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, s.dialect.q(`SELECT value FROM payhook_meta WHERE name = ?`), name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable("reading the database's facts", err)
	}
	return value, true, nil
}

// SetMeta records a fact about the database.
func (s *Store) SetMeta(ctx context.Context, name, value string) error {
	return s.write(ctx, func(ctx context.Context, ex execer) error {
		_, err := ex.ExecContext(ctx, s.dialect.q(`INSERT INTO payhook_meta (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`), name, value)
		return unavailable("recording a fact of the database", err)
	})
}
