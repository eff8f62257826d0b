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

// multisafepayVerification is what the module's verifier reports: the Auth
// signature of a POST, or the order fetched for a GET.
func multisafepayVerification(req *http.Request, in *Input) verify.Result {
	if len(in.Fetched) == 0 {
		return verify.Result{Method: "hmac-sha512"}
	}
	id := gjson.GetBytes(in.Fetched, "order_id").String()
	return verify.Result{Method: "api-fetch", Resource: "orders/" + id, Status: gjson.GetBytes(in.Fetched, "status").String()}
}

// The goldens: the signed POSTs of MultiSafepay's vectors, and a legacy GET
// for each published order, with the API's answer fetched for it (its
// "data" is what the verifier hands on).
func TestMultiSafepayGolden(t *testing.T) {
	runGoldenWith(t, "multisafepay", MultiSafepay, multisafepayVerification, func(answer []byte, _ string) []byte {
		return []byte(gjson.GetBytes(answer, "data").Raw)
	})
}

func TestMultiSafepayQuery(t *testing.T) {
	for _, tt := range []struct {
		name, query string
		want        MultiSafepayNotification
		err         error
	}{
		{"docs example", "invoice_id=840&transactionid=12345&timestamp=140292929", MultiSafepayNotification{"12345", "140292929"}, nil},
		{"escaped", "transactionid=order%2042&timestamp=1", MultiSafepayNotification{"order 42", "1"}, nil},
		{"no timestamp", "transactionid=12345", MultiSafepayNotification{"12345", ""}, nil},
		{"no transactionid", "timestamp=1", MultiSafepayNotification{}, ErrMissingField},
		{"empty", "", MultiSafepayNotification{}, ErrMissingField},
		{"twice", "transactionid=1&transactionid=2&timestamp=1", MultiSafepayNotification{}, ErrMalformed},
		{"bad escape", "transactionid=%zz", MultiSafepayNotification{}, ErrMalformed},
		{"too long", "transactionid=1&x=" + strings.Repeat("a", 3000), MultiSafepayNotification{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MultiSafepayQuery(tt.query)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("= %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// The event id: a retry (the same order state, a new timestamp) keeps it;
// any change of status, financial_status or amounts is another event.
func TestMultiSafepayIdentity(t *testing.T) {
	const order = `{"order_id":"o-1","transaction_id":"42","status":"completed","financial_status":"completed","amount":1000,"amount_refunded":0,"currency":"EUR","modified":"%s"}`
	id := func(body string) string {
		ev, err := MultiSafepay(&Input{Provider: "multisafepay", Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	base := id(strings.Replace(order, "%s", "2026-01-01T10:00:00", 1))
	if got := id(strings.Replace(order, "%s", "2026-01-01T10:15:00", 1)); got != base {
		t.Error("a resend with another modified time is another event")
	}
	if got := id(strings.Replace(strings.Replace(order, "%s", "x", 1), `"amount_refunded":0,`, "", 1)); got != base {
		t.Error("an order without amount_refunded is another state than one with 0")
	}
	for _, change := range [][2]string{
		{`"status":"completed"`, `"status":"refunded"`},
		{`"financial_status":"completed"`, `"financial_status":"uncleared"`},
		{`"amount_refunded":0`, `"amount_refunded":500`},
		{`"amount":1000`, `"amount":1001`},
		{`"transaction_id":"42"`, `"transaction_id":"43"`},
	} {
		if got := id(strings.Replace(strings.Replace(order, "%s", "x", 1), change[0], change[1], 1)); got == base {
			t.Errorf("%s → %s keeps the id", change[0], change[1])
		}
	}
}

func TestMultiSafepayRejects(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		err        error
	}{
		{"not JSON", `status=completed`, ErrMalformed},
		{"no status", `{"order_id":"1","amount":1,"currency":"EUR"}`, ErrMissingField},
		{"no order", `{"status":"completed","amount":1,"currency":"EUR"}`, ErrMissingField},
		{"decimal amount", `{"order_id":"1","status":"completed","amount":10.5,"currency":"EUR"}`, ErrInexactAmount},
		{"amount an object", `{"order_id":"1","status":"completed","amount":{},"currency":"EUR"}`, ErrMalformed},
		{"unknown currency", `{"order_id":"1","status":"completed","amount":1,"currency":"XXY"}`, ErrUnknownCurrency},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MultiSafepay(&Input{Provider: "multisafepay", Body: []byte(tt.body)}); !errors.Is(err, tt.err) {
				t.Errorf("= %v, want %v", err, tt.err)
			}
		})
	}
	ev, err := MultiSafepay(&Input{Provider: "multisafepay", Body: []byte(`{"order_id":"1","status":"frozen","amount":1,"currency":"EUR"}`)})
	if err != nil || ev.Status != StatusUnknown || !ev.Unmapped {
		t.Errorf("an unknown status: %+v, %v", ev, err)
	}
}

// Every sample status maps back to itself, signed or fetched.
func TestMultiSafepaySamples(t *testing.T) {
	for _, status := range Statuses() {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1234, Currency: "EUR"}, MerchantReference: "order-1", ProviderReference: "4711"}
		body, err := MultiSafepaySample(s)
		if err != nil {
			continue
		}
		answer, err := MultiSafepaySampleAnswer(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*Input{{Provider: "multisafepay", Body: body}, {Provider: "multisafepay", Fetched: []byte(gjson.GetBytes(answer, "data").Raw)}} {
			ev, err := MultiSafepay(in)
			if err != nil || ev.Status != status || ev.MerchantReference != "order-1" || ev.Amount.MinorUnits != 1234 {
				t.Errorf("%s: %+v, %v", status, ev, err)
			}
		}
	}
}

func FuzzMultiSafepayQuery(f *testing.F) {
	f.Add("invoice_id=840&transactionid=12345&timestamp=140292929")
	f.Add("transactionid=a%2Fb&timestamp=")
	f.Fuzz(func(t *testing.T, query string) {
		n, err := MultiSafepayQuery(query)
		if err != nil {
			return
		}
		if n.OrderID == "" || len(query) > 2048 {
			t.Fatalf("accepted %q: %+v", query, n)
		}
		// Only an id CheckMultiSafepayOrderID accepts reaches the API.
		if verify.CheckMultiSafepayOrderID(n.OrderID) == nil && strings.ContainsAny(n.OrderID, "/?#%\\ ") {
			t.Fatalf("order id %q would leave its path", n.OrderID)
		}
	})
}

func FuzzMultiSafepay(f *testing.F) {
	f.Add([]byte(`{"order_id":"1","transaction_id":"2","status":"completed","financial_status":"uncleared","amount":1000,"amount_refunded":0,"currency":"EUR"}`), false)
	f.Add([]byte(`{"order_id":"1","status":"declined","amount":"100","currency":"JPY","reason":"x","reason_code":3001}`), true)
	f.Fuzz(func(t *testing.T, order []byte, fetched bool) {
		in := &Input{Provider: "multisafepay", Body: order}
		if fetched {
			in = &Input{Provider: "multisafepay", Fetched: order}
		}
		ev, err := MultiSafepay(in)
		if err != nil {
			return
		}
		if ev.NotificationID == "" || (ev.MerchantReference == "" && ev.ProviderReference == "") {
			t.Fatalf("event without its order: %+v", ev)
		}
		if ev.Amount != nil {
			if _, ok := MinorUnitExponent(ev.Amount.Currency); !ok {
				t.Fatalf("amount in %q", ev.Amount.Currency)
			}
		}
		if ev.Unmapped != (ev.Status == StatusUnknown) {
			t.Fatalf("status %s, unmapped %v", ev.Status, ev.Unmapped)
		}
		if (ev.Failure != nil) != (ev.Status == StatusFailed) {
			t.Fatalf("failure %+v on %s", ev.Failure, ev.Status)
		}
	})
}
