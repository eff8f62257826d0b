package normalize_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// payrexxVerification is what verify.Payrexx reports for a fetched document.
func payrexxVerification(_ *http.Request, in *Input) verify.Result {
	kind, id, claimed, _ := PayrexxClaim(in)
	res := verify.Result{Method: "api-fetch", Resource: kind + "/" + id, Status: gjson.GetBytes(in.Fetched, "status").String()}
	if claimed != res.Status {
		res.ClaimedStatus = claimed
	}
	return res
}

func TestPayrexxGolden(t *testing.T) {
	runGoldenWith(t, "payrexx", Payrexx, payrexxVerification, func(answer []byte, _ string) []byte {
		return []byte(gjson.GetBytes(answer, "data.0").Raw)
	})
}

func fetchedTransaction(status string) []byte {
	return []byte(fmt.Sprintf(`{"id":1,"status":%q,"amount":100,"invoice":{"currency":"CHF"}}`, status))
}

// TestPayrexxStatusMapping pins every status Payrexx has used.
func TestPayrexxStatusMapping(t *testing.T) {
	transaction := map[string]Status{
		"waiting": StatusPending, "initiated": StatusPending, "confirmed": StatusCaptured,
		"authorized": StatusAuthorized, "reserved": StatusAuthorized, "uncaptured": StatusAuthorized,
		"cancelled": StatusCancelled, "declined": StatusFailed, "error": StatusFailed,
		"refunded": StatusRefunded, "partially-refunded": StatusPartiallyRefunded, "refund_pending": StatusRefundPending,
		"chargeback": StatusChargeback, "disputed": StatusChargeback, "expired": StatusExpired, "insecure": StatusUnknown,
		// Before 2019-02-13.
		"chargeback dispute": StatusChargeback, "Technical error": StatusFailed, "Partially refunded": StatusPartiallyRefunded,
	}
	for providerStatus, want := range transaction {
		in := &Input{Provider: "payrexx", ContentType: "application/json", Body: []byte(`{"transaction":{"id":1}}`), Fetched: fetchedTransaction(providerStatus)}
		ev, err := Payrexx(in)
		if err != nil {
			t.Fatalf("%s: %v", providerStatus, err)
		}
		if ev.Status != want || ev.Unmapped || ev.ProviderStatus != providerStatus || ev.Object != ObjectPayment {
			t.Errorf("%q = %s (unmapped %v, object %s), want %s", providerStatus, ev.Status, ev.Unmapped, ev.Object, want)
		}
	}
	subscription := map[string]Status{
		"active": StatusActive, "overdue": StatusOverdue, "in_notice": StatusInNotice, "cancelled": StatusCancelled, "failed": StatusFailed,
	}
	for providerStatus, want := range subscription {
		in := &Input{Provider: "payrexx", ContentType: "application/json", Body: []byte(`{"subscription":{"id":"7"}}`),
			Fetched: []byte(fmt.Sprintf(`{"id":7,"status":%q}`, providerStatus))}
		ev, err := Payrexx(in)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != want || ev.Object != ObjectSubscription || ev.Unmapped {
			t.Errorf("subscription %q = %s %s, want %s", providerStatus, ev.Object, ev.Status, want)
		}
	}
	ev, _ := Payrexx(&Input{Provider: "payrexx", ContentType: "application/json", Body: []byte(`{"transaction":{"id":1}}`), Fetched: fetchedTransaction("on_hold")})
	if ev.Status != StatusUnknown || !ev.Unmapped {
		t.Errorf("on_hold = %s unmapped %v, want unknown and flagged", ev.Status, ev.Unmapped)
	}
}

func TestPayrexxClaim(t *testing.T) {
	tests := []struct {
		contentType, body string
		kind, id, status  string
		err               error
	}{
		{"application/json", `{"transaction":{"id":4711,"status":"confirmed"}}`, "Transaction", "4711", "confirmed", nil},
		{"application/json", `{"transaction":{"id":"4711"}}`, "Transaction", "4711", "", nil},
		{"application/x-www-form-urlencoded", `transaction[id]=4711&transaction[status]=waiting`, "Transaction", "4711", "waiting", nil},
		{"application/x-www-form-urlencoded", `transaction%5Bid%5D=4711`, "Transaction", "4711", "", nil},
		{"application/json", `{"subscription":{"id":77,"status":"active"}}`, "Subscription", "77", "active", nil},
		{"application/json", `{"transaction":{"status":"confirmed"}}`, "", "", "", ErrMissingField},
		{"application/json", `{"transaction":{"id":null}}`, "", "", "", ErrMissingField},
		{"application/json", `{"transaction":"4711"}`, "", "", "", ErrMissingField},
		{"application/json", `{"transaction":{"id":"../1"}}`, "", "", "", ErrMalformed},
		{"application/json", `{"transaction":{"id":-1}}`, "", "", "", ErrMalformed},
		{"application/json", `{"transaction":{"id":1.5}}`, "", "", "", ErrMalformed},
		{"application/json", `[1]`, "", "", "", ErrMalformed},
		{"application/x-www-form-urlencoded", `id=4711`, "", "", "", ErrMissingField},
	}
	for _, tt := range tests {
		kind, id, status, err := PayrexxClaim(&Input{ContentType: tt.contentType, Body: []byte(tt.body)})
		if !errors.Is(err, tt.err) || kind != tt.kind || id != tt.id || status != tt.status {
			t.Errorf("PayrexxClaim(%s) = %q %q %q %v, want %q %q %q %v", tt.body, kind, id, status, err, tt.kind, tt.id, tt.status, tt.err)
		}
	}
}

// The API's document is the truth: what the webhook says about status and
// amount does not reach the envelope's fields.
func TestPayrexxFetchedDocumentWins(t *testing.T) {
	in := &Input{Provider: "payrexx", ContentType: "application/json",
		Body:    []byte(`{"transaction":{"id":1,"status":"confirmed","amount":999999,"referenceId":"forged","invoice":{"currency":"EUR"}}}`),
		Fetched: []byte(`{"id":1,"status":"declined","amount":100,"referenceId":"order-1","invoice":{"currency":"CHF"}}`)}
	ev, err := Payrexx(in)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != StatusFailed || *ev.Amount != (Amount{100, "CHF"}) || ev.MerchantReference != "order-1" {
		t.Errorf("event = %s %v %s, want the API's declined 100 CHF order-1", ev.Status, ev.Amount, ev.MerchantReference)
	}
}

func TestPayrexxTimeFormats(t *testing.T) {
	for _, tt := range []struct {
		time string
		want time.Time
	}{
		{"2026-11-20T10:34:47+01:00", time.Date(2026, 11, 20, 9, 34, 47, 0, time.UTC)},
		{"2026-11-20T09:34:47Z", time.Date(2026, 11, 20, 9, 34, 47, 0, time.UTC)},
		// The old format is Swiss local time: CET in winter, CEST in summer.
		{"2019-01-25 11:40:43", time.Date(2019, 1, 25, 10, 40, 43, 0, time.UTC)},
		{"2019-07-25 11:40:43", time.Date(2019, 7, 25, 9, 40, 43, 0, time.UTC)},
		{"yesterday", time.Time{}},
	} {
		ev, err := Payrexx(&Input{Provider: "payrexx", ContentType: "application/json", Body: []byte(`{"transaction":{"id":1}}`),
			Fetched: []byte(fmt.Sprintf(`{"id":1,"status":"confirmed","time":%q}`, tt.time))})
		if err != nil {
			t.Fatal(err)
		}
		if !ev.Time.Equal(tt.want) {
			t.Errorf("time %q = %v, want %v", tt.time, ev.Time, tt.want)
		}
	}
}

func FuzzPayrexx(f *testing.F) {
	f.Add([]byte(`{"transaction":{"id":4711,"status":"confirmed"}}`), []byte(`{"id":4711,"status":"confirmed","amount":100,"invoice":{"currency":"CHF"}}`), false)
	f.Add([]byte(`transaction[id]=1&transaction[invoice][products][0][name]=x`), []byte(`{"id":"1","status":"refunded","amount":"5","currency":"jpy","time":"2019-01-25 11:40:43"}`), true)
	f.Add([]byte(`subscription[id]=7`), []byte(`{"id":7,"status":"active","invoice":{"amount":1.0,"currency":"EUR"}}`), true)
	f.Fuzz(func(t *testing.T, body, fetched []byte, form bool) {
		contentType := "application/json"
		if form {
			contentType = "application/x-www-form-urlencoded"
		}
		ev, err := Payrexx(&Input{Provider: "payrexx", ContentType: contentType, Body: body, Fetched: fetched})
		if err != nil {
			return
		}
		envelope := Encode(ev, verify.Result{Method: "api-fetch"}, time.Now())
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}
