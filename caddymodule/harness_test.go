package caddymodule

// The integration tests start real Caddy in-process with caddytest, in front
// of a real upstream (httptest.Server). They all live in this package, run
// sequentially (no t.Parallel: there is one Caddy), and need no -short:
// caddytest skips itself under -short, so TestMain refuses that.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // the processes the tests start as Caddy

	"github.com/payhook/payhook/verify"
)

const (
	testSecret         = "it-shared-secret-0123456789"
	testPreviousSecret = "it-previous-secret-9876543210"
)

// httpPorts gives each test its own HTTP port, kept across the reloads the
// test does itself. A reload shares the listener between the old and the
// new server, and Caddy returns from the load once the old server has begun
// its shutdown, not finished it: on a busy machine the old server could
// still accept the next test's first callback and drop it (seen as EOF or a
// connection reset). On its own port, a test only ever reaches its own
// configuration.
var httpPorts = struct {
	sync.Mutex
	byTest map[string]int
	next   int
}{byTest: map[string]int{}}

func httpPortFor(t *testing.T) int {
	httpPorts.Lock()
	defer httpPorts.Unlock()
	if port, ok := httpPorts.byTest[t.Name()]; ok {
		return port
	}
	port := 9100 + httpPorts.next%60 // 9100–9159: clear of the cluster test's ports
	httpPorts.next++
	httpPorts.byTest[t.Name()] = port
	return port
}

// runAsCaddy, set in its environment, makes the test binary run as Caddy
// (with the test-only modules, such as the storage on Redis) for the tests
// that start Caddy processes.
const runAsCaddy = "PAYHOOK_TEST_RUN_AS_CADDY"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCaddy) == "1" {
		caddycmd.Main()
		return
	}
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "caddymodule: the integration tests need real Caddy and would be skipped; run them without -short")
		os.Exit(1)
	}
	// Configurations that name no payhook store (Caddyfile.example, caddy
	// validate's tests) open the default one in Caddy's data directory:
	// the test process's own, never the developer's.
	data, err := os.MkdirTemp("", "payhook-test-data-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", data)
	code := m.Run()
	os.RemoveAll(data)
	os.Exit(code)
}

// received is one request the upstream got.
type received struct {
	Method           string
	RequestURI       string
	Header           http.Header
	Body             []byte
	ContentLength    int64
	TransferEncoding []string
	Status           int // what the shop answered
}

// taken returns the events (their ids, in order) the shop answered 2xx.
func taken(requests []received) []string {
	var ids []string
	for _, r := range requests {
		if r.Status >= 200 && r.Status < 300 {
			ids = append(ids, r.Header.Get("Payhook-Event-Id"))
		}
	}
	return ids
}

// upstream is the merchant's shop: it records what it receives and answers
// with a configurable status.
type upstream struct {
	*httptest.Server
	mu         sync.Mutex
	requests   []received
	status     int
	statusFunc func() int       // when set, decides each request's status instead
	statusBody func([]byte) int // when set, decides each request's status by its body
	truncate   bool             // answer status, then break the connection mid-body
	hold       chan struct{}    // when set, requests wait until it is closed
	answeredAt atomic.Int64     // when the shop first answered, in Unix nanoseconds
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{status: http.StatusOK}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, readErr := io.ReadAll(r.Body)
		u.mu.Lock()
		status, hold, truncate := u.status, u.hold, u.truncate
		if u.statusFunc != nil {
			status = u.statusFunc()
		}
		if u.statusBody != nil {
			status = u.statusBody(body)
		}
		if readErr != nil {
			// A request cut short (its sender died mid-body): a real shop
			// takes nothing from it.
			status = http.StatusBadRequest
		}
		u.requests = append(u.requests, received{r.Method, r.RequestURI, r.Header.Clone(), body, r.ContentLength, r.TransferEncoding, status})
		u.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if truncate {
			// The status line and half of the promised body, then the
			// connection closes.
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err == nil {
				fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nonly fifty bytes of the promised hundred...........", status, http.StatusText(status))
				_ = buf.Flush()
				_ = conn.Close()
			}
			u.answeredAt.CompareAndSwap(0, time.Now().UnixNano())
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "shop says hello") // never reaches the provider
		u.answeredAt.CompareAndSwap(0, time.Now().UnixNano())
	}))
	t.Cleanup(u.Close)
	return u
}

// holdRequests makes the shop keep every request until the returned
// function is called.
func (u *upstream) holdRequests() (release func()) {
	hold := make(chan struct{})
	u.mu.Lock()
	u.hold = hold
	u.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(hold) }) }
}

// breakAnswers makes the shop answer its status, then close the connection
// halfway through the body it promised.
func (u *upstream) breakAnswers() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.truncate = true
}

// setStatusFunc makes f decide the status of each request (called with the
// shop's lock held).
func (u *upstream) setStatusFunc(f func() int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.statusFunc = f
}

// setStatusByBody makes f decide the status of each request from its body.
func (u *upstream) setStatusByBody(f func(body []byte) int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.statusBody = f
}

func (u *upstream) setStatus(status int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status = status
}

func (u *upstream) received() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.requests...)
}

func (u *upstream) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.requests = nil
}

// env is one running Caddy configuration with its upstream and log file.
type env struct {
	t        *testing.T
	base     string // http://localhost:<the test's port>
	upstream *upstream
	logFile  string
	storage  string // Caddy's storage directory, one per test
	port     int    // the test's HTTP port
	store    string // the payhook store option; default: SQLite in storage
}

// payhookBlock is the default payhook configuration of the tests.
const payhookBlock = `payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			secret {env.PAYHOOK_TEST_PREVIOUS_SECRET}
			max_body 8KiB
		}`

// noDedupe turns deduplication off in a site body, for tests that send one
// event several times to check something else.
func noDedupe(site string) string {
	return strings.Replace(site, "max_body 8KiB", "max_body 8KiB\n\t\t\tdedupe off", 1)
}

// startCaddy loads a Caddyfile whose site block is siteBody, with
// {upstream} replaced by the upstream's address, and logs at DEBUG to a file.
func startCaddy(t *testing.T, siteBody string) *env {
	t.Helper()
	return startCaddyWith(t, "", siteBody)
}

// startCaddyWith is startCaddy with extra global options.
func startCaddyWith(t *testing.T, globals, siteBody string) *env {
	t.Helper()
	return startCaddyOn(t, t.TempDir(), globals, siteBody)
}

// startCaddyOn is startCaddyWith on a given storage directory.
func startCaddyOn(t *testing.T, storage, globals, siteBody string) *env {
	t.Helper()
	return startCaddyAt(t, storage, globals, "http://localhost:{port}", siteBody)
}

// startCaddyAt is startCaddyOn with a site address of its own, where
// {port} is the test's HTTP port.
func startCaddyAt(t *testing.T, storage, globals, siteAddress, siteBody string) *env {
	t.Helper()
	return startCaddySites(t, storage, globals, siteAddress+" {\n\t"+siteBody+"\n}\n", newUpstream(t))
}

// startCaddySites loads a Caddyfile of the given site blocks, where {port}
// is the test's HTTP port and {upstream} the upstream's address.
func startCaddySites(t *testing.T, storage, globals, sites string, up *upstream) *env {
	t.Helper()
	return startCaddyStore(t, storage, "", globals, sites, up)
}

// startCaddyStore is startCaddySites with a payhook store option of its
// own (postgres <dsn>); empty for SQLite in storage.
func startCaddyStore(t *testing.T, storage, storeLine, globals, sites string, up *upstream) *env {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_SECRET", testSecret)
	t.Setenv("PAYHOOK_TEST_PREVIOUS_SECRET", testPreviousSecret)
	port := httpPortFor(t)
	e := &env{t: t, base: fmt.Sprintf("http://localhost:%d", port), port: port, upstream: up, logFile: filepath.Join(t.TempDir(), "caddy.log"),
		storage: storage, store: storeLine}
	config := e.config(globals, sites)
	loaded := false
	defer func() {
		// caddytest skips, rather than fails, when it cannot start Caddy.
		if !loaded {
			t.Errorf("Caddy did not start; the integration test cannot pass")
		}
	}()
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	loaded = true
	// Stop the test's server before its directories go (cleanups run last
	// registered first): an inbox may still be recording a delivery the
	// test has already seen, and stopping waits for it.
	t.Cleanup(func() { stopCaddy(t) })
	return e
}

// config is the test's Caddyfile: the harness's global options, then
// globals (a grace_period of its own replaces the harness's), then sites.
func (e *env) config(globals, sites string) string {
	grace := "grace_period 1ns"
	if strings.Contains(globals, "grace_period") {
		grace = ""
	}
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port 9443
	%s
	skip_install_trust
	metrics
	storage file_system %s
	payhook {
		store %s
	}
	log {
		output file %s
		format json
		level DEBUG
	}
	%s
}

%s
`, e.port, grace, e.storage, cmp.Or(e.store, "sqlite "+e.database()), e.logFile, globals,
		strings.ReplaceAll(strings.ReplaceAll(sites, "{port}", strconv.Itoa(e.port)), "{upstream}", strings.TrimPrefix(e.upstream.URL, "http://")))
}

// reload loads a new configuration into the running Caddy, as caddy
// reload does: the same storage, store, port and upstream.
func (e *env) reload(globals, sites string) {
	e.t.Helper()
	caddytest.NewTester(e.t).InitServer(e.config(globals, sites), "caddyfile")
}

// database is the test's payhook database, in its storage directory.
func (e *env) database() string { return filepath.Join(e.storage, "payhook.db") }

// deliveryRecordsKeptFor reads how long each delivery record of the test's
// database is still kept.
// The records are written once the provider is answered: it waits until
// there are want of them (or 10 s passed).
func deliveryRecordsKeptFor(t *testing.T, e *env, want int) []time.Duration {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.database()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rows, err := db.Query(`SELECT until FROM payhook_claims WHERE state = 2`)
		if err != nil {
			t.Fatal(err)
		}
		var kept []time.Duration
		for rows.Next() {
			var until int64
			if err := rows.Scan(&until); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, time.Until(time.UnixMilli(until)))
		}
		rows.Close()
		if len(kept) >= want || time.Now().After(deadline) {
			return kept
		}
	}
}

// stopCaddy loads a configuration without apps into the running Caddy,
// which stops the test's server and waits for its handlers' cleanups.
func stopCaddy(t *testing.T) {
	resp, err := http.Post("http://localhost:2999/load", "application/json", strings.NewReader(`{"admin":{"listen":"localhost:2999"}}`))
	if err != nil {
		t.Errorf("stopping Caddy: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Errorf("stopping Caddy: %s %s", resp.Status, body)
	}
}

// defaultSite routes /callbacks/ixopay* through payhook to the upstream,
// passing payhook's placeholders on as headers.
const defaultSite = `route /callbacks/ixopay* {
		` + payhookBlock + `
		reverse_proxy {upstream} {
			header_up X-Payhook-Provider {http.vars.payhook.provider}
			header_up X-Payhook-Event-Id {http.vars.payhook.event_id}
			header_up X-Payhook-Status {http.vars.payhook.status}
		}
	}`

// callback is a request as IXOPAY would send it.
type callback struct {
	method      string
	uri         string
	contentType string
	date        string
	body        []byte
	secret      string
	header      http.Header // extra or overriding headers, applied after signing
	chunked     bool        // send without Content-Length
}

func ixopayCallback(body string) *callback {
	return &callback{
		method:      http.MethodPost,
		uri:         "/callbacks/ixopay",
		contentType: "application/json; charset=utf-8",
		date:        time.Now().UTC().Format(http.TimeFormat),
		body:        []byte(body),
		secret:      testSecret,
	}
}

const debitOK = `{"result":"OK","uuid":"d94c0d72f3a36e21f16e","merchantTransactionId":"order-1042","transactionType":"DEBIT","paymentMethod":"Creditcard","amount":"9.99","currency":"EUR","customer":{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.org"},"returnData":{"_TYPE":"cardData","cardHolder":"Ada Lovelace","lastFourDigits":"1111"}}`

// send signs and sends c to Caddy and returns the answer and its body.
func (e *env) send(c *callback) (*http.Response, string) {
	e.t.Helper()
	return e.do(e.callbackRequest(c))
}

// callbackRequest is the request send makes of c.
func (e *env) callbackRequest(c *callback) *http.Request {
	e.t.Helper()
	var body io.Reader = bytes.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(bytes.NewReader(c.body)) // unknown length: chunked
	}
	req, err := http.NewRequest(c.method, e.base+c.uri, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.date != "" {
		req.Header.Set("Date", c.date)
	}
	if c.secret != "" {
		req.Header.Set("X-Signature", verify.SignIXOPAY([]byte(c.secret), verify.IXOPAYSHA512, verify.IXOPAYMessage{
			Method: c.method, ContentType: c.contentType, Date: c.date, RequestURI: c.uri, Body: c.body,
		}))
	}
	for name, values := range c.header {
		req.Header[name] = values
	}
	return req
}

// testClient sends the tests' callbacks, each on a new connection. Caddy
// keeps its listener across config loads but closes the old server's idle
// connections, and a POST written onto such a connection just as it closes
// fails with EOF (Go does not retry a POST): a reused connection made the
// first callback of a test fail now and then under load.
var testClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (e *env) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	return e.doWith(testClient, req)
}

// doWith is do through client (another address, TLS).
func (e *env) doWith(client *http.Client, req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp, string(answer)
}

// logEntries returns payhook's log lines, waiting until there are at least n.
func (e *env) logEntries(n int) []map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var entries []map[string]any
		if f, err := os.Open(e.logFile); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var entry map[string]any
				if json.Unmarshal(sc.Bytes(), &entry) == nil && entry["logger"] == "http.handlers.payhook" {
					entries = append(entries, entry)
				}
			}
			f.Close()
		}
		if len(entries) >= n || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) rawLog() string {
	raw, _ := os.ReadFile(e.logFile)
	return string(raw)
}

// signMD5 signs c with IXOPAY's legacy MD5 body hash.
func signMD5(c *callback) string {
	return verify.SignIXOPAY([]byte(c.secret), verify.IXOPAYMD5, verify.IXOPAYMessage{
		Method: c.method, ContentType: c.contentType, Date: c.date, RequestURI: c.uri, Body: c.body,
	})
}

// fakeAPI is a provider's API (Payrexx here): it answers GET requests from
// a table of documents by path, and records what it was asked and how many
// connections were opened.
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	docs     map[string]apiAnswer // by URL path
	requests []*http.Request
	conns    int
	delay    time.Duration
}

type apiAnswer struct {
	status int
	body   string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{docs: map[string]apiAnswer{}}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		answer, ok := f.docs[r.URL.Path]
		delay := f.delay
		f.mu.Unlock()
		time.Sleep(delay)
		if !ok {
			answer = apiAnswer{http.StatusNotFound, `{"status":"error","message":"No Transaction found"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(answer.status)
		_, _ = io.WriteString(w, answer.body)
	}))
	f.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) set(path string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs[path] = apiAnswer{status, body}
}

func (f *fakeAPI) asked() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

func (f *fakeAPI) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// post sends a plain (unsigned) callback.
func (e *env) post(uri, contentType, body string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	return e.do(e.postRequest(uri, contentType, body, header))
}

// postUnread sends a callback whose body payhook refuses to read, and
// reads the answer while the body is still being written. Caddy answers,
// stops reading and closes the connection, so a client that first writes
// the whole body can hit a connection reset before it reads the answer;
// writing and reading at once, as a provider's HTTP client does, sees it.
func (e *env) postUnread(uri, contentType, body string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	req := e.postRequest(uri, contentType, body, header)
	conn, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _ = req.Write(conn) }() // fails once Caddy closes; the answer is what counts
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		e.t.Fatalf("%s %s: no answer: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp, string(answer)
}

func (e *env) postRequest(uri, contentType, body string, header http.Header) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+uri, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for name, values := range header {
		req.Header[name] = values
	}
	return req
}

// lookPHP finds php-cli, needed why; CI installs it (.ci/run), elsewhere
// the test is skipped without it.
func lookPHP(t *testing.T, why string) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("php is needed " + why)
		}
		t.Skip("php is not installed")
	}
	return php
}
