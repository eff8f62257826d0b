package normalize_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// klarnaVerification is what the module's verifier reports: the order
// fetched and its status.
func klarnaVerification(_ *http.Request, in *Input) verify.Result {
	return verify.Result{Method: "api-fetch", Resource: "orders/" + gjson.GetBytes(in.Fetched, "order_id").String(),
		Status: gjson.GetBytes(in.Fetched, "status").String()}
}

func TestKlarnaGolden(t *testing.T) {
	runGoldenWith(t, "klarna", Klarna, klarnaVerification, func(answer []byte, _ string) []byte { return answer })
}

const klarnaOrderFmt = `{"order_id":"903e3d51-3b68-4993-be73-2c2f95e83d97","status":"%s","fraud_status":"%s","order_amount":1800,` +
	`"captured_amount":%s,"refunded_amount":%s,"remaining_authorized_amount":0,"purchase_currency":"EUR","merchant_reference1":"1042","captures":[%s],"refunds":[%s]}`

func klarnaOrder(status, fraud, captured, refunded, captures, refunds string) string {
	s := klarnaOrderFmt
	for _, v := range []string{status, fraud, captured, refunded, captures, refunds} {
		s = strings.Replace(s, "%s", v, 1)
	}
	return s
}

// The event id: a retry of one push (the order unchanged, however its
// document is written) keeps it; a push that finds the order moved on is
// a new event.
func TestKlarnaEventID(t *testing.T) {
	id := func(order string) string {
		t.Helper()
		ev, err := Klarna(&Input{Provider: "klarna", Fetched: []byte(order)})
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	authorized := klarnaOrder("AUTHORIZED", "ACCEPTED", "0", "0", "", "")
	first := id(authorized)
	if id(authorized) != first {
		t.Error("a retry changed the id")
	}
	reformatted := strings.Replace(authorized, `"order_amount":1800`, `"order_amount":"1800", "locale":"nl-BE"`, 1)
	if id(reformatted) != first {
		t.Error("the same order written otherwise changed the id")
	}
	partCaptured := klarnaOrder("PART_CAPTURED", "ACCEPTED", "900", "0", "{}", "")
	secondCapture := klarnaOrder("CAPTURED", "ACCEPTED", "1800", "0", "{},{}", "")
	refund := func(refunded, refunds string) string {
		return klarnaOrder("CAPTURED", "ACCEPTED", "1800", refunded, "{}", refunds)
	}
	ids := map[string]string{"authorized": first}
	for name, order := range map[string]string{
		"fraud pending":              klarnaOrder("AUTHORIZED", "PENDING", "0", "0", "", ""),
		"part captured":              partCaptured,
		"captured in two":            secondCapture,
		"captured in one":            klarnaOrder("CAPTURED", "ACCEPTED", "1800", "0", "{}", ""),
		"a partial refund":           refund("500", "{}"),
		"a second partial refund":    refund("1000", "{},{}"),
		"refunded":                   refund("1800", "{},{},{}"),
		"closed after the refund":    klarnaOrder("CLOSED", "ACCEPTED", "1800", "1800", "{}", "{},{},{}"),
		"cancelled":                  klarnaOrder("CANCELLED", "ACCEPTED", "0", "0", "", ""),
		"authorized, fraud rejected": klarnaOrder("AUTHORIZED", "REJECTED", "0", "0", "", ""),
	} {
		got := id(order)
		for other, otherID := range ids {
			if got == otherID {
				t.Errorf("%s and %s share an id", name, other)
			}
		}
		ids[name] = got
	}
}

func TestKlarnaStatusAndAmount(t *testing.T) {
	for _, tt := range []struct {
		order  string
		status Status
		amount int64
	}{
		{klarnaOrder("AUTHORIZED", "ACCEPTED", "0", "0", "", ""), StatusAuthorized, 1800},
		{klarnaOrder("AUTHORIZED", "", "0", "0", "", ""), StatusAuthorized, 1800},
		{klarnaOrder("AUTHORIZED", "PENDING", "0", "0", "", ""), StatusPending, 1800},
		{klarnaOrder("AUTHORIZED", "REJECTED", "0", "0", "", ""), StatusFailed, 1800},
		{klarnaOrder("PART_CAPTURED", "ACCEPTED", "900", "0", "{}", ""), StatusCaptured, 900},
		{klarnaOrder("CAPTURED", "ACCEPTED", "1800", "0", "{}", ""), StatusCaptured, 1800},
		{klarnaOrder("CAPTURED", "ACCEPTED", "1800", "300", "{}", "{}"), StatusPartiallyRefunded, 300},
		{klarnaOrder("PART_CAPTURED", "ACCEPTED", "900", "900", "{}", "{}"), StatusRefunded, 900},
		{klarnaOrder("CLOSED", "ACCEPTED", "0", "0", "", ""), StatusCancelled, 1800},
		{klarnaOrder("CLOSED", "ACCEPTED", "900", "0", "{}", ""), StatusCaptured, 900},
		{klarnaOrder("CANCELLED", "ACCEPTED", "0", "0", "", ""), StatusCancelled, 1800},
		{klarnaOrder("EXPIRED", "ACCEPTED", "0", "0", "", ""), StatusExpired, 1800},
		{klarnaOrder("SOMETHING_NEW", "ACCEPTED", "0", "0", "", ""), StatusUnknown, 1800},
	} {
		ev, err := Klarna(&Input{Provider: "klarna", Fetched: []byte(tt.order)})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != tt.status || ev.Amount == nil || ev.Amount.MinorUnits != tt.amount || ev.Amount.Currency != "EUR" {
			t.Errorf("%s: %s %+v, want %s %d", tt.order, ev.Status, ev.Amount, tt.status, tt.amount)
		}
		if (ev.Failure != nil) != (ev.Status == StatusFailed) || ev.Unmapped != (ev.Status == StatusUnknown) {
			t.Errorf("%s: failure %+v, unmapped %v", tt.order, ev.Failure, ev.Unmapped)
		}
	}
	if _, err := Klarna(&Input{Provider: "klarna"}); err == nil {
		t.Error("no order fetched: no error")
	}
}

func TestKlarnaSample(t *testing.T) {
	for _, status := range []Status{StatusAuthorized, StatusPending, StatusFailed, StatusCaptured, StatusPartiallyRefunded, StatusRefunded, StatusCancelled, StatusExpired} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 999, Currency: "EUR"}, MerchantReference: "order-1", ProviderReference: "a1b2c3"}
		doc, err := KlarnaSampleOrder(s)
		if err != nil {
			t.Fatal(err)
		}
		if verify.CheckKlarnaOrderID(KlarnaSampleOrderID(s)) != nil {
			t.Fatalf("sample id %q", KlarnaSampleOrderID(s))
		}
		ev, err := Klarna(&Input{Provider: "klarna", Fetched: doc})
		if err != nil || ev.Status != status || ev.MerchantReference != "order-1" {
			t.Errorf("%s: %+v, %v", status, ev, err)
		}
	}
	if _, err := KlarnaSampleOrder(Sample{Status: StatusChargeback, Amount: Amount{MinorUnits: 1, Currency: "EUR"}}); err == nil {
		t.Error("a chargeback sample: no error")
	}
}

func FuzzKlarna(f *testing.F) {
	f.Add([]byte(klarnaOrder("CAPTURED", "ACCEPTED", "1800", "300", "{}", "{}")))
	f.Add([]byte(`{"order_id":"x","status":"AUTHORIZED","order_amount":"1.5","purchase_currency":"JPY"}`))
	f.Add([]byte(`{"order_id":"x","status":"CLOSED","order_amount":1e3,"captured_amount":null,"purchase_currency":"eur","captures":{}}`))
	f.Fuzz(func(t *testing.T, fetched []byte) {
		ev, err := Klarna(&Input{Provider: "klarna", Fetched: fetched})
		if err != nil {
			if ev != nil {
				t.Fatal("an event with an error")
			}
			var known bool
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				known = known || errors.Is(err, sentinel)
			}
			if !known {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if ev.Amount == nil || ev.Amount.MinorUnits < 0 || ev.ProviderReference == "" || ev.ID() == "" {
			t.Fatalf("%+v", ev)
		}
		Encode(ev, verify.Result{Method: "api-fetch"}, goldenReceivedAt)
	})
}
