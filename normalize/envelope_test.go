package normalize

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/payhook/payhook/verify"
)

func TestEventIDIsDeterministic(t *testing.T) {
	base := func() *Event {
		return &Event{
			Provider: "ixopay", Object: ObjectPayment, Status: StatusCaptured, ProviderStatus: "DEBIT OK",
			ProviderReference: "d94c", MerchantReference: "order-1", Amount: &Amount{999, "EUR"},
			Original: []byte(`{"a":1}`),
		}
	}
	id := base().ID()
	again := base()
	if first, second := again.ID(), again.ID(); first != second || first != id {
		t.Fatal("ID is not stable")
	}
	if len(id) != 32 {
		t.Fatalf("ID() = %q, want 32 hex characters", id)
	}
	same := base()
	same.Original = []byte(`{"a": 1, "retry": 2}`) // a retry with another body
	same.MerchantReference = "other"
	same.Time = time.Now()
	if same.ID() != id {
		t.Error("a retry of the same provider event got another id")
	}
	for name, change := range map[string]func(*Event){
		"provider":           func(e *Event) { e.Provider = "shopandpay" },
		"object":             func(e *Event) { e.Object = ObjectSubscription },
		"provider reference": func(e *Event) { e.ProviderReference = "d94d" },
		"provider status":    func(e *Event) { e.ProviderStatus = "DEBIT ERROR" },
		"canonical status":   func(e *Event) { e.Status = StatusAuthorized },
		"amount":             func(e *Event) { e.Amount = &Amount{998, "EUR"} },
		"currency":           func(e *Event) { e.Amount = &Amount{999, "CHF"} },
		"no amount":          func(e *Event) { e.Amount = nil },
		// Concatenation must not let fields run into each other.
		"boundary": func(e *Event) { e.ProviderReference, e.ProviderStatus = "d94cDEBIT", " OK" },
	} {
		e := base()
		change(e)
		if e.ID() == id {
			t.Errorf("changing the %s kept the id", name)
		}
	}
}

func TestEventIDWithoutProviderReferenceUsesPayload(t *testing.T) {
	a := &Event{Provider: "pyxis", Object: ObjectPayment, ProviderStatus: "Success", Original: []byte(`{"a":1}`)}
	b := &Event{Provider: "pyxis", Object: ObjectPayment, ProviderStatus: "Success", Original: []byte(`{"a":2}`)}
	if a.ID() == b.ID() {
		t.Error("two payloads without provider reference share an id")
	}
}

func TestEncodeUsesProviderTimeElseReceiveTime(t *testing.T) {
	received := time.Date(2026, 11, 20, 10, 34, 48, 120_000_000, time.FixedZone("CET", 3600))
	ev := &Event{Provider: "ixopay", Object: ObjectPayment, Status: StatusCaptured, Original: []byte(`{}`)}
	var doc struct {
		Time string `json:"time"`
		Data struct {
			ReceivedAt string `json:"received_at"`
		} `json:"data"`
	}
	out := Encode(ev, verify.Result{Method: "hmac-sha512"}, received)
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Time != "2026-11-20T09:34:48Z" || doc.Data.ReceivedAt != "2026-11-20T09:34:48.120Z" {
		t.Errorf("time %s received_at %s", doc.Time, doc.Data.ReceivedAt)
	}
	ev.Time = time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC)
	out = Encode(ev, verify.Result{Method: "hmac-sha512"}, received)
	_ = json.Unmarshal(out, &doc)
	if doc.Time != "2026-11-19T08:00:00Z" {
		t.Errorf("time %s, want the provider's", doc.Time)
	}
}

func TestEncodeIgnoresAProviderTimeOutsideRFC3339(t *testing.T) {
	received := time.Date(2026, 11, 20, 10, 34, 48, 0, time.UTC)
	for _, providerTime := range []time.Time{
		time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("+01", 3600)), // year -1 in UTC
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		ev := &Event{Provider: "x", Object: ObjectPayment, Status: StatusCaptured, Original: []byte(`{}`), Time: providerTime}
		out := Encode(ev, verify.Result{Method: "api-fetch"}, received)
		var doc struct{ Time string }
		if err := json.Unmarshal(out, &doc); err != nil || doc.Time != "2026-11-20T10:34:48Z" {
			t.Errorf("provider time %v gave time %q (%v), want the receive time", providerTime, doc.Time, err)
		}
	}
}
