// Command payhook-compare measures what payhook costs on top of Caddy's
// plain reverse_proxy. It runs one Caddy (in this process) with two routes
// to the same fast upstream, one plain reverse_proxy and one payhook ixopay
// (dedupe off) + reverse_proxy, drives both in alternating rounds with the
// same signed 2 KB callback at the same concurrency, and prints requests per
// second and p50/p99 latency for each and their ratio, plus benchstat-
// comparable lines.
//
//	go run ./caddymodule/cmd/payhook-compare [-duration 5s] [-rounds 3] [-concurrency 32]
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
	duration := flag.Duration("duration", 5*time.Second, "length of one round on one route")
	rounds := flag.Int("rounds", 3, "rounds per route, alternating")
	concurrency := flag.Int("concurrency", 32, "requests in flight at once (one keep-alive connection each)")
	bodyFile := flag.String("body", "normalize/testdata/bench/ixopay_2k.json", "callback body to send")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the payhook rounds to this file")
	flag.Parse()

	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatalf("%v (run from the repository root)", err)
	}
	upstream := startUpstream()
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

	fmt.Printf("machine: %s, %d CPUs, GOMAXPROCS %d, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("load: %d concurrent keep-alive connections, %s rounds x %d per route, %d-byte signed IXOPAY callback\n\n",
		*concurrency, *duration, *rounds, len(body))

	routes := []string{"/plain", "/payhook"}
	results := map[string]*result{"/plain": {}, "/payhook": {}}
	// Warm up both routes (connections, caches) before measuring.
	for _, route := range routes {
		drive(caddyAddr, route, body, header, *concurrency, time.Second)
	}
	var profile *os.File
	if *cpuProfile != "" {
		if profile, err = os.Create(*cpuProfile); err != nil {
			log.Fatal(err)
		}
		defer profile.Close()
	}
	for round := range *rounds {
		for _, route := range routes {
			if profile != nil && route == "/payhook" {
				_ = pprof.StartCPUProfile(profile)
			}
			r := drive(caddyAddr, route, body, header, *concurrency, *duration)
			if profile != nil && route == "/payhook" {
				pprof.StopCPUProfile()
				profile = nil // one round is enough
			}
			results[route].add(r)
			fmt.Printf("round %d %-9s %8.0f req/s  p50 %-8s p99 %-8s errors %d\n", round+1, route, r.rate(), r.percentile(50), r.percentile(99), r.errors)
		}
	}
	plain, payhook := results["/plain"], results["/payhook"]
	fmt.Printf("\n%-28s %10s %10s %10s\n", "", "req/s", "p50", "p99")
	fmt.Printf("%-28s %10.0f %10s %10s\n", "reverse_proxy", plain.rate(), plain.percentile(50), plain.percentile(99))
	fmt.Printf("%-28s %10.0f %10s %10s\n", "payhook ixopay + reverse_proxy", payhook.rate(), payhook.percentile(50), payhook.percentile(99))
	fmt.Printf("payhook / reverse_proxy throughput: %.1f%%\n\n", 100*payhook.rate()/plain.rate())
	// benchstat-comparable: time per request at this concurrency (inverse throughput).
	for _, route := range routes {
		r := results[route]
		fmt.Printf("BenchmarkCompare%s-%d\t%d\t%.0f ns/op\n", strings.ReplaceAll(route, "/", "/route="), runtime.GOMAXPROCS(0), r.count, 1e9/r.rate())
	}
	if plain.errors+payhook.errors > 0 {
		os.Exit(1)
	}
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
				map[string]any{"match": []any{map[string]any{"path": []string{"/payhook*"}}}, "handle": []any{
					map[string]any{"handler": "payhook", "dedupe": "off", "provider": map[string]any{"name": "ixopay", "secrets": []string{secret}, "max_skew": "1h"}},
					proxy,
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

// startUpstream is the fastest honest shop: it reads the body and answers 200.
func startUpstream() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
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
}

func (r *result) add(o *result) {
	r.count += o.count
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
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

// drive sends the callback to route from concurrency connections for d.
func drive(addr, route string, body []byte, header http.Header, concurrency int, d time.Duration) *result {
	transport := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	url := "http://" + addr + route
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
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header = header.Clone()
				began := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
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
