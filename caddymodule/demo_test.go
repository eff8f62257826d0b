package caddymodule

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateExample = flag.Bool("update-example", false, "rewrite Caddyfile.example from caddymodule/Caddyfile.example.tmpl")

// Caddyfile.example is the demo's Caddyfile with the demo's default
// addresses: what the README shows is what the demo runs.
func TestCaddyfileExampleIsTheDemos(t *testing.T) {
	const path = "../Caddyfile.example"
	got := demoCaddyfileFor(defaultDemoAddresses)
	if *updateExample {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Caddyfile.example is not caddymodule/Caddyfile.example.tmpl with the demo's defaults: edit the template, then run go test ./caddymodule -run TestCaddyfileExampleIsTheDemos -update-example\n%s",
			firstDifference(string(want), string(got)))
	}
}

// firstDifference shows the first line where want and got differ.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return ""
}

// The demo moves every route with its shop and its stand-in of the APIs.
func TestDemoCaddyfileFollowsTheAddresses(t *testing.T) {
	caddyfile := string(demoCaddyfileFor(demoAddresses{Site: "http://localhost:9880", Admin: "localhost:9019", Shop: "127.0.0.1:9080", API: "http://127.0.0.1:9881"}))
	for _, stale := range []string{"8880", "2019", "8080", "8881"} {
		if strings.Contains(caddyfile, stale) {
			t.Errorf("the demo's Caddyfile still names %s:\n%s", stale, caddyfile)
		}
	}
	if n := strings.Count(caddyfile, "reverse_proxy 127.0.0.1:9080"); n != 11 {
		t.Errorf("%d routes proxy to the shop, want 11", n)
	}
	if n := strings.Count(caddyfile, "api_base http://127.0.0.1:9881"); n != 9 {
		t.Errorf("%d routes fetch from the stand-in, want 9", n)
	}
}

// The demo runs from any directory with the binary alone, keeps its state
// in a temporary directory it removes, and writes nothing into Caddy's data
// and config directories: a second demo delivers --id 42 again, where it
// found it already delivered by the first.
func TestDemoStartsAfreshFromAnywhere(t *testing.T) {
	home := t.TempDir()
	dirs := map[string]string{
		"HOME": home, "XDG_DATA_HOME": filepath.Join(home, "data"), "XDG_CONFIG_HOME": filepath.Join(home, "config"), "TMPDIR": filepath.Join(home, "tmp"),
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	site := fmt.Sprintf("localhost:%d", httpPortFor(t))
	for run := 1; run <= 2; run++ {
		demo := startDemo(t, dirs, "--listen", site, "--admin", fmt.Sprintf("localhost:%d", freePort(t)),
			"--upstream", "localhost:0", "--api", "localhost:0")
		send := func() {
			t.Helper()
			resp, body, err := sendSample(t.Context(), "ixopay", "http://"+site+"/callbacks/ixopay", sendOptions{
				secret: "demo-secret", id: "42", status: "captured", amount: "9.99", currency: "EUR", reference: "order-1042", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatalf("demo %d: %v", run, err)
			}
			if resp.StatusCode != http.StatusOK || string(body) != "OK" {
				t.Errorf("demo %d answered %s %q", run, resp.Status, body)
			}
		}
		send()
		if n := demo.shopReceivedWithin(1, 5*time.Second); n != 1 {
			t.Errorf("demo %d: the shop received --id 42 %d times, want once:\n%s", run, n, demo.output())
		}
		send() // a duplicate within one demo
		if n := demo.shopReceivedWithin(2, time.Second); n != 1 {
			t.Errorf("demo %d: the shop received --id 42 again within the demo:\n%s", run, demo.output())
		}
		demo.stop()
	}
	for name, dir := range dirs {
		var written []string
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && path != dir && !d.IsDir() {
				written = append(written, path)
			}
			return nil
		})
		if len(written) > 0 {
			t.Errorf("the demo left files in $%s: %v", name, written)
		}
	}
}

// demoProcess is `caddy payhook demo` running as a process of its own.
type demoProcess struct {
	t   *testing.T
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer // standard output and error
}

// startDemo runs the demo, this test binary acting as Caddy, in an empty
// directory with the environment dirs, and waits until it is ready.
func startDemo(t *testing.T, dirs map[string]string, args ...string) *demoProcess {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &demoProcess{t: t, cmd: exec.Command(bin, append([]string{"payhook", "demo"}, args...)...)}
	d.cmd.Dir = t.TempDir() // no Caddyfile.example here
	d.cmd.Env = append(os.Environ(), runAsCaddy+"=1")
	for name, dir := range dirs {
		d.cmd.Env = append(d.cmd.Env, name+"="+dir)
	}
	pipe, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.cmd.Stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if sc.Text() == "demo: press Ctrl-C to stop" {
				close(ready) // printed once
			}
		}
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("the demo did not start:\n%s", d.output())
	}
	return d
}

func (d *demoProcess) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// shopReceived counts the envelopes the demo's shop printed.
func (d *demoProcess) shopReceived() int {
	return strings.Count(d.output(), "── the shop received POST /callbacks/ixopay")
}

// shopReceivedWithin waits until the shop's lines in the demo's output
// number n, for within at most (they reach the test through a pipe, a
// moment after the callback's answer), and returns how many there are.
func (d *demoProcess) shopReceivedWithin(n int, within time.Duration) int {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if got := d.shopReceived(); got >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// stop interrupts the demo, as Ctrl-C does, and waits for it to end.
func (d *demoProcess) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		d.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("the demo ended with %v:\n%s", err, d.output())
		}
	case <-time.After(15 * time.Second):
		d.t.Fatalf("the demo did not stop on an interrupt:\n%s", d.output())
	}
}

// freePort returns a TCP port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Every `caddy payhook send` line the demo prints goes through as printed:
// payhook takes the callback (verified by its signature, or by what the
// demo's stand-in of the provider's API serves) and the demo's shop prints
// the captured payment's envelope.
func TestEveryDemoSendLineReachesTheShop(t *testing.T) {
	site := fmt.Sprintf("localhost:%d", httpPortFor(t))
	demo := startDemo(t, nil, "--listen", site, "--admin", fmt.Sprintf("localhost:%d", freePort(t)),
		"--upstream", "localhost:0", "--api", "localhost:0")
	defer demo.stop()
	lines := demoSendLines(demo.output())
	sent := map[string]bool{}
	for _, args := range lines {
		sent[args[0]] = true
	}
	for _, provider := range demoFetchingProviders(string(demoCaddyfileFor(defaultDemoAddresses))) {
		if !sent[provider] {
			t.Errorf("the demo's %s route fetches from the stand-in, and the demo prints no send line for it:\n%s", provider, demo.output())
		}
	}
	for _, args := range lines {
		provider, target := args[0], args[len(args)-1]
		t.Run(provider, func(t *testing.T) {
			path := target[strings.Index(target, "/callbacks/"):]
			marker := "── the shop received POST " + path
			before := strings.Count(demo.output(), marker)
			cmd := sendCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(args)
			if err := cmd.ExecuteContext(t.Context()); err != nil {
				t.Fatalf("send %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), demo.output())
			}
			wants := []string{`"source": "payhook/` + provider + `"`, `"status": "captured"`}
			var envelope string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				output := demo.output()
				if strings.Count(output, marker) == before {
					continue
				}
				envelope = output[strings.LastIndex(output, marker):]
				if next := strings.Index(envelope, "\n── "); next >= 0 {
					envelope = envelope[:next]
				}
				if strings.Contains(envelope, wants[0]) && strings.Contains(envelope, wants[1]) {
					break
				}
			}
			if envelope == "" {
				t.Fatalf("the shop received nothing at %s:\n%s", path, demo.output())
			}
			for _, want := range wants {
				if !strings.Contains(envelope, want) {
					t.Errorf("the shop's envelope lacks %s:\n%s", want, envelope)
				}
			}
		})
	}
}

// demoSendLines are the arguments of the `payhook send` commands in the
// demo's output, each joined from its continued lines.
func demoSendLines(output string) [][]string {
	var commands [][]string
	lines := strings.Split(output, "\n")
	for i := 0; i < len(lines); i++ {
		_, rest, ok := strings.Cut(lines[i], "payhook send ")
		if !ok {
			continue
		}
		for strings.HasSuffix(strings.TrimSpace(rest), `\`) && i+1 < len(lines) {
			i++
			rest = strings.TrimSuffix(strings.TrimSpace(rest), `\`) + " " + strings.TrimSpace(lines[i])
		}
		commands = append(commands, strings.Fields(rest))
	}
	return commands
}

// demoFetchingProviders are the providers whose routes in caddyfile fetch
// from an api_base.
func demoFetchingProviders(caddyfile string) []string {
	var providers []string
	for _, block := range strings.Split(caddyfile, "\n\t\tpayhook ")[1:] {
		name, _, _ := strings.Cut(block, " ")
		if body, _, _ := strings.Cut(block, "\n\t\t}"); strings.Contains(body, "api_base") {
			providers = append(providers, name)
		}
	}
	return providers
}
