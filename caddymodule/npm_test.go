package caddymodule

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// npmPackages installs npm packages the tests use as independent
// implementations (the official standardwebhooks library), once per machine
// into a cache directory, by the test's own setup: nothing is installed by
// hand. Without node and npm the tests that need them are skipped, except
// in CI, where they fail.
var npmPackages = struct {
	sync.Mutex
	dirs map[string]string
}{dirs: map[string]string{}}

// npmPackage returns a directory whose node_modules holds pkg (name@version).
func npmPackage(t *testing.T, pkg string) string {
	t.Helper()
	node, errNode := exec.LookPath("node")
	_, errNPM := exec.LookPath("npm")
	if errNode != nil || errNPM != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are needed for %s (node: %v, npm: %v)", pkg, errNode, errNPM)
		}
		t.Skipf("node and npm are not installed; %s cannot run", pkg)
	}
	_ = node
	npmPackages.Lock()
	defer npmPackages.Unlock()
	if dir, ok := npmPackages.dirs[pkg]; ok {
		return dir
	}
	dir := filepath.Join(os.TempDir(), "payhook-npm-"+strings.NewReplacer("@", "-", "/", "-").Replace(pkg))
	name, _, _ := strings.Cut(strings.TrimPrefix(pkg, "@"), "@")
	if strings.HasPrefix(pkg, "@") {
		name = "@" + name
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", name, "package.json")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Without a registry (no network) npm would wait for good.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install %s: %v\n%s", pkg, err, out)
		}
	}
	npmPackages.dirs[pkg] = dir
	return dir
}

// runNode runs a node script in dir (where its packages are installed) with
// args and returns what it prints, trimmed.
func runNode(t *testing.T, dir, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command("node", append([]string{"-e", script, "--"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}
