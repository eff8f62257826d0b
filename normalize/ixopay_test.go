package normalize_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

func TestIXOPAYGolden(t *testing.T) {
	runGolden(t, "ixopay", IXOPAY, func(req *http.Request, _ *Input) verify.Result {
		return verify.Result{Method: "hmac-sha512", Date: req.Header.Get("Date")}
	})
}

// TestIXOPAYStatusMapping pins every documented transactionType × result.
func TestIXOPAYStatusMapping(t *testing.T) {
	want := map[string][4]Status{ // OK, PENDING, ERROR, INVALID_REQUEST
		"DEBIT":                     {StatusCaptured, StatusPending, StatusFailed, StatusFailed},
		"CAPTURE":                   {StatusCaptured, StatusPending, StatusFailed, StatusFailed},
		"PREAUTHORIZE":              {StatusAuthorized, StatusPending, StatusFailed, StatusFailed},
		"INCREMENTAL-AUTHORIZATION": {StatusAuthorized, StatusPending, StatusFailed, StatusFailed},
		"VOID":                      {StatusCancelled, StatusPending, StatusFailed, StatusFailed},
		"REFUND":                    {StatusRefunded, StatusRefundPending, StatusRefundFailed, StatusRefundFailed},
		"PAYOUT":                    {StatusPaidOut, StatusPending, StatusFailed, StatusFailed},
		"CHARGEBACK":                {StatusChargeback, StatusPending, StatusFailed, StatusFailed},
		"CHARGEBACK-REVERSAL":       {StatusChargebackReversed, StatusPending, StatusFailed, StatusFailed},
		"REGISTER":                  {StatusUnknown, StatusPending, StatusFailed, StatusFailed},
		"DEREGISTER":                {StatusUnknown, StatusPending, StatusFailed, StatusFailed},
	}
	status := func(transactionType, result string) (Status, bool) {
		body := fmt.Sprintf(`{"result":%q,"uuid":"u1","transactionType":%q,"amount":"1.00","currency":"EUR"}`, result, transactionType)
		ev, err := IXOPAY(&Input{Provider: "ixopay", Body: []byte(body)})
		if err != nil {
			t.Fatalf("%s %s: %v", transactionType, result, err)
		}
		if ev.ProviderStatus != transactionType+" "+result {
			t.Errorf("provider_status = %q, want %q", ev.ProviderStatus, transactionType+" "+result)
		}
		return ev.Status, !ev.Unmapped
	}
	for transactionType, statuses := range want {
		for i, result := range []string{"OK", "PENDING", "ERROR", "INVALID_REQUEST"} {
			got, known := status(transactionType, result)
			if got != statuses[i] || !known {
				t.Errorf("%s %s = %s (known %v), want %s", transactionType, result, got, known, statuses[i])
			}
		}
	}
	for _, tc := range [][2]string{{"SETTLEMENT", "OK"}, {"DEBIT", "MAYBE"}} {
		if got, known := status(tc[0], tc[1]); got != StatusUnknown || known {
			t.Errorf("%q %q = %s (known %v), want unknown and not known", tc[0], tc[1], got, known)
		}
	}
}

func TestIXOPAYUnknownTypeIsForwardedAsUnknown(t *testing.T) {
	ev, err := IXOPAY(&Input{Provider: "ixopay", Body: []byte(`{"result":"OK","uuid":"u1","transactionType":"SETTLEMENT","amount":"1.00","currency":"EUR"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != StatusUnknown || !ev.Unmapped || ev.ProviderStatus != "SETTLEMENT OK" {
		t.Errorf("got status %s unmapped %v provider_status %q", ev.Status, ev.Unmapped, ev.ProviderStatus)
	}
}

func TestIXOPAYRejections(t *testing.T) {
	tests := []struct {
		body string
		want error
	}{
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"9.999","currency":"EUR"}`, ErrInexactAmount},
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"1.5","currency":"JPY"}`, ErrInexactAmount},
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"9.99","currency":"XAU"}`, ErrUnknownCurrency},
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"9.99"}`, ErrMissingField},
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"9,99","currency":"EUR"}`, ErrMalformed},
		{`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":1e3,"currency":"EUR"}`, ErrMalformed},
		{`{"uuid":"u","transactionType":"DEBIT"}`, ErrMissingField},
		{`{"result":"OK","transactionType":"DEBIT"}`, ErrMissingField},
		{`{"result":null,"uuid":"u"}`, ErrMissingField},
		{`[]`, ErrMalformed},
		{`"OK"`, ErrMalformed},
		{``, ErrMalformed},
		{`{"result":"OK",}`, ErrMalformed},
	}
	for _, tt := range tests {
		_, err := IXOPAY(&Input{Provider: "ixopay", Body: []byte(tt.body)})
		if !errors.Is(err, tt.want) {
			t.Errorf("IXOPAY(%s) error = %v, want %v", tt.body, err, tt.want)
		}
	}
}

func FuzzIXOPAY(f *testing.F) {
	f.Add([]byte(`{"result":"OK","uuid":"u","transactionType":"DEBIT","amount":"9.99","currency":"EUR"}`))
	f.Add([]byte(`{"result":"ERROR","uuid":"u","transactionType":"REFUND","amount":9.99,"currency":"eur","errors":[{"code":1,"message":"x"}]}`))
	f.Add([]byte(`{"result":"OK","uuid":1,"transactionType":"CHARGEBACK","chargebackData":{"amount":"1","currency":"JPY"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := IXOPAY(&Input{Provider: "ixopay", Body: body})
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		envelope := Encode(ev, verify.Result{Method: "hmac-sha512"}, goldenReceivedAt)
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}

// TestIXOPAYSampleRoundTrips checks that every sample the send command can
// fabricate normalizes back to the status, amount and references asked for.
func TestIXOPAYSampleRoundTrips(t *testing.T) {
	for _, status := range []Status{
		StatusCaptured, StatusAuthorized, StatusPending, StatusFailed, StatusCancelled, StatusRefunded,
		StatusRefundPending, StatusRefundFailed, StatusChargeback, StatusChargebackReversed, StatusPaidOut,
	} {
		for _, amount := range []Amount{{999, "EUR"}, {5, "EUR"}, {100, "JPY"}, {1234, "KWD"}} {
			s := Sample{Status: status, Amount: amount, MerchantReference: "order-1", ProviderReference: "u-1"}
			body, ct, err := IXOPAYSample(s)
			if err != nil || ct != "application/json; charset=utf-8" {
				t.Fatalf("IXOPAYSample(%s): %v, %q", status, err, ct)
			}
			ev, err := IXOPAY(&Input{Provider: "ixopay", Body: body})
			if err != nil {
				t.Fatalf("sample for %s does not normalize: %v", status, err)
			}
			if ev.Status != status || *ev.Amount != amount || ev.MerchantReference != "order-1" || ev.ProviderReference != "u-1" {
				t.Errorf("sample %s %v came back as %s %v %q %q", status, amount, ev.Status, *ev.Amount, ev.MerchantReference, ev.ProviderReference)
			}
		}
	}
	if _, _, err := IXOPAYSample(Sample{Status: StatusExpired, Amount: Amount{1, "EUR"}}); err == nil {
		t.Error("IXOPAYSample(expired) succeeded; IXOPAY has no such callback")
	}
}

// TestIXOPAYNetworkTokenAndAccountUpdaterNotificationsKeepTheirOwnIDs: IXOPAY
// tells of a network token's or a stored card's change by sending the
// transaction's notification again (same uuid, type and result) with the
// news in extraData. Each such notification is an event of its own, not a
// duplicate of the payment's success; the same bytes again (a retry) are.
func TestIXOPAYNetworkTokenAndAccountUpdaterNotificationsKeepTheirOwnIDs(t *testing.T) {
	ids := map[string]string{}
	for _, name := range []string{
		"published_success_notification", "published_network_token_initial_notification",
		"published_network_token_update_same_state", "published_network_token_update_suspended",
	} {
		_, body := ReadRawRequest(t, filepath.Join("testdata", "ixopay", name+".in"))
		first, err := IXOPAY(&Input{Provider: "ixopay", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		again, err := IXOPAY(&Input{Provider: "ixopay", Body: bytes.Clone(body)})
		if err != nil {
			t.Fatal(err)
		}
		if first.ID() != again.ID() {
			t.Errorf("%s: a retry has id %s, the first %s", name, again.ID(), first.ID())
		}
		if other, seen := ids[first.ID()]; seen {
			t.Errorf("%s has the id of %s", name, other)
		}
		ids[first.ID()] = name
		if first.Status != StatusCaptured {
			t.Errorf("%s: status %s, want captured (the debit's own status)", name, first.Status)
		}
	}
}
