package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// adyenPackage is Adyen's official Node.js library, whose hmacValidator
// is the independent signer of these tests.
const adyenPackage = "@adyen/api-library@32.1.0"

// signWithAdyenLibrary signs every item of a notification with Adyen's
// own hmacValidator and prints the notification.
const signWithAdyenLibrary = `
const [key, body] = process.argv.slice(1);
// The validator's own module: the same class the package exports, without
// loading the whole API client (1.6 s of CPU per node run against 0.2 s).
const hmacValidator = require("@adyen/api-library/lib/src/utils/hmacValidator").default;
const validator = new hmacValidator();
const doc = JSON.parse(body);
for (const wrapper of doc.notificationItems) {
	const item = wrapper.NotificationRequestItem;
	item.additionalData = Object.assign(item.additionalData || {}, {hmacSignature: validator.calculateHmac(item, key)});
}
console.log(JSON.stringify(doc));`

const (
	adyenKey       = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
	adyenKeyNext   = "9A1B7C3E5D2F40618293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F9"
	adyenGoldenKey = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00"
)

func adyenSite(extra string) string {
	return `route /hooks/adyen* {
		payhook adyen {
			hmac_key {env.PAYHOOK_TEST_ADYEN_KEY}
			hmac_key {env.PAYHOOK_TEST_ADYEN_KEY_NEXT}
			` + extra + `
			max_body 64KiB
		}
		reverse_proxy {upstream}
	}`
}

// adyenBatch is a notification of three items: an authorisation, its
// capture and a partial refund.
const adyenBatch = `{"live":"false","notificationItems":[` +
	`{"NotificationRequestItem":{"amount":{"currency":"EUR","value":10100},"eventCode":"AUTHORISATION","eventDate":"2026-11-20T10:34:47+01:00","merchantAccountCode":"ShopEU","merchantReference":"order-77","paymentMethod":"visa","pspReference":"QFQTPCQ8HXSKGK82","reason":"","success":"true"}},` +
	`{"NotificationRequestItem":{"amount":{"currency":"EUR","value":10100},"eventCode":"CAPTURE","eventDate":"2026-11-20T10:35:47+01:00","merchantAccountCode":"ShopEU","merchantReference":"order-77","originalReference":"QFQTPCQ8HXSKGK82","paymentMethod":"visa","pspReference":"LNFMRJ4GF8FXSR65","reason":"","success":"true"}},` +
	`{"NotificationRequestItem":{"amount":{"currency":"EUR","value":500},"eventCode":"REFUND","eventDate":"2026-11-20T10:36:47+01:00","merchantAccountCode":"ShopEU","merchantReference":"order-77","originalReference":"QFQTPCQ8HXSKGK82","paymentMethod":"visa","pspReference":"V4HZ4RBFJGXXGN82","reason":"","success":"true"}}]}`

// A batch signed item by item by Adyen's own library reaches the shop as
// one envelope per item, in order, behind basic authentication; a batch
// with one forged item is refused whole.
func TestAdyenThroughCaddy(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	t.Setenv("PAYHOOK_TEST_ADYEN_PASSWORD", "it-basic-password")
	e := startCaddy(t, adyenSite("username adyen-shop\n\t\t\tpassword {env.PAYHOOK_TEST_ADYEN_PASSWORD}"))
	auth := func(user, pass string) http.Header {
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(user, pass)
		return r.Header
	}
	good := auth("adyen-shop", "it-basic-password")
	signed := runNode(t, dir, signWithAdyenLibrary, adyenKey, adyenBatch)

	resp, answer := e.post("/hooks/adyen", "application/json", signed, good)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	got := e.upstream.received()
	var summary []string
	for _, r := range got {
		summary = append(summary, gjson.GetBytes(r.Body, "type").String()+" "+gjson.GetBytes(r.Body, "data.provider_reference").String()+" "+
			gjson.GetBytes(r.Body, "data.amount.value").String())
		if gjson.GetBytes(r.Body, "subject").String() != "order-77" || gjson.GetBytes(r.Body, "data.test").String() != "true" ||
			gjson.GetBytes(r.Body, "data.verification.also.0").String() != "basic-auth" || r.Header.Get("Authorization") != "" {
			t.Errorf("envelope: %s (Authorization %q)", r.Body, r.Header.Get("Authorization"))
		}
	}
	want := "payhook.payment.authorized QFQTPCQ8HXSKGK82 10100,payhook.payment.captured LNFMRJ4GF8FXSR65 10100,payhook.payment.refunded V4HZ4RBFJGXXGN82 500"
	if strings.Join(summary, ",") != want {
		t.Errorf("the shop received\n%s\nwant\n%s", strings.Join(summary, "\n"), strings.ReplaceAll(want, ",", "\n"))
	}

	// Adyen's retry of the same notification: accepted, nothing twice.
	e.upstream.reset()
	resp, answer = e.post("/hooks/adyen", "application/json", signed, good)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	e.expectNothingForwarded()

	// `caddy payhook send` with the credentials in the URL.
	e.upstream.reset()
	withAuth := strings.Replace(e.base, "://", "://adyen-shop:it-basic-password@", 1) + "/hooks/adyen"
	resp, body, err := sendSample(t.Context(), "adyen", withAuth, sendOptions{secret: adyenKey, status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, resp, string(body), http.StatusOK, "[accepted]")
	e.onlyDelivery()

	// The next key of a rotation verifies too.
	e.upstream.reset()
	other := strings.NewReplacer("QFQTPCQ8HXSKGK82", "QFQTPCQ8HXSKGK83", "LNFMRJ4GF8FXSR65", "LNFMRJ4GF8FXSR66", "V4HZ4RBFJGXXGN82", "V4HZ4RBFJGXXGN83")
	rotated := runNode(t, dir, signWithAdyenLibrary, adyenKeyNext, other.Replace(adyenBatch))
	resp, answer = e.post("/hooks/adyen", "application/json", rotated, good)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	if n := len(e.upstream.received()); n != 3 {
		t.Errorf("rotated key: the shop received %d events, want 3", n)
	}

	// The third item's amount raised after signing: the whole batch is
	// refused, the genuine first item included.
	forgedBatch := runNode(t, dir, signWithAdyenLibrary, adyenKey, strings.ReplaceAll(adyenBatch, "order-77", "order-79"))
	forgedBatch = strings.Replace(forgedBatch, `"currency":"EUR","value":500`, `"currency":"EUR","value":50000`, 1)
	for _, tt := range []struct {
		name   string
		body   string
		header http.Header
		reason string
	}{
		{"forged item", forgedBatch, good, "signature_mismatch"},
		{"wrong key", runNode(t, dir, signWithAdyenLibrary, adyenGoldenKey, adyenBatch), good, "signature_mismatch"},
		{"unsigned item", adyenBatch, good, "signature_missing"},
		{"no basic auth", signed, nil, "signature_missing"},
		{"wrong password", signed, auth("adyen-shop", "guess"), "signature_mismatch"},
		{"wrong user", signed, auth("admin", "it-basic-password"), "signature_mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, answer := e.post("/hooks/adyen", "application/json", tt.body, tt.header)
			expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
}

// validateWithAdyenLibrary prints, for each item of a notification, what
// Adyen's own hmacValidator.validateHMAC says of it once JSON.parse (which
// keeps the last of a repeated key, as a shop's decoder does) has read it.
const validateWithAdyenLibrary = `
const [key, body] = process.argv.slice(1);
// The validator's own module: the same class the package exports, without
// loading the whole API client (1.6 s of CPU per node run against 0.2 s).
const hmacValidator = require("@adyen/api-library/lib/src/utils/hmacValidator").default;
const validator = new hmacValidator();
console.log(JSON.parse(body).notificationItems.map(w => validator.validateHMAC(w.NotificationRequestItem, key)).join(","));`

// Adyen signs fields, not bytes: a genuine notification with a signed field
// added a second time (the refund's amount raised a hundredfold) verifies
// under payhook's first reading, while the shop, and Adyen's own library,
// read the second. payhook refuses it as malformed, and nothing of the
// batch reaches the shop.
func TestAdyenSignedFieldTwiceThroughCaddy(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	e := startCaddy(t, adyenSite(""))
	signed := strings.TrimSpace(runNode(t, dir, signWithAdyenLibrary, adyenKey, adyenBatch))
	if got := strings.TrimSpace(runNode(t, dir, validateWithAdyenLibrary, adyenKey, signed)); got != "true,true,true" {
		t.Fatalf("Adyen's library on the genuine batch: %s", got)
	}
	tampered, ok := strings.CutSuffix(signed, "}}]}")
	if !ok {
		t.Fatalf("unexpected shape of the signed batch: %s", signed)
	}
	tampered += `,"amount":{"currency":"EUR","value":50000}}}]}`
	if got := strings.TrimSpace(runNode(t, dir, validateWithAdyenLibrary, adyenKey, tampered)); got != "true,true,false" {
		t.Fatalf("Adyen's library on the tampered batch: %s, want the third item refused", got)
	}
	resp, answer := e.post("/hooks/adyen", "application/json", tampered, nil)
	expectAnswer(t, resp, answer, http.StatusBadRequest, "")
	e.expectNothingForwarded()
	e.expectReason("payload_malformed")

	resp, answer = e.post("/hooks/adyen", "application/json", signed, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	if n := len(e.upstream.received()); n != 3 {
		t.Errorf("the genuine batch: the shop received %d events, want 3", n)
	}
}

// The attack of issue 24: a genuine failed AUTHORISATION, signed by
// Adyen's own library, with "Success":"true" and amount."Value":99900
// added. Adyen's library still verifies it (it reads keys exactly), and a
// case-insensitive decoder (Go's structs, as Json.NET and ASP.NET Core)
// reads a success of 999.00 from the item payhook would forward as
// data.original. payhook refuses it as malformed and forwards nothing; so
// too a signed field Adyen left out (an authorisation's originalReference)
// added in another letter case. The genuine notification passes.
func TestAdyenSignedFieldInAnotherCaseThroughCaddy(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	e := startCaddy(t, adyenSite(""))
	const refused = `{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":10100},` +
		`"eventCode":"AUTHORISATION","eventDate":"2026-11-20T10:34:47+01:00","merchantAccountCode":"ShopEU","merchantReference":"order-80",` +
		`"paymentMethod":"visa","pspReference":"QFQTPCQ8HXSKGK84","reason":"Refused","success":"false"}}]}`
	signed := strings.TrimSpace(runNode(t, dir, signWithAdyenLibrary, adyenKey, refused))
	tamper := func(edits ...string) string {
		t.Helper()
		tampered := strings.NewReplacer(edits...).Replace(signed)
		if tampered == signed {
			t.Fatalf("unexpected shape of the signed notification: %s", signed)
		}
		return tampered
	}
	attack := tamper(`"value":10100`, `"value":10100,"Value":99900`, `"success":"false"`, `"success":"false","Success":"true"`)
	originalReference := tamper(`"pspReference":`, `"OriginalReference":"QFQTPCQ8HXSKGK00","pspReference":`)
	for _, tt := range []struct{ name, body string }{{"Success and amount.Value", attack}, {"OriginalReference", originalReference}} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			if got := strings.TrimSpace(runNode(t, dir, validateWithAdyenLibrary, adyenKey, tt.body)); got != "true" {
				t.Fatalf("Adyen's library on the tampered notification: %s, want it to verify", got)
			}
			resp, answer := e.post("/hooks/adyen", "application/json", tt.body, nil)
			expectAnswer(t, resp, answer, http.StatusBadRequest, "")
			e.expectNothingForwarded()
			e.expectReason("payload_malformed")
		})
	}
	// What the shop would have read, had payhook forwarded the item.
	var item struct {
		Success string
		Amount  struct{ Value int64 }
	}
	if err := json.Unmarshal([]byte(gjson.Get(attack, "notificationItems.0.NotificationRequestItem").Raw), &item); err != nil {
		t.Fatal(err)
	}
	if item.Success != "true" || item.Amount.Value != 99900 {
		t.Errorf("a case-insensitive decoder reads success %q and value %d from the tampered item, want the attack's", item.Success, item.Amount.Value)
	}

	e.t = t
	e.upstream.reset()
	resp, answer := e.post("/hooks/adyen", "application/json", signed, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	received := e.upstream.received()
	if len(received) != 1 || gjson.GetBytes(received[0].Body, "type").String() != "payhook.payment.failed" ||
		gjson.GetBytes(received[0].Body, "data.amount.value").Int() != 10100 {
		t.Errorf("the genuine notification: the shop received %d events: %v", len(received), received)
	}
}

// Adyen does not sign additionalData: a genuine CANCEL_OR_REFUND whose
// modification.action is turned from cancel into refund still verifies,
// by Adyen's own library too. payhook takes it for what it is, a copy of
// the notification the shop has: acknowledged, not forwarded as a second
// event telling the shop the payment was refunded.
func TestAdyenCancelOrRefundFlippedThroughCaddy(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	e := startCaddy(t, adyenSite(""))
	const cancel = `{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":10100},` +
		`"eventCode":"CANCEL_OR_REFUND","eventDate":"2026-11-20T10:37:47+01:00","merchantAccountCode":"ShopEU","merchantReference":"order-78",` +
		`"originalReference":"QFQTPCQ8HXSKGK83","pspReference":"V4HZ4RBFJGXXGN84","reason":"","success":"true",` +
		`"additionalData":{"modification.action":"cancel"}}}]}`
	signed := strings.TrimSpace(runNode(t, dir, signWithAdyenLibrary, adyenKey, cancel))
	flipped := strings.Replace(signed, `"modification.action":"cancel"`, `"modification.action":"refund"`, 1)
	if flipped == signed {
		t.Fatalf("unexpected shape of the signed notification: %s", signed)
	}
	if got := strings.TrimSpace(runNode(t, dir, validateWithAdyenLibrary, adyenKey, flipped)); got != "true" {
		t.Fatalf("Adyen's library on the flipped notification: %s, want it to verify (the action is not signed)", got)
	}
	resp, answer := e.post("/hooks/adyen", "application/json", signed, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	resp, answer = e.post("/hooks/adyen", "application/json", flipped, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	received := e.upstream.received()
	if len(received) != 1 {
		t.Fatalf("the shop received %d events, want the genuine one only", len(received))
	}
	if got := gjson.GetBytes(received[0].Body, "type").String(); got != "payhook.payment.cancelled" {
		t.Errorf("the shop received %s, want payhook.payment.cancelled", got)
	}
}

// Adyen retries a notification for 30 days. When the shop keeps refusing
// the second item of a batch, Adyen brings the first again with every
// retry: its delivery record must outlive the retries, or the shop gets it
// a second time. On Adyen's routes the default dedupe window is 31 days;
// an explicit dedupe option is kept as written.
func TestAdyenDedupeOutlivesItsRetries(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	signed := runNode(t, dir, signWithAdyenLibrary, adyenKey, adyenBatch)
	for _, tt := range []struct {
		option string
		want   time.Duration
	}{
		{"", 31 * 24 * time.Hour},
		{"dedupe 2d", 48 * time.Hour},
	} {
		t.Run("option "+tt.option, func(t *testing.T) {
			e := startCaddy(t, adyenSite(tt.option))
			resp, answer := e.post("/hooks/adyen", "application/json", signed, nil)
			expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
			kept := deliveryRecordsKeptFor(t, e, 3)
			if len(kept) != 3 {
				t.Fatalf("%d delivery records, want 3", len(kept))
			}
			for _, got := range kept {
				if got < tt.want-time.Minute || got > tt.want {
					t.Errorf("a delivery record is kept %s, want %s", got, tt.want)
				}
			}
		})
	}
}

// When the shop refuses the second item, Adyen is answered 502 (it
// retries); the retry delivers the rest only.
func TestAdyenBatchPartialFailure(t *testing.T) {
	dir := npmPackage(t, adyenPackage)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	e := startCaddy(t, adyenSite(""))
	signed := runNode(t, dir, signWithAdyenLibrary, adyenKey, adyenBatch)
	calls := 0
	e.upstream.setStatusFunc(func() int {
		calls++
		if calls == 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	resp, answer := e.post("/hooks/adyen", "application/json", signed, nil)
	expectAnswer(t, resp, answer, http.StatusBadGateway, "")
	resp, answer = e.post("/hooks/adyen", "application/json", signed, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "[accepted]")
	var refs []string
	for _, r := range e.upstream.received() {
		refs = append(refs, gjson.GetBytes(r.Body, "data.provider_reference").String())
	}
	if got := strings.Join(refs, ","); got != "QFQTPCQ8HXSKGK82,LNFMRJ4GF8FXSR65,LNFMRJ4GF8FXSR65,V4HZ4RBFJGXXGN82" {
		t.Errorf("the shop received %s", got)
	}
}

// Every Adyen golden notification reaches the shop as its golden
// envelopes, in order.
func TestAdyenGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenGoldenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	e := startCaddy(t, adyenSite("dedupe off"))
	replayGolden(t, e, "adyen", nil, nil)
}

// `caddy payhook send` fabricates and signs Adyen and Stripe callbacks with
// the verifiers' code, in each provider's own minor units: the shop gets
// ISO 4217's.
func TestSendCommandForAdyenAndStripe(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY", adyenKey)
	t.Setenv("PAYHOOK_TEST_ADYEN_KEY_NEXT", adyenKeyNext)
	t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", stripeSecret)
	e := startCaddy(t, adyenSite("")+"\n"+stripeSite())
	for _, tt := range []struct {
		provider, path, secret, status, amount, currency string
		minor                                            int64
		ack                                              string
	}{
		{"adyen", "/hooks/adyen", adyenKey, "authorized", "12.30", "EUR", 1230, "[accepted]"},
		{"adyen", "/hooks/adyen", adyenKey, "refunded", "2790", "ISK", 2790, "[accepted]"},
		{"adyen", "/hooks/adyen", adyenKey, "captured", "150000.00", "IDR", 15000000, "[accepted]"},
		{"stripe", "/hooks/stripe", stripeSecret, "captured", "2790", "ISK", 2790, "OK"},
		{"stripe", "/hooks/stripe", stripeSecret, "failed", "10000", "MGA", 1000000, "OK"},
	} {
		t.Run(tt.provider+"_"+tt.status+"_"+tt.currency, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), tt.provider, e.base+tt.path, sendOptions{
				secret: tt.secret, status: tt.status, amount: tt.amount, currency: tt.currency, reference: "order-9", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), http.StatusOK, tt.ack)
			r, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || doc.Data.Amount == nil || doc.Data.Amount.MinorUnits != tt.minor || doc.Data.Amount.Currency != tt.currency || doc.Subject != "order-9" {
				t.Errorf("delivered %s", r.Body)
			}
		})
	}
}
