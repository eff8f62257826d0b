package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// smallFilesystem mounts a tmpfs of size bytes for the test: a disk that
// fills. Mounting needs root (CI runs as root); elsewhere the test is
// skipped, and in CI it fails.
func smallFilesystem(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mounting a tmpfs for the disk-full test: %v\n%s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, bytes.TrimSpace(out))
	}
	// Unmounted after Caddy stops (cleanups run last registered first).
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the filesystem has no space left,
// and returns a function that frees it.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last few blocks too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	f.Close()
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// A full disk under the SQLite database: callbacks the store cannot record
// are answered 503 (the provider retries), none that was acknowledged is
// lost, the deliverer does not spin on a record it cannot settle, and
// everything resumes by itself once space is freed.
func TestInboxStoreDiskFullOnSQLite(t *testing.T) {
	dir := smallFilesystem(t, "48m")
	up := newUpstream(t)
	e := startCaddyStore(t, dir, "", "", siteOf(inboxSite("")), up)
	sendOK(t, e, payment("full0", "DEBIT", "OK"))
	e.waitTaken(1, 30*time.Second)

	free := fillDisk(t, dir)
	// The database's WAL may still have room for a few commits: send until
	// the store says no.
	accepted := []string{"full0"}
	var refused []string
	for i := 1; i <= 400 && len(refused) < 3; i++ {
		uuid := fmt.Sprintf("full%d", i)
		resp, answer := e.send(ixopayCallback(payment(uuid, "DEBIT", "OK")))
		switch resp.StatusCode {
		case http.StatusOK:
			accepted = append(accepted, uuid)
		case http.StatusServiceUnavailable:
			refused = append(refused, uuid)
		default:
			t.Fatalf("with the disk full: %d %q, want 200 or 503", resp.StatusCode, answer)
		}
	}
	if len(refused) == 0 {
		t.Fatalf("%d callbacks were stored on a full disk: the disk never filled", len(accepted))
	}
	// While the disk stays full, the shop is not flooded: each accepted
	// event at most twice (one more delivery when its outcome could not be
	// recorded), with backoff.
	time.Sleep(3 * time.Second)
	counts := map[string]int{}
	for _, r := range up.received() {
		counts[gjson.GetBytes(r.Body, "data.provider_reference").String()]++
	}
	for ref, n := range counts {
		if n > 2 {
			t.Errorf("the shop received %s %d times while the disk was full", ref, n)
		}
	}
	if !bytes.Contains([]byte(e.rawLog()), []byte("disk is full")) {
		t.Error("the log does not say the disk is full")
	}

	free()
	for _, uuid := range refused { // the provider's retries
		sendOK(t, e, payment(uuid, "DEBIT", "OK"))
	}
	want := len(accepted) + len(refused)
	deadline := time.Now().Add(time.Minute)
	for {
		got := map[string]bool{}
		for _, r := range e.upstream.received() {
			if r.Status == http.StatusOK {
				got[gjson.GetBytes(r.Body, "data.provider_reference").String()] = true
			}
		}
		if len(got) == want {
			break
		}
		if time.Now().After(deadline) {
			for _, uuid := range append(accepted, refused...) {
				if !got[uuid] {
					t.Errorf("%s never reached the shop", uuid)
				}
			}
			t.Fatalf("the shop took %d of %d events", len(got), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
