package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	mollieAPIKey        = "test_itMollieKey0123456789abcdefgh"
	mollieGoldenSecret  = "payhook_golden_mollie_secret"
	mollieSecretCurrent = "it_mollie_signing_secret_current"
	mollieSecretNext    = "it_mollie_signing_secret_next"
)

func mollieSite(api *fakeAPI, extra string) string {
	return fmt.Sprintf(`route /callbacks/mollie* {
		payhook mollie {
			api_key {env.PAYHOOK_TEST_MOLLIE_KEY}
			api_base %s
			api_timeout 500ms
			%s
		}
		reverse_proxy {upstream}
	}`, api.URL, extra)
}

func startMollie(t *testing.T, extra string) (*env, *fakeAPI) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_MOLLIE_KEY", mollieAPIKey)
	api := newFakeAPI(t)
	return startCaddy(t, mollieSite(api, extra)), api
}

func molliePayment(id, status, extra string) string {
	return `{"resource":"payment","id":"` + id + `","mode":"test","createdAt":"2026-11-20T09:13:37+00:00","amount":{"value":"25.00","currency":"EUR"},` +
		`"description":"Order #98765","method":"ideal","metadata":{"order_id":"98765"},"status":"` + status + `"` + extra + `}`
}

// A classic webhook names a payment; the payment fetched with the API key
// (refunds and chargebacks embedded) reaches the shop, and later each new
// refund on its own.
func TestMollieWebhookVerifiedByFetch(t *testing.T) {
	e, api := startMollie(t, "")
	api.set("/v2/payments/tr_WDqYK6vllg", 200, molliePayment("tr_WDqYK6vllg", "paid", `,"paidAt":"2026-11-20T09:15:02+00:00","_embedded":{"refunds":[],"chargebacks":[]}`))
	resp, answer := e.post("/callbacks/mollie", formType, "id=tr_WDqYK6vllg", nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	asked := api.asked()
	if len(asked) != 1 || asked[0].URL.Path != "/v2/payments/tr_WDqYK6vllg" || asked[0].URL.RawQuery != "embed=refunds,chargebacks" ||
		asked[0].Header.Get("Authorization") != "Bearer "+mollieAPIKey {
		t.Fatalf("the API was asked %v", asked)
	}
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.ProviderReference != "tr_WDqYK6vllg" || doc.Subject != "98765" || doc.Data.Amount.MinorUnits != 2500 ||
		gjson.GetBytes(r.Body, "data.unverified.id").String() != "tr_WDqYK6vllg" || gjson.GetBytes(r.Body, "data.original").Exists() ||
		gjson.GetBytes(r.Body, "data.fetched.method").String() != "ideal" || gjson.GetBytes(r.Body, "data.test").String() != "true" ||
		doc.Data.Verification["resource"] != "payments/tr_WDqYK6vllg" {
		t.Errorf("envelope: %s", r.Body)
	}
	if strings.Contains(string(r.Body), mollieAPIKey) || strings.Contains(e.rawLog(), mollieAPIKey) {
		t.Error("the API key leaked")
	}

	// A refund: Mollie calls the same webhook; only the refund is new.
	e.upstream.reset()
	api.set("/v2/payments/tr_WDqYK6vllg", 200, molliePayment("tr_WDqYK6vllg", "paid", `,"amountRefunded":{"value":"5.00","currency":"EUR"},`+
		`"_embedded":{"refunds":[{"resource":"refund","id":"re_4qqhO89gsT","amount":{"value":"5.00","currency":"EUR"},"status":"pending","paymentId":"tr_WDqYK6vllg","createdAt":"2026-11-21T10:00:00+00:00"}],"chargebacks":[]}`))
	resp, answer = e.post("/callbacks/mollie", formType, "id=tr_WDqYK6vllg", nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc = e.onlyDelivery()
	if doc.Data.Status != "refund_pending" || doc.Data.ProviderReference != "re_4qqhO89gsT" || doc.Data.Amount.MinorUnits != 500 || doc.Subject != "98765" {
		t.Errorf("refund envelope: %s", r.Body)
	}
}

// Every rejection of a classic webhook, and what the API was asked.
func TestMollieRejections(t *testing.T) {
	e, api := startMollie(t, "")
	for _, tt := range []struct {
		name       string
		body       string
		answer     *apiAnswer // nil: the API does not know the payment
		status     int
		reason     string
		apiAsked   bool
		contentTyp string
	}{
		{"an order id", "id=ord_kEn1PlbGa", nil, 400, "payload_malformed", false, formType},
		{"a path in the id", "id=tr_x%2F..%2F..%2Fv2%2Fcustomers", nil, 400, "payload_malformed", false, formType},
		{"no id", "payment=tr_WDqYK6vllg", nil, 400, "field_missing", false, formType},
		{"JSON without a signing secret", `{"id":"tr_WDqYK6vllg"}`, nil, 415, "content_type_not_accepted", false, "application/json"},
		{"unknown to the API", "id=tr_forged000001", nil, 401, "resource_unknown", true, formType},
		{"the same id again within the minute", "id=tr_forged000001", nil, 503, "resource_unknown_recently", false, formType},
		{"API answers 500", "id=tr_api500", &apiAnswer{500, `{"status":500,"title":"Internal Server Error"}`}, 503, "api_unavailable", true, formType},
		{"API refuses the key", "id=tr_api401", &apiAnswer{401, `{"status":401,"title":"Unauthorized Request"}`}, 503, "api_refused", true, formType},
		{"API answers another payment", "id=tr_apiother", &apiAnswer{200, molliePayment("tr_other", "paid", "")}, 503, "api_response_unexpected", true, formType},
		{"amount not exact", "id=tr_inexact", &apiAnswer{200, molliePayment("tr_inexact", "paid", "")[0:0] + strings.Replace(molliePayment("tr_inexact", "paid", ""), `"25.00"`, `"25.001"`, 1)}, 400, "amount_inexact", true, formType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			id := strings.TrimPrefix(tt.body, "id=")
			if tt.answer != nil {
				api.set("/v2/payments/"+id, tt.answer.status, tt.answer.body)
			}
			before := len(api.asked())
			resp, answer := e.post("/callbacks/mollie", tt.contentTyp, tt.body, nil)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			if asked := len(api.asked()) > before; asked != tt.apiAsked {
				t.Errorf("API asked: %v, want %v", asked, tt.apiAsked)
			}
			e.expectReason(tt.reason)
		})
	}
}

// signWithPHP signs a next-gen webhook's body as Mollie's PHP library does
// (SignatureValidator::createSignature is PHP's hash_hmac), with PHP itself.
func signWithPHP(t *testing.T, secret, body string) string {
	t.Helper()
	php := lookPHP(t, "to sign as Mollie's PHP library does")
	cmd := exec.Command(php, "-r", `echo "sha256=" . hash_hmac("sha256", stream_get_contents(STDIN), $argv[1]);`, secret)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Next-gen webhooks: signed by PHP's hash_hmac, as Mollie's PHP library
// signs; a rotation sends a signature per secret; forged, unsigned and
// malformed signatures are refused.
func TestMollieNextGenWebhooks(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_MOLLIE_SECRET", mollieSecretCurrent)
	t.Setenv("PAYHOOK_TEST_MOLLIE_SECRET_NEXT", mollieSecretNext)
	e, api := startMollie(t, "signature_secret {env.PAYHOOK_TEST_MOLLIE_SECRET}\n\t\t\tsignature_secret {env.PAYHOOK_TEST_MOLLIE_SECRET_NEXT}")
	event := `{"resource":"event","id":"event_GvJ8WHrp5isUdRub9CJyH","type":"payment-link.paid","entityId":"pl_4Y0eZitmBnQ5jsBYZIBw",` +
		`"createdAt":"2026-11-20T10:30:54+00:00","_embedded":{"entity":{"id":"pl_4Y0eZitmBnQ5jsBYZIBw","resource":"payment-link","mode":"live","status":"paid","amount":{"value":"24.95","currency":"EUR"}}}}`
	header := http.Header{"X-Mollie-Signature": {signWithPHP(t, "some_old_secret", event), signWithPHP(t, mollieSecretNext, event)}}
	resp, answer := e.post("/callbacks/mollie", "application/json", event, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.ProviderReference != "pl_4Y0eZitmBnQ5jsBYZIBw" || doc.Data.Amount.MinorUnits != 2495 ||
		gjson.GetBytes(r.Body, "data.original.id").String() != "event_GvJ8WHrp5isUdRub9CJyH" || gjson.GetBytes(r.Body, "data.test").String() != "false" {
		t.Errorf("envelope: %s", r.Body)
	}
	if len(api.asked()) != 0 {
		t.Error("a signed event was fetched")
	}
	// A classic webhook with a signature: checked too.
	api.set("/v2/payments/tr_WDqYK6vllg", 200, molliePayment("tr_WDqYK6vllg", "paid", ""))
	e.upstream.reset()
	resp, answer = e.post("/callbacks/mollie", formType, "id=tr_WDqYK6vllg", http.Header{"X-Mollie-Signature": {signWithPHP(t, mollieSecretCurrent, "id=tr_WDqYK6vllg")}})
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	if _, doc := e.onlyDelivery(); fmt.Sprint(doc.Data.Verification["also"]) != "[hmac-sha256]" {
		t.Errorf("verification = %v", doc.Data.Verification)
	}

	for _, tt := range []struct {
		name, contentType, body string
		header                  http.Header
		status                  int
		reason                  string
	}{
		{"forged event", "application/json", event, http.Header{"X-Mollie-Signature": {signWithPHP(t, "forger", event)}}, 401, "signature_mismatch"},
		{"unsigned event", "application/json", event, nil, 401, "signature_missing"},
		{"malformed signature", "application/json", event, http.Header{"X-Mollie-Signature": {"sha256=xyz"}}, 401, "signature_malformed"},
		{"classic webhook with a forged signature", formType, "id=tr_WDqYK6vllg", http.Header{"X-Mollie-Signature": {signWithPHP(t, "forger", "id=tr_WDqYK6vllg")}}, 401, "signature_mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, answer := e.post("/callbacks/mollie", tt.contentType, tt.body, tt.header)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
}

// Every Mollie golden webhook, its payment served by the fake API, reaches
// the shop as its golden envelopes.
func TestMollieGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_MOLLIE_SECRET", mollieGoldenSecret)
	e, api := startMollie(t, "signature_secret {env.PAYHOOK_TEST_MOLLIE_SECRET}\n\t\t\tdedupe off")
	replayGolden(t, e, "mollie", func(fetched []byte, _ string) {
		api.set("/v2/payments/"+gjson.GetBytes(fetched, "id").String(), 200, string(fetched))
	}, nil)
}

// `caddy payhook send mollie --api` stores the sample payment at the demo's
// stand-in of Mollie's API, which payhook then fetches.
func TestSendMollieThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_MOLLIE_KEY", "test_demo")
	e := startCaddy(t, `route /callbacks/mollie* {
		payhook mollie {
			api_key {env.PAYHOOK_TEST_MOLLIE_KEY}
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, tt := range []struct {
		status string
		want   []string
	}{
		{"captured", []string{"captured 1230"}},
		{"partially_refunded", []string{"captured 1230", "partially_refunded 615"}},
		{"chargeback", []string{"captured 1230", "chargeback 1230"}},
	} {
		t.Run(tt.status, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "mollie", e.base+"/callbacks/mollie", sendOptions{
				api: standIn.URL, status: tt.status, amount: "12.30", currency: "EUR", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			var got []string
			for _, r := range e.upstream.received() {
				got = append(got, gjson.GetBytes(r.Body, "data.status").String()+" "+gjson.GetBytes(r.Body, "data.amount.value").String())
				if gjson.GetBytes(r.Body, "subject").String() != "order-8" {
					t.Errorf("subject: %s", r.Body)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("the shop received %v, want %v", got, tt.want)
			}
		})
	}
	// Without --api, the id must be a payment the API knows.
	e.t = t
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "mollie", e.base+"/callbacks/mollie", sendOptions{id: "tr_neverstored1", status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, resp, string(body), http.StatusUnauthorized, "")
	e.expectNothingForwarded()
}
