package caddymodule

import (
	"bufio"
	"cmp"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx", to fill a PostgreSQL store
	"github.com/tidwall/gjson"
)

// The engine's figures (issue #25), through real Caddy: forwarding with
// dedupe on against the same route with dedupe off, side by side in one
// run; the inbox's acknowledgement and its drain to a fast shop, on SQLite
// and on PostgreSQL; the process's CPU while idle with a million records
// and 100,000 events waiting for a shop that is down. They run in every
// `go test ./...` with small sizes (the idle measure not at all), which
// checks only that they work; the figures come from:
//
//	go test ./caddymodule -run 'TestEngine' -v -timeout 60m \
//		-engine.events 5000 -engine.rounds 3 -engine.inbox 5000 -engine.idle 60s
//
// Caddy runs in the test process, beside the load generator and the shop:
// CPU time is the process's (getrusage), and the load generator's and the
// shop's own share is measured alone (the same callbacks sent straight to
// the shop) and subtracted. Figures only: a speed goal is never an
// assertion; what is asserted is that every event reached the shop once.
var (
	engineEvents  = flag.Int("engine.events", 200, "distinct events per round and per route of the dedupe on/off comparison")
	engineRounds  = flag.Int("engine.rounds", 1, "rounds of the dedupe on/off comparison (on, off, and the load generator alone, each round)")
	engineOnly    = flag.String("engine.only", "", "run only this route of the dedupe comparison, on or off, to profile it (-cpuprofile)")
	engineInbox   = flag.Int("engine.inbox", 100, "events the inbox's drain measure stores while the shop is down, per engine")
	engineIdle    = flag.Duration("engine.idle", 0, "how long the idle measure watches the process's CPU, per engine and state; 0 skips it")
	enginePending = flag.Int("engine.pending", 100000, "inbox events waiting in the idle measure")
	engineRecords = flag.Int("engine.records", 1000000, "delivery records, and as many journal rows, in the idle measure's store")
)

// engineConnections is the connections the throughput is measured at.
const engineConnections = 32

// cpuTime is the CPU time (user and system) the test process used so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadRun is what one run of callbacks measured.
type loadRun struct {
	events    int
	wall, cpu time.Duration
	latencies []time.Duration // sorted
}

func (r loadRun) perSecond() float64             { return float64(r.events) / r.wall.Seconds() }
func (r loadRun) cpuPerEvent() time.Duration     { return r.cpu / time.Duration(r.events) }
func (r loadRun) percentile(p int) time.Duration { return r.latencies[len(r.latencies)*p/100] }

// drive sends the callbacks to base over conns connections at once, and
// measures the wall time, the process's CPU time and each answer's
// latency; every answer must be 200.
func drive(t *testing.T, base string, callbacks []*callback, conns int) loadRun {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, len(callbacks))
	statuses := make([]int, len(callbacks))
	runtime.GC()
	var next atomic.Int64
	cpu, start := cpuTime(t), time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(callbacks) {
					return
				}
				began := time.Now()
				statuses[i] = sendLoad(client, base, callbacks[i], true)
				latencies[i] = time.Since(began)
			}
		}()
	}
	wg.Wait()
	run := loadRun{events: len(callbacks), wall: time.Since(start), cpu: cpuTime(t) - cpu, latencies: latencies}
	slices.Sort(run.latencies)
	for i, status := range statuses {
		if status != http.StatusOK {
			t.Fatalf("callback %d of %s answered %d", i, base, status)
		}
	}
	return run
}

// engineBody is a distinct IXOPAY event, as the load test's valid ones.
func engineBody(uuid string) string {
	return fmt.Sprintf(`{"result":"OK","uuid":%q,"merchantTransactionId":"order-%s","transactionType":"DEBIT","amount":"12.34","currency":"EUR","customer":{"email":"load@example.org"}}`,
		uuid, uuid)
}

// engineCallbacks are n distinct events sent to the route under prefix.
func engineCallbacks(prefix, tag string, n int) []*callback {
	out := make([]*callback, n)
	for i := range out {
		c := ixopayCallback(engineBody(fmt.Sprintf("%s-%06d", tag, i)))
		c.uri = prefix + c.uri
		out[i] = c
	}
	return out
}

// TestEngineDedupeThroughput forwards distinct events through two routes
// of one Caddy, alike but for dedupe (on, the default, and off), in
// alternating rounds at 32 connections, and the same callbacks straight
// to the shop, to know the load generator's and the shop's CPU.
func TestEngineDedupeThroughput(t *testing.T) {
	route := func(prefix, options string) string {
		return `route /` + prefix + `/callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			max_body 8KiB` + options + `
		}
		reverse_proxy {upstream}
	}`
	}
	e := startCaddySites(t, t.TempDir(), "", siteOf(route("on", "")+"\n\t"+route("off", "\n\t\t\tdedupe off")), newUpstream(t))
	n := *engineEvents

	// Every connection opened, SQLite's pages read, Go's code warm.
	for _, prefix := range []string{"/on", "/off"} {
		drive(t, e.base, engineCallbacks(prefix, "warm"+prefix[1:], min(200, *engineEvents)), engineConnections)
	}
	e.upstream.reset()

	runs := map[string][]loadRun{}
	for round := range *engineRounds {
		modes := []string{"on", "off", "shop"}
		if round%2 == 1 {
			modes = []string{"off", "on", "shop"}
		}
		if *engineOnly != "" {
			modes = []string{*engineOnly}
		}
		for _, mode := range modes {
			tag := fmt.Sprintf("r%d%s", round, mode)
			if mode == "shop" {
				runs[mode] = append(runs[mode], drive(t, e.upstream.URL, engineCallbacks("", tag, n), engineConnections))
				e.upstream.reset()
				continue
			}
			runs[mode] = append(runs[mode], drive(t, e.base, engineCallbacks("/"+mode, tag, n), engineConnections))
			// Each event reached the shop once, through its route.
			got := map[string]int{}
			for _, r := range e.upstream.received() {
				if !strings.HasPrefix(r.RequestURI, "/"+mode+"/") {
					t.Fatalf("the shop received %s in a round of dedupe %s", r.RequestURI, mode)
				}
				got[gjson.GetBytes(r.Body, "data.provider_reference").String()]++
			}
			if len(got) != n {
				t.Errorf("dedupe %s, round %d: the shop received %d distinct events, want %d", mode, round, len(got), n)
			}
			for ref, count := range got {
				if count != 1 {
					t.Errorf("dedupe %s: event %s reached the shop %d times", mode, ref, count)
				}
			}
			e.upstream.reset()
		}
	}

	// The best round of each: the least disturbed by the machine.
	best := func(mode string) loadRun {
		return slices.MaxFunc(runs[mode], func(a, b loadRun) int { return cmp.Compare(a.perSecond(), b.perSecond()) })
	}
	if *engineOnly != "" {
		r := best(*engineOnly)
		t.Logf("dedupe %s alone: %.0f events/s, CPU %s/event", *engineOnly, r.perSecond(), r.cpuPerEvent().Round(time.Microsecond))
		return
	}
	on, off, shop := best("on"), best("off"), best("shop")
	net := func(r loadRun) time.Duration { return r.cpuPerEvent() - shop.cpuPerEvent() }
	t.Logf("%d distinct events per route and round, %d connections, %d rounds (best round shown; process CPU, and net of the load generator and the shop)",
		n, engineConnections, *engineRounds)
	for _, m := range []struct {
		name string
		run  loadRun
	}{{"dedupe on ", on}, {"dedupe off", off}} {
		t.Logf("  %s: %6.0f events/s, p50 %s p99 %s; CPU %s/event, net of load and shop %s/event",
			m.name, m.run.perSecond(), m.run.percentile(50).Round(10*time.Microsecond), m.run.percentile(99).Round(10*time.Microsecond),
			m.run.cpuPerEvent().Round(time.Microsecond), net(m.run).Round(time.Microsecond))
	}
	t.Logf("  load generator and shop alone: %6.0f callbacks/s, CPU %s/callback", shop.perSecond(), shop.cpuPerEvent().Round(time.Microsecond))
	t.Logf("  dedupe on / dedupe off throughput: %.2f; dedupe's own CPU %s/event", on.perSecond()/off.perSecond(),
		(on.cpuPerEvent() - off.cpuPerEvent()).Round(time.Microsecond))
	for mode, list := range runs {
		for i, r := range list {
			t.Logf("  round %d %-4s %6.0f/s CPU %s/event", i, mode, r.perSecond(), r.cpuPerEvent().Round(time.Microsecond))
		}
	}
}

// TestEngineInbox measures, on each engine, the acknowledgement of a
// callback with the inbox (stored, synced, then answered) one at a time,
// the acknowledgements of a burst at 32 connections while the shop is
// down, and the drain of that burst once the shop is back and fast.
func TestEngineInbox(t *testing.T) {
	forEngines(t, func(t *testing.T, engine engineCase) {
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), newUpstream(t))

		// One at a time, the shop up.
		alone := min(300, *engineInbox)
		client := &http.Client{Timeout: 10 * time.Second}
		var l []time.Duration
		for i := range alone {
			c := ixopayCallback(engineBody(fmt.Sprintf("alone-%05d", i)))
			began := time.Now()
			if status := sendLoad(client, e.base, c, true); status != http.StatusOK {
				t.Fatalf("answered %d", status)
			}
			l = append(l, time.Since(began))
		}
		slices.Sort(l)
		waitDistinct(t, e.upstream, alone, time.Minute)
		t.Logf("%s: acknowledged one at a time (stored and synced first): p50 %s p99 %s (n=%d)",
			engine.name, l[alone/2].Round(10*time.Microsecond), l[alone*99/100].Round(10*time.Microsecond), alone)

		// A burst while the shop is down.
		n := *engineInbox
		e.upstream.setStatus(http.StatusServiceUnavailable)
		e.upstream.reset()
		burst := drive(t, e.base, engineCallbacks("", "burst", n), engineConnections)
		t.Logf("%s: %d events stored at %d connections, shop down: %.0f acknowledged/s, p50 %s p99 %s, CPU %s/event",
			engine.name, n, engineConnections, burst.perSecond(), burst.percentile(50).Round(10*time.Microsecond),
			burst.percentile(99).Round(10*time.Microsecond), burst.cpuPerEvent().Round(time.Microsecond))

		// The shop back, fast: from its first event taken to its last.
		var first, last atomic.Int64
		e.upstream.setStatusFunc(func() int {
			now := time.Now().UnixNano()
			first.CompareAndSwap(0, now)
			last.Store(now)
			return http.StatusOK
		})
		back := time.Now()
		cpu := cpuTime(t)
		waitDistinct(t, e.upstream, n, 30*time.Minute)
		cpu = cpuTime(t) - cpu
		time.Sleep(500 * time.Millisecond) // a second delivery would show now
		drain := time.Duration(last.Load() - first.Load())
		ids := taken(e.upstream.received())
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("event %s reached the shop twice", id)
			}
			seen[id] = true
		}
		t.Logf("%s: drained %d events to a fast shop in %s after its first was taken (%.0f events/s); the first %s after the shop was back; process CPU %s/event",
			engine.name, n, drain.Round(time.Millisecond), float64(n-1)/drain.Seconds(),
			(time.Duration(first.Load() - back.UnixNano())).Round(time.Millisecond), (cpu / time.Duration(n)).Round(time.Microsecond))
	})
}

// TestEngineIdle measures the process's CPU while nothing arrives and the
// shop is down: first with one event waiting, then with -engine.records
// delivery records and journal rows and -engine.pending events waiting,
// written straight into the database (as the store writes them) while
// Caddy runs. On PostgreSQL, the server's processes are measured too.
func TestEngineIdle(t *testing.T) {
	if *engineIdle <= 0 {
		t.Skip("the idle measure watches the CPU for a while: run it with -engine.idle 60s")
	}
	forEngines(t, func(t *testing.T, engine engineCase) {
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", siteOf(inboxSite("")), newUpstream(t))
		e.upstream.setStatus(http.StatusServiceUnavailable)
		sendOK(t, e, engineBody("idle-00000"))

		driver, dsn := "pgx", engine.dsn
		if dsn == "" {
			driver, dsn = "sqlite", "file:"+e.database()+"?_txlock=immediate&_pragma=busy_timeout(10000)"
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		server := postgresServer(t, db, engine)

		idle := func(state string) {
			time.Sleep(5 * time.Second) // past the first probe and the writes' aftermath
			runtime.GC()
			probes := len(e.upstream.received())
			cpu, dbCPU, start := cpuTime(t), server.cpu(), time.Now()
			time.Sleep(*engineIdle)
			wall := time.Since(start)
			cpu, dbCPU = cpuTime(t)-cpu, server.cpu()-dbCPU
			line := fmt.Sprintf("%s idle, shop down, %s: Caddy's process %.2f %% of a core (%s CPU in %s); %d probes",
				engine.name, state, 100*cpu.Seconds()/wall.Seconds(), cpu.Round(time.Millisecond), wall.Round(time.Second),
				len(e.upstream.received())-probes)
			if server != nil {
				line += fmt.Sprintf("; PostgreSQL's processes %.2f %% of a core", 100*dbCPU.Seconds()/wall.Seconds())
			}
			t.Log(line)
		}
		idle("1 event waiting")

		var route, provider, eventType string
		var record []byte
		if err := db.QueryRow(`SELECT route, provider, event_type, record FROM payhook_inbox`).Scan(&route, &provider, &eventType, &record); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		now := time.Now()
		until := now.Add(DefaultDedupeWindow).UnixMilli()
		fill(t, db, engine, "INSERT INTO payhook_claims (key, state, owner, until) VALUES ", 4, *engineRecords, func(i int) []any {
			return []any{[]byte(fmt.Sprintf("%032x", uint64(i)*0x9E3779B97F4A7C15)), 2, "", until}
		})
		fill(t, db, engine, `INSERT INTO payhook_journal (at, route, provider, outcome, reason, event_id, event_type, status, amount,
			currency, merchant_ref, provider_ref, verified_by, client_ip) VALUES `, 14, *engineRecords, func(i int) []any {
			uuid := fmt.Sprintf("%020x", uint64(i)*0x9E3779B97F4A7C15)
			return []any{now.UnixMilli(), "srv0/route0", "ixopay", "accepted", "", "ixopay_" + uuid, "payment", "captured", 1234,
				"EUR", "order-" + uuid, uuid, "signature", "203.0.113.7"}
		})
		fill(t, db, engine, `INSERT INTO payhook_inbox (route, queue, event_id, provider, event_type, state, head, received_at, next_at,
			done_at, owner, last_at, attempts, refused, last_error, replayed, record) VALUES `, 17, *enginePending-1, func(i int) []any {
			return []any{route, fmt.Sprintf("idle-queue-%d", i), fmt.Sprintf("idle-event-%d", i), provider, eventType, 0, 1, now.UnixMilli(),
				now.UnixMilli(), 0, "", 0, 0, 0, "", 0, record}
		})
		t.Logf("%s: filled %d delivery records, %d journal rows and %d waiting events in %s", engine.name, *engineRecords, *engineRecords,
			*enginePending, time.Since(began).Round(time.Second))
		idle(fmt.Sprintf("%d delivery records and journal rows, %d events waiting", *engineRecords, *enginePending))
	})
}

// fill inserts n rows of columns values each, many to a statement, in
// transactions of 20,000 rows.
func fill(t *testing.T, db *sql.DB, engine engineCase, head string, columns, n int, row func(i int) []any) {
	t.Helper()
	const perStatement = 200
	for start := 0; start < n; start += 20000 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		end := min(start+20000, n)
		for i := start; i < end; i += perStatement {
			var statement strings.Builder
			statement.WriteString(head)
			var args []any
			for j := i; j < min(i+perStatement, end); j++ {
				if j > i {
					statement.WriteString(", ")
				}
				statement.WriteString("(")
				for c := range columns {
					if c > 0 {
						statement.WriteString(", ")
					}
					if engine.dsn != "" {
						statement.WriteString("$" + strconv.Itoa(len(args)+c+1))
					} else {
						statement.WriteString("?")
					}
				}
				statement.WriteString(")")
				args = append(args, row(j)...)
			}
			if _, err := tx.Exec(statement.String(), args...); err != nil {
				tx.Rollback()
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// pgServer is the PostgreSQL server's postmaster, whose CPU time and its
// children's is read from /proc.
type pgServer struct{ postmaster int }

// postgresServer finds the server of the test's database; nil on SQLite.
func postgresServer(t *testing.T, db *sql.DB, engine engineCase) *pgServer {
	if engine.dsn == "" {
		return nil
	}
	var backend int
	if err := db.QueryRow(`SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", backend))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(status)))
	for sc.Scan() {
		if ppid, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(ppid))
			return &pgServer{postmaster: pid}
		}
	}
	t.Fatal("no parent of the PostgreSQL backend")
	return nil
}

// cpu is the CPU time of the server: the postmaster, its live children,
// and the children it reaped.
func (s *pgServer) cpu() time.Duration {
	if s == nil {
		return 0
	}
	ticks := procTicks(s.postmaster, true)
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && statField(string(stat), 4) == strconv.Itoa(s.postmaster) {
			ticks += procTicks(pid, false)
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// procTicks is a process's user and system time in clock ticks, with its
// reaped children's when children is set.
func procTicks(pid int, children bool) int64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := []int{14, 15}
	if children {
		fields = append(fields, 16, 17)
	}
	var ticks int64
	for _, f := range fields {
		n, _ := strconv.ParseInt(statField(string(stat), f), 10, 64)
		ticks += n
	}
	return ticks
}

// statField is the n-th field (from 1) of /proc/<pid>/stat; the second,
// the command, is in parentheses and may hold spaces.
func statField(stat string, n int) string {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 || n < 3 {
		return ""
	}
	fields := strings.Fields(stat[end+1:])
	if n-3 >= len(fields) {
		return ""
	}
	return fields[n-3]
}
