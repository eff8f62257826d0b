package caddymodule

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCaddyfileExampleIsValid adapts and provisions Caddyfile.example the
// way `caddy validate` does, so the README's first command cannot rot.
func TestCaddyfileExampleIsValid(t *testing.T) {
	for name, value := range demoSecrets {
		t.Setenv(name, value) // each placeholder the example names, in its format
	}
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	config, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(raw, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("Caddyfile.example: %s", w.String())
	}
	if err := caddy.Validate(mustUnmarshalConfig(t, config)); err != nil {
		t.Fatal(err)
	}
	// Without the secret the example must not validate.
	t.Setenv("IXOPAY_SHARED_SECRET", "")
	if err := caddy.Validate(mustUnmarshalConfig(t, config)); err == nil || !strings.Contains(err.Error(), "IXOPAY_SHARED_SECRET") {
		t.Errorf("Caddyfile.example without IXOPAY_SHARED_SECRET: %v, want an error naming it", err)
	}
}

func mustUnmarshalConfig(t *testing.T, raw []byte) *caddy.Config {
	t.Helper()
	cfg := new(caddy.Config)
	if err := caddy.StrictUnmarshalJSON(raw, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDemoUpstreamPrintsTheEnvelope(t *testing.T) {
	var out bytes.Buffer
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/callbacks/ixopay?x=1", strings.NewReader(`{"specversion":"1.0","id":"abc"}`))
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	demoUpstream(&out, http.StatusAccepted).ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Errorf("demo upstream answered %d", rec.Code)
	}
	for _, want := range []string{"POST /callbacks/ixopay?x=1", "application/cloudevents+json", "\"specversion\": \"1.0\"", "\"id\": \"abc\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
