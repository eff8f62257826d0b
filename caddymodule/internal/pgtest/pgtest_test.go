package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestMain stops the server before the process exits, so that nothing of
// it is left when go test returns (without Stop it goes a moment later).
func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// connect opens a connection to a new database of Start's.
func connect(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	dsn := Start(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, dsn
}

// queryString runs a query of one text value.
func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var value string
	if err := conn.QueryRow(context.Background(), sql).Scan(&value); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return value
}

// The server answers on the DSN, with the settings the tests rely on, and
// every test gets a database of its own, which is dropped after it.
func TestStart(t *testing.T) {
	parent := t
	// The test's own database, first: where PostgreSQL is missing, this
	// skips the whole test (or fails it on CI).
	own, _ := connect(t)
	var databases []string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			conn, dsn := connect(t)
			var one int
			if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1 = %d, %v (%s)", one, err, dsn)
			}
			// The tests measure durability: the server must sync its writes.
			for setting, want := range map[string]string{"fsync": "on", "synchronous_commit": "on", "max_connections": "200", "listen_addresses": "127.0.0.1"} {
				if got := queryString(t, conn, "SHOW "+setting); got != want {
					t.Errorf("SHOW %s = %q, want %q", setting, got, want)
				}
			}
			// The same table in each test's database: they do not share one.
			if _, err := conn.Exec(context.Background(), "CREATE TABLE events (id text PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			databases = append(databases, queryString(t, conn, "SELECT current_database()"))
			// A connection the test leaves open does not keep its database.
			leftOpen, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			parent.Cleanup(func() { leftOpen.Close(context.Background()) })
		})
	}
	if len(databases) != 2 || databases[0] == databases[1] {
		t.Fatalf("the two tests had the databases %q, want two different ones", databases)
	}
	// Their cleanups have run: both databases are gone.
	var left int
	if err := own.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", databases).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the databases %q are still there after their tests", left, databases)
	}
}
