package store

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx"
)

var postgresDialect = &dialect{name: "postgres", migrations: postgresMigrations, numbered: true}

// postgresSchemaLock is the advisory lock two instances take to migrate one
// database once: a number of payhook's own.
const postgresSchemaLock = `SELECT pg_advisory_xact_lock(7212024001)`

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL or key=value string) and brings its schema up to date.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s := newStore(db, postgresDialect, opts)
	if err := s.migrate(ctx, postgresSchemaLock); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
