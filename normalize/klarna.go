package normalize

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Klarna Checkout's push carries nothing but the order's id, in the push
// URI: payhook fetches the order from the Order Management API (GET
// /ordermanagement/v1/orders/{order_id}) and builds the event from the
// answer alone. The order's amounts are integers of minor units already
// (docs.klarna.com "Check the details of an order"; the API's Order:
// order_amount, captured_amount, refunded_amount, purchase_currency).

// klarnaAmounts are an order's amounts, in minor units of currency.
type klarnaAmounts struct {
	order, captured, refunded, remaining int64
	currency                             string
}

// maxKlarnaListed bounds the captures and refunds counted.
const maxKlarnaListed = 1000

// Klarna normalizes a Klarna push from the order fetched for it
// (in.Fetched); the push itself has no body.
func Klarna(in *Input) (*Event, error) {
	if len(in.Fetched) == 0 {
		return nil, fmt.Errorf("fetched order: %w: no order was fetched from the API", ErrMissingField)
	}
	order, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched order: %w", err)
	}
	id := text(order.Get("order_id"))
	if id == "" {
		return nil, fmt.Errorf("fetched order: %w: order_id", ErrMissingField)
	}
	status := text(order.Get("status"))
	if status == "" {
		return nil, fmt.Errorf("fetched order: %w: status", ErrMissingField)
	}
	fraud := text(order.Get("fraud_status"))
	amounts, err := klarnaOrderAmounts(order)
	if err != nil {
		return nil, err
	}
	captures, err := klarnaCount(order.Get("captures"), "captures")
	if err != nil {
		return nil, err
	}
	refunds, err := klarnaCount(order.Get("refunds"), "refunds")
	if err != nil {
		return nil, err
	}
	reference := text(order.Get("merchant_reference1"))
	if reference == "" {
		reference = text(order.Get("merchant_reference2"))
	}
	ev := &Event{
		Provider: in.Provider, Object: ObjectPayment, ProviderStatus: status,
		ProviderReference: id, PaymentReference: id, MerchantReference: reference,
		Fetched: fetched, Test: in.Test,
	}
	mapped, known := klarnaStatus(status, fraud, amounts)
	ev.Status, ev.Unmapped = orUnknown(mapped, known), !known
	if ev.Status == StatusFailed {
		ev.Failure = &Failure{Code: fraud, Message: "fraud_status " + fraud + ": Klarna's fraud assessment rejected the order"}
	}
	ev.Amount = &Amount{MinorUnits: klarnaEventAmount(ev.Status, amounts), Currency: amounts.currency}
	// What tells two pushes about one order apart beyond its status and
	// the event's amount: the fraud status and every amount, and how many
	// captures and refunds the order has (a second capture or refund
	// moves the sums too; the counts are there for one of zero).
	ev.Discriminator = strings.Join([]string{
		"fraud=" + fraud,
		"order=" + strconv.FormatInt(amounts.order, 10),
		"captured=" + strconv.FormatInt(amounts.captured, 10),
		"refunded=" + strconv.FormatInt(amounts.refunded, 10),
		"remaining=" + strconv.FormatInt(amounts.remaining, 10),
		"captures=" + strconv.Itoa(captures),
		"refunds=" + strconv.Itoa(refunds),
	}, ";")
	return ev, nil
}

// klarnaOrderAmounts reads the order's amounts: integers of minor units
// (JSON numbers, or strings of digits), in purchase_currency, which is
// required. An absent amount is zero; order_amount is required.
func klarnaOrderAmounts(order gjson.Result) (klarnaAmounts, error) {
	a := klarnaAmounts{currency: strings.ToUpper(text(order.Get("purchase_currency")))}
	if a.currency == "" {
		return a, fmt.Errorf("fetched order: %w: purchase_currency", ErrMissingField)
	}
	if _, ok := MinorUnitExponent(a.currency); !ok {
		return a, fmt.Errorf("fetched order: %w: %q", ErrUnknownCurrency, truncate(a.currency, 8))
	}
	for _, f := range []struct {
		name     string
		target   *int64
		required bool
	}{
		{"order_amount", &a.order, true},
		{"captured_amount", &a.captured, false},
		{"refunded_amount", &a.refunded, false},
		{"remaining_authorized_amount", &a.remaining, false},
	} {
		field := order.Get(f.name)
		if !field.Exists() || field.Type == gjson.Null {
			if f.required {
				return a, fmt.Errorf("fetched order: %w: %s", ErrMissingField, f.name)
			}
			continue
		}
		value := text(field)
		if field.Type != gjson.Number && field.Type != gjson.String || value == "" {
			return a, fmt.Errorf("fetched order: %w: %s is not a number", ErrMalformed, f.name)
		}
		parsed, err := ParseMinorUnits(value, a.currency)
		if err != nil {
			return a, fmt.Errorf("fetched order: %s: %w", f.name, err)
		}
		if parsed.MinorUnits < 0 {
			return a, fmt.Errorf("fetched order: %w: %s is negative", ErrMalformed, f.name)
		}
		*f.target = parsed.MinorUnits
	}
	return a, nil
}

// klarnaCount counts a list of the order (its captures, its refunds); an
// absent list is none.
func klarnaCount(list gjson.Result, name string) (int, error) {
	if !list.Exists() || list.Type == gjson.Null {
		return 0, nil
	}
	if !list.IsArray() {
		return 0, fmt.Errorf("fetched order: %w: %s is not a list", ErrMalformed, name)
	}
	n := 0
	list.ForEach(func(_, _ gjson.Result) bool {
		n++
		return n <= maxKlarnaListed
	})
	if n > maxKlarnaListed {
		return 0, fmt.Errorf("fetched order: %w: more than %d %s", ErrMalformed, maxKlarnaListed, name)
	}
	return n, nil
}

// klarnaStatus maps the order's status (the API's OrderManagementOrderStatus:
// AUTHORIZED, PART_CAPTURED, CAPTURED, CANCELLED, EXPIRED, CLOSED) and its
// fraud_status (ACCEPTED, PENDING, REJECTED). An order whose refunds reach
// what was captured is refunded, one with some refunded partially
// refunded, whatever the status says; a CLOSED order that took no money
// was cancelled.
func klarnaStatus(status, fraud string, a klarnaAmounts) (Status, bool) {
	refunds := func() Status {
		switch {
		case a.refunded > 0 && a.refunded >= a.captured:
			return StatusRefunded
		case a.refunded > 0:
			return StatusPartiallyRefunded
		}
		return StatusCaptured
	}
	switch status {
	case "AUTHORIZED":
		switch fraud {
		case "PENDING":
			// Klarna is still reviewing the order: not to be shipped yet.
			return StatusPending, true
		case "REJECTED":
			return StatusFailed, true
		}
		return StatusAuthorized, true
	case "PART_CAPTURED", "CAPTURED":
		return refunds(), true
	case "CLOSED":
		if a.captured == 0 {
			return StatusCancelled, true
		}
		return refunds(), true
	case "CANCELLED":
		return StatusCancelled, true
	case "EXPIRED":
		return StatusExpired, true
	}
	return "", false
}

// klarnaEventAmount is the amount the event is about: what was refunded
// for a refund, what was captured for a capture, else the order's amount.
func klarnaEventAmount(s Status, a klarnaAmounts) int64 {
	switch s {
	case StatusRefunded, StatusPartiallyRefunded:
		return a.refunded
	case StatusCaptured:
		return a.captured
	}
	return a.order
}

// KlarnaSampleOrderID is the sample's order id: --id when it is a UUID,
// else a UUID made of its hex digits (the demo's default id is random hex).
func KlarnaSampleOrderID(s Sample) string {
	ref := strings.ToLower(s.ProviderReference)
	if len(ref) == 36 && ref[8] == '-' && ref[13] == '-' && ref[18] == '-' && ref[23] == '-' {
		return ref
	}
	var hex []byte
	for i := 0; i < len(ref) && len(hex) < 32; i++ {
		if c := ref[i]; '0' <= c && c <= '9' || 'a' <= c && c <= 'f' {
			hex = append(hex, c)
		}
	}
	for len(hex) < 32 {
		hex = append(hex, '0')
	}
	return string(hex[:8]) + "-" + string(hex[8:12]) + "-" + string(hex[12:16]) + "-" + string(hex[16:20]) + "-" + string(hex[20:])
}

// klarnaSampleStatuses are the statuses a sample order can be in, with the
// order's status and fraud status.
var klarnaSampleStatuses = map[Status][2]string{
	StatusAuthorized:        {"AUTHORIZED", "ACCEPTED"},
	StatusPending:           {"AUTHORIZED", "PENDING"},
	StatusFailed:            {"AUTHORIZED", "REJECTED"},
	StatusCaptured:          {"CAPTURED", "ACCEPTED"},
	StatusPartiallyRefunded: {"CAPTURED", "ACCEPTED"},
	StatusRefunded:          {"CAPTURED", "ACCEPTED"},
	StatusCancelled:         {"CANCELLED", "ACCEPTED"},
	StatusExpired:           {"EXPIRED", "ACCEPTED"},
}

// KlarnaSampleOrder is the order GET /ordermanagement/v1/orders/{id}
// answers for the sample, in the shape of docs.klarna.com's "Check the
// details of an order" example.
func KlarnaSampleOrder(s Sample) ([]byte, error) {
	state, ok := klarnaSampleStatuses[s.Status]
	if !ok {
		return nil, fmt.Errorf("klarna samples know the statuses %s", sampleStatuses(klarnaSampleStatuses))
	}
	if _, ok := MinorUnitExponent(s.Amount.Currency); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCurrency, s.Amount.Currency)
	}
	total := s.Amount.MinorUnits
	var captured, refunded, remaining int64
	switch s.Status {
	case StatusCaptured:
		captured = total
	case StatusPartiallyRefunded:
		captured, refunded = total, total/2
	case StatusRefunded:
		captured, refunded = total, total
	case StatusAuthorized, StatusPending:
		remaining = total
	}
	order := map[string]any{
		"order_id":                    KlarnaSampleOrderID(s),
		"status":                      state[0],
		"fraud_status":                state[1],
		"order_amount":                total,
		"original_order_amount":       total,
		"captured_amount":             captured,
		"refunded_amount":             refunded,
		"remaining_authorized_amount": remaining,
		"purchase_currency":           s.Amount.Currency,
		"locale":                      "en-GB",
		"merchant_reference1":         s.MerchantReference,
		"klarna_reference":            "PAYHOOK1",
		"created_at":                  "2026-11-20T10:34:47.000Z",
		"purchase_country":            "GB",
		"captures":                    []any{},
		"refunds":                     []any{},
	}
	return json.Marshal(order)
}
