package verify

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIXOPAYVerifiesGoldenRequests checks the verifier against the golden
// requests in ../normalize/testdata/ixopay, which were signed with
// "golden-secret" by an independent implementation (Python's hmac module).
func TestIXOPAYVerifiesGoldenRequests(t *testing.T) {
	files, _ := filepath.Glob("../normalize/testdata/ixopay/*.in")
	if len(files) == 0 {
		t.Fatal("no golden requests")
	}
	v := &IXOPAY{Secrets: [][]byte{[]byte("golden-secret")}, MaxSkew: 0, Now: func() time.Time { return testNow }}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(req.Body)
		cb := &Callback{Method: req.Method, RequestURI: req.RequestURI, Header: req.Header, Body: body}
		if _, err := v.Verify(context.Background(), cb); err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}
