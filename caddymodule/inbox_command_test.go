package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// runCommand runs a `caddy payhook` command with args against the test
// Caddy's admin API, and returns what it printed on its standard output
// and its error.
func runCommand(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append(args, "--address", "localhost:2999"))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// A pending event's next attempt is never in the past: while the shop
// fails, the event waits for its route's probe; an event due is tried now.
func TestInboxSummaryNextAttempt(t *testing.T) {
	now := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	failing := func(probeAt time.Time) *inbox {
		h := &Handler{routePlace: new(atomic.Pointer[routeScope])}
		h.routePlace.Store(&routeScope{place: "listen tcp/:443; routes > {host: [shop.example]}"})
		return &inbox{handler: h, failures: 1, probeAt: probeAt}
	}
	up := failing(time.Time{})
	up.failures = 0
	tests := []struct {
		name  string
		route *inbox
		state store.InboxState
		next  time.Time
		want  time.Time
	}{
		{"shop down, event due: the probe's time", failing(now.Add(20 * time.Second)), store.Pending, now.Add(-time.Minute), now.Add(20 * time.Second)},
		{"shop down, the event's own time after the probe", failing(now.Add(20 * time.Second)), store.Pending, now.Add(time.Minute), now.Add(time.Minute)},
		{"shop down, the probe due: now", failing(now.Add(-time.Second)), store.Pending, now.Add(-time.Minute), now},
		{"shop up, event due: now", up, store.Pending, now.Add(-time.Minute), now},
		{"shop up, event due later", up, store.Pending, now.Add(time.Minute), now.Add(time.Minute)},
		{"route gone, event due: now", nil, store.Pending, now.Add(-time.Minute), now},
		{"delivered: none", up, store.Delivered, now.Add(-time.Minute), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &App{deliverer: &deliverer{routes: map[string]*inbox{}}}
			if tt.route != nil {
				app.deliverer.routes["k"] = tt.route
			}
			s := app.summarize(&store.InboxEvent{Route: "k", EventID: "e", State: tt.state, NextAt: tt.next}, now)
			if !s.NextAttempt.Equal(tt.want) {
				t.Errorf("next attempt %v, want %v", s.NextAttempt, tt.want)
			}
		})
	}
}

func TestAttemptTime(t *testing.T) {
	now := time.Date(2026, 12, 7, 21, 0, 0, 0, time.Local)
	for next, want := range map[time.Time]string{
		now:                         "now",
		now.Add(-time.Hour):         "now",
		now.Add(90 * time.Second):   "21:01:30",
		now.Add(4 * time.Hour):      "2026-12-08 01:00:00",
		now.Add(-24 * time.Hour):    "now",
		now.Add(24*time.Hour + 1e9): "2026-12-08 21:00:01",
	} {
		if got := attemptTime(next, now); got != want {
			t.Errorf("attemptTime(%v) = %q, want %q", next, got, want)
		}
	}
}

// The commands list an event with the time it was received, which a
// replay leaves, and its merchant reference; each prints a table or a
// sentence, and JSON with --json.
func TestInboxCommandsReadWell(t *testing.T) {
	e := startCaddy(t, inboxSite(" {\n\t\t\t\tretry_for 1s\n\t\t\t}"))
	e.upstream.setStatus(http.StatusBadGateway)
	resp, answer := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	var failed inboxList
	deadline := time.Now().Add(30 * time.Second)
	for len(failed.Events) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		out, err := runCommand(t, inboxCommand(), "--state", "failed", "--json")
		if err != nil || json.Unmarshal([]byte(out), &failed) != nil {
			t.Fatalf("inbox --json: %v\n%s", err, out)
		}
	}
	if len(failed.Events) != 1 {
		t.Fatalf("failed events: %+v", failed.Events)
	}
	received := failed.Events[0].ReceivedAt
	id := failed.Events[0].ID

	time.Sleep(1100 * time.Millisecond) // a replay a second later than the receipt
	e.upstream.setStatus(http.StatusOK)
	out, err := runCommand(t, replayCmd(), "--failed")
	if err != nil || out != "1 failed event queued for delivery: "+id+"\n" {
		t.Errorf("replay --failed: %v; printed %q, want a sentence", err, out)
	}
	e.waitTaken(1, 30*time.Second)
	waitState(t, id, "delivered")

	out, err = runCommand(t, inboxCommand(), "--json")
	var list inboxList
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Events) != 1 {
		t.Fatalf("inbox --json: %v\n%s", err, out)
	}
	ev := list.Events[0]
	if !ev.ReceivedAt.Equal(received) || ev.ReplayedAt.Before(received.Add(time.Second)) || ev.MerchantReference != "order-1042" {
		t.Errorf("after a replay: received %v, replayed %v, reference %q; want received %v (the callback's), replayed a second later, order-1042",
			ev.ReceivedAt, ev.ReplayedAt, ev.MerchantReference, received)
	}

	out, err = runCommand(t, inboxCommand())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "EVENT") || !strings.Contains(lines[0], "MERCHANT REF") {
		t.Fatalf("inbox: %v; printed:\n%s", err, out)
	}
	for _, want := range []string{id, "order-1042", "delivered", received.Local().Format(time.DateTime), "replayed " + ev.ReplayedAt.Local().Format(time.DateTime)} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("inbox's row lacks %q:\n%s", want, out)
		}
	}

	out, err = runCommand(t, replayCmd(), id, "--json")
	var replayed inboxSummary
	if err != nil || json.Unmarshal([]byte(out), &replayed) != nil || replayed.ID != id || !replayed.ReceivedAt.Equal(received) {
		t.Errorf("replay --json: %v; printed:\n%s", err, out)
	}
	e.waitTaken(2, 30*time.Second)
	out, err = runCommand(t, replayCmd(), "--failed", "--json")
	if err != nil || strings.TrimSpace(out) != "{\n  \"replayed\": []\n}" {
		t.Errorf("replay --failed --json with none failed: %v; printed %q", err, out)
	}
	out, err = runCommand(t, inboxRoutesCommand())
	if err != nil || !strings.HasPrefix(out, "INBOX") || !strings.Contains(out, "ixopay") {
		t.Errorf("inbox routes: %v; printed:\n%s", err, out)
	}
	out, err = runCommand(t, inboxRoutesCommand(), "--json")
	if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, `"inboxes"`) {
		t.Errorf("inbox routes --json: %v; printed:\n%s", err, out)
	}
	out, err = runCommand(t, eventsCommand(), "--ref", "order-1042", "--json")
	if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, `"merchant_reference": "order-1042"`) {
		t.Errorf("events --json: %v; printed:\n%s", err, out)
	}
}

// Without an inbox, the inbox commands say so and fail, where `caddy
// payhook inbox` printed an empty table and succeeded.
func TestInboxCommandsWithoutAnInbox(t *testing.T) {
	startCaddy(t, defaultSite)
	for _, args := range [][]string{{}, {"--json"}, {"routes"}, {"--state", "failed"}} {
		out, err := runCommand(t, inboxCommand(), args...)
		if err == nil || !strings.HasPrefix(err.Error(), "no inbox is configured") || out != "" {
			t.Errorf("inbox %v: error %v, printed %q; want no inbox is configured, and nothing printed", args, err, out)
		}
	}
	for _, args := range [][]string{{"--failed"}, {"some-event"}} {
		out, err := runCommand(t, replayCmd(), args...)
		if err == nil || !strings.HasPrefix(err.Error(), "no inbox is configured") || out != "" {
			t.Errorf("replay %v: error %v, printed %q; want no inbox is configured", args, err, out)
		}
	}
}

// A command given --config reads the admin address from it without
// Caddy's log lines ("using config from file", "adapted config to JSON",
// the adapter's warnings): what it prints is its own output only.
func TestCommandsPrintNoCaddyLog(t *testing.T) {
	startCaddy(t, inboxSite(""))
	config := filepath.Join(t.TempDir(), "Caddyfile")
	// Not formatted as caddy fmt would: the adapter warns.
	if err := os.WriteFile(config, []byte("{\nadmin localhost:2999\n}\n:0 {\nrespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		start string
	}{
		{[]string{"inbox"}, "no event in the inbox\n"},
		{[]string{"inbox", "--json"}, "{\n"},
		{[]string{"inbox", "routes"}, "INBOX"},
		{[]string{"events"}, "no callback in the journal matches\n"},
	} {
		cmd := exec.Command(bin, append(append([]string{"payhook"}, tt.args...), "--config", config)...)
		cmd.Env = append(os.Environ(), runAsCaddy+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || !strings.HasPrefix(stdout.String(), tt.start) || stderr.Len() > 0 {
			t.Errorf("caddy payhook %s --config: %v; printed:\n%s\nand on stderr:\n%s", strings.Join(tt.args, " "), err, stdout.String(), stderr.String())
		}
	}
}
