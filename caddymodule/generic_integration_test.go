package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// standardWebhooksPackage is the official Standard Webhooks library for
// JavaScript, the independent signer of these tests.
const standardWebhooksPackage = "standardwebhooks@1.1.1"

// signWithStandardWebhooksLibrary signs with the official npm library (v1)
// or, for a whsk_ key, with node's own ed25519 (v1a: the official libraries
// do not implement it yet), never with payhook's code.
const signWithStandardWebhooksLibrary = `
const [secret, id, ts, body] = process.argv.slice(1);
if (secret.startsWith("whsk_")) {
	const crypto = require("crypto");
	const raw = Buffer.from(secret.slice(5), "base64");
	const key = crypto.createPrivateKey({key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), raw.subarray(0, 32)]), format: "der", type: "pkcs8"});
	console.log("v1a," + crypto.sign(null, Buffer.from(id + "." + ts + "." + body), key).toString("base64"));
} else {
	const { Webhook } = require("standardwebhooks");
	console.log(new Webhook(secret).sign(id, new Date(Number(ts) * 1000), body));
}`

const (
	swSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swPrivateKey = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
	swPublicKey  = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
)

func standardWebhooksSite(extra string) string {
	return `route /hooks/acme* {
		payhook standard_webhooks {
			name acme
			secret {env.PAYHOOK_TEST_SW_SECRET}
			public_key ` + swPublicKey + `
			` + extra + `
		}
		reverse_proxy {upstream}
	}`
}

// Callbacks signed by the official standardwebhooks library (v1) and by an
// ed25519 signer of the test's own (v1a) reach the shop through real Caddy;
// forged, stale, future and malformed ones are refused with nothing
// forwarded; a repeat of a webhook-id is a duplicate.
func TestStandardWebhooksThroughCaddy(t *testing.T) {
	dir := npmPackage(t, standardWebhooksPackage)
	t.Setenv("PAYHOOK_TEST_SW_SECRET", swSecret)
	e := startCaddy(t, standardWebhooksSite(""))
	send := func(prefix, signer, id string, at time.Time, body string, mutate func(http.Header)) (*http.Response, string) {
		t.Helper()
		ts := strconv.FormatInt(at.Unix(), 10)
		header := http.Header{}
		header.Set(prefix+"-id", id)
		header.Set(prefix+"-timestamp", ts)
		header.Set(prefix+"-signature", runNode(t, dir, signWithStandardWebhooksLibrary, signer, id, ts, body))
		if mutate != nil {
			mutate(header)
		}
		return e.post("/hooks/acme", "application/json", body, header)
	}
	body := `{"type":"invoice.paid","data":{"id":"in_1","amount":1250}}`
	for _, signer := range []string{swSecret, swPrivateKey} {
		e.upstream.reset()
		id := "msg_" + signer[:4] + strconv.FormatInt(time.Now().UnixNano(), 36)
		resp, answer := send("webhook", signer, id, time.Now(), body, nil)
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
		r, doc := e.onlyDelivery()
		if doc.Source != "payhook/acme" || doc.Data.Status != "unknown" || string(doc.Data.Original) != body ||
			doc.Data.Verification["method"] != "standard-webhooks" {
			t.Errorf("envelope: %s", r.Body)
		}
		// The same webhook-id again, freshly signed: a duplicate.
		e.upstream.reset()
		resp, answer = send("webhook", signer, id, time.Now(), body, nil)
		expectAnswer(t, resp, answer, http.StatusOK, "OK")
		e.expectNothingForwarded()
	}
	if entries := e.logEntries(4); len(entries) != 4 || entries[0]["level"] != "info" {
		t.Errorf("an unmapped route's events must not warn: %v", entries)
	}

	e.upstream.reset()
	for _, tt := range []struct {
		name   string
		id     string
		at     time.Time
		mutate func(http.Header)
		reason string
	}{
		{"forged", "msg_forged", time.Now(), func(h http.Header) { h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") }, "signature_mismatch"},
		{"stale", "msg_stale", time.Now().Add(-6 * time.Minute), nil, "date_outside_window"},
		{"future", "msg_future", time.Now().Add(6 * time.Minute), nil, "date_outside_window"},
		{"malformed signature", "msg_malformed", time.Now(), func(h http.Header) { h.Set("webhook-signature", "v9,xyz") }, "signature_malformed"},
		{"malformed timestamp", "msg_ts", time.Now(), func(h http.Header) { h.Set("webhook-timestamp", "soon") }, "date_malformed"},
		{"no signature", "msg_nosig", time.Now(), func(h http.Header) { h.Del("webhook-signature") }, "signature_missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			resp, answer := send("webhook", swSecret, tt.id, tt.at, body, tt.mutate)
			expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
}

// header_prefix svix: a vendor that sends svix-id, svix-timestamp and
// svix-signature, and a map into the envelope.
func TestStandardWebhooksSvixPrefixAndMap(t *testing.T) {
	dir := npmPackage(t, standardWebhooksPackage)
	t.Setenv("PAYHOOK_TEST_SW_SECRET", swSecret)
	e := startCaddy(t, standardWebhooksSite(`header_prefix svix
			map {
				id data.id
				status type
				statuses {
					invoice.paid captured
				}
				amount data.amount minor
				currency data.currency
				merchant_reference data.order
			}`))
	body := `{"type":"invoice.paid","data":{"id":"in_7","amount":1250,"currency":"eur","order":"order-77"}}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	header := http.Header{"Svix-Id": {"msg_svix_1"}, "Svix-Timestamp": {ts},
		"Svix-Signature": {runNode(t, dir, signWithStandardWebhooksLibrary, swSecret, "msg_svix_1", ts, body)}}
	resp, answer := e.post("/hooks/acme", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	_, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.Amount.MinorUnits != 1250 || doc.Data.Amount.Currency != "EUR" || doc.Subject != "order-77" {
		t.Errorf("envelope: %+v", doc)
	}
}

// A GoCardless batch through its preset: each event its own envelope, in
// order; when the shop refuses the second, the provider gets 502 and its
// retry skips the first, delivered already.
func TestHMACBatchThroughCaddy(t *testing.T) {
	t.Setenv("GOCARDLESS_WEBHOOK_SECRET", "it-gocardless-secret")
	e := startCaddy(t, "route /hooks/gocardless* {\npayhook gocardless {\n\tsecret {env.GOCARDLESS_WEBHOOK_SECRET}\n}\nreverse_proxy {upstream}\n}")
	body := `{"events":[{"id":"EV001","created_at":"2026-11-20T10:00:00.000Z","resource_type":"payments","action":"confirmed","links":{"payment":"PM001"}},` +
		`{"id":"EV002","created_at":"2026-11-20T10:00:01.000Z","resource_type":"payments","action":"paid_out","links":{"payment":"PM001"}}]}`
	mac := hmac.New(sha256.New, []byte("it-gocardless-secret"))
	mac.Write([]byte(body))
	header := http.Header{"Webhook-Signature": {hex.EncodeToString(mac.Sum(nil))}}

	calls := 0
	e.upstream.setStatusFunc(func() int {
		calls++
		if calls == 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	resp, answer := e.post("/hooks/gocardless", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusBadGateway, "")
	resp, answer = e.post("/hooks/gocardless", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	got := e.upstream.received()
	var ids []string
	for _, r := range got {
		ids = append(ids, gjson.GetBytes(r.Body, "data.original.id").String())
	}
	if strings.Join(ids, ",") != "EV001,EV002,EV002" {
		t.Errorf("the shop received %v; want EV001, EV002 (refused), then EV002 alone", ids)
	}
	// Each a later copy: the whole batch is a duplicate now.
	e.upstream.reset()
	resp, answer = e.post("/hooks/gocardless", "application/json", body, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.expectNothingForwarded()
}

// `caddy payhook send` signs for standard_webhooks and hmac routes from its
// flags, so a merchant can try a map of their own before the provider sends
// anything; here under the Paddle and Vipps MobilePay presets.
func TestSendCommandForGenericRoutes(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SW_SECRET", swSecret)
	t.Setenv("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_it_secret")
	t.Setenv("VIPPS_WEBHOOK_SECRET", "it-vipps-secret")
	e := startCaddy(t, standardWebhooksSite("")+"\n\troute /hooks/paddle* {\npayhook paddle {\n\tsecret {env.PADDLE_WEBHOOK_SECRET}\n}\nreverse_proxy {upstream}\n}"+
		"\n\troute /hooks/vipps* {\npayhook vipps {\n\tsecret {env.VIPPS_WEBHOOK_SECRET}\n}\nreverse_proxy {upstream}\n}")
	paddleEvent := filepath.Join(t.TempDir(), "transaction.json")
	if err := os.WriteFile(paddleEvent, []byte(`{"event_id":"evt_it_1","event_type":"transaction.completed","occurred_at":"2026-11-20T10:34:47Z",`+
		`"data":{"id":"txn_1","currency_code":"USD","custom_data":{"order_id":"order-9"},"details":{"totals":{"grand_total":"2500"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		provider, path string
		opts           sendOptions
		status         string
		amount         int64
	}{
		{"standard_webhooks", "/hooks/acme", sendOptions{secret: swSecret, headerPrefix: "webhook"}, "unknown", 0},
		{"hmac", "/hooks/paddle", sendOptions{secret: "pdl_ntfset_it_secret", body: paddleEvent,
			scheme: HMAC{Header: "Paddle-Signature", SignatureKey: "h1", TimestampKey: "ts", Content: "{timestamp}:{body}"}}, "captured", 2500},
		{"hmac", "/hooks/vipps", sendOptions{secret: "it-vipps-secret", scheme: HMAC{Header: "Authorization", SignatureKey: "Signature",
			SignatureEncoding: "base64", TimestampHeader: "X-Ms-Date", TimestampFormat: "http-date",
			Content: `{http.request.method}\n{http.request.uri}\n{http.request.header.X-Ms-Date};{http.request.hostport};{body.sha256.base64}`}}, "unknown", 0},
		// The presets' own samples, with the values sent.
		{"paddle", "/hooks/paddle", sendOptions{secret: "pdl_ntfset_it_secret"}, "captured", 100},
		{"vipps", "/hooks/vipps", sendOptions{secret: "it-vipps-secret"}, "captured", 100},
	} {
		t.Run(tt.path, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			opts := tt.opts
			opts.status, opts.amount, opts.currency, opts.reference, opts.timeout = "captured", "1.00", "EUR", "order-1", 5*time.Second
			resp, body, err := sendSample(t.Context(), tt.provider, e.base+tt.path, opts)
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, "OK")
			_, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || (tt.amount != 0 && doc.Data.Amount.MinorUnits != tt.amount) {
				t.Errorf("delivered %+v", doc.Data)
			}
			// The wrong secret is refused.
			opts.secret = "not-the-secret"
			if tt.provider == "standard_webhooks" {
				opts.secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
			}
			if resp, _, _ := sendSample(t.Context(), tt.provider, e.base+tt.path, opts); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a wrong secret: %d, want 401", resp.StatusCode)
			}
		})
	}
}

// verifyWithStandardWebhooksLibrary checks a forwarded envelope as a shop
// would, with the official library, and prints the verified event's id.
const verifyWithStandardWebhooksLibrary = `
const [secret, id, ts, sig, body] = process.argv.slice(1);
const { Webhook } = require("standardwebhooks");
const event = new Webhook(secret).verify(body, {"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig});
console.log(event.id);`

// sign_upstream: every envelope the shop receives carries Standard
// Webhooks headers that the official library verifies, under either
// secret of a rotation; a tampered envelope does not verify.
func TestSignUpstreamVerifiedByTheOfficialLibrary(t *testing.T) {
	dir := npmPackage(t, standardWebhooksPackage)
	t.Setenv("PAYHOOK_TEST_SHOP_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	t.Setenv("PAYHOOK_TEST_SHOP_SECRET_NEXT", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	e := startCaddy(t, strings.Replace(defaultSite, "max_body 8KiB", "max_body 8KiB\n\t\t\tsign_upstream {env.PAYHOOK_TEST_SHOP_SECRET}\n\t\t\tsign_upstream {env.PAYHOOK_TEST_SHOP_SECRET_NEXT}", 1))
	resp, answer := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	id, ts, sig := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp"), r.Header.Get("Webhook-Signature")
	if id != doc.ID || strings.Count(sig, "v1,") != 2 {
		t.Fatalf("headers: id %q (event %s), signature %q", id, doc.ID, sig)
	}
	for _, secret := range []string{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if got := runNode(t, dir, verifyWithStandardWebhooksLibrary, secret, id, ts, sig, string(r.Body)); got != doc.ID {
			t.Errorf("the library verified %q, want the event %s", got, doc.ID)
		}
	}
	tampered := strings.Replace(string(r.Body), `"captured"`, `"refunded"`, 1)
	cmd := exec.Command("node", "-e", verifyWithStandardWebhooksLibrary, "--", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", id, ts, sig, tampered)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("a tampered envelope verified: %s", out)
	}
}
