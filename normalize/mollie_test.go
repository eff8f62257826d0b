package normalize_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// mollie is what the module does: a next-gen event (JSON) from its signed
// body, a classic webhook from the payment fetched back.
func mollie(in *Input) ([]*Event, error) {
	if in.ContentType == "application/json" {
		ev, err := MollieEvent(in, MollieOptions{})
		if err != nil {
			return nil, err
		}
		return []*Event{ev}, nil
	}
	if _, err := MollieClaim(in); err != nil {
		return nil, err
	}
	return MolliePayment(in, MollieOptions{})
}

func mollieVerification(_ *http.Request, in *Input) verify.Result {
	if in.ContentType == "application/json" {
		return verify.Result{Method: "hmac-sha256"}
	}
	id := gjson.GetBytes(in.Fetched, "id").String()
	return verify.Result{Method: "api-fetch", Resource: "payments/" + id, Status: gjson.GetBytes(in.Fetched, "status").String()}
}

func TestMollieGolden(t *testing.T) {
	runGoldenEvents(t, "mollie", mollie, mollieVerification, func(answer []byte, _ string) []byte { return bytes.TrimSpace(answer) })
}

// Only a Mollie payment id reaches the API's path.
func TestMollieClaimRefusesWhatIsNotAPaymentID(t *testing.T) {
	for _, tt := range []struct {
		body, id string
	}{
		{"id=tr_WDqYK6vllg", "tr_WDqYK6vllg"},
		{"id=tr_44aKxzEbr8&testByMollie=1", "tr_44aKxzEbr8"},
		{"id=ord_kEn1PlbGa", ""},
		{"id=re_4qqhO89gsT", ""},
		{"id=tr_", ""},
		{"id=TR_WDqYK6vllg", ""},
		{"id=tr_WDq%2F..%2Fcustomers", ""},
		{"id=tr_WDq%3Fembed%3Dx", ""},
		{"id=tr_WDq%23x", ""},
		{"id=tr_WDq%00", ""},
		{"id=tr_WDq%20", ""},
		{"id=tr_" + strings.Repeat("a", 62), ""},
		{"id[]=tr_WDqYK6vllg", ""},
		{"id[x]=tr_WDqYK6vllg", ""},
	} {
		id, err := MollieClaim(&Input{Provider: "mollie", ContentType: "application/x-www-form-urlencoded", Body: []byte(tt.body)})
		if tt.id != "" {
			if err != nil || id != tt.id {
				t.Errorf("%s: %q, %v; want %s", tt.body, id, err, tt.id)
			}
			continue
		}
		if err == nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrMissingField)) {
			t.Errorf("%s: %q, %v; want a refusal", tt.body, id, err)
		}
	}
}

// A refund or chargeback is an event of its own, whose id stays when the
// payment moves on (a second refund, a chargeback) and changes with its
// own status.
func TestMollieRefundIdentity(t *testing.T) {
	doc := func(refunds string) []byte {
		return []byte(`{"resource":"payment","id":"tr_1","mode":"test","status":"paid","amount":{"value":"25.00","currency":"EUR"},` +
			`"_embedded":{"refunds":[` + refunds + `],"chargebacks":[]}}`)
	}
	ids := func(fetched []byte) map[string]string {
		events, err := MolliePayment(&Input{Provider: "mollie", Fetched: fetched}, MollieOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, ev := range events {
			out[ev.ProviderReference+" "+string(ev.Status)] = ev.ID()
		}
		return out
	}
	first := `{"id":"re_1","status":"pending","amount":{"value":"10.00","currency":"EUR"},"createdAt":"2026-11-20T10:00:00+00:00"}`
	firstDone := strings.Replace(first, "pending", "refunded", 1)
	second := `{"id":"re_2","status":"pending","amount":{"value":"10.00","currency":"EUR"},"createdAt":"2026-11-21T10:00:00+00:00"}`
	a, b, c := ids(doc(first)), ids(doc(firstDone+","+second)), ids(doc(second+","+firstDone))
	if a["tr_1 captured"] != b["tr_1 captured"] {
		t.Error("the payment's id changed with its refunds")
	}
	if a["re_1 refund_pending"] == "" || b["re_1 partially_refunded"] == "" || a["re_1 refund_pending"] == b["re_1 partially_refunded"] {
		t.Errorf("refund re_1 pending and refunded: %v, %v", a, b)
	}
	if b["re_2 refund_pending"] == "" || b["re_2 refund_pending"] == a["re_1 refund_pending"] {
		t.Errorf("two refunds alike but for their id share an event id: %v", b)
	}
	if len(b) != 3 || len(c) != 3 || b["re_2 refund_pending"] != c["re_2 refund_pending"] {
		t.Errorf("the API's order of refunds changed their events: %v, %v", b, c)
	}
}

func TestMollieSamplePaymentRoundTrip(t *testing.T) {
	for _, status := range []Status{StatusCaptured, StatusRefunded, StatusPartiallyRefunded, StatusChargeback, StatusFailed, StatusPending} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1999, Currency: "EUR"}, MerchantReference: "order-5", ProviderReference: "tr_sample5"}
		doc, err := MollieSamplePayment(s)
		if err != nil {
			t.Fatal(err)
		}
		events, err := MolliePayment(&Input{Provider: "mollie", Fetched: doc}, MollieOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		if last.Status != status || last.MerchantReference != "order-5" || last.Amount == nil {
			t.Errorf("%s: last event %+v", status, last)
		}
	}
	if _, err := MollieSamplePayment(Sample{Status: StatusPaidOut, Amount: Amount{Currency: "EUR"}}); err == nil {
		t.Error("a payout sample was made")
	}
}

func FuzzMollie(f *testing.F) {
	f.Add([]byte(`{"resource":"payment","id":"tr_1","status":"paid","amount":{"value":"1.00","currency":"EUR"},"_embedded":{"refunds":[{"id":"re_1","status":"refunded","amount":{"value":"1.00","currency":"EUR"}}],"chargebacks":[{"id":"chb_1","amount":{"value":"1.00","currency":"EUR"},"reversedAt":"2026-01-01T00:00:00Z"}]}}`), false)
	f.Add([]byte(`{"resource":"payment","id":"tr_1","status":"paid","amount":{"value":"30.00","currency":"EUR"},"amountRefunded":{"value":"12.50","currency":"EUR"}}`), false)
	f.Add([]byte(`{"resource":"event","id":"whe_1","type":"payment-link.paid","entityId":"pl_1","_embedded":{"entity":{"amount":{"value":"10.00","currency":"EUR"}}}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, event bool) {
		var events []*Event
		var err error
		if event {
			var ev *Event
			if ev, err = MollieEvent(&Input{Provider: "mollie", Body: body}, MollieOptions{}); err == nil {
				events = []*Event{ev}
			}
		} else {
			if len(body) == 0 {
				return // nothing fetched: the module never calls it so
			}
			events, err = MolliePayment(&Input{Provider: "mollie", Fetched: body}, MollieOptions{})
		}
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		seen := map[string]bool{}
		for _, ev := range events {
			if seen[ev.ID()] {
				t.Fatalf("two events of one callback share the id %s", ev.ID())
			}
			seen[ev.ID()] = true
			if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "api-fetch"}, time.Now())); err != nil {
				t.Fatalf("invalid envelope: %v", err)
			}
		}
	})
}
