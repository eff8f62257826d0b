package caddymodule

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payhook/payhook/verify"
)

// The load test runs in every `go test ./...` with a short mix; docs/performance.md's
// figures come from a longer run:
//
//	go test ./caddymodule -run TestLoad -v -load.callbacks 20000 -load.concurrency 128
var (
	loadCallbacks   = flag.Int("load.callbacks", 2000, "callbacks the load test sends")
	loadConcurrency = flag.Int("load.concurrency", 64, "callbacks the load test sends at once")
)

// loadKind is a kind of callback in the load mix, with its share and the
// answer it must get.
type loadKind struct {
	name   string
	share  int // per cent
	status int
}

var loadMix = []loadKind{
	{"valid", 40, http.StatusOK},
	{"repeat", 20, http.StatusOK}, // a copy of an earlier valid event, freshly signed
	{"forged", 15, http.StatusUnauthorized},
	{"malformed", 10, http.StatusBadRequest},
	{"stale", 5, http.StatusUnauthorized},
	{"wrong type", 5, http.StatusUnsupportedMediaType},
	{"oversized", 5, http.StatusRequestEntityTooLarge},
}

type loadRequest struct {
	kind loadKind
	uuid string // the event's transaction, for valid and repeat
	c    *callback
}

// TestLoad drives real Caddy with a mix of valid, repeated, forged,
// malformed and oversized callbacks at high concurrency, and checks that
// every valid event reached the shop exactly once, that nothing else
// reached it, that every bad callback got its 4xx, that payhook never
// answered 5xx to a healthy shop, and that memory stayed bounded.
func TestLoad(t *testing.T) {
	e := startCaddy(t, strings.Replace(defaultSite, "max_body 8KiB", "max_body 64KiB", 1))
	n, workers := *loadCallbacks, *loadConcurrency
	requests := loadRequests(n)

	baseline := heapInUse()
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	go func() {
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	type outcome struct {
		status  int
		latency time.Duration
	}
	outcomes := make([]outcome, len(requests))
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(requests) {
					return
				}
				began := time.Now()
				outcomes[i] = outcome{sendLoad(client, e.base, requests[i].c, requests[i].kind.name != "stale"), time.Since(began)}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampling)

	// What the shop received, by transaction.
	deliveries := map[string]int{}
	for _, r := range e.upstream.received() {
		var doc struct {
			Data struct {
				ProviderReference string `json:"provider_reference"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatalf("the shop received something that is not an envelope: %.100s", r.Body)
		}
		deliveries[doc.Data.ProviderReference]++
	}
	valid := map[string]bool{}
	wrong := map[string]int{}
	latencies := map[string][]time.Duration{}
	for i, r := range requests {
		got := outcomes[i]
		latencies[r.kind.name] = append(latencies[r.kind.name], got.latency)
		if got.status != r.kind.status {
			wrong[fmt.Sprintf("%s answered %d (want %d)", r.kind.name, got.status, r.kind.status)]++
		}
		if got.status >= 500 {
			t.Errorf("payhook answered %d to a %s callback while the shop was healthy", got.status, r.kind.name)
		}
		if r.uuid != "" {
			valid[r.uuid] = true
		}
	}
	for what, count := range wrong {
		t.Errorf("%d× %s", count, what)
	}
	for uuid := range valid {
		if deliveries[uuid] != 1 {
			t.Errorf("event %s reached the shop %d times, want exactly once", uuid, deliveries[uuid])
		}
	}
	if len(deliveries) != len(valid) {
		t.Errorf("the shop received %d distinct events, want the %d valid ones and nothing else", len(deliveries), len(valid))
	}

	after := heapInUse()
	const mib = 1 << 20
	if growth := int64(after) - int64(baseline); growth > 32*mib {
		t.Errorf("heap in use grew by %d MiB over the run", growth/mib)
	}
	if p := peak.Load(); p > baseline+256*mib {
		t.Errorf("heap in use peaked at %d MiB (baseline %d MiB)", p/mib, baseline/mib)
	}

	t.Logf("%d callbacks, %d at a time, in %s: %.0f callbacks/s; %d distinct events delivered once each",
		n, workers, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(valid))
	t.Logf("heap in use: %d MiB before, %d MiB peak, %d MiB after", baseline/mib, peak.Load()/mib, after/mib)
	for _, k := range loadMix {
		l := latencies[k.name]
		slices.Sort(l)
		if len(l) > 0 {
			t.Logf("  %-10s %5d  p50 %-9s p99 %s", k.name, len(l), l[len(l)/2].Round(10*time.Microsecond), l[len(l)*99/100].Round(10*time.Microsecond))
		}
	}
}

// loadRequests builds n callbacks in a shuffled mix; repeats copy an
// earlier valid event.
func loadRequests(n int) []loadRequest {
	r := rand.New(rand.NewPCG(42, 7))
	var requests []loadRequest
	var validUUIDs []string
	pick := func() loadKind {
		x := r.IntN(100)
		for _, k := range loadMix {
			if x < k.share {
				return k
			}
			x -= k.share
		}
		return loadMix[0]
	}
	body := func(uuid string) string {
		return fmt.Sprintf(`{"result":"OK","uuid":%q,"merchantTransactionId":"order-%s","transactionType":"DEBIT","amount":"%d.%02d","currency":"EUR","customer":{"email":"load@example.org"}}`,
			uuid, uuid, r.IntN(500), r.IntN(100))
	}
	bodies := map[string]string{}
	oversized := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}` // one body shared by all
	for i := range n {
		k := pick()
		if k.name == "repeat" && len(validUUIDs) == 0 {
			k = loadMix[0]
		}
		req := loadRequest{kind: k}
		switch k.name {
		case "valid":
			req.uuid = fmt.Sprintf("load-%06d", i)
			bodies[req.uuid] = body(req.uuid)
			validUUIDs = append(validUUIDs, req.uuid)
			req.c = ixopayCallback(bodies[req.uuid])
		case "repeat":
			req.uuid = validUUIDs[r.IntN(len(validUUIDs))]
			req.c = ixopayCallback(bodies[req.uuid])
		case "forged":
			req.c = ixopayCallback(body(fmt.Sprintf("forged-%06d", i)))
			req.c.secret = "not-the-secret"
		case "malformed":
			req.c = ixopayCallback(`{"result":"OK","uuid":` + fmt.Sprint(i))
		case "stale":
			req.c = ixopayCallback(body(fmt.Sprintf("stale-%06d", i)))
			req.c.date = time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
		case "wrong type":
			req.c = ixopayCallback(body(fmt.Sprintf("type-%06d", i)))
			req.c.contentType = "text/plain"
		case "oversized":
			req.c = ixopayCallback(oversized)
		}
		requests = append(requests, req)
	}
	r.Shuffle(len(requests), func(i, j int) { requests[i], requests[j] = requests[j], requests[i] })
	return requests
}

// sendLoad signs c and sends it; with fresh, the Date is now, so that a
// long run keeps its Dates inside the window.
func sendLoad(client *http.Client, base string, c *callback, fresh bool) int {
	if fresh {
		c.date = time.Now().UTC().Format(http.TimeFormat)
	}
	req, _ := http.NewRequest(c.method, base+c.uri, strings.NewReader(string(c.body)))
	req.Header.Set("Content-Type", c.contentType)
	req.Header.Set("Date", c.date)
	req.Header.Set("X-Signature", verify.SignIXOPAY([]byte(c.secret), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: c.method, ContentType: c.contentType, Date: c.date, RequestURI: c.uri, Body: c.body,
	}))
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
