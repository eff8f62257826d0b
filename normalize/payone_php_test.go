package normalize

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeLatin1FormMatchesPHP decodes PAYONE's goldens, the form cases
// and 20,000 random ISO-8859-1 forms as PAYONE's own shop plugins do: PHP's
// parse_str, then each key and value converted with utf8_encode, the
// ISO-8859-1 → UTF-8 conversion PAYONE's OXID plugin applies to every field
// (its Shopware 6 plugin uses mb_convert_encoding(…, 'UTF-8', 'ISO-8859-1'),
// the same mapping; iconv is asked too, and must agree). It compares the
// result with DecodeLatin1Form.
func TestDecodeLatin1FormMatchesPHP(t *testing.T) {
	php := phpCommand(t)
	var bodies [][]byte
	for _, c := range phpFormCases {
		bodies = append(bodies, []byte(c.body))
	}
	bodies = append(bodies, randomLatin1Forms(20000)...)
	goldens, _ := filepath.Glob("testdata/payone/*.in")
	for _, path := range goldens {
		_, body := ReadRawRequest(t, path)
		bodies = append(bodies, body)
	}
	script := `function conv($v) {
		if (is_array($v)) { $o = []; foreach ($v as $k => $x) { $o[is_int($k) ? $k : conv($k)] = conv($x); } return $o; }
		$b = iconv('ISO-8859-1', 'UTF-8', $v);
		$a = function_exists('utf8_encode') ? @utf8_encode($v) : $b; // removed after PHP 8
		if ($a !== $b) { fwrite(STDERR, "utf8_encode and iconv disagree\n"); exit(1); }
		return $a;
	}
	foreach (explode("\0", stream_get_contents(STDIN)) as $b) { parse_str(base64_decode($b), $a);
		echo json_encode(conv($a)), "\n"; }`
	var in bytes.Buffer
	for i, b := range bodies {
		if i > 0 {
			in.WriteByte(0)
		}
		in.WriteString(base64Std(b))
	}
	cmd := exec.Command(php, "-d", "max_input_vars=100000", "-r", script)
	cmd.Stdin = &in
	cmd.Stderr = os.Stderr
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
		want, ours := results[i], string(DecodeLatin1Form(body))
		// parse_str stops at a raw NUL byte, $_POST does not (see
		// TestDecodePHPFormMatchesPHP).
		if bytes.IndexByte(body, 0) >= 0 {
			continue
		}
		compared++
		if want == "[]" && ours == "{}" {
			continue
		}
		var w, o any
		if json.Unmarshal([]byte(want), &w) != nil || json.Unmarshal([]byte(ours), &o) != nil ||
			!reflect.DeepEqual(w, o) || want[0] != ours[0] {
			t.Errorf("body %q:\n php %s\nours %s", body, want, ours)
		}
	}
	if compared < 20000 {
		t.Fatalf("only %d bodies compared", compared)
	}
	t.Logf("%d bodies compared with %s", compared, php)
}

// randomLatin1Forms makes n bodies of form tokens and ISO-8859-1 bytes,
// raw and %-escaped, with a fixed seed so a failure repeats.
func randomLatin1Forms(n int) [][]byte {
	tokens := []string{"a", "b", "[", "]", "=", "&", "0", "1", "[]", "[1]", " ", ".", "+", "%", "%2", "%26", "%3D",
		"%E4", "%e4", "\xe4", "%FC", "\xfc", "%DF", "\xdf", "%80", "\x80", "%9F", "\x9f", "%A0", "%FF", "\xff", "%C3%A9", "\xc3\xa9", "%7F"}
	r := rand.New(rand.NewPCG(3, 4))
	bodies := make([][]byte, n)
	for i := range bodies {
		var b strings.Builder
		for range 1 + r.IntN(14) {
			b.WriteString(tokens[r.IntN(len(tokens))])
		}
		bodies[i] = []byte(b.String())
	}
	return bodies
}
