package normalize_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

func swedbankVerification(_ *http.Request, in *Input) verify.Result {
	_, path, _ := SwedbankPayClaim(in)
	doc := gjson.ParseBytes(in.Fetched)
	order := doc.Get("paymentOrder")
	if !order.Exists() {
		order = doc.Get("paymentorder")
	}
	status := order.Get("status").String()
	if status == "" {
		status = order.Get("state").String()
	}
	if payment := doc.Get("payment"); payment.IsObject() && !order.Exists() {
		status = payment.Get("state").String()
	}
	if tr := doc.Get("transaction"); tr.Exists() {
		status = tr.Get("type").String() + " " + tr.Get("state").String()
	}
	return verify.Result{Method: "api-fetch", Resource: path, Status: status}
}

func TestSwedbankPayGolden(t *testing.T) {
	runGoldenWith(t, "swedbankpay", SwedbankPay, swedbankVerification, func(answer []byte, base string) []byte {
		answer = bytes.TrimSpace(answer)
		// A legacy transaction's answer, with its payment's beside it: the
		// verifier hands on the two together.
		payment, err := os.ReadFile(base + ".payment.json")
		if err != nil {
			return answer
		}
		// The path the verifier asked for: the transaction the callback names.
		_, callback := ReadRawRequest(t, base+".in")
		_, path, err := SwedbankPayClaim(&Input{Body: callback})
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		doc, err := verify.SwedbankPayTransactionDocument(path, answer, payment)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		return doc
	})
}

func TestSwedbankPayClaim(t *testing.T) {
	tests := []struct {
		body, kind, path string
		err              error
	}{
		{`{"paymentOrder":{"id":"/psp/paymentorders/1"},"transaction":{"id":"/psp/t/1"}}`, "paymentorder", "/psp/paymentorders/1", nil},
		{`{"orderReference":"5","paymentOrder":{"id":"/psp/paymentorders/2","number":"7"}}`, "paymentorder", "/psp/paymentorders/2", nil},
		{`{"paymentorder":{"id":"/psp/paymentorders/3"},"transaction":{"id":"/psp/t/1"}}`, "paymentorder", "/psp/paymentorders/3", nil},
		{`{"payment":{"id":"/psp/swish/payments/1","number":2},"transaction":{"id":"/psp/swish/payments/1/sales/3","number":4}}`, "transaction", "/psp/swish/payments/1/sales/3", nil},
		{`{"payment":"/psp/creditcard/payments/1","transaction":"/psp/creditcard/payments/1/transactions/2"}`, "transaction", "/psp/creditcard/payments/1/transactions/2", nil},
		{`{"payment":{"id":"/psp/creditcard/payments/1"}}`, "payment", "/psp/creditcard/payments/1", nil},
		{`{"paymentOrder":{"id":42}}`, "", "", ErrMissingField},
		{`{"orderReference":"5"}`, "", "", ErrMissingField},
		{`[]`, "", "", ErrMalformed},
	}
	for _, tt := range tests {
		kind, path, err := SwedbankPayClaim(&Input{Body: []byte(tt.body)})
		if kind != tt.kind || path != tt.path || !errors.Is(err, tt.err) {
			t.Errorf("SwedbankPayClaim(%s) = %q %q %v, want %q %q %v", tt.body, kind, path, err, tt.kind, tt.path, tt.err)
		}
	}
}

// TestSwedbankPayTransactionMapping pins every transaction type × state.
func TestSwedbankPayTransactionMapping(t *testing.T) {
	states := []string{"Completed", "Initialized", "Pending", "Ready", "AwaitingActivity", "Failed", "Aborted"}
	want := map[string][7]Status{
		"Authorization":  {StatusAuthorized, StatusPending, StatusPending, StatusPending, StatusPending, StatusFailed, StatusCancelled},
		"Capture":        {StatusCaptured, StatusPending, StatusPending, StatusPending, StatusPending, StatusFailed, StatusCancelled},
		"Sale":           {StatusCaptured, StatusPending, StatusPending, StatusPending, StatusPending, StatusFailed, StatusCancelled},
		"Reversal":       {StatusRefunded, StatusRefundPending, StatusRefundPending, StatusRefundPending, StatusRefundPending, StatusRefundFailed, StatusRefundFailed},
		"Cancellation":   {StatusCancelled, StatusPending, StatusPending, StatusPending, StatusPending, StatusFailed, StatusCancelled},
		"Initialization": {StatusPending, StatusPending, StatusPending, StatusPending, StatusPending, StatusFailed, StatusCancelled},
	}
	for transactionType, statuses := range want {
		for i, state := range states {
			fetched := fmt.Sprintf(`{"payment":{"id":"/psp/p/1","currency":"SEK"},"transaction":{"id":"/psp/p/1/transactions/1","type":%q,"state":%q,"amount":100}}`, transactionType, state)
			ev, err := SwedbankPay(&Input{Provider: "swedbankpay", Body: []byte(`{"transaction":"/psp/p/1/transactions/1"}`), Fetched: []byte(fetched)})
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != statuses[i] || ev.Unmapped || ev.ProviderStatus != transactionType+" "+state {
				t.Errorf("%s %s = %s (unmapped %v), want %s", transactionType, state, ev.Status, ev.Unmapped, statuses[i])
			}
		}
	}
}

// data.test comes from the configured API, as the documents do not say.
func TestSwedbankPayTestFromTheAPIEnvironment(t *testing.T) {
	fetched := []byte(`{"paymentOrder":{"id":"/psp/paymentorders/1","status":"Paid","transactionType":"Sale","amount":100,"currency":"SEK"}}`)
	body := []byte(`{"paymentOrder":{"id":"/psp/paymentorders/1"}}`)
	yes, no := true, false
	for _, test := range []*bool{&yes, &no, nil} {
		ev, err := SwedbankPay(&Input{Provider: "swedbankpay", Body: body, Original: body, Fetched: fetched, Test: test})
		if err != nil {
			t.Fatal(err)
		}
		want := "null"
		if test != nil {
			want = fmt.Sprint(*test)
		}
		if got := gjson.GetBytes(Encode(ev, verify.Result{Method: "api-fetch"}, time.Now()), "data.test").Raw; got != want {
			t.Errorf("Input.Test %s: data.test = %s", want, got)
		}
	}
}

func FuzzSwedbankPay(f *testing.F) {
	f.Add([]byte(`{"paymentOrder":{"id":"/psp/paymentorders/1"}}`), []byte(`{"paymentOrder":{"id":"/psp/paymentorders/1","status":"Paid","amount":"100","currency":"SEK","remainingCaptureAmount":5}}`))
	f.Add([]byte(`{"payment":"/psp/p/1","transaction":"/psp/p/1/transactions/2"}`), []byte(`{"payment":{"currency":"nok"},"transaction":{"type":"Reversal","state":"Failed","amount":1,"problem":{"type":"x"}}}`))
	f.Add([]byte(`{"paymentorder":{"id":"/psp/paymentorders/1"}}`), []byte(`{"paymentorder":{"id":"/psp/paymentorders/1","state":"Ready","amount":0,"currency":"NOK","operation":"Verify"}}`))
	f.Add([]byte(`{"payment":{"id":"/psp/c/payments/1"},"transaction":{"id":"/psp/c/payments/1/verifications/2"}}`), []byte(`{"payment":{"currency":"SEK","operation":"Verify"},"transaction":{"type":"Verification","state":"Completed","amount":0}}`))
	f.Fuzz(func(t *testing.T, body, fetched []byte) {
		ev, err := SwedbankPay(&Input{Provider: "swedbankpay", Body: body, Fetched: fetched})
		if err != nil {
			return
		}
		envelope := Encode(ev, verify.Result{Method: "api-fetch"}, time.Now())
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}

// Event identity of Swedbank Pay callbacks (the hardening issue): a payment
// order stays Paid with the same amount through partial captures and
// reversals, so the id comes from the financial transaction the callback
// names. Two partial captures of the same amount are two events; a retry
// of a reversal's callback is the same event even when, by then, the rest
// was reversed too.
func TestSwedbankPayEventIdentity(t *testing.T) {
	id := func(name string) (*Event, string) {
		t.Helper()
		req, body := ReadRawRequest(t, "testdata/swedbankpay/"+name+".in")
		in := inputFor("swedbankpay", req, body)
		fetched, err := os.ReadFile("testdata/swedbankpay/" + name + ".fetched.json")
		if err != nil {
			t.Fatal(err)
		}
		in.Fetched = bytes.TrimSpace(fetched)
		ev, err := SwedbankPay(in)
		if err != nil {
			t.Fatal(err)
		}
		return ev, ev.ID()
	}
	first, firstID := id("quirk_partial_capture_first")
	second, secondID := id("quirk_partial_capture_second_same_amount")
	if firstID == secondID {
		t.Errorf("two partial captures of %d share the id %s", first.Amount.MinorUnits, firstID)
	}
	if first.Status != StatusCaptured || second.Status != StatusCaptured || *first.Amount != *second.Amount {
		t.Errorf("captures: %s %v, %s %v", first.Status, first.Amount, second.Status, second.Amount)
	}
	reversal, reversalID := id("quirk_partial_reversal")
	retry, retryID := id("quirk_partial_reversal_retried_after_the_rest_was_reversed")
	if reversal.Status != StatusPartiallyRefunded || reversal.Amount.MinorUnits != 20000 {
		t.Errorf("partial reversal: %s %v, want partially_refunded 20000", reversal.Status, reversal.Amount)
	}
	if reversalID != retryID {
		t.Errorf("a retry of the reversal's callback got id %s, the first %s (status %s then %s)", retryID, reversalID, reversal.Status, retry.Status)
	}
	// A callback whose number the order does not list is reported as the
	// order as a whole; what it has left to capture and reverse tells it
	// apart from another such report.
	whole, wholeID := id("quirk_callback_number_not_in_the_list")
	if whole.NotificationID != "" || wholeID == firstID || whole.Discriminator == "" {
		t.Errorf("order-level event: %+v", whole)
	}
}

// Money leaving the shop is never reported as money arriving: a Payout
// order, paid, is paid_out (whether reported as a whole or by its
// financial transaction); a Verify order moves no money (verified, no
// amount). Purchases by token (Recur, UnscheduledPurchase) are purchases.
func TestSwedbankPayOperationsPayoutAndVerify(t *testing.T) {
	for _, tt := range []struct {
		operation, extra string
		callback         string
		want             Status
		amount           bool
	}{
		{"Payout", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusPaidOut, true},
		{"Payout", `,"financialTransactions":{"financialTransactionsList":[{"id":"/psp/paymentorders/1/financialtransactions/9","number":42,"type":"Sale","amount":1000}]}`,
			`{"paymentOrder":{"id":"/psp/paymentorders/1","number":42}}`, StatusPaidOut, true},
		{"Verify", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusVerified, false},
		{"VerifyTrustly", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusVerified, false},
		{"Recur", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusCaptured, true},
		{"UnscheduledPurchase", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusCaptured, true},
		{"Purchase", ``, `{"paymentOrder":{"id":"/psp/paymentorders/1"}}`, StatusCaptured, true},
	} {
		fetched := `{"paymentOrder":{"id":"/psp/paymentorders/1","operation":"` + tt.operation + `","status":"Paid","currency":"SEK","amount":1000` + tt.extra + `}}`
		ev, err := SwedbankPay(&Input{Provider: "swedbankpay", ContentType: "application/json", Body: []byte(tt.callback), Fetched: []byte(fetched)})
		if err != nil {
			t.Fatalf("%s: %v", tt.operation, err)
		}
		if ev.Status != tt.want || (ev.Amount != nil) != tt.amount {
			t.Errorf("%s%s: status %s, amount %v; want %s, amount %v", tt.operation, tt.extra[:min(len(tt.extra), 20)], ev.Status, ev.Amount, tt.want, tt.amount)
		}
	}
}

// The sample's payment order, as a stand-in of the API serves it, makes
// the sample's event.
func TestSwedbankPaySampleOrder(t *testing.T) {
	for _, status := range []Status{StatusPending, StatusAuthorized, StatusCaptured, StatusFailed, StatusCancelled, StatusRefunded} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1230, Currency: "SEK"}, MerchantReference: "order-8", ProviderReference: "5adc265f-f87f-4313-577e-08d3dca1a26c"}
		body, _, err := SwedbankPaySample(s)
		if err != nil {
			t.Fatal(err)
		}
		path, fetched, err := SwedbankPaySampleOrder(s)
		if err != nil || path != "/psp/paymentorders/"+s.ProviderReference {
			t.Fatalf("%s: %s, %v", status, path, err)
		}
		ev, err := SwedbankPay(&Input{Provider: "swedbankpay", ContentType: "application/json", Body: body, Original: body, Fetched: fetched})
		if err != nil || ev.Status != status || ev.Amount == nil || *ev.Amount != s.Amount || ev.MerchantReference != "order-8" {
			t.Errorf("%s: %+v, %v", status, ev, err)
		}
	}
}
