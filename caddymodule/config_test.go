package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// Configuration mistakes fail loading (and so `caddy validate`) with a
// message naming the problem.
func TestConfigurationMistakesFailValidation(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SECRET", testSecret)
	os.Unsetenv("PAYHOOK_TEST_UNSET")
	site := func(payhook string) string {
		return fmt.Sprintf("{\n\tadmin localhost:2999\n\thttp_port 9080\n}\nhttp://localhost:9080 {\n\t%s\n\trespond 200\n}\n", payhook)
	}
	tests := []struct {
		name, payhook, want string
	}{
		{"no secret", "payhook ixopay", "at least one secret is required"},
		{"empty block", "payhook ixopay {\n\t}", "at least one secret is required"},
		{"unset environment variable", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_UNSET}\n\t}", "{env.PAYHOOK_TEST_UNSET} is empty"},
		{"missing secret file", "payhook ixopay {\n\t\tsecret {file./nonexistent/payhook-secret}\n\t}", "{file./nonexistent/payhook-secret} is empty"},
		{"unknown placeholder", "payhook ixopay {\n\t\tsecret {http.request.uri}\n\t}", "unrecognized placeholder"},
		{"unknown provider", "payhook nosuchpay {\n\t\tsecret x\n\t}", `unknown provider \"nosuchpay\"`},
		{"no provider", "payhook {\n\t\tsecret x\n\t}", "payhook needs a provider name"},
		{"unknown option", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tsecrt x\n\t}", `unrecognized payhook option \"secrt\"`},
		{"bad max_skew", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tmax_skew soon\n\t}", "max_skew"},
		{"negative max_skew", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tmax_skew -1m\n\t}", "max_skew must be positive"},
		{"bad max_body", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tmax_body lots\n\t}", "max_body"},
		{"legacy_md5 with an argument", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tlegacy_md5 yes\n\t}", "wrong argument count"},
		{"hmac without a name", "payhook hmac {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\theader X-Sig\n\t}", "name is required"},
		{"hmac without a header", "payhook hmac {\n\t\tname acme\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t}", "header is required"},
		{"hmac template without the body", "payhook hmac {\n\t\tname acme\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\theader X-Sig\n\t\tcontent {timestamp}\n\t}", "does not cover the body"},
		{"hmac timestamp not signed", "payhook hmac {\n\t\tname acme\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\theader X-Sig\n\t\ttimestamp_header X-Timestamp\n\t}", "the timestamp is checked but not signed"},
		{"map: status outside the vocabulary", "payhook hmac {\n\t\tname acme\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\theader X-Sig\n\t\tmap {\n\t\t\tstatus type\n\t\t\tstatuses {\n\t\t\t\tpaid settled\n\t\t\t}\n\t\t}\n\t}", "not a canonical status"},
		{"map: a path that does not parse", "payhook standard_webhooks {\n\t\tsecret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\t\tmap {\n\t\t\tid data..id\n\t\t}\n\t}", "empty component"},
		{"stripe without a secret", "payhook stripe {\n\t\tmax_skew 5m\n\t}", "secret {env.STRIPE_WEBHOOK_SECRET}"},
		{"adyen without a key", "payhook adyen", "hmac_key {env.ADYEN_HMAC_KEY}"},
		{"paypal without a webhook_id", "payhook paypal {\n\t\tclient_id a\n\t\tclient_secret b\n\t}", "webhook_id {env.PAYPAL_WEBHOOK_ID}"},
		{"paypal webhook_id of another form", "payhook paypal {\n\t\tclient_id a\n\t\tclient_secret b\n\t\twebhook_id WH-1\n\t}", "letters and digits"},
		{"mollie without an API key", "payhook mollie {\n\t\tsignature_secret x\n\t}", "api_key {env.MOLLIE_API_KEY}"},
		{"mollie api_base not https", "payhook mollie {\n\t\tapi_key test_x\n\t\tapi_base http://api.mollie.com\n\t}", "must be https"},
		{"adyen key not hex", "payhook adyen {\n\t\thmac_key {env.PAYHOOK_TEST_SECRET}\n\t}", "hex, as the Customer Area shows it"},
		{"adyen username without password", "payhook adyen {\n\t\thmac_key 44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056\n\t\tusername shop\n\t}", "username and password go together"},
		{"sign_upstream not a Standard Webhooks secret", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tsign_upstream {env.PAYHOOK_TEST_SECRET}\n\t}", "sign_upstream #1"},
		{"standard_webhooks secret not whsec", "payhook standard_webhooks {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t}", "whsec_"},
		{"stripe secret not whsec", "payhook stripe {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t}", "provision http.payhook.providers.stripe: secret #1: not a Stripe webhook signing secret"},
		{"stripe secret written literally, not whsec", "payhook stripe {\n\t\tsecret sk_test_123\n\t}", "payhook stripe: secret #1: not a Stripe webhook signing secret"},
		{"a duration in words", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tmax_skew 5 minutes\n\t}", "max_skew takes one duration such as 5m; got 2 arguments: 5 minutes"},
		{"an inbox parallel beyond its bound", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tinbox {\n\t\t\tparallel 1000\n\t\t}\n\t}", "inbox: parallel must be 1 to 256, got 1000"},
		{"an inbox duration in words", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tinbox {\n\t\t\tretry_for 7 days\n\t\t}\n\t}", "inbox retry_for takes one duration such as 5m; got 2 arguments: 7 days"},
		{"a number in words", "payhook mollie {\n\t\tapi_key test_x\n\t\tapi_rate 50 per second\n\t}", "api_rate takes one positive whole number; got 3 arguments: 50 per second"},
		{"two values for a secret", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET} {env.PAYHOOK_TEST_SECRET}\n\t}", "secret takes one value; got 2 arguments, at Caddyfile:7"},
		{"a secret without its value", "payhook ixopay {\n\t\tsecret\n\t}", "secret takes one value; got none"},
		{"a second provider name", "payhook ixopay stripe {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t}", "payhook takes one provider name, then its options in a block; got 1 argument after ixopay"},
		{"every unset placeholder of a value", "payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_UNSET}:{file./nonexistent/payhook-secret}\n\t}",
			"secret #1: {env.PAYHOOK_TEST_UNSET} is empty: is the environment variable set?; {file./nonexistent/payhook-secret} is empty: is the file there, readable and not empty?"},
		{"pyxis outcome neither success nor fail", "payhook pyxis {\n\t\turl_token {env.PAYHOOK_TEST_SECRET}\n\t\toutcome paid\n\t}", `outcome \"paid\": want success or fail`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, site(tt.payhook), "caddyfile", tt.want)
		})
	}
}

// What a provider checks without provisioning (a required option missing)
// is reported when the Caddyfile is adapted, at the directive's line.
func TestCaddyfileNamesTheLineOfAMissingOption(t *testing.T) {
	for _, tt := range []struct{ payhook, want string }{
		{"payhook ixopay {\n\t\tmax_body 1MiB\n\t}", "payhook ixopay: at least one secret is required (secret {env.IXOPAY_SHARED_SECRET}), at Caddyfile:3"},
		{"payhook paypal {\n\t\tclient_id a\n\t\tclient_secret b\n\t}", "payhook paypal: webhook_id is required (webhook_id {env.PAYPAL_WEBHOOK_ID}), at Caddyfile:3"},
	} {
		caddyfile := "http://localhost:9080 {\n\trespond /x 200\n\t" + tt.payhook + "\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("adapting %q: %v, want an error with %q", tt.payhook, err, tt.want)
		}
	}
}

func TestJSONConfigUnknownProviderFails(t *testing.T) {
	caddytest.AssertLoadError(t, `{
		"admin": {"listen": "localhost:2999"},
		"apps": {"http": {"servers": {"srv0": {"listen": [":9080"], "routes": [{"handle": [
			{"handler": "payhook", "provider": {"name": "nope", "secrets": ["x"]}}
		]}]}}}}
	}`, "json", `unknown provider \"nope\"`)
}

// The JSON config mirrors the Caddyfile field for field.
func TestJSONConfig(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SECRET", testSecret)
	u := newUpstream(t)
	port := httpPortFor(t)
	e := &env{t: t, base: fmt.Sprintf("http://localhost:%d", port), upstream: u, logFile: filepath.Join(t.TempDir(), "unused.log")}
	caddytest.NewTester(t).InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:2999"},
		"storage": {"module": "file_system", "root": %q},
		"apps": {"http": {"http_port": %d, "servers": {"srv0": {"listen": [":%d"], "routes": [{"handle": [
			{"handler": "payhook", "max_body": 4096,
			 "provider": {"name": "ixopay", "secrets": ["{env.PAYHOOK_TEST_SECRET}"], "max_skew": "2m", "legacy_md5": true}},
			{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
		]}]}}}}
	}`, t.TempDir(), port, port, strings.TrimPrefix(u.URL, "http://")), "json")
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()

	// max_skew 2m is in force.
	e.upstream.reset()
	c := ixopayCallback(debitOK)
	c.date = time.Now().Add(-3 * time.Minute).UTC().Format(http.TimeFormat)
	resp, body = e.send(c)
	expectAnswer(t, resp, body, http.StatusUnauthorized, "")
	e.expectNothingForwarded()
}

// Secrets can come from files ({file.*}, as with Docker or Kubernetes
// secrets); the file's trailing newline is not part of the secret.
func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ixopay_secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startCaddy(t, "route /callbacks/ixopay* {\n\t\tpayhook ixopay {\n\t\t\tsecret {file."+path+"}\n\t\t}\n\t\treverse_proxy {upstream}\n\t}")
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()
}

func TestLegacyMD5OnlyWhenEnabled(t *testing.T) {
	send := func(e *env) int {
		c := ixopayCallback(debitOK)
		req, _ := http.NewRequest(http.MethodPost, e.base+c.uri, bytes.NewReader(c.body))
		req.Header.Set("Content-Type", c.contentType)
		req.Header.Set("Date", c.date)
		req.Header.Set("X-Signature", signMD5(c))
		resp, _ := e.do(req)
		return resp.StatusCode
	}
	e := startCaddy(t, defaultSite)
	if got := send(e); got != http.StatusUnauthorized {
		t.Errorf("MD5 variant without legacy_md5: %d, want 401", got)
	}
	e.expectNothingForwarded()
	e = startCaddy(t, "route /callbacks/ixopay* {\n\t\tpayhook ixopay {\n\t\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\t\tlegacy_md5\n\t\t}\n\t\treverse_proxy {upstream}\n\t}")
	if got := send(e); got != http.StatusOK {
		t.Errorf("MD5 variant with legacy_md5: %d, want 200", got)
	}
	e.onlyDelivery()
}

// comparable drops what differs between runs: receive time and Date.
func comparable(t *testing.T, envelope []byte) string {
	var doc map[string]any
	if err := json.Unmarshal(envelope, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "time")
	data := doc["data"].(map[string]any)
	delete(data, "received_at")
	delete(data["verification"].(map[string]any), "date")
	out, _ := json.MarshalIndent(doc, "", "  ")
	return string(out)
}

// `caddy adapt` and `caddy validate` give the configuration's mistakes,
// naming the option and the provider, from the Caddyfile and from JSON.
func TestValidateAndAdaptCommandsNameTheMistake(t *testing.T) {
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "PAYHOOK_TEST_SECRET="+testSecret)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	site := func(payhook string) string {
		return "{\n\tadmin off\n}\nhttp://localhost:9171 {\n\t" + payhook + "\n\treverse_proxy localhost:9\n}\n"
	}
	for _, tt := range []struct {
		name, command, file, want string
	}{
		{"option of another provider", "adapt", write("a.caddyfile", site("payhook ixopay {\n\t\tsecret {env.PAYHOOK_TEST_SECRET}\n\t\tapi_key x\n\t}")),
			`api_key does not apply to provider ixopay`},
		{"missing secret", "validate", write("b.caddyfile", site("payhook ixopay {\n\t\tmax_body 1MiB\n\t}")),
			`at least one secret is required`},
		{"unknown provider", "adapt", write("c.caddyfile", site("payhook nosuchpay")), `unknown provider "nosuchpay"`},
		{"JSON: option of another provider", "validate", write("d.json", `{"apps":{"http":{"servers":{"s":{"listen":[":9171"],"routes":[{"handle":[
			{"handler":"payhook","provider":{"name":"ixopay","secrets":["{env.PAYHOOK_TEST_SECRET}"],"api_key":"x"}}]}]}}}}}`),
			`unknown field "api_key"`},
		{"JSON: missing secret", "validate", write("e.json", `{"apps":{"http":{"servers":{"s":{"listen":[":9171"],"routes":[{"handle":[
			{"handler":"payhook","provider":{"name":"ixopay"}}]}]}}}}}`),
			`at least one secret is required`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{tt.command, "--config", tt.file}
			if strings.HasSuffix(tt.file, ".caddyfile") {
				args = append(args, "--adapter", "caddyfile")
			}
			out, err := run(args...)
			out = strings.ReplaceAll(out, `\"`, `"`) // the log line quotes the error as JSON
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("caddy %s: err %v, output lacks %q:\n%s", tt.command, err, tt.want, out)
			}
			if tt.want != `unknown provider "nosuchpay"` && strings.Contains(tt.want, "secret") && !strings.Contains(out, "ixopay") {
				t.Errorf("the error does not name the provider:\n%s", out)
			}
		})
	}
}
