package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	// database/sql's "sqlite": SQLite's C translated to Go (modernc.org's
	// ccgo), with SQLite's own unix VFS. Pure Go, no cgo: payhook builds
	// with a plain xcaddy build, no C toolchain.
	_ "modernc.org/sqlite"
)

var sqliteDialect = &dialect{name: "sqlite", migrations: sqliteMigrations}

// OpenSQLite opens (creating it if need be) the SQLite database at path:
// write-ahead logging, every commit synced to disk before it returns
// (synchronous=FULL: an acknowledged callback survives a power loss),
// writers that wait for each other rather than fail (busy_timeout 5 s, so
// that a callback is answered 503 in time when another process holds the
// lock; a
// transaction takes the write lock at its BEGIN IMMEDIATE, not halfway
// through), and foreign keys enforced.
func OpenSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_txlock=immediate" +
		"&_pragma=journal_mode(wal)&_pragma=synchronous(full)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(on)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %v", ErrUnavailable, path, err)
	}
	s := newStore(db, sqliteDialect, opts)
	if err := s.migrate(ctx, ""); err != nil {
		db.Close()
		return nil, err
	}
	s.group = newGroupWriter(db)
	return s, nil
}
