// Command payhook-compare measures what payhook costs on top of Caddy's
// plain reverse_proxy. It runs one Caddy (in this process) with two routes
// to the same fast upstream, one plain reverse_proxy and one payhook ixopay
// (dedupe off) + reverse_proxy, drives both in alternating rounds with the
// same signed 2 KB callback at the same concurrency, and prints requests per
// second and p50/p99 latency for each and their ratio, plus benchstat-
// comparable lines. Both routes give IXOPAY the answer it counts as
// success, 200 with the body "OK": plain reverse_proxy relays the shop's,
// payhook writes its own once the shop has taken the envelope.
//
//	go run ./caddymodule/cmd/payhook-compare [-duration 1s] [-rounds 20] [-concurrency 32] [-shop-says-ok]
//
// Besides the ratio of the totals it prints the median of the rounds' own
// ratios, which resists a machine whose speed drifts from one second to
// the next: hence many short rounds by default. Each round line also
// shows the process's allocations per request.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/payhook/payhook/caddymodule"
	"github.com/payhook/payhook/verify"
)

func main() {
	duration := flag.Duration("duration", time.Second, "length of one round on one route")
	rounds := flag.Int("rounds", 20, "rounds per route, alternating")
	concurrency := flag.Int("concurrency", 32, "requests in flight at once (one keep-alive connection each)")
	bodyFile := flag.String("body", "normalize/testdata/bench/ixopay_2k.json", "callback body to send")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of one round of -profileroute to this file")
	profileRoute := flag.String("profileroute", "/payhook", "the route -cpuprofile profiles: /payhook or /forged")
	shopSaysOK := flag.Bool("shop-says-ok", false, "the shop behind payhook also answers 200 \"OK\", as one written for IXOPAY would")
	flag.Parse()

	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatalf("%v (run from the repository root)", err)
	}
	upstream := startUpstream(*shopSaysOK)
	caddyAddr := freeAddr()
	secret := "compare-secret-0123456789abcdef"
	if err := loadCaddy(caddyAddr, upstream, secret); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = caddy.Stop() }()

	date := time.Now().UTC().Format(http.TimeFormat)
	header := http.Header{
		"Content-Type": {"application/json; charset=utf-8"},
		"Date":         {date},
	}
	header.Set("X-Signature", verify.SignIXOPAY([]byte(secret), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: http.MethodPost, ContentType: header.Get("Content-Type"), Date: date, RequestURI: "/payhook", Body: body,
	}))

	forgedHeader := header.Clone()
	forgedHeader.Set("X-Signature", verify.SignIXOPAY([]byte("not-the-secret"), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: http.MethodPost, ContentType: header.Get("Content-Type"), Date: date, RequestURI: "/forged", Body: body,
	}))

	fmt.Printf("machine: %s, %d CPUs, GOMAXPROCS %d, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("load: %d concurrent keep-alive connections, %s rounds x %d per route, %d-byte IXOPAY callback\n\n",
		*concurrency, *duration, *rounds, len(body))

	// Each pair is a route through payhook and the plain Caddy route it is
	// measured against.
	routes := []route{
		{path: "/plain", header: header, want: http.StatusOK, wantBody: ixopaySuccess},
		{path: "/payhook", header: header, want: http.StatusOK, wantBody: ixopaySuccess},
		{path: "/static401", header: forgedHeader, want: http.StatusUnauthorized, wantBody: forgedAnswer},
		{path: "/forged", header: forgedHeader, want: http.StatusUnauthorized, wantBody: forgedAnswer},
	}
	results := map[string]*result{}
	for _, rt := range routes {
		results[rt.path] = &result{}
	}
	// Warm up every route (connections, caches) before measuring.
	for _, rt := range routes {
		drive(caddyAddr, rt, body, *concurrency, time.Second)
	}
	var profile *os.File
	if *cpuProfile != "" {
		if profile, err = os.Create(*cpuProfile); err != nil {
			log.Fatal(err)
		}
		defer profile.Close()
	}
	// Each round measures every route once; odd rounds in reverse order, so
	// that a drift of the machine's speed falls on both routes of a pair.
	perRound := map[string][]float64{}
	for round := range *rounds {
		order := slices.Clone(routes)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, rt := range order {
			if profile != nil && rt.path == *profileRoute {
				_ = pprof.StartCPUProfile(profile)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := drive(caddyAddr, rt, body, *concurrency, *duration)
			runtime.ReadMemStats(&after)
			r.allocBytes, r.allocs = after.TotalAlloc-before.TotalAlloc, after.Mallocs-before.Mallocs
			if profile != nil && rt.path == *profileRoute {
				pprof.StopCPUProfile()
				profile = nil // one round is enough
			}
			results[rt.path].add(r)
			perRound[rt.path] = append(perRound[rt.path], r.rate())
			fmt.Printf("round %d %-10s %8.0f req/s  p50 %-8s p99 %-8s %6d B/req %4d allocs/req  errors %d\n", round+1, rt.path, r.rate(), r.percentile(50), r.percentile(99),
				r.allocBytes/uint64(max(1, r.count)), r.allocs/uint64(max(1, r.count)), r.errors)
		}
	}
	fmt.Printf("\n%-34s %10s %10s %10s\n", "", "req/s", "p50", "p99")
	for _, row := range []struct{ path, label string }{
		{"/plain", "reverse_proxy"},
		{"/payhook", "payhook ixopay + reverse_proxy"},
		{"/static401", "respond 401"},
		{"/forged", "payhook ixopay, forged callback"},
	} {
		r := results[row.path]
		fmt.Printf("%-34s %10.0f %10s %10s\n", row.label, r.rate(), r.percentile(50), r.percentile(99))
	}
	fmt.Printf("payhook / reverse_proxy throughput: %.1f%%\n", 100*results["/payhook"].rate()/results["/plain"].rate())
	fmt.Printf("forged refused / respond 401 throughput: %.1f%%\n", 100*results["/forged"].rate()/results["/static401"].rate())
	// On a noisy machine a burst can halve one round: the median of the
	// rounds' own ratios (each pair measured in the same round) resists it.
	for _, pair := range []struct{ label, route, base string }{
		{"payhook / reverse_proxy", "/payhook", "/plain"},
		{"forged refused / respond 401", "/forged", "/static401"},
	} {
		ratios := make([]float64, len(perRound[pair.route]))
		for i := range ratios {
			ratios[i] = perRound[pair.route][i] / perRound[pair.base][i]
		}
		slices.Sort(ratios)
		n := len(ratios)
		fmt.Printf("%s, median of %d rounds' ratios: %.1f%% (middle half %.1f%% to %.1f%%)\n",
			pair.label, n, 100*ratios[n/2], 100*ratios[n/4], 100*ratios[(3*n)/4])
	}
	fmt.Println()
	// benchstat-comparable: time per request at this concurrency (inverse throughput).
	errors := 0
	for _, rt := range routes {
		r := results[rt.path]
		errors += r.errors
		fmt.Printf("BenchmarkCompare%s-%d\t%d\t%.0f ns/op\n", strings.ReplaceAll(rt.path, "/", "/route="), runtime.GOMAXPROCS(0), r.count, 1e9/r.rate())
	}
	if errors > 0 {
		os.Exit(1)
	}
}

// The answers each pair of routes gives the provider: IXOPAY's success
// (the shop's behind plain reverse_proxy, payhook's own behind payhook),
// and payhook's refusal of a wrong signature, which respond 401 copies.
const ixopaySuccess = "OK"

var forgedAnswer = verify.ErrBadSignature.Error() + "\n"

// route is one route of the comparison, with the headers sent to it and
// the answer it must give (each pair answers the provider alike).
type route struct {
	path     string
	header   http.Header
	want     int
	wantBody string
}

// loadCaddy runs Caddy with the two routes; payhook logs its line per
// callback at info level, to a discarding writer, as in production minus I/O.
func loadCaddy(addr, upstream, secret string) error {
	proxy := map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": upstream}}}
	config := map[string]any{
		"admin": map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer": map[string]any{"output": "discard"}, "level": "INFO",
		}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"compare": map[string]any{
			"listen": []string{addr},
			"routes": []any{
				map[string]any{"match": []any{map[string]any{"path": []string{"/plain*"}}}, "handle": []any{proxy}},
				map[string]any{"match": []any{map[string]any{"path": []string{"/payhook*", "/forged*"}}}, "handle": []any{
					map[string]any{"handler": "payhook", "dedupe": "off", "provider": map[string]any{"name": "ixopay", "secrets": []string{secret}, "max_skew": "1h"}},
					proxy,
				}},
				map[string]any{"match": []any{map[string]any{"path": []string{"/static401*"}}}, "handle": []any{
					map[string]any{"handler": "static_response", "status_code": 401, "body": forgedAnswer},
				}},
			},
		}}}},
	}
	raw, err := json.Marshal(config)
	if err != nil {
		return err
	}
	return caddy.Load(raw, true)
}

// startUpstream is the fastest honest shop: it reads the body and answers
// what its caller needs to hear. Behind plain reverse_proxy the shop
// answers IXOPAY itself, so it must say what IXOPAY counts as success, 200
// with the body "OK" (anything else is retried); behind payhook any 2xx
// will do, so it answers 200 with no body, unless sayOK (a shop that was
// written for IXOPAY and put behind payhook unchanged).
func startUpstream(sayOK bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ok := []byte(ixopaySuccess)
	contentType, contentLength := []string{"text/plain; charset=utf-8"}, []string{strconv.Itoa(len(ok))}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if !sayOK && !strings.HasPrefix(r.URL.Path, "/plain") {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.Header()["Content-Type"] = contentType
			w.Header()["Content-Length"] = contentLength
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(ok)
		}))
	}()
	return ln.Addr().String()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type result struct {
	count     int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
	// allocBytes and allocs are the whole process's (load generator,
	// Caddy, upstream) during the round: the same for both routes of a
	// pair but for the handler under test.
	allocBytes, allocs uint64
}

func (r *result) add(o *result) {
	r.count += o.count
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	r.allocBytes += o.allocBytes
	r.allocs += o.allocs
}

func (r *result) rate() float64 { return float64(r.count) / r.elapsed.Seconds() }

func (r *result) percentile(p int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*p/100)].Round(time.Microsecond)
}

// drive sends the callback to rt from concurrency connections for d.
func drive(addr string, rt route, body []byte, concurrency int, d time.Duration) *result {
	transport := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	url := "http://" + addr + rt.path
	deadline := time.Now().Add(d)
	var total result
	var mu sync.Mutex
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			answer := make([]byte, 64)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header = rt.header.Clone()
				began := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				n, _ := io.ReadFull(resp.Body, answer)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != rt.want || string(answer[:n]) != rt.wantBody {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(began))
			}
			mu.Lock()
			total.latencies = append(total.latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.count = len(total.latencies)
	total.errors = int(errs.Load())
	return &total
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return runtime.GOARCH
}
