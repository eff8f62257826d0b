package normalize_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// unzerVerification is what the module's verifier reports: the payment
// fetched, its state, and the event the webhook claimed.
func unzerVerification(_ *http.Request, in *Input) verify.Result {
	claim, _ := UnzerClaim(in)
	state := gjson.GetBytes(in.Fetched, "state.name").String()
	if state == "" {
		state = gjson.GetBytes(in.Fetched, "state.id").String()
	}
	return verify.Result{Method: "api-fetch", Resource: "payments/" + gjson.GetBytes(in.Fetched, "id").String(), Status: state, ClaimedStatus: claim.Event}
}

func TestUnzerGolden(t *testing.T) {
	runGoldenWith(t, "unzer", Unzer, unzerVerification, func(answer []byte, _ string) []byte { return bytes.TrimSpace(answer) })
}

func TestUnzerClaim(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       UnzerNotification
		err        error
	}{
		{"docs example", `{"event":"payment.pending","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/payments/s-pay-774","paymentId":"s-pay-774"}`,
			UnzerNotification{"payment.pending", "s-pub-x", "s-pay-774"}, nil},
		{"id from the retrieveUrl's path only", `{"event":"charge.succeeded","publicKey":"s-pub-x","retrieveUrl":"https://elsewhere.example/v1/payments/s-pay-9/charges/s-chg-1"}`,
			UnzerNotification{"charge.succeeded", "s-pub-x", "s-pay-9"}, nil},
		{"ids disagree", `{"event":"charge.succeeded","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/payments/s-pay-9","paymentId":"s-pay-8"}`, UnzerNotification{}, ErrMalformed},
		{"no event", `{"publicKey":"s-pub-x","paymentId":"s-pay-8"}`, UnzerNotification{}, ErrMissingField},
		{"unknown event", `{"event":"payment.frozen","publicKey":"s-pub-x","paymentId":"s-pay-8"}`, UnzerNotification{}, ErrMalformed},
		{"event not a string", `{"event":["charge.succeeded"],"publicKey":"s-pub-x","paymentId":"s-pay-8"}`, UnzerNotification{}, ErrMalformed},
		{"no public key", `{"event":"charge.succeeded","paymentId":"s-pay-8"}`, UnzerNotification{}, ErrMissingField},
		{"paymentId a number", `{"event":"charge.succeeded","publicKey":"s-pub-x","paymentId":8}`, UnzerNotification{}, ErrMalformed},
		{"customer event", `{"event":"customer.created","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/customers/s-cst-1"}`, UnzerNotification{}, ErrNotAPayment},
		{"types event", `{"event":"types","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/types/card/s-crd-1"}`, UnzerNotification{}, ErrNotAPayment},
		{"basket event", `{"event":"basket.used","publicKey":"s-pub-x"}`, UnzerNotification{}, ErrNotAPayment},
		{"payment event naming no payment", `{"event":"payment.completed","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/customers/s-cst-1"}`, UnzerNotification{}, ErrMissingField},
		{"long id", `{"event":"charge.succeeded","publicKey":"s-pub-x","paymentId":"` + strings.Repeat("a", 300) + `"}`, UnzerNotification{}, ErrMalformed},
		{"not JSON", `event=charge.succeeded`, UnzerNotification{}, ErrMalformed},
		{"a JSON array", `[{"event":"charge.succeeded"}]`, UnzerNotification{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UnzerClaim(&Input{Provider: "unzer", ContentType: "text/plain", Body: []byte(tt.body)})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// The event id: a retry (the same webhook, the payment unchanged) keeps
// it; the payment moved on, or another event name, is a new one.
func TestUnzerEventID(t *testing.T) {
	webhook := func(event string) []byte {
		return []byte(`{"event":"` + event + `","publicKey":"s-pub-x","paymentId":"s-pay-1"}`)
	}
	partly := `{"id":"s-pay-1","state":{"id":3,"name":"partly"},"amount":{"total":"100.0000","charged":"50.0000","canceled":"0.0000","remaining":"50.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"50.0000","date":"2026-11-20 10:00:00"}]}`
	partlyReformatted := `{"id":"s-pay-1","state":{"id":3,"name":"partly"},"amount":{"total":"100.00","charged":"50.00","canceled":"0","remaining":"50.00"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"50.0000","date":"2026-11-20 10:00:00"}],"resources":{"traceId":"t2"}}`
	completed := `{"id":"s-pay-1","state":{"id":1,"name":"completed"},"amount":{"total":"100.0000","charged":"100.0000","canceled":"0.0000","remaining":"0.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"50.0000","date":"2026-11-20 10:00:00"},{"type":"charge","status":"success","amount":"50.0000","date":"2026-11-21 10:00:00"}]}`
	secondRefund := func(date string) string {
		return `{"id":"s-pay-1","state":{"id":1,"name":"completed"},"amount":{"total":"100.0000","charged":"80.0000","canceled":"20.0000","remaining":"0.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"100.0000","date":"2026-11-20 10:00:00"},{"type":"cancel-charge","status":"success","amount":"10.0000","date":"2026-11-21 10:00:00"},{"type":"cancel-charge","status":"success","amount":"10.0000","date":"` + date + `"}]}`
	}
	id := func(event, fetched string) string {
		t.Helper()
		ev, err := Unzer(&Input{Provider: "unzer", ContentType: "application/json", Body: webhook(event), Fetched: []byte(fetched)})
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	first := id("charge.succeeded", partly)
	if again := id("charge.succeeded", partly); again != first {
		t.Error("a retry changed the id")
	}
	if again := id("charge.succeeded", partlyReformatted); again != first {
		t.Error("the same amounts written otherwise, or another field, changed the id")
	}
	for name, other := range map[string]string{
		"a later state":              id("charge.succeeded", completed),
		"another event name":         id("payment.partly", partly),
		"a second refund, same sums": id("charge.canceled", secondRefund("2026-11-22 10:00:00")),
	} {
		if other == first {
			t.Errorf("%s kept the id", name)
		}
	}
	if id("charge.canceled", secondRefund("2026-11-22 10:00:00")) == id("charge.canceled", secondRefund("2026-11-23 10:00:00")) {
		t.Error("two refunds of one sum on other days share an id")
	}
}

// The webhook's event name, which nobody signed, never turns a payment
// that took no money into one that did, nor the reverse.
func TestUnzerEventNameCannotClaimMoney(t *testing.T) {
	pending3DS := `{"id":"s-pay-1","state":{"id":0,"name":"pending"},"amount":{"total":"10.0000","charged":"0.0000","canceled":"0.0000","remaining":"10.0000"},"currency":"EUR","transactions":[{"type":"authorize","status":"pending","amount":"10.0000"}]}`
	failed := `{"id":"s-pay-1","state":{"id":2,"name":"canceled"},"amount":{"total":"10.0000","charged":"0.0000","canceled":"0.0000","remaining":"0.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"error","amount":"10.0000"}]}`
	charged := `{"id":"s-pay-1","state":{"id":1,"name":"completed"},"amount":{"total":"10.0000","charged":"10.0000","canceled":"0.0000","remaining":"0.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"10.0000"}]}`
	for _, tt := range []struct {
		fetched string
		want    Status
	}{{pending3DS, StatusPending}, {failed, StatusFailed}, {charged, StatusCaptured}} {
		for _, event := range []string{"authorize.succeeded", "charge.succeeded", "payment.completed", "charge.canceled", "charge.failed", "chargeback"} {
			ev, err := Unzer(&Input{Provider: "unzer", ContentType: "application/json",
				Body: []byte(`{"event":"` + event + `","publicKey":"s-pub-x","paymentId":"s-pay-1"}`), Fetched: []byte(tt.fetched)})
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != tt.want {
				t.Errorf("%s on %s: %s, want %s", event, gjson.Get(tt.fetched, "state.name"), ev.Status, tt.want)
			}
		}
	}
}

func TestUnzerSampleRoundTrip(t *testing.T) {
	for _, status := range []Status{StatusPending, StatusAuthorized, StatusCaptured, StatusPartiallyRefunded, StatusRefunded,
		StatusCancelled, StatusChargeback, StatusFailed, StatusExpired} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1050, Currency: "EUR"}, MerchantReference: "order-1", ProviderReference: "4711"}
		body, contentType, err := UnzerSample(s, UnzerSamplePublicKey)
		if err != nil || contentType != "application/json" {
			t.Fatal(err, contentType)
		}
		doc, err := UnzerSamplePayment(s)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Unzer(&Input{Provider: "unzer", ContentType: contentType, Body: body, Fetched: doc})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != status || ev.MerchantReference != "order-1" || ev.ProviderReference != "s-pay-4711" || ev.Amount == nil || ev.Amount.Currency != "EUR" {
			t.Errorf("%s: got %s %+v %q %q", status, ev.Status, ev.Amount, ev.MerchantReference, ev.ProviderReference)
		}
		if want := int64(1050); status != StatusPartiallyRefunded && ev.Amount.MinorUnits != want {
			t.Errorf("%s: amount %d, want %d", status, ev.Amount.MinorUnits, want)
		}
	}
}

// FuzzUnzer runs arbitrary webhooks and fetched payments through the claim
// and the normalizer: no panic, and an accepted event has a payment id,
// a canonical status and, when it has an amount, a known currency.
func FuzzUnzer(f *testing.F) {
	f.Add([]byte(`{"event":"charge.succeeded","publicKey":"s-pub-x","paymentId":"s-pay-1"}`),
		[]byte(`{"id":"s-pay-1","state":{"id":3,"name":"partly"},"amount":{"total":"100.0000","charged":"50.0000","canceled":"00.0000","remaining":"50.0000"},"currency":"EUR","transactions":[{"type":"charge","status":"success","amount":"50.0000"}]}`))
	f.Add([]byte(`{"event":"chargeback","publicKey":"s-pub-x","retrieveUrl":"https://api.unzer.com/v1/payments/s-pay-1/charges/chargebacks/s-cbk-1"}`),
		[]byte(`{"id":"s-pay-1","state":{"id":5},"amount":{"total":"1.0000"},"currency":"KWD"}`))
	f.Fuzz(func(t *testing.T, body, fetched []byte) {
		ev, err := Unzer(&Input{Provider: "unzer", ContentType: "text/plain", Body: body, Fetched: fetched})
		if err != nil {
			return
		}
		if ev.ProviderReference == "" || ev.NotificationID == "" || !strings.Contains(ev.NotificationID, ev.ProviderReference) {
			t.Fatalf("event without its payment: %+v", ev)
		}
		if ev.Amount != nil {
			if _, ok := MinorUnitExponent(ev.Amount.Currency); !ok {
				t.Fatalf("amount in %q", ev.Amount.Currency)
			}
		}
		if ev.Unmapped != (ev.Status == StatusUnknown) {
			t.Fatalf("status %s, unmapped %v", ev.Status, ev.Unmapped)
		}
	})
}
