package normalize_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// walleeSigned is what the verifier tells the normalizer: the golden's
// request carries an X-Signature (which the verifier checked).
func walleeSigned(req *http.Request) bool { return req.Header.Get("X-Signature") != "" }

func walleeVerification(req *http.Request, in *Input) verify.Result {
	if walleeSigned(req) {
		return verify.Result{Method: "ecdsa-p256-sha256", Also: []string{"api-fetch"}}
	}
	return verify.Result{Method: "api-fetch"}
}

func TestWalleeGolden(t *testing.T) {
	runGoldenRequests(t, "wallee", func(req *http.Request, in *Input) ([]*Event, error) {
		ev, err := Wallee(in, walleeSigned(req))
		if err != nil {
			return nil, err
		}
		return []*Event{ev}, nil
	}, walleeVerification, func(answer []byte, _ string) []byte { return bytes.TrimSpace(answer) })
}

func TestWalleeStatuses(t *testing.T) {
	transaction := func(state string) string {
		return `{"id":11,"state":"` + state + `","currency":"CHF","authorizationAmount":10,"completedAmount":9.5}`
	}
	refund := func(state string) string {
		return `{"id":77,"state":"` + state + `","amount":2.5,"transaction":{"id":11,"currency":"CHF"}}`
	}
	const tx = `{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":1,"eventId":9}`
	const rf = `{"entityId":77,"listenerEntityTechnicalName":"Refund","spaceId":1,"eventId":9}`
	for _, tt := range []struct {
		body, fetched string
		want          Status
		minorUnits    int64
	}{
		{tx, transaction("CREATE"), StatusPending, 1000},
		{tx, transaction("PENDING"), StatusPending, 1000},
		{tx, transaction("CONFIRMED"), StatusPending, 1000},
		{tx, transaction("PROCESSING"), StatusPending, 1000},
		{tx, transaction("AUTHORIZED"), StatusAuthorized, 1000},
		{tx, transaction("COMPLETED"), StatusAuthorized, 950},
		{tx, transaction("FULFILL"), StatusCaptured, 950},
		{tx, transaction("DECLINE"), StatusFailed, 950},
		{tx, transaction("FAILED"), StatusFailed, 1000},
		{tx, transaction("VOIDED"), StatusCancelled, 1000},
		{tx, transaction("NEW"), StatusUnknown, 1000},
		{rf, refund("CREATE"), StatusRefundPending, 250},
		{rf, refund("SCHEDULED"), StatusRefundPending, 250},
		{rf, refund("PENDING"), StatusRefundPending, 250},
		{rf, refund("MANUAL_CHECK"), StatusRefundPending, 250},
		{rf, refund("SUCCESSFUL"), StatusRefunded, 250},
		{rf, refund("FAILED"), StatusRefundFailed, 250},
	} {
		ev, err := Wallee(&Input{Provider: "wallee", Body: []byte(tt.body), Fetched: []byte(tt.fetched)}, false)
		if err != nil {
			t.Fatalf("%s: %v", tt.fetched, err)
		}
		if ev.Status != tt.want || ev.Amount == nil || ev.Amount.MinorUnits != tt.minorUnits || ev.PaymentReference != "11" {
			t.Errorf("%s: status %s amount %+v payment %s, want %s %d 11", tt.fetched, ev.Status, ev.Amount, ev.PaymentReference, tt.want, tt.minorUnits)
		}
	}
}

// Signed: the notification's state and eventId decide; unsigned: the entity
// decides, and the body's eventId (which nobody signed) takes no part in
// the id.
func TestWalleeEventIdentity(t *testing.T) {
	fetched := []byte(`{"id":11,"state":"FULFILL","currency":"CHF","authorizationAmount":10}`)
	body := func(eventID, state string) []byte {
		return []byte(`{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":1,"eventId":` + eventID + `,"state":"` + state + `"}`)
	}
	id := func(b []byte, signed bool) (string, Status) {
		ev, err := Wallee(&Input{Provider: "wallee", Body: b, Fetched: fetched}, signed)
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID(), ev.Status
	}
	a, status := id(body("35", "AUTHORIZED"), true)
	if status != StatusAuthorized {
		t.Errorf("signed: status %s, want the notification's (authorized)", status)
	}
	if b, _ := id(body("35", "AUTHORIZED"), true); a != b {
		t.Error("a retry of a signed notification changed the id")
	}
	if b, _ := id(body("36", "FULFILL"), true); a == b {
		t.Error("two signed notifications share an id")
	}
	u1, status := id(body("35", "AUTHORIZED"), false)
	if status != StatusCaptured {
		t.Errorf("unsigned: status %s, want the entity's (captured)", status)
	}
	if u2, _ := id(body("99", "VOIDED"), false); u1 != u2 {
		t.Error("an unsigned notification's eventId or state changed the id")
	}
	refund, _ := Wallee(&Input{Provider: "wallee", Body: []byte(`{"entityId":11,"listenerEntityTechnicalName":"Refund","spaceId":1}`),
		Fetched: []byte(`{"id":11,"state":"SUCCESSFUL","amount":10,"transaction":{"id":3,"currency":"CHF"}}`)}, false)
	if refund == nil || refund.ID() == u1 {
		t.Error("Refund 11 and Transaction 11 share an id")
	}
}

func TestWalleeRejects(t *testing.T) {
	for _, tt := range []struct {
		body, fetched string
		want          error
	}{
		{`[]`, `{}`, ErrMalformed},
		{`{"entityId":11,"spaceId":1}`, `{}`, ErrMissingField},
		{`{"entityId":"11x","listenerEntityTechnicalName":"Transaction","spaceId":1}`, `{}`, ErrMissingField},
		{`{"entityId":1e3,"listenerEntityTechnicalName":"Transaction","spaceId":1}`, `{}`, ErrMissingField},
		{`{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":-1}`, `{}`, ErrMissingField},
		{`{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":1}`, `{"id":11,"state":"FULFILL","authorizationAmount":1}`, ErrMissingField},
		{`{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":1}`, `{"id":11,"state":"FULFILL","authorizationAmount":1.001,"currency":"EUR"}`, ErrInexactAmount},
		{`{"entityId":11,"listenerEntityTechnicalName":"Transaction","spaceId":1}`, `{"id":11,"state":"FULFILL","authorizationAmount":1e2,"currency":"EUR"}`, ErrMalformed},
		{`{"entityId":11,"listenerEntityTechnicalName":"Token","spaceId":1}`, `{"id":11}`, ErrMalformed},
	} {
		_, err := Wallee(&Input{Provider: "wallee", Body: []byte(tt.body), Fetched: []byte(tt.fetched)}, false)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s / %s: err = %v, want %v", tt.body, tt.fetched, err, tt.want)
		}
	}
}

func TestWalleeSample(t *testing.T) {
	for _, status := range []Status{StatusPending, StatusAuthorized, StatusCaptured, StatusFailed, StatusCancelled} {
		body, _, err := WalleeSample(Sample{Status: status, ProviderReference: "405/12345"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := ReadWalleeNotification(&Input{Body: body})
		if err != nil || n.SpaceID != "405" || n.EntityID != "12345" || n.Kind != "Transaction" {
			t.Errorf("%s: %+v, %v", status, n, err)
		}
	}
	if _, _, err := WalleeSample(Sample{Status: StatusCaptured, ProviderReference: "x/1"}); err == nil {
		t.Error("a space that is not a number was accepted")
	}
}

// The sample's transaction, as a stand-in of the API serves it, makes the
// sample's event; a sample sent again has the same eventId, another state
// of the transaction another.
func TestWalleeSampleTransaction(t *testing.T) {
	eventIDs := map[string]bool{}
	for _, status := range []Status{StatusPending, StatusAuthorized, StatusCaptured, StatusFailed, StatusCancelled} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 12995, Currency: "CHF"}, MerchantReference: "order-8", ProviderReference: "405/12345"}
		body, _, _ := WalleeSample(s)
		again, _, _ := WalleeSample(s)
		space, id, fetched, err := WalleeSampleTransaction(s)
		if err != nil || space != "405" || id != "12345" {
			t.Fatalf("%s: %s %s %v", status, space, id, err)
		}
		ev, err := Wallee(&Input{Provider: "wallee", Body: body, Original: body, Fetched: fetched}, true)
		if err != nil || ev.Status != status || ev.Amount == nil || *ev.Amount != s.Amount || ev.MerchantReference != "order-8" || ev.ProviderReference != "12345" {
			t.Errorf("%s: %+v, %v", status, ev, err)
			continue
		}
		if !bytes.Equal(body, again) || eventIDs[ev.NotificationID] {
			t.Errorf("%s: eventId %s sent before, or not the same twice", status, ev.NotificationID)
		}
		eventIDs[ev.NotificationID] = true
	}
}

func FuzzWallee(f *testing.F) {
	f.Add([]byte(`{"entityId":11,"eventId":35,"listenerEntityTechnicalName":"Transaction","spaceId":1,"state":"PROCESSING","timestamp":"2023-12-19T13:43:35+0000"}`),
		[]byte(`{"id":11,"state":"FULFILL","currency":"CHF","authorizationAmount":129.95,"completedAmount":100,"merchantReference":"o","environment":"LIVE"}`), true)
	f.Add([]byte(`{"entityId":77,"listenerEntityTechnicalName":"Refund","spaceId":1}`),
		[]byte(`{"id":77,"state":"FAILED","amount":30.5,"failureReason":{"id":1,"name":{"de-DE":"x"}},"transaction":{"id":12,"currency":"CHF"}}`), false)
	f.Fuzz(func(t *testing.T, body, fetched []byte, signed bool) {
		ev, err := Wallee(&Input{Provider: "wallee", Body: body, Fetched: fetched}, signed)
		if err != nil {
			return
		}
		envelope := Encode(ev, verify.Result{Method: "api-fetch"}, time.Now())
		if err := envelopetest.Validate(envelope); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v\n%s", err, envelope)
		}
	})
}
