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

// npmPackage returns a directory whose node_modules holds pkg and the
// other packages (each name@version), installed together.
func npmPackage(t *testing.T, pkg string, more ...string) string {
	t.Helper()
	pkgs := append([]string{pkg}, more...)
	key := strings.Join(pkgs, " ")
	_, errNode := exec.LookPath("node")
	_, errNPM := exec.LookPath("npm")
	if errNode != nil || errNPM != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are needed for %s (node: %v, npm: %v)", key, errNode, errNPM)
		}
		t.Skipf("node and npm are not installed; %s cannot run", key)
	}
	npmPackages.Lock()
	defer npmPackages.Unlock()
	if dir, ok := npmPackages.dirs[key]; ok {
		return dir
	}
	dir := filepath.Join(os.TempDir(), "payhook-npm-"+strings.NewReplacer("@", "-", "/", "-", " ", "+").Replace(key))
	if !npmInstalled(dir, pkgs) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Without a registry (no network) npm would wait for good.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", append([]string{"install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir}, pkgs...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install %s: %v\n%s", key, err, out)
		}
	}
	npmPackages.dirs[key] = dir
	return dir
}

// npmInstalled reports whether dir's node_modules holds every one of pkgs.
func npmInstalled(dir string, pkgs []string) bool {
	for _, pkg := range pkgs {
		name, _, _ := strings.Cut(strings.TrimPrefix(pkg, "@"), "@")
		if strings.HasPrefix(pkg, "@") {
			name = "@" + name
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", name, "package.json")); err != nil {
			return false
		}
	}
	return true
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
