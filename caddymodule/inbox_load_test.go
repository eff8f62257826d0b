package caddymodule

import (
	"flag"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The inbox's load test runs in every `go test ./...` with a short run; the
// figures of docs/performance.md come from:
//
//	go test ./caddymodule -run 'TestInboxLoad|TestInboxLatency' -v -inbox.payments 2500
var inboxPayments = flag.Int("inbox.payments", 250, "payments (of four events each) the inbox load test sends")

// With the inbox on and the shop down for the whole run, every callback of
// a concurrent mix (four events per payment, in order, and a provider's
// retries of some) is acknowledged; when the shop comes back, each event
// reaches it exactly once, in order per payment.
func TestInboxLoad(t *testing.T) {
	payments := *inboxPayments
	e := startCaddy(t, inboxSite(""))
	e.upstream.setStatus(http.StatusServiceUnavailable)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	steps := [][2]string{{"DEBIT", "PENDING"}, {"DEBIT", "OK"}, {"CHARGEBACK", "OK"}, {"CHARGEBACK-REVERSAL", "OK"}}

	var sent, acknowledged, retries atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p := int(next.Add(1)) - 1
				if p >= payments {
					return
				}
				// A provider sends a payment's events one after the other,
				// each once the previous was acknowledged; one in five it
				// sends again (a retry).
				for step, kind := range steps {
					c := ixopayCallback(payment(fmt.Sprintf("load%05d", p), kind[0], kind[1]))
					for copies := 1 + boolInt((p+step)%5 == 0); copies > 0; copies-- {
						began := time.Now()
						status := sendLoad(client, e.base, c, true)
						took := time.Since(began)
						sent.Add(1)
						if copies == 2 {
							retries.Add(1)
						}
						if status == http.StatusOK {
							acknowledged.Add(1)
						} else {
							t.Errorf("payment %d step %d answered %d", p, step, status)
						}
						mu.Lock()
						latencies = append(latencies, took)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := len(taken(e.upstream.received())); n != 0 {
		t.Fatalf("the shop, down, took %d events", n)
	}
	slices.Sort(latencies)
	t.Logf("%d callbacks (%d retries) of %d payments, shop down: %d acknowledged in %s (%.0f/s); acknowledgement p50 %s, p99 %s",
		sent.Load(), retries.Load(), payments, acknowledged.Load(), elapsed.Round(time.Millisecond), float64(sent.Load())/elapsed.Seconds(),
		latencies[len(latencies)/2].Round(10*time.Microsecond), latencies[len(latencies)*99/100].Round(10*time.Microsecond))

	back := time.Now()
	e.upstream.setStatus(http.StatusOK)
	waitDistinct(t, e.upstream, payments*4, 10*time.Minute)
	drained := time.Since(back)
	time.Sleep(time.Second)
	if repeats := deliveredInOrder(t, e.upstream.received(), payments); repeats != 0 {
		t.Errorf("%d events reached the shop twice", repeats)
	}
	t.Logf("shop back: %d events delivered, each once and in order per payment, in %s (%.0f/s)",
		payments*4, drained.Round(time.Millisecond), float64(payments*4)/drained.Seconds())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestInboxLatency measures the acknowledgement of one callback at a time,
// with the inbox (the event fsynced to file storage before the answer) and
// without it (forwarded to a shop that answers at once). Figures only: a
// speed goal is never an assertion.
func TestInboxLatency(t *testing.T) {
	const n = 300
	measure := func(site string) (p50, p99 time.Duration) {
		e := startCaddy(t, site)
		client := &http.Client{Timeout: 10 * time.Second}
		var l []time.Duration
		for i := range n {
			c := ixopayCallback(payment(fmt.Sprintf("lat%05d", i), "DEBIT", "OK"))
			began := time.Now()
			if status := sendLoad(client, e.base, c, true); status != http.StatusOK {
				t.Fatalf("answered %d", status)
			}
			l = append(l, time.Since(began))
		}
		slices.Sort(l)
		return l[n/2], l[n*99/100]
	}
	p50, p99 := measure(defaultSite)
	t.Logf("without the inbox (forwarded, shop answers at once): p50 %s, p99 %s", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	p50, p99 = measure(inboxSite(""))
	t.Logf("with the inbox (stored, fsynced, then acknowledged):  p50 %s, p99 %s", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
}
