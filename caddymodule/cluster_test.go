package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/payhook/payhook/caddymodule/internal/pgtest"
	"github.com/payhook/payhook/verify"
)

// buildCaddy builds caddymodule/cmd/caddy (Caddy with payhook) once per test run.
var buildCaddy = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "payhook-caddy-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
})

// caddyProcess is Caddy with payhook running as its own process.
type caddyProcess struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on
	log  string
}

// clusterPort is the HTTP port of every instance of the cluster tests. The
// instances of a cluster run one configuration, and a route's scope
// derives from it, ports included: on one machine, each instance listens
// on the same port at a loopback address of its own (instancePort picks
// it), as instances on machines of their own would.
const clusterPort = 9180

// instanceAddr is the loopback address of the instance the tests number
// instance (9181, 9182, …: one per instance, reused by its restart).
func instanceAddr(instance int) string {
	return fmt.Sprintf("127.0.0.%d:%d", instance%250, clusterPort)
}

// startCaddyProcess runs instance (admin on adminPort) of a cluster whose
// instances route IXOPAY callbacks to upstream, with storage in
// storageDir.
func startCaddyProcess(t *testing.T, storageDir string, instance, adminPort int, upstreamURL string) *caddyProcess {
	t.Helper()
	return startCaddyProcessWith(t, storageDir, instance, adminPort, upstreamURL, "")
}

// clusterStores is the payhook store of each test's cluster, by test: its
// instances share one database.
var clusterStores sync.Map

// clusterStore names the payhook store the instances of t's cluster share:
// SQLite in storageDir; the test sets PostgreSQL with useClusterStore.
func clusterStore(t *testing.T, storageDir string) string {
	if line, ok := clusterStores.Load(t.Name()); ok {
		return line.(string)
	}
	line := "sqlite " + filepath.Join(storageDir, "payhook.db")
	clusterStores.Store(t.Name(), line)
	t.Cleanup(func() { clusterStores.Delete(t.Name()) })
	return line
}

// useClusterStore makes the instances of t's cluster share the store line.
func useClusterStore(t *testing.T, line string) {
	clusterStores.Store(t.Name(), line)
	t.Cleanup(func() { clusterStores.Delete(t.Name()) })
}

// startCaddyProcessWith is startCaddyProcess with more options in the
// payhook block.
func startCaddyProcessWith(t *testing.T, storageDir string, instance, adminPort int, upstreamURL, options string) *caddyProcess {
	t.Helper()
	storage := "file_system " + storageDir
	storeLine := clusterStore(t, storageDir)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	addr := instanceAddr(instance)
	host, _, _ := net.SplitHostPort(addr)
	config := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	default_bind %s
	storage %s
	payhook {
		store %s
	}
	skip_install_trust
	log {
		output file %s
		format json
	}
}
http://localhost:%d {
	route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			%s
		}
		reverse_proxy %s
	}
}
`, adminPort, clusterPort, host, storage, storeLine, logFile, clusterPort, options, strings.TrimPrefix(upstreamURL, "http://"))
	return runCaddyProcess(t, dir, config, addr, logFile, "PAYHOOK_TEST_SECRET="+testSecret)
}

// runCaddyProcess runs Caddy with the Caddyfile config (kept in dir) and the
// extra environment, and waits until it listens on addr.
func runCaddyProcess(t *testing.T, dir, config, addr, logFile string, environment ...string) *caddyProcess {
	t.Helper()
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", configFile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), append(environment, "HOME="+dir)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, addr: addr, log: logFile}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(logFile)
			t.Fatalf("Caddy on %s did not start:\n%s", addr, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill kills Caddy at once (SIGKILL): nothing of it runs after.
func (p *caddyProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// stop stops Caddy gracefully, as a service manager would.
func (p *caddyProcess) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// send signs and posts an IXOPAY callback to this Caddy.
func (p *caddyProcess) send(t *testing.T, body string) (int, string) {
	status, answer, err := p.trySend(body)
	if err != nil {
		t.Errorf("%s: %v", p.addr, err)
	}
	return status, answer
}

// trySend is send for a Caddy that may be gone: the error is the caller's.
func (p *caddyProcess) trySend(body string) (int, string, error) {
	c := ixopayCallback(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+c.uri, strings.NewReader(body))
	req.Host = fmt.Sprintf("localhost:%d", clusterPort)
	req.Header.Set("Content-Type", c.contentType)
	req.Header.Set("Date", c.date)
	req.Header.Set("X-Signature", verify.SignIXOPAY([]byte(testSecret), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: c.method, ContentType: c.contentType, Date: c.date, RequestURI: c.uri, Body: c.body,
	}))
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, string(buf[:n]), nil
}

// Two Caddy instances sharing one storage never both forward the same
// event, and a restarted instance still knows what was delivered.
func TestTwoInstancesShareDedupe(t *testing.T) {
	storage := t.TempDir()
	twoInstancesShareDedupe(t, storage)
	if locks, _ := filepath.Glob(filepath.Join(storage, "locks", "payhook*")); len(locks) != 0 {
		t.Errorf("locks left behind: %v", locks)
	}
}

// The same with the instances on one PostgreSQL database, as a cluster of
// machines runs.
func TestTwoInstancesShareDedupeOnPostgres(t *testing.T) {
	useClusterStore(t, "postgres "+pgtest.Start(t))
	twoInstancesShareDedupe(t, t.TempDir())
}

func twoInstancesShareDedupe(t *testing.T, storage string) {
	shop := newUpstream(t)
	a := startCaddyProcess(t, storage, 9181, 2991, shop.URL)
	b := startCaddyProcess(t, storage, 9182, 2992, shop.URL)

	release := shop.holdRequests()
	go func() { time.Sleep(500 * time.Millisecond); release() }()
	var wg sync.WaitGroup
	var oks, others atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			instance := a
			if i%2 == 1 {
				instance = b
			}
			status, body := instance.send(t, debitOK)
			if status == http.StatusOK && body == "OK" {
				oks.Add(1)
			} else {
				others.Add(1)
				t.Logf("copy %d: %d %q", i, status, body)
			}
		}()
	}
	wg.Wait()
	if n := len(shop.received()); n != 1 {
		t.Fatalf("the shop received %d copies from two instances, want exactly 1", n)
	}
	if oks.Load() != 16 {
		t.Errorf("%d of 16 copies heard OK (%d others)", oks.Load(), others.Load())
	}

	// Restart instance a: a new process, the same storage.
	a.stop()
	a = startCaddyProcess(t, storage, 9181, 2991, shop.URL)
	shop.reset()
	if status, body := a.send(t, debitOK); status != http.StatusOK || body != "OK" {
		t.Errorf("after a restart: %d %q", status, body)
	}
	if n := len(shop.received()); n != 0 {
		t.Errorf("after a restart the event was forwarded again")
	}
	// Nothing is left locked once both stop (the callers check).
	a.stop()
	b.stop()
}
