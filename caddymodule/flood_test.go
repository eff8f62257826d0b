package caddymodule

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileBody is a kind of hostile callback and how to make one of n bytes.
type hostileBody struct {
	name        string
	contentType string
	make        func(n int) []byte
	chunked     bool // sent chunked, slowly
}

func repeatTo(unit string, n int) []byte {
	return bytes.Repeat([]byte(unit), n/len(unit))
}

var hostileBodies = []hostileBody{
	{"deep JSON", "application/json", func(n int) []byte { return repeatTo("[", n) }, false},
	{"deep JSON object", "application/json", func(n int) []byte { return repeatTo(`{"a":`, n) }, false},
	{"deep PHP form key", "application/x-www-form-urlencoded", func(n int) []byte { return append([]byte("transaction"), repeatTo("[b]", n-20)...) }, false},
	{"wide PHP form", "application/x-www-form-urlencoded", func(n int) []byte { return repeatTo("a[]=&", n) }, false},
	{"PHP form of deep pairs", "application/x-www-form-urlencoded", func(n int) []byte { return repeatTo("p[]"+strings.Repeat("[q]", 62)+"=v&", n) }, false},
	{"slow chunked deep JSON", "application/json", func(n int) []byte { return repeatTo("[", n) }, true},
}

// floodSite is a Caddyfile for a Payrexx route (its bodies are parsed
// before the API is asked) at the default max_body, and one at 64 MiB.
func floodSite(httpPort, adminPort int, logFile, apiURL, shopURL string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	log {
		output file %s
		format json
	}
}
http://localhost:%d {
	route /callbacks/payrexx* {
		payhook payrexx {
			instance myshop
			api_key {env.PAYHOOK_TEST_PAYREXX_KEY}
			api_base %s
		}
		reverse_proxy %s
	}
	route /big/payrexx* {
		payhook payrexx {
			instance myshop
			api_key {env.PAYHOOK_TEST_PAYREXX_KEY}
			api_base %s
			max_body 64MiB
		}
		reverse_proxy %s
	}
}
`, adminPort, httpPort, logFile, httpPort, apiURL, shopURL, apiURL, shopURL)
}

// TestHostileFloodThroughACaddyProcess sends 64 hostile bodies of the
// default max_body at once (deep JSON, deep and wide PHP forms, slow
// chunked bodies) to a real Caddy process, then bodies of 64 MiB to a
// route that allows them. Every one must get a 4xx, Caddy's peak resident
// memory must grow by less than 256 MiB, and the process must live on and
// serve a genuine callback. Before the hardening, one 8 MiB body of '['
// killed the process with a stack overflow.
func TestHostileFloodThroughACaddyProcess(t *testing.T) {
	api := newFakeAPI(t)
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	shop := newUpstream(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	const httpPort, adminPort = 9185, 2995
	p := runCaddyProcess(t, dir, floodSite(httpPort, adminPort, logFile, api.URL, strings.TrimPrefix(shop.URL, "http://")),
		fmt.Sprintf("localhost:%d", httpPort), logFile, "PAYHOOK_TEST_PAYREXX_KEY="+payrexxAPIKey)
	base := fmt.Sprintf("http://localhost:%d", httpPort)

	// Warm up (the first requests set up pools and the API client).
	for range 3 {
		if status := postHostile(t, base+"/callbacks/payrexx", formType, []byte(payrexxForm), false); status != http.StatusOK {
			t.Fatalf("a genuine webhook before the flood: %d", status)
		}
	}
	before := procStatus(t, p, "VmRSS")

	const concurrent = 64
	statuses := make([]int, concurrent)
	var wg sync.WaitGroup
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := hostileBodies[i%len(hostileBodies)]
			statuses[i] = postHostile(t, base+"/callbacks/payrexx", kind.contentType, kind.make(DefaultMaxBody), kind.chunked)
		}()
	}
	wg.Wait()
	peak := procStatus(t, p, "VmHWM")
	for i, status := range statuses {
		if status < 400 || status >= 500 {
			t.Errorf("%s: answered %d, want a 4xx", hostileBodies[i%len(hostileBodies)].name, status)
		}
	}
	growth := peak - before
	t.Logf("%d hostile bodies of %d bytes at once: resident memory %d MiB before, peak %d MiB (growth %d MiB)",
		concurrent, DefaultMaxBody, before>>20, peak>>20, growth>>20)
	if growth >= 256<<20 {
		t.Errorf("peak resident memory grew by %d MiB, want under 256 MiB", growth>>20)
	}

	// 64 MiB bodies, where the route allows them: refused, and Caddy lives.
	for _, kind := range hostileBodies {
		status := postHostile(t, base+"/big/payrexx", kind.contentType, kind.make(64<<20), kind.chunked)
		if status < 400 || status >= 500 {
			t.Errorf("64 MiB %s: answered %d, want a 4xx", kind.name, status)
		}
	}
	if p.cmd.ProcessState != nil {
		t.Fatalf("Caddy exited: %v", p.cmd.ProcessState)
	}
	if status := postHostile(t, base+"/callbacks/payrexx", formType, []byte(payrexxForm), false); status != http.StatusOK {
		t.Errorf("a genuine webhook after the flood: %d", status)
	}
	t.Logf("after the 64 MiB bodies: peak resident memory %d MiB", procStatus(t, p, "VmHWM")>>20)
}

// postHostile sends body and returns the status of the answer. A chunked
// body is sent in 64 KiB chunks with a pause between them, as a slow sender
// would; the answer may come before the body is all sent.
func postHostile(t *testing.T, url, contentType string, body []byte, chunked bool) int {
	t.Helper()
	var reader io.Reader = bytes.NewReader(body)
	if chunked {
		reader = &slowReader{data: body, chunk: 64 << 10, pause: 2 * time.Millisecond}
	}
	req, err := http.NewRequest(http.MethodPost, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if chunked {
		req.ContentLength = -1
	}
	// Write and read at once: Caddy may answer and close before it has read
	// the whole body.
	conn, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	go func() { _ = req.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Errorf("%s: no answer: %v", url, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// slowReader hands out data a chunk at a time, pausing before each.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// procStatus reads a memory figure of the Caddy process, in bytes, from
// /proc/<pid>/status (VmRSS: resident now; VmHWM: the peak resident).
func procStatus(t *testing.T, p *caddyProcess, field string) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc to measure memory: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}

// TestStalledSendersHoldLittle opens many connections to a real Caddy
// process that each declare a body of max_body, send 100 bytes of it and
// stall, as a slowloris attacker would. What payhook holds for each must
// follow the bytes sent: its 4 KiB starting buffer, not a 64 KiB one (nor
// anything from the declared length). The measure is Go's live heap in
// the Caddy process after a forced collection, read from Caddy's admin
// endpoint; resident memory would not see an untouched reservation.
func TestStalledSendersHoldLittle(t *testing.T) {
	api := newFakeAPI(t)
	shop := newUpstream(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	const httpPort, adminPort = 9189, 2989
	runCaddyProcess(t, dir, floodSite(httpPort, adminPort, logFile, api.URL, strings.TrimPrefix(shop.URL, "http://")),
		fmt.Sprintf("localhost:%d", httpPort), logFile, "PAYHOOK_TEST_PAYREXX_KEY="+payrexxAPIKey)
	admin := fmt.Sprintf("http://localhost:%d", adminPort)

	stall := func(n int) []net.Conn {
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("localhost:%d", httpPort), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			head := fmt.Sprintf("POST /big/payrexx HTTP/1.1\r\nHost: localhost:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				httpPort, 64<<20)
			if _, err := io.WriteString(c, head+strings.Repeat(" ", 100)); err != nil {
				t.Fatal(err)
			}
		}
		return conns
	}
	closeAll := func(conns []net.Conn) {
		for _, c := range conns {
			c.Close()
		}
	}
	// A first round warms Caddy up; two collections then empty every
	// sync.Pool (a pooled object survives one), so that the measured
	// round counts all that it holds, pooled or not.
	const n = 400
	closeAll(stall(n))
	liveHeap(t, admin)
	before := liveHeap(t, admin)
	conns := stall(n)
	defer closeAll(conns)
	// Every connection's body must have been reached; the heap settles
	// once the last one is read.
	var held int64
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		now := liveHeap(t, admin)
		if now-before == held {
			break
		}
		held = now - before
	}
	perConn := held / n
	t.Logf("%d stalled senders (100 bytes each of a declared 64 MiB): live heap grew by %d KiB, %d bytes each", n, held>>10, perConn)
	if perConn > 24<<10 {
		t.Errorf("each stalled sender holds %d bytes of heap, want under 24 KiB (payhook's share should be its 4 KiB buffer)", perConn)
	}
}

// liveHeap forces a collection in the Caddy process behind admin and
// returns the bytes of live heap objects (go_memstats_heap_alloc_bytes).
func liveHeap(t *testing.T, admin string) int64 {
	t.Helper()
	resp, err := http.Get(admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "go_memstats_heap_alloc_bytes "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(v)
		}
	}
	t.Fatalf("no go_memstats_heap_alloc_bytes in %s/metrics", admin)
	return 0
}

// Issue 24: api_rate bounds the requests sent to the provider's API, as
// docs/configuration.md says, not the lookups. A forged Swedbank Pay payment order
// costs three requests with the merchant's token (the API answers 400 and
// each expansion falls back to a lesser one). 600 forged callbacks through
// Caddy: the stand-in API's count must stay within the burst (twice
// api_rate) plus api_rate times the time they took, however long that was;
// each callback is answered 401 (unknown) or 503 (retry later).
func TestForgedSwedbankPayFloodIsBoundedInAPIRequests(t *testing.T) {
	const apiRate = 10
	e, api := startSwedbank(t, "", fmt.Sprintf("api_rate %d", apiRate))
	const forged = 600
	paths := make([]string, forged)
	for i := range paths {
		paths[i] = fmt.Sprintf("/psp/paymentorders/forged-%04d", i)
		api.set(paths[i], http.StatusBadRequest, `{"type":"https://api.payex.com/psp/errordetail/inputerror","title":"Error in input data","status":400}`)
	}
	answers := map[int]int{}
	start := time.Now()
	for _, path := range paths {
		resp, _ := e.post("/callbacks/swedbankpay", "application/json", fmt.Sprintf(`{"paymentOrder":{"id":%q,"instrument":"paymentorders"}}`, path), nil)
		answers[resp.StatusCode]++
	}
	elapsed := time.Since(start)
	e.expectNothingForwarded()
	requests := len(api.asked())
	bound := 2*apiRate + int(apiRate*elapsed.Seconds()) + 1
	t.Logf("%d forged callbacks in %s: %d API requests (bound %d), answers %v", forged, elapsed.Round(time.Millisecond), requests, bound, answers)
	if requests > bound {
		t.Errorf("%d forged callbacks in %s made %d API requests, over api_rate's %d", forged, elapsed.Round(time.Millisecond), requests, bound)
	}
	if answers[http.StatusUnauthorized]+answers[http.StatusServiceUnavailable] != forged || answers[http.StatusUnauthorized] == 0 {
		t.Errorf("answers %v, want %d of 401 and 503, some 401", answers, forged)
	}
}
