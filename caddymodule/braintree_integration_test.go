package caddymodule

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// braintreePackage is Braintree's official Node.js SDK, the independent
// signer and verifier of these tests.
const braintreePackage = "braintree@3.40.0"

// braintreeSDK runs the SDK with a gateway of the key pair given first:
//
//	sample <kind> <id>  prints the form webhookTesting.sampleNotification signs
//	verify <challenge>  prints webhookNotification.verify's answer
//	parse <form>        prints the kind and subject id webhookNotification.parse reads, or its error
const braintreeSDK = `
const [publicKey, privateKey, command, arg1, arg2] = process.argv.slice(1);
const braintree = require("braintree");
const gateway = new braintree.BraintreeGateway({environment: braintree.Environment.Sandbox, merchantId: "payhook", publicKey, privateKey});
if (command === "sample") {
  console.log(new URLSearchParams(gateway.webhookTesting.sampleNotification(arg1, arg2)).toString());
} else if (command === "verify") {
  console.log(gateway.webhookNotification.verify(arg1));
} else if (command === "parse") {
  const form = new URLSearchParams(arg1);
  gateway.webhookNotification.parse(form.get("bt_signature"), form.get("bt_payload")).then(
    (n) => console.log(n.kind + " " + (n.transaction || n.dispute || {}).id + " " + (n.transaction || n.dispute || {}).amount),
    (err) => console.log("error: " + err.message));
}`

const (
	braintreePublicKey      = "it_public_key"
	braintreePrivateKey     = "it_private_key_0123456789abcdef"
	braintreeNextPublicKey  = "it_next_public_key"
	braintreeNextPrivateKey = "it_next_private_key_fedcba9876543210"
)

func braintreeSite() string {
	return `route /hooks/braintree* {
		payhook braintree {
			public_key ` + braintreePublicKey + `
			private_key {env.PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY}
			rotation_key ` + braintreeNextPublicKey + ` {env.PAYHOOK_TEST_BRAINTREE_NEXT_PRIVATE_KEY}
			max_body 64KiB
		}
		reverse_proxy {upstream}
	}`
}

func startBraintree(t *testing.T) *env {
	t.Setenv("PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY", braintreePrivateKey)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_NEXT_PRIVATE_KEY", braintreeNextPrivateKey)
	return startCaddy(t, braintreeSite())
}

// Notifications signed by Braintree's SDK reach the shop, each once;
// forged, tampered and unsigned ones are refused with nothing forwarded.
func TestBraintreeThroughCaddy(t *testing.T) {
	dir := npmPackage(t, braintreePackage)
	e := startBraintree(t)
	sample := func(publicKey, privateKey, kind, id string) string {
		return runNode(t, dir, braintreeSDK, publicKey, privateKey, "sample", kind, id)
	}

	settled := sample(braintreePublicKey, braintreePrivateKey, "transaction_settled", "it_txn_1")
	resp, answer := e.post("/hooks/braintree", formType, settled, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Type != "payhook.payment.captured" || doc.Data.ProviderReference != "it_txn_1" || doc.Data.Amount == nil ||
		*doc.Data.Amount != (normalize.Amount{MinorUnits: 10000, Currency: "USD"}) || doc.Data.ProviderStatus != "transaction_settled" ||
		gjson.GetBytes(r.Body, "data.verification.method").String() != "hmac-sha1" ||
		gjson.GetBytes(r.Body, "data.original.notification.subject.transaction.us-bank-account.last-4").String() != "1234" {
		t.Errorf("envelope: %s", r.Body)
	}

	// Braintree's retry of it: acknowledged, not forwarded again.
	e.upstream.reset()
	resp, answer = e.post("/hooks/braintree", formType, settled, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.expectNothingForwarded()

	// Signed with the rotation's other key: taken.
	dispute := sample(braintreeNextPublicKey, braintreeNextPrivateKey, "dispute_opened", "it_dispute_1")
	resp, answer = e.post("/hooks/braintree", formType, dispute, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	if _, doc := e.onlyDelivery(); doc.Data.Status != "chargeback" || doc.Data.ProviderReference != "it_dispute_1" {
		t.Errorf("dispute: %+v", doc.Data)
	}

	tampered, _ := url.ParseQuery(settled)
	payload, _ := base64.StdEncoding.DecodeString(tampered.Get("bt_payload"))
	tampered.Set("bt_payload", base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), "<amount>100</amount>", "<amount>1</amount>", 1)))+"\n")
	for _, tt := range []struct {
		name, body, reason string
	}{
		{"forged", sample(braintreePublicKey, "a forger's key", "transaction_settled", "it_txn_2"), "signature_mismatch"},
		{"another account", sample("someone_else", braintreePrivateKey, "transaction_settled", "it_txn_2"), "signature_mismatch"},
		{"tampered", tampered.Encode(), "signature_mismatch"},
		{"no signature", "bt_payload=" + url.QueryEscape(tampered.Get("bt_payload")), "signature_missing"},
		{"not a pair", "bt_signature=abc&bt_payload=" + url.QueryEscape(tampered.Get("bt_payload")), "signature_malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, answer := e.post("/hooks/braintree", formType, tt.body, nil)
			expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}

	// Signed, but too old (a replay past max_age) or dated ahead.
	key := verify.BraintreeKey{PublicKey: braintreePublicKey, PrivateKey: []byte(braintreePrivateKey)}
	for name, at := range map[string]time.Time{"stale": time.Now().Add(-8 * 24 * time.Hour), "future": time.Now().Add(time.Hour)} {
		t.Run(name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			doc, err := normalize.BraintreeSampleXML(normalize.Sample{Status: normalize.StatusCaptured,
				Amount: normalize.Amount{MinorUnits: 100, Currency: "USD"}, ProviderReference: "it_old"}, at)
			if err != nil {
				t.Fatal(err)
			}
			payload := braintreeBase64Lines(doc)
			form := url.Values{"bt_payload": {payload}, "bt_signature": {verify.SignBraintree(key, payload)}}
			resp, answer := e.post("/hooks/braintree", formType, form.Encode(), nil)
			expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
			e.expectNothingForwarded()
			e.expectReason("date_outside_window")
		})
	}

	// Signed, but an XML payhook does not read: 400.
	e.t = t
	e.upstream.reset()
	xxe := `<?xml version="1.0"?><!DOCTYPE n [<!ENTITY x SYSTEM "file:///etc/passwd">]><notification><kind>&x;</kind></notification>`
	evil := braintreeBase64Lines([]byte(xxe))
	body := url.Values{"bt_payload": {evil}, "bt_signature": {verify.SignBraintree(key, evil)}}.Encode()
	resp, answer = e.post("/hooks/braintree", formType, body, nil)
	expectAnswer(t, resp, answer, http.StatusBadRequest, "")
	e.expectNothingForwarded()
	e.expectReason("payload_malformed")
}

// Braintree's check of a destination URL is answered as the SDK answers
// it; a GET that is no check is another method.
func TestBraintreeChallengeThroughCaddy(t *testing.T) {
	dir := npmPackage(t, braintreePackage)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY", braintreePrivateKey)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_NEXT_PRIVATE_KEY", braintreeNextPrivateKey)
	t.Setenv("PAYHOOK_TEST_BRAINTREE_TOKEN", "it-url-token-4711")
	e := startCaddy(t, braintreeSite()+"\n"+strings.Replace(strings.Replace(braintreeSite(), "/hooks/braintree*", "/tokened/braintree*", 1),
		"max_body 64KiB", "max_body 64KiB\n\t\t\turl_token {env.PAYHOOK_TEST_BRAINTREE_TOKEN}", 1))
	challenge := "4f6e1c2b9a0d8e7f5a3b"
	want := runNode(t, dir, braintreeSDK, braintreePublicKey, braintreePrivateKey, "verify", challenge)
	getAt := func(path, query string) (*http.Response, string) {
		req := e.postRequest(path+query, "", "", nil)
		req.Method = http.MethodGet
		req.Header.Del("Content-Type")
		return e.do(req)
	}
	get := func(query string) (*http.Response, string) { return getAt("/hooks/braintree", query) }
	resp, answer := get("?bt_challenge=" + challenge)
	expectAnswer(t, resp, answer, http.StatusOK, want)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	e.expectNothingForwarded()
	if last := e.logEntries(1); last[len(last)-1]["outcome"] != outcomeChallenge {
		t.Errorf("log: %v", last[len(last)-1])
	}
	for _, tt := range []struct {
		query  string
		status int
		reason string
	}{
		{"", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"?bt_challenge=not-hex-at-all-xxxxxxxx", http.StatusBadRequest, "payload_malformed"},
		{"?bt_challenge=" + challenge + "&bt_challenge=" + challenge, http.StatusBadRequest, "payload_malformed"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			e.t = t
			resp, answer := get(tt.query)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectReason(tt.reason)
			e.expectNothingForwarded()
		})
	}

	// Behind url_token, the check must carry it too (Braintree calls the
	// destination URL as saved, token included).
	e.t = t
	resp, answer = getAt("/tokened/braintree", "?bt_challenge="+challenge)
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e.expectReason("token_missing")
	resp, answer = getAt("/tokened/braintree", "?token=it-url-token-4711&bt_challenge="+challenge)
	expectAnswer(t, resp, answer, http.StatusOK, want)
}

// What payhook's signer makes (`caddy payhook send braintree`), the SDK
// verifies and reads; and payhook takes it through Caddy.
func TestBraintreeSampleIsWhatTheSDKParses(t *testing.T) {
	dir := npmPackage(t, braintreePackage)
	e := startBraintree(t)
	secret := []byte(braintreePublicKey + "|" + braintreePrivateKey)
	for _, tt := range []struct {
		status normalize.Status
		sdk    string
	}{
		{normalize.StatusCaptured, "transaction_settled tx_4711 10.50"},
		{normalize.StatusFailed, "transaction_settlement_declined tx_4711 10.50"},
		{normalize.StatusRefunded, "transaction_settled rtx_4711 10.50"},
		{normalize.StatusRefundFailed, "refund_failed rtx_4711 10.50"},
		{normalize.StatusChargeback, "dispute_opened dtx_4711 undefined"},
		{normalize.StatusChargebackReversed, "dispute_won dtx_4711 undefined"},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			p := new(Braintree)
			body, contentType, err := p.Sample(normalize.Sample{Status: tt.status, Amount: normalize.Amount{MinorUnits: 1050, Currency: "EUR"},
				MerchantReference: "order-1", ProviderReference: "tx_4711"})
			if err != nil {
				t.Fatal(err)
			}
			r := e.postRequest("/hooks/braintree", contentType, string(body), nil)
			if err := p.SignSample(r, body, secret); err != nil {
				t.Fatal(err)
			}
			signed, _ := io.ReadAll(r.Body)
			if got := runNode(t, dir, braintreeSDK, braintreePublicKey, braintreePrivateKey, "parse", string(signed)); got != tt.sdk {
				t.Errorf("the SDK read %q, want %q", got, tt.sdk)
			}
			resp, answer := e.post("/hooks/braintree", contentType, string(signed), nil)
			expectAnswer(t, resp, answer, http.StatusOK, "OK")
			if _, doc := e.onlyDelivery(); doc.Data.Status != string(tt.status) || doc.Subject != "order-1" {
				t.Errorf("envelope: %+v", doc)
			}
		})
	}
	if err := new(Braintree).SignSample(e.postRequest("/", formType, "", nil), nil, []byte(braintreePrivateKey)); err == nil {
		t.Error("a secret without its public key signed")
	}
}

// Every Braintree golden reaches the shop as its golden envelope (the
// rejections are refused), signed as it is with the golden keys.
func TestBraintreeGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY", "golden_private_key")
	e := startCaddy(t, `route /hooks/braintree* {
		payhook braintree {
			public_key golden_public_key
			private_key {env.PAYHOOK_TEST_BRAINTREE_PRIVATE_KEY}
			max_age 36500d
			dedupe off
		}
		reverse_proxy {upstream}
	}`)
	replayGolden(t, e, "braintree", nil, nil)
}

// The send command signs with "public_key|private_key" and judges payhook's
// answer.
func TestSendBraintree(t *testing.T) {
	e := startBraintree(t)
	out, err := runSend(t, "braintree", "--secret", braintreePublicKey+"|"+braintreePrivateKey, "--status", "refunded", e.base+"/hooks/braintree")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if _, doc := e.onlyDelivery(); doc.Data.Status != "refunded" {
		t.Errorf("envelope: %+v", doc.Data)
	}
	if out, err := runSend(t, "braintree", "--secret", braintreePrivateKey, e.base+"/hooks/braintree"); err == nil {
		t.Errorf("sent without a public key: %s", out)
	}
}

// The configuration: keys from placeholders, errors that name the option
// and never the secret.
func TestBraintreeConfiguration(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_BT_PUBLIC", "env_public_key")
	t.Setenv("PAYHOOK_TEST_BT_PRIVATE", "env_private_key")
	for _, tt := range []struct {
		block   string
		refused string // "" when accepted
	}{
		{"public_key {env.PAYHOOK_TEST_BT_PUBLIC}\n\tprivate_key {env.PAYHOOK_TEST_BT_PRIVATE}", ""},
		{"public_key p\n\tprivate_key {env.PAYHOOK_TEST_BT_PRIVATE}\n\trotation_key q {env.PAYHOOK_TEST_BT_PRIVATE}", ""},
		{"private_key {env.PAYHOOK_TEST_BT_PRIVATE}", "public_key and private_key are required"},
		{"public_key p", "public_key and private_key are required"},
		{"public_key a|b\n\tprivate_key {env.PAYHOOK_TEST_BT_PRIVATE}", "public_key: a Braintree public key"},
		{"public_key p\n\tprivate_key {env.PAYHOOK_TEST_BT_UNSET}", "{env.PAYHOOK_TEST_BT_UNSET} is empty"},
		{"public_key {env.PAYHOOK_TEST_BT_UNSET}\n\tprivate_key {env.PAYHOOK_TEST_BT_PRIVATE}", "{env.PAYHOOK_TEST_BT_UNSET} is empty"},
	} {
		t.Run(tt.block, func(t *testing.T) {
			p := new(Braintree)
			if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("braintree {\n\t" + tt.block + "\n}")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := p.Provision(ctx)
			switch {
			case tt.refused == "" && err != nil:
				t.Fatal(err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Fatalf("Provision = %v, want %q", err, tt.refused)
			case err != nil && strings.Contains(err.Error(), "env_private_key"):
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	p := new(Braintree)
	if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("braintree {\n\trotation_key only-one\n}")); err == nil {
		t.Error("rotation_key with one value was read")
	}
	if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("braintree {\n\tsecret x\n}")); err == nil || !strings.Contains(err.Error(), "rotation_key") {
		t.Errorf("an unknown option: %v", err)
	}
}
