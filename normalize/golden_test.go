package normalize_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

var update = flag.Bool("update", false, "rewrite the golden .envelope.json and .error files")

// goldenReceivedAt is the receive time every golden envelope is encoded with.
var goldenReceivedAt = time.Date(2026, 11, 20, 10, 34, 48, 120_000_000, time.UTC)

func inputFor(provider string, req *http.Request, body []byte) *Input {
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return &Input{Provider: provider, ContentType: mediaType, Body: body}
}

// runGolden normalizes every testdata/<provider>/*.in and compares the
// envelope with <case>.envelope.json, or the error with <case>.error. Every
// envelope is validated against the JSON Schema.
func runGolden(t *testing.T, provider string, normalizer Normalizer, verification func(*http.Request, *Input) verify.Result) {
	runGoldenWith(t, provider, normalizer, verification, func(answer []byte, _ string) []byte { return answer })
}

// runGoldenBatch is runGolden for providers whose callbacks may carry
// several events: the golden of a callback of several is the array of
// their envelopes, in order; of one, its envelope.
func runGoldenBatch(t *testing.T, provider string, normalizer func(*Input) ([]*Event, error), verification func(*http.Request, *Input) verify.Result) {
	runGoldenEvents(t, provider, normalizer, verification, func(answer []byte, _ string) []byte { return answer })
}

// runGoldenWith is runGolden for fetch-verified providers: unwrap turns a
// <case>.fetched.json (the API's answer) into what the verifier hands the
// normalizer; it may read more of the case's files (base is the case's path
// less its extension).
func runGoldenWith(t *testing.T, provider string, normalizer Normalizer, verification func(*http.Request, *Input) verify.Result, unwrap func(answer []byte, base string) []byte) {
	runGoldenEvents(t, provider, func(in *Input) ([]*Event, error) {
		ev, err := normalizer(in)
		if err != nil {
			return nil, err
		}
		return []*Event{ev}, nil
	}, verification, unwrap)
}

func runGoldenEvents(t *testing.T, provider string, normalizer func(*Input) ([]*Event, error), verification func(*http.Request, *Input) verify.Result, unwrap func(answer []byte, base string) []byte) {
	runGoldenRequests(t, provider, func(_ *http.Request, in *Input) ([]*Event, error) { return normalizer(in) }, verification, unwrap)
}

// runGoldenRequests is runGoldenEvents for normalizers that depend on the
// route the request reaches (its path).
func runGoldenRequests(t *testing.T, provider string, normalizer func(*http.Request, *Input) ([]*Event, error), verification func(*http.Request, *Input) verify.Result, unwrap func(answer []byte, base string) []byte) {
	files, err := filepath.Glob(filepath.Join("testdata", provider, "*.in"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs for %s: %v", provider, err)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			req, body := ReadRawRequest(t, in)
			base := strings.TrimSuffix(in, ".in")
			input := inputFor(provider, req, body)
			// A fetch-verified provider's API answer, as the API sends it.
			if answer, err := os.ReadFile(base + ".fetched.json"); err == nil {
				input.Fetched = unwrap(answer, base)
			}
			events, err := normalizer(req, input)
			if err != nil {
				compareGolden(t, base+".error", []byte(err.Error()+"\n"))
				return
			}
			var envelope []byte
			for i, ev := range events {
				one := Encode(ev, verification(req, input), goldenReceivedAt)
				envelopetest.Check(t, one)
				if len(events) == 1 {
					envelope = one
					break
				}
				if i == 0 {
					envelope = append(envelope, '[')
				} else {
					envelope = append(envelope, ',')
				}
				envelope = append(envelope, one...)
				if i == len(events)-1 {
					envelope = append(envelope, ']')
				}
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, envelope, "", "  "); err != nil {
				t.Fatalf("envelope is not valid JSON: %v\n%s", err, envelope)
			}
			pretty.WriteByte('\n')
			compareGolden(t, base+".envelope.json", pretty.Bytes())
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./normalize -update to create it)\ngot:\n%s", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./normalize -update to accept):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the lines that differ between want and got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return out.String()
}
