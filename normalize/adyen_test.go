package normalize_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

func TestAdyenGolden(t *testing.T) {
	runGoldenBatch(t, "adyen", Adyen, func(*http.Request, *Input) verify.Result { return verify.Result{Method: "hmac-sha256"} })
}

// The official vector of adyen-go-api-library's hmacvalidator test.
func TestAdyenOfficialVector(t *testing.T) {
	key, err := verify.DecodeAdyenHMACKey("DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00")
	if err != nil {
		t.Fatal(err)
	}
	item := AdyenItem{PSPReference: "pspReference", OriginalReference: "originalReference", MerchantAccountCode: "merchantAccount",
		MerchantReference: "reference", Value: "1000", Currency: "EUR", EventCode: "EVENT", Success: "true"}
	if got := item.SignedData(); got != "pspReference:originalReference:merchantAccount:reference:1000:EUR:EVENT:true" {
		t.Errorf("signed data = %q", got)
	}
	if got := verify.SignAdyen(key, item.SignedData()); got != "ipnxGCaUZ4l8TUW75a71/ghd2Fe5ffvX0pV4TLTntIc=" {
		t.Errorf("signature = %s", got)
	}
	if err := verify.CheckAdyenItem([][]byte{key}, item.SignedData(), "ipnxGCaUZ4l8TUW75a71/ghd2Fe5ffvX0pV4TLTntIc="); err != nil {
		t.Error(err)
	}
	if err := verify.CheckAdyenItem([][]byte{key}, item.SignedData()+"x", "ipnxGCaUZ4l8TUW75a71/ghd2Fe5ffvX0pV4TLTntIc="); !errors.Is(err, verify.ErrBadSignature) {
		t.Errorf("tampered: %v", err)
	}
}

// The example of Adyen's documentation ("Verify HMAC signatures"), which
// Adyen's Node.js library also reproduces: an empty originalReference stays
// an empty field.
func TestAdyenDocumentationVector(t *testing.T) {
	key, err := verify.DecodeAdyenHMACKey("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"live":"false","notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},` +
		`"amount":{"currency":"EUR","value":1130},"eventCode":"AUTHORISATION","eventDate":"2014-08-06T13:39:05+02:00","merchantAccountCode":"TestMerchant",` +
		`"merchantReference":"TestPayment-1407325143704","operations":["CANCEL","CAPTURE","REFUND"],"paymentMethod":"visa","pspReference":"7914073381342284",` +
		`"reason":"1234:7777:12/2012","success":"true"}}]}`
	items, _, err := AdyenItems(&Input{Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if got := items[0].SignedData(); got != "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true" {
		t.Errorf("signed data = %q", got)
	}
	if err := verify.CheckAdyenItem([][]byte{key}, items[0].SignedData(), items[0].HMACSignature); err != nil {
		t.Error(err)
	}
}

// Quirk: Adyen signs fields, not bytes, so anyone holding a genuine
// notification can add to it. A key named twice would be verified with its
// first value (gjson's) while the shop's decoder, and Adyen's own library,
// read the last; a key named again in another letter case ("Success") is
// read by every case-insensitive decoder (Go's structs, Json.NET, ASP.NET
// Core): such a notification is malformed, wherever the key is.
func TestAdyenDuplicateKeyIsRefused(t *testing.T) {
	item := func(fields string) string {
		return `{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":500},` +
			`"eventCode":"AUTHORISATION","merchantAccountCode":"ShopEU","merchantReference":"order-1","pspReference":"QFQTPCQ8HXSKGK82",` +
			`"reason":"","success":"false"` + fields + `}}]}`
	}
	for _, tt := range []struct {
		name, body, keys string
	}{
		{"success", item(`,"success":"true"`), `"success" at byte 240 and "success" at byte 258`},
		{"Success", item(`,"Success":"true"`), `"success" at byte 240 and "Success" at byte 258`},
		{"amount.Value", strings.Replace(item(""), `"value":500`, `"value":500,"Value":99900`, 1), `"value" at byte 92 and "Value" at byte 104`},
		{"the attack", strings.Replace(item(`,"Success":"true"`), `"value":500`, `"value":500,"Value":99900`, 1), `"value" at byte 92 and "Value" at byte 104`},
		{"AMOUNT", item(`,"AMOUNT":{"currency":"EUR","value":50000}`), `"amount" at byte 65 and "AMOUNT" at byte 258`},
		{"merchantReference", item(`,"merchantReference":"order-2"`), `"merchantReference" at byte 164 and "merchantReference" at byte 258`},
		{"escaped key", item(`,"Succ\u0065ss":"true"`), `"success" at byte 240 and "Succ\\u0065ss" at byte 258`},
		{"long s", item(`,"ſuccess":"true"`), `"success" at byte 240 and "ſuccess" at byte 258`},
		{"additionalData.hmacSignature", item(`,"additionalData":{"hmacSignature":"a","hmacSignature":"b"}`), `"hmacSignature" at byte 276 and "hmacSignature" at byte 296`},
		{"additionalData", item(`,"additionalData":{},"AdditionalData":{"hmacSignature":"b"}`), `"additionalData" at byte 258 and "AdditionalData" at byte 278`},
		{"unsigned", item(`,"reason":"again"`), `"reason" at byte 228 and "reason" at byte 258`},
		{"unsigned in another case", item(`,"paymentMethod":"visa","PaymentMethod":"mc"`), `"paymentMethod" at byte 258 and "PaymentMethod" at byte 281`},
		{"wrapper", strings.Replace(item(""), `{"live":"false",`, `{"live":"false","Live":"true",`, 1), `"live" at byte 1 and "Live" at byte 16`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := AdyenItems(&Input{Body: []byte(tt.body)})
			if !errors.Is(err, ErrMalformed) || !errors.Is(err, verify.ErrDuplicateKey) || !strings.HasSuffix(err.Error(), tt.keys) {
				t.Errorf("err = %v, want malformed naming %s", err, tt.keys)
			}
		})
	}
	items, _, err := AdyenItems(&Input{Body: []byte(item(`,"paymentMethod":"visa","additionalData":{"authCode":"1","AuthCodeRaw":"2"}`))})
	if err != nil || items[0].Success != "false" || items[0].Value != "500" {
		t.Errorf("distinct keys: %+v, %v", items, err)
	}
}

// Quirk: a signed field Adyen left out (an AUTHORISATION has no
// originalReference) is signed empty. Added in another letter case, it
// verifies, payhook reading it empty, while a case-insensitive decoder
// reads the value added: a signed field's key spelled otherwise than
// Adyen spells it is malformed.
func TestAdyenSignedFieldInAnotherCaseIsRefused(t *testing.T) {
	item := func(fields string) string {
		return `{"live":"false","notificationItems":[{"NotificationRequestItem":{"eventCode":"AUTHORISATION",` +
			`"merchantAccountCode":"ShopEU","merchantReference":"order-1","pspReference":"QFQTPCQ8HXSKGK82","reason":""` + fields + `}}]}`
	}
	for _, tt := range []struct{ name, fields, key string }{
		{"success", `,"Success":"true"`, "Success"},
		{"originalReference", `,"amount":{"currency":"EUR","value":500},"success":"false","ORIGINALREFERENCE":"X"`, "ORIGINALREFERENCE"},
		{"amount", `,"Amount":{"currency":"EUR","value":99900}`, "Amount"},
		{"amount.value", `,"amount":{"currency":"EUR","Value":99900}`, "amount.Value"},
		{"long s", `,"` + "\u017f" + `uccess":"true"`, "\u017fuccess"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := AdyenItems(&Input{Body: []byte(item(tt.fields))})
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), strconv.Quote(tt.key)) {
				t.Errorf("err = %v, want malformed naming %q", err, tt.key)
			}
		})
	}
	items, _, err := AdyenItems(&Input{Body: []byte(item(`,"amount":{"currency":"EUR","value":500},"success":"false","PaymentMethod":"visa"`))})
	if err != nil || items[0].OriginalReference != "" || items[0].Success != "false" {
		t.Errorf("an unsigned key in another case: %+v, %v", items, err)
	}
}

// Adyen does not sign additionalData, so whoever holds a genuine
// CANCEL_OR_REFUND can change its modification.action: the copy must be the
// same event (a duplicate), not a second one telling the shop otherwise.
func TestAdyenCancelOrRefundActionIsNotInTheID(t *testing.T) {
	item := func(action string) []byte {
		return []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":1000},` +
			`"eventCode":"CANCEL_OR_REFUND","merchantAccountCode":"ShopEU","merchantReference":"order-1","originalReference":"QFQTPCQ8HXSKGK82",` +
			`"pspReference":"V4HZ4RBFJGXXGN82","success":"true","additionalData":{"modification.action":"` + action + `"}}}]}`)
	}
	events := map[string]*Event{}
	for _, action := range []string{"cancel", "refund", "something-else"} {
		list, err := Adyen(&Input{Provider: "adyen", ContentType: "application/json", Body: item(action)})
		if err != nil || len(list) != 1 {
			t.Fatalf("%s: %v, %v", action, list, err)
		}
		events[action] = list[0]
	}
	if events["cancel"].Status != StatusCancelled || events["refund"].Status != StatusRefunded || events["something-else"].Status != StatusUnknown {
		t.Errorf("statuses: %s, %s, %s", events["cancel"].Status, events["refund"].Status, events["something-else"].Status)
	}
	if id := events["cancel"].ID(); events["refund"].ID() != id || events["something-else"].ID() != id {
		t.Errorf("ids differ with the unsigned action: %s, %s, %s", id, events["refund"].ID(), events["something-else"].ID())
	}
	// What Adyen signs still tells events apart: another CANCEL_OR_REFUND
	// (its own pspReference) or one that failed.
	other, err := Adyen(&Input{Provider: "adyen", ContentType: "application/json",
		Body: bytes.Replace(item("cancel"), []byte(`"V4HZ4RBFJGXXGN82"`), []byte(`"V4HZ4RBFJGXXGN83"`), 1)})
	if err != nil || other[0].ID() == events["cancel"].ID() {
		t.Errorf("another modification shares the id: %v", err)
	}
	failed, err := Adyen(&Input{Provider: "adyen", ContentType: "application/json",
		Body: bytes.Replace(item("cancel"), []byte(`"success":"true"`), []byte(`"success":"false"`), 1)})
	if err != nil || failed[0].Status != StatusRefundFailed || failed[0].ID() == events["cancel"].ID() {
		t.Errorf("a failed CANCEL_OR_REFUND: %v, %v", failed, err)
	}
}

// Adyen's minor units differ from ISO 4217 for four currencies
// (docs.adyen.com/development-resources/currency-codes).
func TestAdyenAmountDiffersFromStandard(t *testing.T) {
	for _, tt := range []struct {
		value, currency string
		want            int64
		err             error
	}{
		{"1000", "EUR", 1000, nil},
		{"1500000", "CLP", 15000, nil}, // Adyen 2 decimals, ISO none
		{"279000", "ISK", 2790, nil},   // Adyen 2 decimals, ISO none
		{"279050", "ISK", 0, ErrInexactAmount},
		{"150000", "IDR", 15000000, nil}, // Adyen none, ISO 2
		{"500", "CVE", 50000, nil},       // Adyen none, ISO 2
		{"1000", "JPY", 1000, nil},
		{"1000", "KWD", 1000, nil},
	} {
		got, err := AdyenAmount(tt.value, tt.currency)
		if (tt.err != nil && !errors.Is(err, tt.err)) || (tt.err == nil && (err != nil || got.MinorUnits != tt.want)) {
			t.Errorf("AdyenAmount(%s %s) = %d, %v; want %d, %v", tt.value, tt.currency, got.MinorUnits, err, tt.want, tt.err)
		}
	}
}

func TestAdyenSampleRoundTrips(t *testing.T) {
	for _, status := range []Status{StatusAuthorized, StatusFailed, StatusCaptured, StatusCancelled, StatusRefunded, StatusRefundFailed, StatusChargeback, StatusChargebackReversed, StatusPending} {
		item, err := AdyenSampleItem(Sample{Status: status, Amount: Amount{MinorUnits: 2790, Currency: "ISK"}, MerchantReference: "o-1", ProviderReference: "PSP1"})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := AdyenNotification(item)
		events, err := Adyen(&Input{Provider: "adyen", Body: body})
		if err != nil || len(events) != 1 || events[0].Status != status || events[0].Amount.MinorUnits != 2790 {
			t.Errorf("%s: %+v, %v", status, events, err)
		}
	}
}

func FuzzAdyen(f *testing.F) {
	f.Add([]byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"eventCode":"AUTHORISATION","success":"true","pspReference":"1","amount":{"value":100,"currency":"EUR"}}}]}`))
	f.Add([]byte(`{"live":"true","notificationItems":[{"NotificationRequestItem":{"eventCode":"CANCEL_OR_REFUND","success":"true","additionalData":{"modification.action":"refund"}}}]}`))
	f.Add([]byte(`{"notificationItems":[{"NotificationRequestItem":{"eventCode":"AUTHORISATION","success":"false","pspReference":"1","success":"true"}}]}`))
	f.Add([]byte(`{"notificationItems":[{"NotificationRequestItem":{"eventCode":"REFUND","success":"true","amount":{"value":1,"currency":"EUR","value":100}}}]}`))
	f.Add([]byte(`{"notificationItems":[{"NotificationRequestItem":{"eventCode":"AUTHORISATION","success":"false","amount":{"currency":"EUR","value":500,"Value":99900},"Success":"true"}}]}`))
	f.Add([]byte(`{"notificationItems":[{"NotificationRequestItem":{"eventCode":"AUTHORISATION","success":"false","SUCC\u0045SS":"true","amount":{"VALUE":1}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// What payhook verifies is what a shop's decoder reads from the
		// item it forwards, whether it reads keys exactly or in any letter
		// case.
		if items, _, err := AdyenItems(&Input{Body: body}); err == nil {
			for _, it := range items {
				checkAdyenItemDecodesAsRead(t, it)
			}
		}
		events, err := Adyen(&Input{Provider: "adyen", Body: body})
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		for _, ev := range events {
			if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now())); err != nil {
				t.Fatalf("invalid envelope: %v", err)
			}
		}
	})
}

// checkAdyenItemDecodesAsRead fails when a signed field of the item, as
// encoding/json decodes the item's bytes, differs from what payhook read:
// into a map, whose keys are exact (as PHP's json_decode and JSON.parse
// read them), and into a struct, whose fields take keys in any letter case
// (as Json.NET, ASP.NET Core and many PHP frameworks' mappers do). Both
// keep the last of a key named twice.
func checkAdyenItemDecodesAsRead(t *testing.T, it AdyenItem) {
	t.Helper()
	decode := func(raw []byte, v any) error {
		decoder := json.NewDecoder(bytes.NewReader(raw))
		decoder.UseNumber()
		return decoder.Decode(v)
	}
	var item map[string]any
	if err := decode(it.Raw, &item); err != nil {
		t.Fatalf("item %s: %v", it.Raw, err)
	}
	amount, _ := item["amount"].(map[string]any)
	var typed struct {
		PSPReference        any             `json:"pspReference"`
		OriginalReference   any             `json:"originalReference"`
		MerchantAccountCode any             `json:"merchantAccountCode"`
		MerchantReference   any             `json:"merchantReference"`
		EventCode           any             `json:"eventCode"`
		Success             any             `json:"success"`
		Amount              json.RawMessage `json:"amount"`
	}
	if err := decode(it.Raw, &typed); err != nil {
		t.Fatalf("item %s: %v", it.Raw, err)
	}
	var typedAmount struct {
		Value    any `json:"value"`
		Currency any `json:"currency"`
	}
	if decode(typed.Amount, &typedAmount) != nil {
		typedAmount.Value, typedAmount.Currency = nil, nil // not an object: no amount
	}
	for _, field := range []struct {
		name          string
		read          string
		exact, folded any
	}{
		{"pspReference", it.PSPReference, item["pspReference"], typed.PSPReference},
		{"originalReference", it.OriginalReference, item["originalReference"], typed.OriginalReference},
		{"merchantAccountCode", it.MerchantAccountCode, item["merchantAccountCode"], typed.MerchantAccountCode},
		{"merchantReference", it.MerchantReference, item["merchantReference"], typed.MerchantReference},
		{"eventCode", it.EventCode, item["eventCode"], typed.EventCode},
		{"success", it.Success, item["success"], typed.Success},
		{"amount.value", it.Value, amount["value"], typedAmount.Value},
		{"amount.currency", it.Currency, amount["currency"], typedAmount.Currency},
	} {
		if decoded := decodedText(field.exact); decoded != field.read {
			t.Fatalf("%s: payhook read %q, encoding/json decodes %q from %s", field.name, field.read, decoded, it.Raw)
		}
		if decoded := decodedText(field.folded); decoded != field.read {
			t.Fatalf("%s: payhook read %q, a case-insensitive decoder (encoding/json into a struct) %q from %s", field.name, field.read, decoded, it.Raw)
		}
	}
}

// decodedText is a scalar encoding/json decoded (with UseNumber) as the
// text payhook reads from it.
func decodedText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}
