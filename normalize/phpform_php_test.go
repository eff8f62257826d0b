package normalize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDecodePHPFormMatchesPHP runs the table cases, the fuzz corpus, 20,000
// random bodies and the Payrexx form bodies through PHP's own parse_str (the code that fills
// $_POST) and compares the result with DecodePHPForm. It needs the php
// command; CI installs it (.ci/run), elsewhere the test is skipped.
func TestDecodePHPFormMatchesPHP(t *testing.T) {
	php := phpCommand(t)
	var bodies [][]byte
	for _, c := range phpFormCases {
		bodies = append(bodies, []byte(c.body))
	}
	corpus, _ := filepath.Glob("testdata/fuzz/FuzzDecodePHPForm/*")
	for _, path := range corpus {
		raw, _ := os.ReadFile(path)
		lines := strings.Split(string(raw), "\n")
		if len(lines) < 2 {
			continue
		}
		// go test fuzz v1: []byte("...")
		quoted := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		if body, err := strconv.Unquote(quoted); err == nil {
			bodies = append(bodies, []byte(body))
		}
	}
	bodies = append(bodies, randomForms(20000)...)
	forms, _ := filepath.Glob("testdata/payrexx/*.in")
	for _, path := range forms {
		req, body := ReadRawRequest(t, path)
		if strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			bodies = append(bodies, body)
		}
	}

	// One PHP process decodes every body: NUL-separated in, one JSON line out.
	script := `foreach (explode("\0", stream_get_contents(STDIN)) as $b) { parse_str(base64_decode($b), $a);
		echo json_encode($a, JSON_INVALID_UTF8_SUBSTITUTE), "\n"; }`
	var in bytes.Buffer
	for i, b := range bodies {
		if i > 0 {
			in.WriteByte(0)
		}
		in.WriteString(base64Std(b))
	}
	cmd := exec.Command(php, "-d", "max_input_vars=100000", "-r", script)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	results := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(results) != len(bodies) {
		t.Fatalf("php decoded %d bodies, want %d", len(results), len(bodies))
	}
	compared := 0
	for i, body := range bodies {
		want, ours := results[i], string(DecodePHPForm(body))
		// parse_str reads its argument as a C string and stops at a raw NUL
		// byte; $_POST, which payhook mimics, only cuts a key there. And
		// where the decoded bytes are not UTF-8, json_encode's substitution
		// (its own, not Unicode's maximal subparts) differs from ours while
		// the bytes agree. Neither is a difference in decoding.
		if bytes.IndexByte(body, 0) >= 0 || strings.Contains(want, `\ufffd`) {
			continue
		}
		compared++
		if want == "[]" && ours == "{}" {
			continue // an empty PHP array is written as a list
		}
		var w, o any
		if json.Unmarshal([]byte(want), &w) != nil || json.Unmarshal([]byte(ours), &o) != nil ||
			!reflect.DeepEqual(w, o) || want[0] != ours[0] {
			t.Errorf("body %q:\n php %s\nours %s", body, want, ours)
		}
	}
	t.Logf("%d bodies compared with %s (%d skipped: raw NUL bytes or invalid UTF-8)", compared, php, len(bodies)-compared)
}

// randomForms makes n bodies from the tokens PHP's rules care about, with a
// fixed seed so a failure repeats.
func randomForms(n int) [][]byte {
	tokens := []string{"a", "b", "[", "]", "%5B", "%5D", "=", "&", "0", "1", "2", "-", " ", ".", "%20", "+",
		"x", "[]", "[0]", "[1]", "%09", "01", "%00", ";", "[ ]", "%C3%A9", "%FF"}
	r := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, n)
	for i := range bodies {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(tokens[r.IntN(len(tokens))])
		}
		bodies[i] = []byte(b.String())
	}
	return bodies
}

func base64Std(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// TestDecodePHPFormLimitsMatchPHPPost posts bodies at and past PHP's input
// limits to PHP's own built-in web server and compares its $_POST with
// DecodePHPForm. parse_str counts differently from $_POST (it stops at
// exactly max_input_vars, while $_POST keeps the pair that exceeds the
// limit), so only a real POST shows what a PHP shop sees.
func TestDecodePHPFormLimitsMatchPHPPost(t *testing.T) {
	php := phpCommand(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.php"), []byte(`<?php echo json_encode($_POST, JSON_INVALID_UTF8_SUBSTITUTE);`), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	server := exec.Command(php, "-n", "-d", "display_errors=0", "-S", addr, "-t", dir)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })

	var many, appends, leadingEmpty, emptyNames, deep, deepPairs strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&many, "k%d=v&", i)
		appends.WriteString("a[]=x&")
	}
	leadingEmpty.WriteString("&&&&")
	for i := range 998 {
		fmt.Fprintf(&leadingEmpty, "k%d=v&", i)
	}
	leadingEmpty.WriteString("x=1&y=2&z=3")
	for range 999 {
		emptyNames.WriteString("=a&")
	}
	emptyNames.WriteString("x=1&y=2")
	deep.WriteString("a" + strings.Repeat("[b]", 64) + "=kept&c" + strings.Repeat("[d]", 65) + "=dropped&e=1")
	for range 40 {
		deepPairs.WriteString("p[]" + strings.Repeat("[q]", 62) + "=v&")
	}
	for _, body := range []string{many.String(), appends.String(), leadingEmpty.String(), emptyNames.String(), deep.String(), deepPairs.String()} {
		var resp *http.Response
		for attempt := 0; ; attempt++ {
			resp, err = http.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err == nil || attempt == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond) // the server is starting
		}
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ours := DecodePHPForm([]byte(body))
		var w, o any
		if json.Unmarshal(want, &w) != nil || json.Unmarshal(ours, &o) != nil || !reflect.DeepEqual(w, o) {
			t.Errorf("body %.60q… (%d bytes):\n  $_POST %.200s\n    ours %.200s", body, len(body), want, ours)
		}
	}
}

// phpCommand is the php command the tests run PHP's own decoders with:
// skipped without it, except in CI, which installs php-cli (.ci/run).
func phpCommand(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("php is not installed; .ci/run installs php-cli for this test")
		}
		t.Skip("php is not installed (apt-get install php-cli)")
	}
	return php
}
