package store

import (
	"context"
	"os"
	"testing"

	"github.com/payhook/payhook/caddymodule/internal/pgtest"
)

// The conformance suite runs on a real PostgreSQL too: a database of each
// test's own on the server pgtest starts (and, outside CI, skips without).
func init() {
	postgresEngine = &engine{name: "postgres", open: func(t *testing.T, opts Options) (*Store, func(Options) *Store) {
		dsn := pgtest.Start(t)
		open := func(opts Options) *Store {
			s, err := OpenPostgres(context.Background(), dsn, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(opts), open
	}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
