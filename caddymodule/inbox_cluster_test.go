package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/caddymodule/internal/pgtest"
)

// inboxCallbacks are n payments of four events each, in the order a
// provider sends them.
func inboxCallbacks(payments int) []string {
	var bodies []string
	for _, kind := range [][2]string{{"DEBIT", "PENDING"}, {"DEBIT", "OK"}, {"CHARGEBACK", "OK"}, {"CHARGEBACK-REVERSAL", "OK"}} {
		for p := range payments {
			bodies = append(bodies, payment(fmt.Sprintf("pay%03d", p), kind[0], kind[1]))
		}
	}
	return bodies
}

// deliveredInOrder checks what the shop took: every event of every payment,
// each payment's events in the order sent (by their first delivery).
// It returns how many deliveries were repeats.
func deliveredInOrder(t *testing.T, requests []received, payments int) (repeats int) {
	t.Helper()
	seen := map[string]bool{}
	order := map[string][]string{}
	for _, r := range requests {
		if r.Status < 200 || r.Status > 299 {
			continue
		}
		id := r.Header.Get("Payhook-Event-Id")
		if seen[id] {
			repeats++
			continue
		}
		seen[id] = true
		ref := gjson.GetBytes(r.Body, "data.provider_reference").String()
		order[ref] = append(order[ref], gjson.GetBytes(r.Body, "data.status").String())
	}
	if len(seen) != payments*4 {
		t.Errorf("the shop took %d distinct events, want %d", len(seen), payments*4)
	}
	want := []string{"pending", "captured", "chargeback", "chargeback_reversed"}
	for ref, got := range order {
		if !slices.Equal(got, want) {
			t.Errorf("payment %s reached the shop as %v", ref, got)
		}
	}
	return repeats
}

// waitDistinct waits until the shop took n distinct events.
func waitDistinct(t *testing.T, shop *upstream, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ids := taken(shop.received())
		slices.Sort(ids)
		if got := len(slices.Compact(ids)); got >= n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the shop took %d distinct events within %s, want %d", got, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The inbox survives a restart and a kill -9: every acknowledged event
// reaches the shop, in order per payment; an event is delivered twice only
// if it was in flight at the kill.
func TestInboxSurvivesRestartAndKill(t *testing.T) {
	inboxSurvivesRestartAndKill(t)
}

// The same on PostgreSQL.
func TestInboxSurvivesRestartAndKillOnPostgres(t *testing.T) {
	useClusterStore(t, "postgres "+pgtest.Start(t))
	inboxSurvivesRestartAndKill(t)
}

func inboxSurvivesRestartAndKill(t *testing.T) {
	const payments = 40
	storage := t.TempDir()
	shop := newUpstream(t)
	shop.setStatus(http.StatusServiceUnavailable)
	a := startCaddyProcessWith(t, storage, 9186, 2986, shop.URL, "inbox")
	for i, body := range inboxCallbacks(payments) {
		if status, answer := a.send(t, body); status != http.StatusOK || answer != "OK" {
			t.Fatalf("callback %d: %d %q", i, status, answer)
		}
	}
	// A graceful restart while the shop is down.
	a.stop()
	b := startCaddyProcessWith(t, storage, 9186, 2986, shop.URL, "inbox")
	time.Sleep(time.Second)
	if n := len(taken(shop.received())); n != 0 {
		t.Fatalf("the shop took %d events while down", n)
	}

	// The shop comes back, slowly; payhook is killed mid-way.
	start := time.Now()
	shop.setStatus(http.StatusOK)
	release := shop.holdRequests()
	time.Sleep(200 * time.Millisecond)
	release()
	for {
		if n := len(taken(shop.received())); n >= payments*4/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.kill()
	killedAt := len(taken(shop.received()))
	t.Logf("%s: killed", time.Since(start))
	c := startCaddyProcessWith(t, storage, 9186, 2986, shop.URL, "inbox")
	t.Logf("%s: restarted", time.Since(start))
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range strings.Split(readFile(t, c.log), "\n") {
				if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
					t.Log(line)
				}
			}
		}
	})
	waitDistinct(t, shop, payments*4, 2*time.Minute)
	t.Logf("%s: all delivered", time.Since(start))
	time.Sleep(time.Second) // nothing more may follow
	repeats := deliveredInOrder(t, shop.received(), payments)
	t.Logf("killed after %d deliveries; %d delivered again after the kill", killedAt, repeats)
	if repeats > inboxParallel {
		t.Errorf("%d events delivered twice; at most the %d in flight at the kill may be", repeats, inboxParallel)
	}
	c.stop()
}

// Two instances on one storage deliver each event once between them, in
// order per payment, whichever instance received it.
func TestInboxTwoInstancesDeliverOnce(t *testing.T) {
	a, b := twoInstancesDeliverOnce(t, t.TempDir())
	for _, p := range []*caddyProcess{a.caddyProcess, b.caddyProcess} {
		if strings.Contains(readFile(t, p.log), `"level":"error"`) {
			t.Errorf("errors logged:\n%s", readFile(t, p.log))
		}
	}
}

// The same on a real Redis (a storage module as Caddy's community ones);
// then an instance killed while the shop is down, and started again,
// delivers what it had acknowledged.
func TestInboxTwoInstancesDeliverOnceOnPostgres(t *testing.T) {
	useClusterStore(t, "postgres "+pgtest.Start(t))
	storage := t.TempDir()
	a, b := twoInstancesDeliverOnce(t, storage)
	a.shop.setStatus(http.StatusServiceUnavailable)
	if status, _ := a.send(t, payment("afterkill", "DEBIT", "OK")); status != http.StatusOK {
		t.Fatalf("answered %d", status)
	}
	a.kill()
	b.kill()
	restarted := startCaddyProcessWith(t, storage, 9187, 2987, a.shop.URL, "inbox")
	a.shop.setStatus(http.StatusOK)
	waitDistinct(t, a.shop, inboxClusterPayments*4+1, time.Minute)
	restarted.stop()
}

const inboxClusterPayments = 30

// twoInstancesDeliverOnce runs two instances on storage, sends each
// payment's events alternately to them while the shop is down, and checks
// that once it is up each event reaches it once, in order per payment.
func twoInstancesDeliverOnce(t *testing.T, storage string) (a, b *instanceWithShop) {
	t.Helper()
	shop := newUpstream(t)
	shop.setStatus(http.StatusServiceUnavailable)
	a = &instanceWithShop{startCaddyProcessWith(t, storage, 9187, 2987, shop.URL, "inbox"), shop}
	b = &instanceWithShop{startCaddyProcessWith(t, storage, 9188, 2988, shop.URL, "inbox"), shop}
	for i, body := range inboxCallbacks(inboxClusterPayments) {
		instance := a // each payment's events alternate between the instances
		if (i/inboxClusterPayments)%2 == 1 {
			instance = b
		}
		if status, answer := instance.send(t, body); status != http.StatusOK || answer != "OK" {
			t.Fatalf("callback %d: %d %q", i, status, answer)
		}
	}
	time.Sleep(time.Second)
	shop.setStatus(http.StatusOK)
	waitDistinct(t, shop, inboxClusterPayments*4, 2*time.Minute)
	time.Sleep(2 * time.Second)
	if repeats := deliveredInOrder(t, shop.received(), inboxClusterPayments); repeats != 0 {
		t.Errorf("%d events delivered twice by two instances", repeats)
	}
	return a, b
}

// instanceWithShop is a Caddy process and the shop behind it.
type instanceWithShop struct {
	*caddyProcess
	shop *upstream
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Two instances on one PostgreSQL: every callback arrives 16 times at
// once, half at each instance, while the shop is slow; one instance is
// killed (SIGKILL) midway. Each event reaches the shop once (twice only
// if it was in flight at the kill, under the same id), in order per
// payment, and every callback the provider was told was taken is
// delivered.
func TestInboxClusterSixteenCopiesAndAKillOnPostgres(t *testing.T) {
	useClusterStore(t, "postgres "+pgtest.Start(t))
	storage := t.TempDir()
	const payments, copies = 12, 16
	shop := newUpstream(t)
	shop.setStatusFunc(func() int {
		time.Sleep(100 * time.Millisecond) // deliveries are in flight when the kill comes
		return http.StatusOK
	})
	a := startCaddyProcessWith(t, storage, 9187, 2987, shop.URL, "inbox")
	b := startCaddyProcessWith(t, storage, 9188, 2988, shop.URL, "inbox")
	bodies := inboxCallbacks(payments)
	// The kill comes while the second round's events are being delivered.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for len(shop.received()) < payments+payments/2 {
			time.Sleep(5 * time.Millisecond)
		}
		b.kill()
		t.Logf("killed one instance when the shop had received %d requests", len(shop.received()))
	}()
	for round := range 4 {
		if round == 2 {
			<-killed
		}
		var wg sync.WaitGroup
		for _, body := range bodies[round*payments : (round+1)*payments] {
			for c := range copies {
				instance := a
				if c%2 == 1 {
					instance = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A provider retries until it is acknowledged: a copy
					// answered 503 (another copy still being stored), or
					// sent to the killed instance, comes again to the one
					// still running.
					for try := 0; ; try++ {
						status, answer, err := instance.trySend(body)
						if err == nil && status == http.StatusOK && answer == "OK" {
							return
						}
						if try == 20 {
							t.Errorf("a copy was answered %d %q (%v) 20 times", status, answer, err)
							return
						}
						instance = a
						time.Sleep(100 * time.Millisecond)
					}
				}()
			}
		}
		wg.Wait()
	}
	waitDistinct(t, shop, payments*4, 2*time.Minute)
	// The events the killed instance held are delivered again once their
	// leases run out: wait until nothing waits any more.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var list struct{ Inboxes []routeView }
		if err := adminGet("localhost:2987", "/payhook/inbox/routes", &list); err != nil {
			t.Fatal(err)
		}
		waiting := 0
		for _, v := range list.Inboxes {
			waiting += v.Pending
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still wait", waiting)
		}
	}
	time.Sleep(time.Second) // nothing more may follow
	repeats := deliveredInOrder(t, shop.received(), payments)
	t.Logf("%d requests reached the shop for %d events; %d repeats", len(shop.received()), payments*4, repeats)
	if repeats > inboxParallel {
		t.Errorf("%d events delivered twice; at most the %d in flight at the kill may be", repeats, inboxParallel)
	}
	a.stop()
}
