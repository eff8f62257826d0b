// Package pgtest gives tests a real PostgreSQL server: one per test
// process, started on first use from the binaries of Debian's postgresql
// package, and a fresh database for every test that asks.
//
// The server is the child of a small shell supervisor whose standard input
// is a pipe held open by the test process. When the test process ends,
// however it ends (its tests done, a panic, the -timeout of go test,
// SIGKILL), the kernel closes that pipe; the supervisor reads end of file,
// stops the server (immediate shutdown: nothing in it is kept), reaps it and
// removes its directory. So callers need no TestMain and the server never
// outlives the tests. The supervisor runs in a process group of its own, so
// a Ctrl-C in the terminal reaches the tests and not the supervisor half-way
// through its cleanup. A TestMain may call Stop after m.Run to have the
// server gone before the process exits rather than a moment after.
//
// A parent-death signal (Pdeathsig) would be simpler to set but is the
// wrong tool in Go: Linux sends it when the thread that started the child
// ends, and the Go runtime ends threads while the process runs on. pg_ctl
// start is not used either: it leaves the server to init, which reaps it
// whenever it gets round to it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the cluster's superuser, who owns every test database. The
// cluster trusts every connection: it listens on 127.0.0.1 only, and lives
// as long as the tests.
const superuser = "postgres"

// supervisor runs the server of the cluster in $1 (data/, log) with the
// binaries in $2. A watcher stops it with SIGQUIT (immediate shutdown) when
// the test process's end of stdin closes. Once the server has ended, the
// supervisor removes $1 if the test process marked the server ready
// ($1/ready), else leaves it for the test process to read the log.
const supervisor = `
root=$1 bin=$2
exec 3<&0 2>>"$root/log"
"$bin/postgres" -D "$root/data" </dev/null >&2 3<&- &
server=$!
{ cat <&3 >/dev/null; kill -QUIT $server; } &
wait $server
[ -e "$root/ready" ] || exit 1
wait
rm -rf "$root"
`

// server is the test process's PostgreSQL server.
type server struct {
	bin     string // the directory of initdb and postgres
	port    int
	startup time.Duration  // how long initdb and the start took
	root    string         // the cluster's directory: data/ and log
	release io.WriteCloser // the end of the supervisor's stdin; closing it stops the server
	ended   chan struct{}  // closed when the supervisor has ended

	mu    sync.Mutex // guards admin: a pgx.Conn serves one query at a time
	admin *pgx.Conn  // to the postgres database: creates and drops the test databases
}

// errUnavailable marks what the machine lacks (the binaries, a user to run
// them as) as opposed to a failure to start what is there.
var errUnavailable = errors.New("pgtest: PostgreSQL cannot run here")

var (
	started sync.Mutex // guards running
	running *server    // the server once started, nil after Stop
	start   = sync.OnceValues(func() (*server, error) {
		s, err := newServer()
		started.Lock()
		defer started.Unlock()
		running = s
		return s, err
	})
)

// Start returns the DSN of a new, empty database on the test process's
// PostgreSQL server, starting the server on first use, and drops the
// database when tb ends (closing any connection still open to it). The DSN
// is a libpq URL, postgres://postgres@127.0.0.1:PORT/t_…?sslmode=disable,
// which github.com/jackc/pgx/v5 and database/sql drivers accept.
//
// When PostgreSQL is not installed (Debian's postgresql package, found
// under /usr/lib/postgresql/<major>/bin, else initdb and postgres on
// PATH), or the tests run as root and there is no postgres user to run
// it as, Start skips tb, or fails it when the environment variable CI is
// set: CI must never skip the database tests in silence.
func Start(tb testing.TB) (dsn string) {
	tb.Helper()
	s, err := start()
	if errors.Is(err, errUnavailable) {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%v (CI is set: .ci/run installs Debian's postgresql package)", err)
		}
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	random := make([]byte, 8)
	rand.Read(random)
	name := "t_" + hex.EncodeToString(random)
	if err := s.run("CREATE DATABASE " + name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// FORCE closes the connections the test left open.
		if err := s.run("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: dropping the test's database: %v", err)
		}
	})
	tb.Logf("pgtest: database %s on PostgreSQL %s at 127.0.0.1:%d (the server started in %v)", name, s.bin, s.port, s.startup)
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, name)
}

// Exec runs a statement as the server's superuser, on its postgres
// database: for a test that breaks its database's connections on purpose
// (ALTER DATABASE … ALLOW_CONNECTIONS false, pg_terminate_backend).
func Exec(tb testing.TB, statement string) {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.run(statement); err != nil {
		tb.Fatalf("pgtest: %s: %v", statement, err)
	}
}

// Stop stops the server, if one was started, and waits until it is gone
// and its directory removed. A TestMain may call it after m.Run; without
// it, the server stops a moment after the test process ends.
func Stop() {
	started.Lock()
	defer started.Unlock()
	if running != nil {
		running.stop()
		running = nil
	}
}

func (s *server) run(sql string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return errors.New("pgtest: the server was stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

func (s *server) stop() {
	s.mu.Lock()
	if s.admin != nil {
		_ = s.admin.Close(context.Background())
		s.admin = nil
	}
	s.mu.Unlock()
	_ = s.release.Close()
	<-s.ended
}

// newServer creates a cluster in a new temporary directory and starts its
// server on a free port of 127.0.0.1, with no Unix socket (nothing to
// share with a system cluster in /var/run/postgresql).
func newServer() (*server, error) {
	bin, err := binaries()
	if err != nil {
		return nil, err
	}
	owner, err := clusterOwner()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "payhook-pgtest-")
	if err != nil {
		return nil, err
	}
	if owner != nil {
		// The directory must also be reachable by that user: a TMPDIR
		// under /root is not, and initdb says so.
		if err := os.Chown(root, int(owner.Uid), int(owner.Gid)); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
	}
	s, err := startCluster(bin, root, owner)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return s, nil
}

func startCluster(bin, root string, owner *syscall.Credential) (*server, error) {
	began := time.Now()
	data := filepath.Join(root, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "--pgdata="+data, "--username="+superuser,
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: owner}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: %s: %v\n%s", initdb, err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// fsync and synchronous_commit stay as they are by default: tests
	// measure durability on this server.
	conf := fmt.Sprintf("\n# pgtest\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nmax_connections = 200\n", port)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, err
	}

	cmd := exec.Command("/bin/sh", "-c", supervisor, "pgtest-supervisor", root, bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner, Setpgid: true}
	release, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{bin: bin, port: port, root: root, release: release, ended: make(chan struct{})}
	go func() { cmd.Wait(); close(s.ended) }()
	if s.admin, err = s.connect(); err != nil {
		release.Close()
		<-s.ended
		log, _ := os.ReadFile(filepath.Join(root, "log"))
		return nil, fmt.Errorf("pgtest: the PostgreSQL server (%s) did not start: %v\n%s", bin, err, log)
	}
	if err := os.WriteFile(filepath.Join(root, "ready"), nil, 0o644); err != nil {
		s.stop()
		return nil, err
	}
	s.startup = time.Since(began).Round(time.Millisecond)
	return s, nil
}

// connect connects to the postgres database once the server accepts
// connections, waiting for at most a minute, as pg_ctl start does.
func (s *server) connect() (*pgx.Conn, error) {
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", superuser, s.port)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		cancel()
		if err == nil {
			return conn, nil
		}
		select {
		case <-s.ended:
			return nil, errors.New("it exited")
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, err
		}
	}
}

// binaries returns the directory of initdb and postgres: the newest major
// version of Debian's packages, else the one on PATH (other systems).
func binaries() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	newest, newestMajor := "", 0
	for _, postgres := range found {
		bin := filepath.Dir(postgres)
		if major, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin))); major > newestMajor {
			newest, newestMajor = bin, major
		}
	}
	if newest != "" {
		return newest, nil
	}
	if path, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", fmt.Errorf("%w: it is not installed (no /usr/lib/postgresql/*/bin/postgres, no postgres on PATH; apt-get install postgresql)", errUnavailable)
}

// clusterOwner returns who runs initdb and the server: nil for the test
// process's own user, the postgres user when that is root, which
// PostgreSQL refuses to run as (Debian's package creates that user).
func clusterOwner() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: the tests run as root, which PostgreSQL refuses, and there is no postgres user to run it as: %v", errUnavailable, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	// No supplementary groups: root's are not the postgres user's.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(name, text string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
