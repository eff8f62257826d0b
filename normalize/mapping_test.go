package normalize_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// goCardlessMapping is the README's GoCardless recipe.
var goCardlessMapping = Mapping{
	Batch:             "events",
	ID:                "id",
	Object:            "resource_type",
	Objects:           map[string]string{"payments": "payment", "subscriptions": "subscription"},
	Status:            []string{"resource_type", "action"},
	Statuses:          map[string]string{"payments confirmed": "captured", "payments paid_out": "captured", "payments failed": "failed", "payments cancelled": "cancelled", "payments charged_back": "chargeback", "subscriptions cancelled": "cancelled"},
	ProviderReference: "links.payment",
	Time:              "created_at",
	FailureCode:       "details.cause",
	FailureMessage:    "details.description",
}

// GoCardless sends several events in one callback: each becomes its own
// event, identified by GoCardless's event id, with its item as original.
func TestMappingGoCardlessBatch(t *testing.T) {
	body, err := os.ReadFile("../verify/testdata/vectors/gocardless-webhook-request.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := goCardlessMapping.Check(); err != nil {
		t.Fatal(err)
	}
	events, err := goCardlessMapping.Map(&Input{Provider: "gocardless", ContentType: "application/json", Body: body}, MappingInput{Mapped: true})
	if err != nil || len(events) != 1 {
		t.Fatalf("Map = %v, %v", events, err)
	}
	ev := events[0]
	if ev.Status != StatusFailed || ev.ProviderStatus != "payments failed" || ev.NotificationID != "EVTESTNE86TNZS" ||
		ev.ProviderReference != "index_ID_123" || ev.Failure == nil || ev.Failure.Code != "test_failure" || ev.Unmapped {
		t.Errorf("event: %+v", ev)
	}
	if want := time.Date(2017, 3, 20, 17, 57, 2, 292e6, time.UTC); !ev.Time.Equal(want) {
		t.Errorf("time = %s", ev.Time)
	}
	if !strings.HasPrefix(string(ev.Original), `{"id":"EVTESTNE86TNZS"`) {
		t.Errorf("original = %s, want the event's item", ev.Original)
	}
	envelopetest.Check(t, Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now()))

	two := []byte(`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed"},{"id":"EV2","resource_type":"subscriptions","action":"created"}]}`)
	events, err = goCardlessMapping.Map(&Input{Provider: "gocardless", ContentType: "application/json", Body: two}, MappingInput{Mapped: true})
	if err != nil || len(events) != 2 {
		t.Fatalf("Map = %v, %v", events, err)
	}
	if events[0].Status != StatusCaptured || events[1].Object != ObjectSubscription || events[1].Status != StatusUnknown || !events[1].Unmapped || events[0].ID() == events[1].ID() {
		t.Errorf("events: %+v %+v", events[0], events[1])
	}
}

func TestMappingRules(t *testing.T) {
	m := Mapping{Status: []string{"status"}, Statuses: map[string]string{"paid": "captured"}, Amount: "amount.value", AmountUnit: "decimal",
		Currency: "amount.currency", MerchantReference: "order", Live: "livemode"}
	for _, tt := range []struct {
		name, body string
		mi         MappingInput
		check      func(*Event) bool
		err        error
	}{
		{"quirk_decimal_amount", `{"status":"paid","amount":{"value":"10.00","currency":"eur"},"order":"o1","livemode":false}`, MappingInput{Mapped: true},
			func(e *Event) bool {
				return e.Amount.MinorUnits == 1000 && e.Amount.Currency == "EUR" && *e.Test && e.Status == StatusCaptured && e.PayloadInID
			}, nil},
		{"quirk_verified_notification_id", `{"status":"paid"}`, MappingInput{NotificationID: "msg_1", Mapped: true},
			func(e *Event) bool { return e.NotificationID == "msg_1" && !e.PayloadInID }, nil},
		{"quirk_unmapped_status_is_unknown_and_flagged", `{"status":"weird"}`, MappingInput{Mapped: true},
			func(e *Event) bool { return e.Status == StatusUnknown && e.Unmapped && e.ProviderStatus == "weird" }, nil},
		{"inexact amount", `{"status":"paid","amount":{"value":"10.001","currency":"EUR"}}`, MappingInput{}, nil, ErrInexactAmount},
		{"amount without currency", `{"status":"paid","amount":{"value":"10.00"}}`, MappingInput{}, nil, ErrMissingField},
		{"not JSON", `status=paid`, MappingInput{}, nil, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events, err := m.Map(&Input{Provider: "acme", ContentType: "application/json", Body: []byte(tt.body)}, tt.mi)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || len(events) != 1 || !tt.check(events[0]) {
				t.Errorf("Map = %+v, %v", events, err)
			}
		})
	}
	// Without any mapping every event is unknown by design, not flagged.
	events, err := (&Mapping{}).Map(&Input{Provider: "acme", ContentType: "application/json", Body: []byte(`{"a":1}`)}, MappingInput{NotificationID: "m"})
	if err != nil || events[0].Status != StatusUnknown || events[0].Unmapped || string(events[0].Original) != `{"a":1}` {
		t.Errorf("unmapped route: %+v, %v", events, err)
	}
}

func TestMappingCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    Mapping
		want string
	}{
		{"status outside the vocabulary", Mapping{Status: []string{"s"}, Statuses: map[string]string{"paid": "settled"}}, "not a canonical status"},
		{"amount without unit", Mapping{Amount: "a"}, "needs its unit"},
		{"bad unit", Mapping{Amount: "a", AmountUnit: "cents"}, "want minor or decimal"},
		{"path with a modifier", Mapping{ID: "@reverse"}, "not allowed"},
		{"path with an empty component", Mapping{ID: "a..b"}, "empty component"},
		{"unterminated query", Mapping{Batch: "events.#(type==\"x\""}, "unterminated query"},
		{"object path without its table", Mapping{Object: "kind"}, "objects must map"},
		{"object table to a wrong word", Mapping{Object: "kind", Objects: map[string]string{"x": "mandate"}}, "want payment or subscription"},
		{"statuses without status", Mapping{Statuses: map[string]string{"a": "captured"}}, "needs status"},
		{"unknown default currency", Mapping{CurrencyDefault: "XAU"}, "ISO 4217"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v, want an error with %q", err, tt.want)
			}
		})
	}
	ok := Mapping{Batch: "events", ID: "data.object.id", Status: []string{"type"}, Statuses: map[string]string{"a": "verified"},
		Amount: "items.#(kind==\"total\").amount", AmountUnit: "minor", Object: "subscription"}
	if err := ok.Check(); err != nil {
		t.Errorf("a valid mapping: %v", err)
	}
}

func FuzzCheckPath(f *testing.F) {
	for _, p := range []string{"a.b", "a\\.b", "items.#(kind==\"x\").v", "items.#(a==1)#.b", "a..b", "@this", "#", "*.?"} {
		f.Add(p)
	}
	doc := `{"a":{"b":[1,{"c":"d"}],"e.f":2},"items":[{"kind":"x","v":1}]}`
	f.Fuzz(func(t *testing.T, path string) {
		if CheckPath(path) != nil {
			return
		}
		// Whatever the path, reading any document with it is safe.
		m := Mapping{ID: path, MerchantReference: path}
		_, _ = m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(doc)}, MappingInput{})
	})
}

// FuzzMapping feeds arbitrary bodies, JSON or form, through the README's
// GoCardless recipe (a batch with ids) and a single-event mapping with a
// decimal amount: whatever is accepted encodes to a valid envelope, a batch
// never holds more than MaxBatchEvents events, and two events share an id
// only when they are one notification (the same id, or the same bytes).
func FuzzMapping(f *testing.F) {
	f.Add([]byte(`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed","links":{"payment":"PM1"}},{"resource_type":"payments","action":"failed"}]}`), false)
	f.Add([]byte(`{"events":[{"action":"x"},{"action":"x"},{"action":"y"}],"status":"paid","amount":{"value":"1.5","currency":"kwd"}}`), false)
	f.Add([]byte(`events[0][id]=EV1&events[0][action]=confirmed&status=paid&amount[value]=9.99&amount[currency]=EUR`), true)
	single := Mapping{Status: []string{"status"}, Statuses: map[string]string{"paid": "captured"}, Amount: "amount.value", AmountUnit: "decimal",
		Currency: "amount.currency", MerchantReference: "order", Time: "created", Test: "test", Live: "livemode"}
	f.Fuzz(func(t *testing.T, body []byte, form bool) {
		contentType := "application/json"
		if form {
			contentType = "application/x-www-form-urlencoded"
		}
		for _, m := range []*Mapping{&goCardlessMapping, &single} {
			events, err := m.Map(&Input{Provider: "acme", ContentType: contentType, Body: body}, MappingInput{Mapped: true})
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissingField) && !errors.Is(err, ErrInexactAmount) && !errors.Is(err, ErrUnknownCurrency) {
					t.Fatalf("error %v wraps no sentinel", err)
				}
				continue
			}
			if len(events) == 0 || len(events) > MaxBatchEvents {
				t.Fatalf("%d events", len(events))
			}
			for i, ev := range events {
				if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now())); err != nil {
					t.Fatalf("event %d: accepted payload gives an invalid envelope: %v", i, err)
				}
				for _, other := range events[:i] {
					sameNotification := ev.NotificationID != "" && ev.NotificationID == other.NotificationID
					if ev.ID() == other.ID() && !sameNotification && !bytes.Equal(ev.Original, other.Original) {
						t.Fatalf("two notifications share id %s: %s and %s", ev.ID(), other.Original, ev.Original)
					}
				}
			}
		}
	})
}
