package normalize

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"testing"
)

// ReadRawRequest reads a testdata .in file: the exact request a provider
// sends. (Exported for the normalize_test package; tests only.)
func ReadRawRequest(t testing.TB, path string) (*http.Request, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return req, body
}
