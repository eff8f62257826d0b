package normalize_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// hostilePayloads are provider bodies, signed or fetched, that carry what
// strict JSON readers refuse or choke on: invalid UTF-8, lone surrogates,
// keys starting with NUL, control characters, deep nesting, huge numbers.
var hostilePayloads = []struct {
	name string
	body string
}{
	{"quirk_invalid_utf8_in_a_field", "{\"result\":\"OK\",\"uuid\":\"u\xff1\",\"transactionType\":\"DEBIT\",\"merchantTransactionId\":\"o\xc3\x28\",\"amount\":\"1.00\",\"currency\":\"EUR\"}"},
	{"quirk_utf8_encoded_surrogate", "{\"result\":\"OK\",\"uuid\":\"\xed\xa0\x80\",\"transactionType\":\"DEBIT\",\"amount\":\"1.00\",\"currency\":\"EUR\"}"},
	{"quirk_lone_surrogate_escapes", `{"result":"OK","uuid":"a\ud800","merchantTransactionId":"\udfff","transactionType":"DEBIT","amount":"1.00","currency":"EUR","extraData":{"x":"\ud83d"}}`},
	{"quirk_key_starting_with_nul", `{"result":"OK","uuid":"u2","transactionType":"DEBIT","amount":"1.00","currency":"EUR","extraData":{"\u0000secret":"x","\u0000":"y"}}`},
	{"quirk_control_characters_escaped", `{"result":"OK","uuid":"u3\u0001\u001f","transactionType":"DEBIT","amount":"1.00","currency":"EUR","message":"\b\f\n\r\t"}`},
	{"quirk_deep_nesting_at_the_limit", `{"result":"OK","uuid":"u4","transactionType":"DEBIT","amount":"1.00","currency":"EUR","extraData":` + strings.Repeat(`{"a":`, 62) + `1` + strings.Repeat(`}`, 62) + `}`},
	{"quirk_huge_numbers", `{"result":"OK","uuid":"u5","transactionType":"DEBIT","amount":"1.00","currency":"EUR","n":1e999999,"m":-123456789012345678901234567890}`},
	{"quirk_html_and_unicode_separators", "{\"result\":\"OK\",\"uuid\":\"u6\",\"transactionType\":\"DEBIT\",\"amount\":\"1.00\",\"currency\":\"EUR\",\"html\":\"</script><script>\u2028\u2029\"}"},
}

// TestEnvelopesOfHostilePayloadsDecodeInPHP feeds envelopes made from
// hostile payloads, every golden envelope and the fuzz corpora to PHP's own
// json_decode, as objects and as arrays: a PHP shop must be able to read
// every envelope payhook forwards, or it answers 5xx and the provider
// retries an event nobody can ever take. CI installs php-cli (.ci/run).
func TestEnvelopesOfHostilePayloadsDecodeInPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("php is not installed; .ci/run installs php-cli for this test")
		}
		t.Skip("php is not installed (apt-get install php-cli)")
	}
	var envelopes [][]byte
	add := func(ev *Event, err error) {
		if err != nil {
			return
		}
		envelopes = append(envelopes, Encode(ev, verify.Result{Method: "test"}, goldenReceivedAt))
	}
	for _, p := range hostilePayloads {
		ev, err := IXOPAY(&Input{Provider: "ixopay", Body: []byte(p.body)})
		if err != nil {
			t.Errorf("%s: refused: %v", p.name, err)
			continue
		}
		add(ev, nil)
		// The same bytes as an API's answer and as an unsigned webhook.
		add(Payrexx(&Input{Provider: "payrexx", ContentType: "application/json",
			Body:    []byte(`{"transaction":{"id":1,"x":` + p.body + `}}`),
			Fetched: []byte(`{"id":1,"status":"confirmed","amount":100,"invoice":{"currency":"CHF"},"x":` + p.body + `}`)}))
	}
	// PHP forms: raw bytes PHP itself passes through.
	for _, form := range []string{"transaction[id]=1&transaction[x]=%FF%FE", "transaction[id]=1&transaction[%00k]=v&transaction[v]=%00", "transaction[id]=1&transaction[%ED%A0%80]=%C3%28"} {
		add(Payrexx(&Input{Provider: "payrexx", ContentType: "application/x-www-form-urlencoded", Body: []byte(form),
			Fetched: []byte(`{"id":1,"status":"confirmed","amount":100,"invoice":{"currency":"CHF"}}`)}))
	}
	goldens, _ := filepath.Glob("testdata/*/*.envelope.json")
	for _, path := range goldens {
		raw, _ := os.ReadFile(path)
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err == nil {
			envelopes = append(envelopes, compact.Bytes())
		}
	}
	for _, corpus := range []string{"FuzzIXOPAY", "FuzzPyxis"} {
		files, _ := filepath.Glob(filepath.Join("testdata/fuzz", corpus, "*"))
		for _, path := range files {
			body := fuzzInput(path)
			if corpus == "FuzzIXOPAY" {
				add(IXOPAY(&Input{Provider: "ixopay", Body: body}))
			} else {
				add(Pyxis(&Input{Provider: "pyxis", Body: body}))
			}
		}
	}

	script := `$n = 0; while (($line = fgets(STDIN)) !== false) { $n++;
		foreach ([false, true] as $assoc) { try { json_decode($line, $assoc, 512, JSON_THROW_ON_ERROR); }
		catch (JsonException $e) { echo $n, " ", $assoc ? "array" : "object", ": ", $e->getMessage(), "\n"; } } }`
	var in bytes.Buffer
	for _, envelope := range envelopes {
		if bytes.IndexByte(envelope, '\n') >= 0 {
			t.Fatalf("an envelope spans lines: %s", envelope)
		}
		in.Write(envelope)
		in.WriteByte('\n')
	}
	cmd := exec.Command(php, "-r", script)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		n, _ := strconv.Atoi(strings.Fields(line)[0])
		t.Errorf("json_decode refused envelope %d: %s\n%.400s", n, line, envelopes[n-1])
	}
	t.Logf("%d envelopes decoded by %s", len(envelopes), php)
}

// fuzzInput reads the first []byte of a committed fuzz corpus file.
func fuzzInput(path string) []byte {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 2 {
		return nil
	}
	quoted := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	body, err := strconv.Unquote(quoted)
	if err != nil {
		return nil
	}
	return []byte(body)
}
