package normalize_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

func TestPayPalGolden(t *testing.T) {
	runGolden(t, "paypal", PayPal, func(req *http.Request, _ *Input) verify.Result {
		return verify.Result{Method: "paypal-verify-api", Date: req.Header.Get("Paypal-Transmission-Time")}
	})
}

func TestPayPalSampleRoundTrip(t *testing.T) {
	for _, status := range []Status{StatusCaptured, StatusAuthorized, StatusRefunded, StatusFailed, StatusChargeback, StatusPending, StatusCancelled} {
		body, err := PayPalSample(Sample{Status: status, Amount: Amount{MinorUnits: 1999, Currency: "EUR"}, MerchantReference: "order-5", ProviderReference: "5XJ96314"})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := PayPal(&Input{Provider: "paypal", Body: body})
		if err != nil || ev.Status != status || ev.Amount.MinorUnits != 1999 || ev.MerchantReference != "order-5" || ev.NotificationID != "WH-5XJ96314" {
			t.Errorf("%s: %+v, %v", status, ev, err)
		}
	}
}

func FuzzPayPal(f *testing.F) {
	f.Add([]byte(`{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"1","amount":{"currency_code":"EUR","value":"1.00"},"custom_id":"o"}}`))
	f.Add([]byte(`{"id":"WH-2","event_type":"PAYMENT.SALE.COMPLETED","resource":{"id":"1","amount":{"currency":"USD","total":"1.00"}}}`))
	f.Add([]byte(`{"id":"WH-3","event_type":"CUSTOMER.DISPUTE.RESOLVED","resource":{"dispute_id":"PP-1","dispute_amount":{"currency_code":"EUR","value":"1.00"},"dispute_outcome":{"outcome_code":"RESOLVED_SELLER_FAVOUR"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := PayPal(&Input{Provider: "paypal", Body: body})
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "paypal-verify-api"}, time.Now())); err != nil {
			t.Fatalf("invalid envelope: %v", err)
		}
	})
}
