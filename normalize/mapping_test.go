package normalize_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// goCardlessMapping is the GoCardless preset's (caddymodule/presets/gocardless.caddyfile).
var goCardlessMapping = Mapping{
	Batch:   "events",
	ID:      Paths{"id"},
	Object:  "resource_type",
	Objects: map[string]string{"payments": "payment", "refunds": "payment", "subscriptions": "subscription"},
	Status:  []string{"resource_type", "action"},
	Statuses: map[string]string{
		"payments created": "pending", "payments customer_approval_granted": "pending", "payments submitted": "pending",
		"payments confirmed": "captured", "payments paid_out": "captured", "payments failed": "failed",
		"payments customer_approval_denied": "failed", "payments late_failure_settled": "failed", "payments cancelled": "cancelled",
		"payments charged_back": "chargeback", "payments chargeback_cancelled": "chargeback_reversed",
		"refunds created": "refund_pending", "refunds failed": "refund_failed", "refunds funds_returned": "refund_failed",
		"subscriptions created": "active", "subscriptions cancelled": "cancelled", "subscriptions finished": "cancelled",
	},
	ProviderReference: Paths{"links.refund", "links.payment", "links.subscription"},
	Time:              Paths{"created_at"},
	FailureCode:       Paths{"details.cause"},
	FailureMessage:    Paths{"details.description"},
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

	two := []byte(`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed"},{"id":"EV2","resource_type":"subscriptions","action":"paused"}]}`)
	events, err = goCardlessMapping.Map(&Input{Provider: "gocardless", ContentType: "application/json", Body: two}, MappingInput{Mapped: true})
	if err != nil || len(events) != 2 {
		t.Fatalf("Map = %v, %v", events, err)
	}
	if events[0].Status != StatusCaptured || events[1].Object != ObjectSubscription || events[1].Status != StatusUnknown || !events[1].Unmapped || events[0].ID() == events[1].ID() {
		t.Errorf("events: %+v %+v", events[0], events[1])
	}
}

func TestMappingRules(t *testing.T) {
	m := Mapping{Status: []string{"status"}, Statuses: map[string]string{"paid": "captured"}, Amount: Paths{"amount.value"}, AmountUnit: "decimal",
		Currency: Paths{"amount.currency"}, MerchantReference: Paths{"order"}, Live: Paths{"livemode"}}
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
		{"quirk_amount_without_currency_is_no_amount", `{"status":"paid","amount":{"value":"10.00"}}`, MappingInput{Mapped: true},
			func(e *Event) bool { return e.Amount == nil && e.Status == StatusCaptured }, nil},
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

// checkoutMapping follows the Checkout.com preset's.
var checkoutMapping = Mapping{
	ID:     Paths{"id"},
	Status: []string{"type"},
	Statuses: map[string]string{"payment_approved": "authorized", "payment_captured": "captured", "payment_declined": "failed",
		"payment_refund_declined": "refund_failed"},
	StatusRules: []StatusRule{
		{ProviderStatus: "payment_refunded", Status: "refunded", When: []Condition{{Path: "data.balances.available_to_refund", Value: "0"}}},
		{ProviderStatus: "payment_refunded", Status: "partially_refunded", When: []Condition{{Path: "data.balances.available_to_refund", Value: "0", Not: true}}},
	},
	Amount: Paths{"data.amount"}, AmountUnit: "minor", Currency: Paths{"data.currency"},
	ProviderReference: Paths{"data.id"}, MerchantReference: Paths{"data.reference", "data.payment_reference"},
	Time: Paths{"timestamp", "created_on"}, FailureCode: Paths{"data.response_code"}, FailureMessage: Paths{"data.response_summary"},
}

// The contract: data.failure only when the status is failed or
// refund_failed. The providers put a reason on their successful events too:
// GoCardless a cause and description on every event (its documented
// payments confirmed and subscriptions created events), Checkout.com the
// acquirer's "10000 Approved" on a capture. Before, the mapping filled
// data.failure from them.
func TestMappingFailureOnlyOnFailingStatuses(t *testing.T) {
	for _, tt := range []struct {
		name    string
		m       *Mapping
		body    string
		status  Status
		failure *Failure
	}{
		{"gocardless payments confirmed", &goCardlessMapping,
			`{"events":[{"id":"EV0008Q2TNE5ZB","created_at":"2026-11-20T10:01:36.732Z","resource_type":"payments","action":"confirmed","links":{"payment":"PM0003P5Z1RK4X"},` +
				`"details":{"origin":"gocardless","cause":"payment_confirmed","description":"Enough time has passed since the payment was submitted for the banks to return an error, so this payment is now confirmed."},"metadata":{}}]}`,
			StatusCaptured, nil},
		{"gocardless subscriptions created", &goCardlessMapping,
			`{"events":[{"id":"EV0008Q2TP1JTV","created_at":"2026-11-20T10:02:11.093Z","resource_type":"subscriptions","action":"created","links":{"subscription":"SB0001A7WQ6XYZ"},` +
				`"details":{"origin":"api","cause":"subscription_created","description":"Subscription created via the API."},"metadata":{}}]}`,
			StatusActive, nil},
		{"gocardless payments chargeback_cancelled", &goCardlessMapping,
			`{"events":[{"id":"EV0008Q2TQ7C0M","created_at":"2026-11-21T09:00:00.000Z","resource_type":"payments","action":"chargeback_cancelled","links":{"payment":"PM0003P5Z1RK4X"},` +
				`"details":{"origin":"bank","cause":"payment_confirmed","description":"The chargeback for this payment was reversed"}}]}`,
			StatusChargebackReversed, nil},
		{"gocardless payments failed", &goCardlessMapping,
			`{"events":[{"id":"EV0008Q2TR3W9D","created_at":"2026-11-20T10:03:00.000Z","resource_type":"payments","action":"failed","links":{"payment":"PM0003P5Z1RK4X"},` +
				`"details":{"origin":"bank","cause":"insufficient_funds","scheme":"sepa_core","reason_code":"AM04","description":"The customer's account had insufficient funds to make this payment."}}]}`,
			StatusFailed, &Failure{Code: "insufficient_funds", Message: "The customer's account had insufficient funds to make this payment."}},
		{"gocardless refunds failed", &goCardlessMapping,
			`{"events":[{"id":"EV0008Q2TS8K2P","created_at":"2026-11-22T10:00:00.000Z","resource_type":"refunds","action":"failed","links":{"refund":"RF00005JQ7YV2H"},` +
				`"details":{"origin":"gocardless","cause":"refund_failed","description":"The refund failed."}}]}`,
			StatusRefundFailed, &Failure{Code: "refund_failed", Message: "The refund failed."}},
		{"checkout payment_captured", &checkoutMapping,
			`{"id":"evt_3nq2x7ivzkfedf6jq7ldjmvgbe","type":"payment_captured","timestamp":"2026-11-20T10:34:47.357+00:00","version":"1.0.29",` +
				`"data":{"id":"pay_q7wqjztq3fhe5b5fvgbmmtkxje","action_id":"act_2gqmdcmbzw6utbb6f7qrorvgse","reference":"order-1042","amount":999,"currency":"EUR",` +
				`"response_code":"10000","response_summary":"Approved","balances":{"total_captured":999,"available_to_refund":999}}}`,
			StatusCaptured, nil},
		{"checkout payment_approved", &checkoutMapping,
			`{"id":"evt_o6ogxbkz6qpuxaynwkbwxfzxze","type":"payment_approved","timestamp":"2026-11-20T10:34:40.100+00:00",` +
				`"data":{"id":"pay_q7wqjztq3fhe5b5fvgbmmtkxje","reference":"order-1042","amount":999,"currency":"EUR","response_code":"10000","response_summary":"Approved"}}`,
			StatusAuthorized, nil},
		{"checkout payment_declined", &checkoutMapping,
			`{"id":"evt_ak4v6kgzy3guxp6u3ojhx5gw4y","type":"payment_declined","timestamp":"2026-11-20T10:35:00.000+00:00",` +
				`"data":{"id":"pay_xg2jlkz7vvtefc7kcaymkmrxwa","reference":"order-1043","amount":999,"currency":"EUR","response_code":"20051","response_summary":"Insufficient Funds"}}`,
			StatusFailed, &Failure{Code: "20051", Message: "Insufficient Funds"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events, err := tt.m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(tt.body)}, MappingInput{Mapped: true})
			if err != nil || len(events) != 1 {
				t.Fatalf("Map = %v, %v", events, err)
			}
			ev := events[0]
			if ev.Status != tt.status {
				t.Errorf("status %s, want %s", ev.Status, tt.status)
			}
			if (ev.Failure == nil) != (tt.failure == nil) || (ev.Failure != nil && *ev.Failure != *tt.failure) {
				t.Errorf("failure %+v, want %+v", ev.Failure, tt.failure)
			}
			envelope := Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now())
			envelopetest.Check(t, envelope)
			if tt.failure == nil && !bytes.Contains(envelope, []byte(`"failure":null`)) {
				t.Errorf("envelope without a null failure: %s", envelope)
			}
		})
	}
}

// The event time: the first time path that holds a value, in any of the
// formats ParseEventTime reads; a value that is not a time rejects the
// callback, and no value at all leaves the receive time to the envelope.
func TestMappingTime(t *testing.T) {
	m := Mapping{Time: Paths{"timestamp", "created_on"}}
	for _, tt := range []struct {
		name, body string
		want       time.Time // zero: none, the receive time
		err        error
	}{
		{"current field", `{"timestamp":"2023-05-24T09:12:32.357+00:00","created_on":"2020-01-01T00:00:00Z"}`,
			time.Date(2023, 5, 24, 9, 12, 32, 357e6, time.UTC), nil},
		{"older field", `{"created_on":"2023-05-24T09:28:33.7515599Z"}`, time.Date(2023, 5, 24, 9, 28, 33, 751559900, time.UTC), nil},
		{"null and empty fall through", `{"timestamp":null,"created_on":"2023-05-24T09:28:33Z"}`, time.Date(2023, 5, 24, 9, 28, 33, 0, time.UTC), nil},
		{"empty string falls through", `{"timestamp":"","created_on":"2023-05-24T09:28:33Z"}`, time.Date(2023, 5, 24, 9, 28, 33, 0, time.UTC), nil},
		{"Unix seconds as a number", `{"timestamp":1652339806}`, time.Date(2022, 5, 12, 7, 16, 46, 0, time.UTC), nil},
		{"none: the receive time", `{"other":"2023-05-24T09:28:33Z"}`, time.Time{}, nil},
		// Rejected, never the receive time in the provider's name: the
		// first field with a value decides, a later one does not cover
		// for it.
		{"no zone", `{"timestamp":"2023-05-24 09:12:32","created_on":"2023-05-24T09:28:33Z"}`, time.Time{}, ErrMalformed},
		{"not a time", `{"timestamp":"yesterday"}`, time.Time{}, ErrMalformed},
		{"a boolean", `{"timestamp":true}`, time.Time{}, ErrMalformed},
		{"an object", `{"timestamp":{"seconds":1652339806}}`, time.Time{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events, err := m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(tt.body)}, MappingInput{})
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), "timestamp") {
					t.Errorf("err = %v, want %v naming the path", err, tt.err)
				}
				return
			}
			if err != nil || !events[0].Time.Equal(tt.want) {
				t.Fatalf("Map = %+v, %v; want time %s", events, err, tt.want)
			}
		})
	}
	// Worldline's own signed SDK sample reaches the envelope with its time.
	body, err := os.ReadFile("../verify/testdata/vectors/worldline-payment-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	events, err := (&Mapping{Time: Paths{"created"}}).Map(&Input{Provider: "worldline", ContentType: "application/json", Body: body}, MappingInput{})
	if err != nil {
		t.Fatal(err)
	}
	if envelope := Encode(events[0], verify.Result{Method: "hmac-sha256"}, time.Now()); !bytes.Contains(envelope, []byte(`"time":"2017-02-02T10:24:14Z"`)) {
		t.Errorf("envelope: %s", envelope)
	}
}

// Several paths in order of preference: the first with a value wins.
func TestMappingPathPreference(t *testing.T) {
	m := Mapping{Amount: Paths{"payload.refund.entity.amount", "payload.payment.entity.amount"}, AmountUnit: "minor",
		Currency:          Paths{"payload.refund.entity.currency", "payload.payment.entity.currency"},
		ProviderReference: Paths{"payload.refund.entity.id", "payload.payment.entity.id"}}
	for _, tt := range []struct {
		body, reference string
		amount          int64
	}{
		{`{"payload":{"refund":{"entity":{"id":"rfnd_1","amount":1000,"currency":"INR"}},"payment":{"entity":{"id":"pay_1","amount":4000,"currency":"INR"}}}}`, "rfnd_1", 1000},
		{`{"payload":{"payment":{"entity":{"id":"pay_1","amount":4000,"currency":"INR"}}}}`, "pay_1", 4000},
		{`{"payload":{"refund":{"entity":{"id":null,"amount":null}},"payment":{"entity":{"id":"pay_1","amount":4000,"currency":"INR"}}}}`, "pay_1", 4000},
	} {
		events, err := m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(tt.body)}, MappingInput{})
		if err != nil || events[0].ProviderReference != tt.reference || events[0].Amount.MinorUnits != tt.amount || events[0].Amount.Currency != "INR" {
			t.Errorf("%s: Map = %+v, %v", tt.body, events, err)
		}
	}
}

// A status rule maps a provider status by other fields of the payload;
// the first whose conditions all hold wins, the table is the fallback, and
// a field the payload lacks satisfies no condition.
func TestMappingStatusRules(t *testing.T) {
	m := Mapping{
		Status:   []string{"event"},
		Statuses: map[string]string{"refund.failed": "refund_failed", "payment.captured": "captured"},
		StatusRules: []StatusRule{
			{ProviderStatus: "refund.processed", Status: "refunded", When: []Condition{{Path: "payment.refund_status", Value: "full"}}},
			{ProviderStatus: "refund.processed", Status: "partially_refunded", When: []Condition{{Path: "payment.refund_status", Value: "partial"}}},
			{ProviderStatus: "adjustment", Status: "refund_pending", When: []Condition{{Path: "action", Value: "refund"}, {Path: "status", Value: "pending_approval"}}},
			{ProviderStatus: "adjustment", Status: "refunded", When: []Condition{{Path: "action", Value: "refund"}, {Path: "status", Value: "approved"}}},
			{ProviderStatus: "payment.captured", Status: "chargeback", When: []Condition{{Path: "disputed", Value: "true"}}},
			{ProviderStatus: "refunded", Status: "refunded", When: []Condition{{Path: "left", Value: "0"}}},
			{ProviderStatus: "refunded", Status: "partially_refunded", When: []Condition{{Path: "left", Value: "0", Not: true}}},
		},
	}
	for _, tt := range []struct {
		body     string
		status   Status
		unmapped bool
	}{
		{`{"event":"refund.processed","payment":{"refund_status":"full"}}`, StatusRefunded, false},
		{`{"event":"refund.processed","payment":{"refund_status":"partial"}}`, StatusPartiallyRefunded, false},
		{`{"event":"refund.processed","payment":{"refund_status":null}}`, StatusUnknown, true},
		{`{"event":"refund.processed"}`, StatusUnknown, true},
		{`{"event":"refund.failed","payment":{"refund_status":"partial"}}`, StatusRefundFailed, false},
		{`{"event":"adjustment","action":"refund","status":"pending_approval"}`, StatusRefundPending, false},
		{`{"event":"adjustment","action":"refund","status":"approved"}`, StatusRefunded, false},
		{`{"event":"adjustment","action":"credit","status":"approved"}`, StatusUnknown, true},
		{`{"event":"payment.captured","disputed":true}`, StatusChargeback, false},
		{`{"event":"payment.captured","disputed":false}`, StatusCaptured, false},
		{`{"event":"refunded","left":0}`, StatusRefunded, false},
		{`{"event":"refunded","left":1500}`, StatusPartiallyRefunded, false},
		{`{"event":"refunded"}`, StatusUnknown, true},
	} {
		events, err := m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(tt.body)}, MappingInput{Mapped: true})
		if err != nil || events[0].Status != tt.status || events[0].Unmapped != tt.unmapped {
			t.Errorf("%s: Map = %+v, %v; want %s", tt.body, events, err, tt.status)
		}
	}
}

// In JSON a path list may be one string, as every path was before lists.
func TestPathsJSON(t *testing.T) {
	var m Mapping
	if err := json.Unmarshal([]byte(`{"time":"created_at","amount":["refund.amount","amount"],"amount_unit":"minor"}`), &m); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Time, Paths{"created_at"}) || !slices.Equal(m.Amount, Paths{"refund.amount", "amount"}) {
		t.Errorf("unmarshalled %+v", m)
	}
	if err := json.Unmarshal([]byte(`{"time":3}`), &m); err == nil {
		t.Error("a number for a path list unmarshalled")
	}
	if raw, _ := json.Marshal(Mapping{Time: Paths{"created_at"}}); string(raw) != `{"time":["created_at"]}` {
		t.Errorf("marshalled %s", raw)
	}
}

func TestMappingCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    Mapping
		want string
	}{
		{"status outside the vocabulary", Mapping{Status: []string{"s"}, Statuses: map[string]string{"paid": "settled"}}, "not a canonical status"},
		{"amount without unit", Mapping{Amount: Paths{"a"}}, "needs its unit"},
		{"bad unit", Mapping{Amount: Paths{"a"}, AmountUnit: "cents"}, "want minor or decimal"},
		{"path with a modifier", Mapping{ID: Paths{"@reverse"}}, "not allowed"},
		{"path with an empty component", Mapping{ID: Paths{"a..b"}}, "empty component"},
		{"second path of a list that does not parse", Mapping{Time: Paths{"timestamp", "created..on"}}, "time #2"},
		{"empty path in a list", Mapping{Amount: Paths{"a", ""}, AmountUnit: "minor"}, "amount #2: empty path"},
		{"rule to a wrong word", Mapping{Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "r", Status: "partly_refunded",
			When: []Condition{{Path: "p", Value: "partial"}}}}}, "not a canonical status"},
		{"rule without a condition", Mapping{Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "r", Status: "refunded"}}}, "at least one condition"},
		{"rule condition without a value", Mapping{Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "r", Status: "refunded",
			When: []Condition{{Path: "p"}}}}}, "needs a path and a value"},
		{"rule condition without a path", Mapping{Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "r", Status: "refunded",
			When: []Condition{{Value: "x"}}}}}, "needs a path and a value"},
		{"rule condition path that does not parse", Mapping{Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "r", Status: "refunded",
			When: []Condition{{Path: "p|q", Value: "x"}}}}}, "not allowed"},
		{"rules without status", Mapping{StatusRules: []StatusRule{{ProviderStatus: "r", Status: "refunded", When: []Condition{{Path: "p", Value: "x"}}}}}, "needs status"},
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
	ok := Mapping{Batch: "events", ID: Paths{"data.object.id"}, Status: []string{"type"}, Statuses: map[string]string{"a": "verified"},
		Amount: Paths{"items.#(kind==\"total\").amount", "total"}, AmountUnit: "minor", Object: "subscription"}
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
		m := Mapping{ID: Paths{path}, MerchantReference: Paths{"x", path}, Time: Paths{path},
			Status: []string{"s"}, StatusRules: []StatusRule{{ProviderStatus: "", Status: "refunded", When: []Condition{{Path: path, Value: "1"}}}}}
		_, _ = m.Map(&Input{Provider: "p", ContentType: "application/json", Body: []byte(doc)}, MappingInput{})
	})
}

// FuzzMapping feeds arbitrary bodies, JSON or form, through docs/presets.md's
// GoCardless preset (a batch with ids) and a single-event mapping with a
// decimal amount: whatever is accepted encodes to a valid envelope, a batch
// never holds more than MaxBatchEvents events, and two events share an id
// only when they are one notification (the same id, or the same bytes).
func FuzzMapping(f *testing.F) {
	f.Add([]byte(`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed","links":{"payment":"PM1"}},{"resource_type":"payments","action":"failed"}]}`), false)
	f.Add([]byte(`{"events":[{"action":"x"},{"action":"x"},{"action":"y"}],"status":"paid","amount":{"value":"1.5","currency":"kwd"}}`), false)
	f.Add([]byte(`events[0][id]=EV1&events[0][action]=confirmed&status=paid&amount[value]=9.99&amount[currency]=EUR`), true)
	single := Mapping{Status: []string{"status", "outcome"}, Statuses: map[string]string{"paid": "captured"},
		StatusRules: []StatusRule{{ProviderStatus: "refund", Status: "partially_refunded", When: []Condition{{Path: "left", Value: "0", Not: true}}}},
		Amount:      Paths{"refund.value", "amount.value"}, AmountUnit: "decimal", Currency: Paths{"amount.currency"}, MerchantReference: Paths{"order"},
		Time: Paths{"timestamp", "created"}, Test: Paths{"test"}, Live: Paths{"livemode"}, FailureCode: Paths{"code"}}
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
				if ev.Failure != nil && ev.Status != StatusFailed && ev.Status != StatusRefundFailed {
					t.Fatalf("event %d: a failure on status %s", i, ev.Status)
				}
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
