package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx"
)

// postgresConnections bounds one instance's connections.
const postgresConnections = 32

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
	// Connections are kept rather than opened per callback (database/sql
	// keeps 2 idle by default: 100 callbacks in a row opened 61), within a
	// bound that leaves PostgreSQL's default 100 connections to several
	// instances; beyond it, a statement waits for a free connection.
	db.SetMaxOpenConns(postgresConnections)
	db.SetMaxIdleConns(postgresConnections)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := newStore(db, postgresDialect, opts)
	if err := s.migrate(ctx, postgresSchemaLock); err != nil {
		db.Close()
		return nil, err
	}
	s.wake.notify = make(chan struct{}, 1)
	s.wake.done.Add(1)
	go s.notifier()
	return s, nil
}
