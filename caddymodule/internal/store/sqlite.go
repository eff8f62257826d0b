package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql's "sqlite3": SQLite translated to Go (wasm2go), no cgo
)

var sqliteDialect = &dialect{name: "sqlite", migrations: sqliteMigrations}

// OpenSQLite opens (creating it if need be) the SQLite database at path:
// write-ahead logging, every commit synced to disk before it returns
// (synchronous=FULL: an acknowledged callback survives a power loss), and
// writers that wait for each other rather than fail.
func OpenSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_txlock=immediate" +
		"&_pragma=journal_mode(wal)&_pragma=synchronous(full)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(on)"
	db, err := sql.Open("sqlite3", dsn)
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
