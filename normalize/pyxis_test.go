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

func TestPyxisGolden(t *testing.T) {
	runGolden(t, "pyxis", Pyxis, func(*http.Request, *Input) verify.Result { return verify.Result{Method: "url-token"} })
}

func TestPyxisStatuses(t *testing.T) {
	for providerStatus, want := range map[string]Status{
		"Success": StatusCaptured, "Failed": StatusFailed, "Pending": StatusPending, "SUCCESS": StatusCaptured, "Refunded": StatusUnknown,
	} {
		ev, err := Pyxis(&Input{Provider: "pyxis", Body: []byte(`{"payment":{"id":"p1","status":"` + providerStatus + `","amount":1}}`)})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != want || ev.Unmapped != (want == StatusUnknown) {
			t.Errorf("%s = %s (unmapped %v), want %s", providerStatus, ev.Status, ev.Unmapped, want)
		}
	}
}

// The amount is a decimal in major units; the configured currency applies
// when the payment names none.
func TestPyxisAmountUnitAndCurrency(t *testing.T) {
	for _, tt := range []struct {
		body, defaultCurrency string
		want                  Amount
		err                   error
	}{
		{`{"payment":{"status":"Success","amount":12.5}}`, "", Amount{1250, "GBP"}, nil},
		{`{"payment":{"status":"Success","amount":"12.50"}}`, "", Amount{1250, "GBP"}, nil},
		{`{"payment":{"status":"Success","amount":40}}`, "", Amount{4000, "GBP"}, nil},
		{`{"payment":{"status":"Success","amount":40}}`, "EUR", Amount{4000, "EUR"}, nil},
		{`{"payment":{"status":"Success","amount":40,"currency":"usd"}}`, "EUR", Amount{4000, "USD"}, nil},
		{`{"payment":{"status":"Success","amount":1000}}`, "JPY", Amount{1000, "JPY"}, nil},
		{`{"payment":{"status":"Success","amount":12.505}}`, "", Amount{}, ErrInexactAmount},
		{`{"payment":{"status":"Success","amount":"£12"}}`, "", Amount{}, ErrMalformed},
	} {
		ev, err := Pyxis(&Input{Provider: "pyxis", Body: []byte(tt.body), DefaultCurrency: tt.defaultCurrency})
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.body, err, tt.err)
			continue
		}
		if err == nil && *ev.Amount != tt.want {
			t.Errorf("%s (default %q) = %+v, want %+v", tt.body, tt.defaultCurrency, *ev.Amount, tt.want)
		}
	}
}

func FuzzPyxis(f *testing.F) {
	f.Add([]byte(`{"payment":{"id":"p","status":"Success","amount":12.5,"timeStamp":"2026-11-20T10:34:47"},"data":{"a":1}}`))
	f.Add([]byte(`{"payment":{"status":"Failed","statusReason":"x","amount":"1","currency":"kwd"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Pyxis(&Input{Provider: "pyxis", Body: body})
		if err != nil {
			return
		}
		envelope := Encode(ev, verify.Result{Method: "url-token"}, time.Now())
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}
