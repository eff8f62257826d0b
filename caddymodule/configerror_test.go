package caddymodule

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// exampleUnset are Caddyfile.example's placeholders, each unset, as one
// `caddy validate` is to report them: with the provider, the option and
// the route, in the order of the adapted routes (Caddy sorts routes by
// their paths, longest first).
var exampleUnset = []string{
	`{env.MULTISAFEPAY_API_KEY} (payhook multisafepay api_key, route localhost /callbacks/multisafepay* on :8880)`,
	`{env.SWEDBANK_PAY_TOKEN} (payhook swedbankpay token, route localhost /callbacks/swedbankpay* on :8880)`,
	`{env.PAYREXX_API_KEY} (payhook payrexx api_key, route localhost /callbacks/payrexx* on :8880)`,
	`{env.PAYREXX_INSTANCE} (payhook payrexx instance, route localhost /callbacks/payrexx* on :8880)`,
	`{env.IXOPAY_SHARED_SECRET} (payhook ixopay secret #1, route localhost /callbacks/ixopay* on :8880)`,
	`{env.KLARNA_PASSWORD} (payhook klarna password, route localhost /callbacks/klarna* on :8880)`,
	`{env.KLARNA_USERNAME} (payhook klarna username, route localhost /callbacks/klarna* on :8880)`,
	`{env.MOLLIE_API_KEY} (payhook mollie api_key, route localhost /callbacks/mollie* on :8880)`,
	`{env.PAYPAL_CLIENT_ID} (payhook paypal client_id, route localhost /callbacks/paypal* on :8880)`,
	`{env.PAYPAL_CLIENT_SECRET} (payhook paypal client_secret, route localhost /callbacks/paypal* on :8880)`,
	`{env.PAYPAL_WEBHOOK_ID} (payhook paypal webhook_id, route localhost /callbacks/paypal* on :8880)`,
	`{env.STRIPE_API_KEY} (payhook stripe api_key, route localhost /callbacks/stripe* on :8880)`,
	`{env.STRIPE_WEBHOOK_SECRET} (payhook stripe secret #1, route localhost /callbacks/stripe* on :8880)`,
	`{env.WALLEE_AUTHENTICATION_KEY} (payhook wallee authentication_key, route localhost /callbacks/wallee* on :8880)`,
	`{env.WALLEE_USER_ID} (payhook wallee user_id, route localhost /callbacks/wallee* on :8880)`,
	`{env.PYXIS_CALLBACK_TOKEN} (payhook pyxis url_token #1, route localhost /callbacks/pyxis* on :8880)`,
	`{env.UNZER_PRIVATE_KEY} (payhook unzer private_key, route localhost /callbacks/unzer* on :8880)`,
	`{env.UNZER_PUBLIC_KEY} (payhook unzer public_key, route localhost /callbacks/unzer* on :8880)`,
}

// unsetExample sets none of Caddyfile.example's placeholders and returns
// its configuration.
func unsetExample(t *testing.T) []byte {
	t.Helper()
	for name := range demoSecrets {
		t.Setenv(name, "")
	}
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	config, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(raw, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// The unset placeholders of every payhook route are found in the
// configuration Caddy has not provisioned yet.
func TestUnsetPlaceholdersOfEveryRoute(t *testing.T) {
	var config struct {
		Apps struct {
			HTTP caddyhttp.App `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(unsetExample(t), &config); err != nil {
		t.Fatal(err)
	}
	unset := unsetInServers(config.Apps.HTTP.Servers)
	var got []string
	for _, u := range unset {
		got = append(got, u.String())
	}
	if strings.Join(got, "\n") != strings.Join(exampleUnset, "\n") {
		t.Errorf("unset placeholders:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(exampleUnset, "\n"))
	}
}

// One `caddy validate` of Caddyfile.example with nothing set reports all
// its placeholders, where it took a run each, and names the route that
// failed.
func TestValidateReportsEveryUnsetPlaceholder(t *testing.T) {
	err := caddy.Validate(mustUnmarshalConfig(t, unsetExample(t)))
	for _, want := range append([]string{
		`payhook multisafepay, route localhost /callbacks/multisafepay* on :8880: loading the provider:`,
		"every placeholder of the configuration that is empty (18; set the environment variables, make the files readable): ",
	}, exampleUnset...) {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}

// Any error in provisioning a payhook route names the provider and the
// route, in the Caddyfile's terms (the site's host, the route's path), and
// the option.
func TestProvisioningErrorsNameTheRoute(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SECRET", testSecret)
	caddyfile := `{
	admin off
}
http://localhost:9080 {
	route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
		}
		reverse_proxy localhost:9
	}
	route /callbacks/mollie* {
		payhook mollie {
			api_key test_x
			api_base http://api.mollie.com
		}
		reverse_proxy localhost:9
	}
}
http://shop.example:9081 {
	payhook pyxis {
		url_token {env.PAYHOOK_TEST_SECRET}
		sign_upstream {env.PAYHOOK_TEST_SECRET}
	}
	reverse_proxy localhost:9
}
`
	config, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(mustUnmarshalConfig(t, config))
	// The servers are provisioned in any order: either error comes first.
	for _, want := range []string{
		`payhook mollie, route localhost /callbacks/mollie* on :9080: loading the provider: loading module 'mollie': provision http.payhook.providers.mollie: api_base "http://api.mollie.com": credentials go there, so it must be https`,
		`payhook pyxis, route shop.example on :9081: sign_upstream #1: `,
	} {
		if err != nil && strings.Contains(err.Error(), want) {
			return
		}
	}
	t.Errorf("the error names no route: %v", err)
}
