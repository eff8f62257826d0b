package normalize_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// TestPyxisGolden: each case is posted to the OnSuccess URL
// (/callbacks/pyxis/success, a route with outcome success), the OnFail URL
// (…/fail, outcome fail) or a URL for both (/callbacks/pyxis), as the
// configuration of caddymodule/docs/pyxis.md has them.
func TestPyxisGolden(t *testing.T) {
	runGoldenRequests(t, "pyxis", func(req *http.Request, in *Input) ([]*Event, error) {
		ev, err := PyxisAt(in, pyxisOutcomeOf(req.URL.Path))
		if err != nil {
			return nil, err
		}
		return []*Event{ev}, nil
	}, func(*http.Request, *Input) verify.Result { return verify.Result{Method: "url-token"} }, func(answer []byte, _ string) []byte { return answer })
}

// pyxisOutcomeOf is the outcome of the route a golden request's path reaches.
func pyxisOutcomeOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/callbacks/pyxis/success"):
		return PyxisOnSuccess
	case strings.HasPrefix(path, "/callbacks/pyxis/fail"):
		return PyxisOnFail
	}
	return ""
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
	f.Add([]byte(`{"payment":{"id":"p","status":"Success","amount":12.5,"timeStamp":"2026-11-20T10:34:47"},"data":{"a":1}}`), uint8(0))
	f.Add([]byte(`{"payment":{"status":"Failed","statusReason":"x","amount":"1","currency":"kwd"}}`), uint8(2))
	f.Add([]byte(`{"payment":{"id":"p","amount":100.00,"statusReason":""},"data":{"metaDataId_0":1234}}`), uint8(1))
	outcomes := []string{"", PyxisOnSuccess, PyxisOnFail}
	f.Fuzz(func(t *testing.T, body []byte, outcome uint8) {
		ev, err := PyxisAt(&Input{Provider: "pyxis", Body: body}, outcomes[int(outcome)%len(outcomes)])
		if err != nil {
			return
		}
		envelope := Encode(ev, verify.Result{Method: "url-token"}, time.Now())
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}

// TestPyxisOutcomeIsTheURLs: Pyxis posts to a payment request's OnSuccess
// URL or its OnFail URL as the payment succeeded or failed; a route that
// knows which it is refuses a body that contradicts it, and takes the
// URL's word where the body names no status.
func TestPyxisOutcomeIsTheURLs(t *testing.T) {
	for _, tt := range []struct {
		outcome, status string
		want            Status
		providerStatus  string
		err             error
	}{
		{"", "Success", StatusCaptured, "Success", nil},
		{"", "Failed", StatusFailed, "Failed", nil},
		{"", "Pending", StatusPending, "Pending", nil},
		{"", "", "", "", ErrMissingField},
		{PyxisOnSuccess, "Success", StatusCaptured, "Success", nil},
		{PyxisOnSuccess, "", StatusCaptured, "OnSuccess", nil},
		{PyxisOnSuccess, "Pending", StatusPending, "Pending", nil},
		{PyxisOnSuccess, "Refunded", StatusUnknown, "Refunded", nil},
		{PyxisOnSuccess, "Failed", "", "", ErrOutcomeMismatch},
		{PyxisOnFail, "Failed", StatusFailed, "Failed", nil},
		{PyxisOnFail, "", StatusFailed, "OnFail", nil},
		{PyxisOnFail, "Pending", StatusFailed, "Pending", nil},
		{PyxisOnFail, "Declined", StatusFailed, "Declined", nil},
		{PyxisOnFail, "Success", "", "", ErrOutcomeMismatch},
	} {
		status := `"status":"` + tt.status + `",`
		if tt.status == "" {
			status = ""
		}
		ev, err := PyxisAt(&Input{Provider: "pyxis", Body: []byte(`{"payment":{"id":"p1",` + status + `"amount":"1.00"}}`)}, tt.outcome)
		if !errors.Is(err, tt.err) {
			t.Errorf("outcome %q, status %q: error %v, want %v", tt.outcome, tt.status, err, tt.err)
			continue
		}
		if err == nil && (ev.Status != tt.want || ev.ProviderStatus != tt.providerStatus || ev.Unmapped != (tt.want == StatusUnknown)) {
			t.Errorf("outcome %q, status %q: %s %q (unmapped %v), want %s %q", tt.outcome, tt.status, ev.Status, ev.ProviderStatus, ev.Unmapped, tt.want, tt.providerStatus)
		}
	}
}
