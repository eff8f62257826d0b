package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The rejections every provider shares, for Stripe, Adyen, Mollie, PayPal,
// MultiSafepay and every preset of the registry, through real Caddy:
// another method, another content type, a compressed body, a body over
// max_body. Nothing is forwarded, no API is asked, and the log names the
// provider. MultiSafepay notifies by GET too: a GET that names no order
// is refused as one.
func TestMajorProvidersSharedRejections(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	t.Setenv("PAYHOOK_TEST_MOLLIE_KEY", mollieAPIKey)
	t.Setenv("PAYHOOK_TEST_PAYPAL_ID", payPalClientID)
	t.Setenv("PAYHOOK_TEST_PAYPAL_SECRET", payPalSecret)
	t.Setenv("PAYHOOK_TEST_PRESET_SECRET", "0123456789abcdef0123456789abcdef")
	t.Setenv("PAYHOOK_TEST_PAYONE_KEY", payonePortalKey)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY", braintreePrivateKey)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_NEXT_PRIVATE_KEY", braintreeNextPrivateKey)
	t.Setenv("PAYHOOK_TEST_MSP_KEY", multisafepayAPIKey)
	mollie, paypal, msp := newFakeAPI(t), newFakePayPal(t), newFakeAPI(t)
	type route struct{ name, path, contentType string }
	routes := []route{
		{"stripe", "/hooks/stripe", "application/json"},
		{"adyen", "/hooks/adyen", "application/json"},
		{"mollie", "/callbacks/mollie", formType},
		{"paypal", "/callbacks/paypal", "application/json"},
		{"payone", "/callbacks/payone", formType},
		{"braintree", "/hooks/braintree", formType},
		{"multisafepay", "/callbacks/multisafepay", "application/json"},
	}
	var presetSites strings.Builder
	for _, name := range presetNames() {
		p, _ := NewProvider(name)
		fmt.Fprintf(&presetSites, "\n\troute /presets/%s* {\n\t\tpayhook %s {\n\t\t\tsecret {env.PAYHOOK_TEST_PRESET_SECRET}\n\t\t\tmax_body 64KiB\n\t\t}\n\t\treverse_proxy {upstream}\n\t}",
			name, name)
		routes = append(routes, route{p.Name(), "/presets/" + name, "application/json"})
	}
	e := startCaddy(t, stripeSite()+"\n"+adyenSite("")+"\n"+
		strings.Replace(mollieSite(mollie, ""), "api_timeout 500ms", "api_timeout 500ms\n\t\t\tmax_body 64KiB", 1)+"\n"+
		strings.Replace(payPalSite(paypal, ""), "api_timeout 1s", "api_timeout 1s\n\t\t\tmax_body 64KiB", 1)+"\n"+braintreeSite()+presetSites.String()+
		"\n"+strings.Replace(multisafepaySite(msp, ""), "api_timeout 500ms", "api_timeout 500ms\n\t\t\tmax_body 64KiB", 1)+
		"\n"+payoneSite("/callbacks/payone*", "2000002", "allow_ips 127.0.0.1\n\t\t\tmax_body 64KiB"))
	big := `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, provider := range routes {
		for _, tt := range []struct {
			name, method, contentType, body string
			header                          http.Header
			status                          int
			reason                          string
		}{
			{"GET", http.MethodGet, "", "", nil, 405, "method_not_allowed"},
			{"PUT", http.MethodPut, provider.contentType, "{}", nil, 405, "method_not_allowed"},
			{"text/plain", http.MethodPost, "text/plain", "{}", nil, 415, "content_type_not_accepted"},
			{"compressed", http.MethodPost, provider.contentType, "{}", http.Header{"Content-Encoding": {"gzip"}}, 415, "content_type_not_accepted"},
			{"over max_body", http.MethodPost, provider.contentType, big, nil, 413, "body_too_large"},
		} {
			t.Run(provider.path+"/"+tt.name, func(t *testing.T) {
				e.t = t
				e.upstream.reset()
				var resp *http.Response
				var answer string
				if tt.body == big {
					// Caddy answers 413 and closes before the body is all
					// sent: write and read at once, as a provider does.
					resp, answer = e.postUnread(provider.path, tt.contentType, tt.body, tt.header)
				} else {
					req := e.postRequest(provider.path, tt.contentType, tt.body, tt.header)
					req.Method = tt.method
					if tt.contentType == "" {
						req.Header.Del("Content-Type")
					}
					resp, answer = e.do(req)
				}
				if provider.name == "multisafepay" && tt.method == http.MethodGet {
					// MultiSafepay's notification by query, naming none.
					tt.status, tt.reason = http.StatusBadRequest, "field_missing"
				}
				expectAnswer(t, resp, answer, tt.status, "")
				e.expectNothingForwarded()
				entries := e.logEntries(1)
				if last := entries[len(entries)-1]; last["reason"] != tt.reason || last["provider"] != provider.name {
					t.Errorf("log = %v, want reason %s for %s", last, tt.reason, provider.name)
				}
			})
		}
	}
	if len(mollie.asked()) != 0 {
		t.Error("Mollie's API was asked")
	}
	if tokens, verifies := paypal.counts(); tokens+verifies != 0 {
		t.Error("PayPal's API was asked")
	}
	if len(msp.asked()) != 0 {
		t.Error("MultiSafepay's API was asked")
	}
}
