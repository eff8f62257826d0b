package normalize

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// Mollie's webhooks are described in ../shared/providers.md ("Mollie") and
// docs.mollie.com: a classic webhook is a form post of id=tr_…, which
// nobody signs; payhook fetches the payment (with its refunds and
// chargebacks embedded) and builds the events from it. A next-gen webhook
// is a signed JSON event: {"resource": "event", "id": …, "type":
// "payment-link.paid", "entityId": …, "_embedded": {"entity": {…}}}.

// MollieClaim reads the payment id a classic webhook names, decoding the
// form (in.Original) first. An id that is not a Mollie payment id is
// ErrMalformed: it never reaches the API.
func MollieClaim(in *Input) (string, error) {
	if err := Decode(in); err != nil {
		return "", err
	}
	id := text(gjson.GetBytes(in.Original, "id"))
	if id == "" {
		return "", fmt.Errorf("%w: id", ErrMissingField)
	}
	if err := verify.CheckMolliePaymentID(id); err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, nil
}

// MollieOptions are a Mollie route's settings.
type MollieOptions struct {
	// MetadataKey names the payment's metadata field that holds the shop's
	// reference; "order_id" when empty.
	MetadataKey string
}

var molliePaymentStatus = map[string]Status{
	"open":       StatusPending,
	"pending":    StatusPending,
	"authorized": StatusAuthorized,
	"paid":       StatusCaptured,
	"canceled":   StatusCancelled,
	"expired":    StatusExpired,
	"failed":     StatusFailed,
}

var mollieRefundStatus = map[string]Status{
	"queued":     StatusRefundPending,
	"pending":    StatusRefundPending,
	"processing": StatusRefundPending,
	"refunded":   StatusRefunded,
	"failed":     StatusRefundFailed,
	"canceled":   StatusRefundFailed,
}

// mollieTimeField is the payment's field that dates each status.
var mollieTimeField = map[string]string{
	"paid": "paidAt", "authorized": "authorizedAt", "canceled": "canceledAt", "expired": "expiredAt", "failed": "failedAt",
}

var errMollieNotFetched = errors.New("mollie: no payment was fetched from the API")

// MolliePayment builds the events of a fetched payment (in.Fetched): the
// payment's own status, then each refund and each chargeback embedded in
// it, oldest first, as events of their own. The form posted is kept as
// data.unverified.
func MolliePayment(in *Input, opts MollieOptions) ([]*Event, error) {
	if len(in.Fetched) == 0 {
		return nil, errMollieNotFetched
	}
	doc, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched payment: %w", err)
	}
	key := cmp.Or(opts.MetadataKey, "order_id")
	payment := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		ProviderStatus:    text(doc.Get("status")),
		ProviderReference: text(doc.Get("id")),
		PaymentReference:  text(doc.Get("id")),
		MerchantReference: mollieMetadata(doc.Get("metadata"), key),
		Test:              mollieMode(doc),
		Fetched:           fetched,
		Unverified:        in.Original,
	}
	status, known := molliePaymentStatus[payment.ProviderStatus]
	payment.Status, payment.Unmapped = cmp.Or(status, StatusUnknown), !known
	payment.Time = mollieTime(doc, cmp.Or(mollieTimeField[payment.ProviderStatus], "createdAt"))
	if payment.Status == StatusFailed {
		if reason := firstText(doc, "details.failureReason", "details.bankReasonCode"); reason != "" {
			payment.Failure = &Failure{Code: reason, Message: firstText(doc, "details.failureMessage", "details.bankReason")}
		}
	}
	if payment.Amount, err = mollieAmount(doc.Get("amount")); err != nil {
		return nil, err
	}
	events := []*Event{payment}

	// Each refund and chargeback on its own: its own id, with the payment's
	// id telling two payments' apart.
	related := func(list gjson.Result, build func(item gjson.Result) (*Event, error)) error {
		items := list.Array()
		if len(items) > MaxBatchEvents {
			return fmt.Errorf("%w: more than %d refunds or chargebacks", ErrMalformed, MaxBatchEvents)
		}
		slices.SortStableFunc(items, func(a, b gjson.Result) int {
			return mollieTime(a, "createdAt").Compare(mollieTime(b, "createdAt"))
		})
		for _, item := range items {
			ev, err := build(item)
			if err != nil {
				return err
			}
			ev.Provider, ev.Object, ev.Test, ev.Fetched, ev.Unverified = in.Provider, ObjectPayment, payment.Test, fetched, in.Original
			ev.MerchantReference, ev.Discriminator = payment.MerchantReference, payment.ProviderReference
			ev.ProviderReference, ev.Time = text(item.Get("id")), mollieTime(item, "createdAt")
			// Embedded in the payment, a refund or chargeback is the payment's
			// (its paymentId says so too).
			ev.PaymentReference = cmp.Or(text(item.Get("paymentId")), payment.PaymentReference)
			events = append(events, ev)
		}
		return nil
	}
	refunds, chargebacks := doc.Get("_embedded.refunds"), doc.Get("_embedded.chargebacks")
	err = related(refunds, func(refund gjson.Result) (*Event, error) {
		ev := &Event{ProviderStatus: "refund " + text(refund.Get("status"))}
		status, known := mollieRefundStatus[text(refund.Get("status"))]
		ev.Status, ev.Unmapped = cmp.Or(status, StatusUnknown), !known
		var err error
		if ev.Amount, err = mollieAmount(refund.Get("amount")); err != nil {
			return nil, err
		}
		if ev.Status == StatusRefunded && payment.Amount != nil && ev.Amount != nil && *ev.Amount != *payment.Amount {
			ev.Status = StatusPartiallyRefunded
		}
		return ev, nil
	})
	if err != nil {
		return nil, err
	}
	err = related(chargebacks, func(chargeback gjson.Result) (*Event, error) {
		ev := &Event{ProviderStatus: "chargeback", Status: StatusChargeback}
		if text(chargeback.Get("reversedAt")) != "" {
			ev.ProviderStatus, ev.Status = "chargeback reversed", StatusChargebackReversed
		}
		var err error
		ev.Amount, err = mollieAmount(chargeback.Get("amount"))
		return ev, err
	})
	if err != nil {
		return nil, err
	}

	// Without the embedded lists (an API that ignored embed), the totals on
	// the payment still tell: one event per total, its value telling a
	// second partial refund from the first.
	if !refunds.Exists() {
		if ev, err := mollieTotal(payment, doc.Get("amountRefunded"), "refunded"); err != nil || ev != nil {
			if err != nil {
				return nil, err
			}
			ev.Status = StatusPartiallyRefunded
			if *ev.Amount == *payment.Amount {
				ev.Status = StatusRefunded
			}
			events = append(events, ev)
		}
	}
	if !chargebacks.Exists() {
		if ev, err := mollieTotal(payment, doc.Get("amountChargedBack"), "charged back"); err != nil || ev != nil {
			if err != nil {
				return nil, err
			}
			ev.Status = StatusChargeback
			events = append(events, ev)
		}
	}
	return events, nil
}

// mollieTotal makes an event of a payment's refunded or charged back total
// when it is above zero.
func mollieTotal(payment *Event, total gjson.Result, what string) (*Event, error) {
	amount, err := mollieAmount(total)
	if err != nil || amount == nil || amount.MinorUnits == 0 || payment.Amount == nil {
		return nil, err
	}
	ev := *payment
	ev.Status, ev.Unmapped, ev.Failure, ev.id = "", false, nil, ""
	ev.ProviderStatus = payment.ProviderStatus + ", " + what
	ev.Amount = amount
	ev.Discriminator = what + ":" + total.Get("value").String()
	return &ev, nil
}

// mollieAmount reads {"currency": "EUR", "value": "10.00"}: a decimal
// string in the currency's major unit, exact.
func mollieAmount(amount gjson.Result) (*Amount, error) {
	if !amount.Exists() || amount.Type == gjson.Null {
		return nil, nil
	}
	if !amount.IsObject() {
		return nil, fmt.Errorf("%w: amount is not an object", ErrMalformed)
	}
	value := amount.Get("value")
	if value.Type != gjson.String {
		return nil, fmt.Errorf("%w: amount.value is not a string", ErrMalformed)
	}
	return amountOf(value.Str, text(amount.Get("currency")), ParseDecimalAmount)
}

func mollieMetadata(metadata gjson.Result, key string) string {
	if !metadata.IsObject() {
		return ""
	}
	return text(metadata.Get(gjson.Escape(key)))
}

func mollieMode(doc gjson.Result) *bool {
	switch text(doc.Get("mode")) {
	case "test":
		return boolPtr(true)
	case "live":
		return boolPtr(false)
	}
	return nil
}

func mollieTime(doc gjson.Result, field string) time.Time { return rfc3339(text(doc.Get(field))) }

// mollieEventStatus maps the next-gen event types that tell of money; the
// others (mollieOtherEvents) are Mollie's, with no canonical meaning.
var mollieEventStatus = map[string]Status{
	"payment-link.paid": StatusCaptured,
}

var mollieOtherEvents = []string{
	"balance-transaction.", "business-account-transfer.", "connect-balance-transfer.", "dispute.", "file.",
	"payout.", "sales-invoice.", "unmatched-credit-transfer.", "profile.", "onboarding.",
}

// MollieEvent normalizes a next-gen webhook event, whose signature has been
// checked: the event's own id is the notification id, its type the status,
// the entity snapshot (when the webhook sends the full payload) the amount.
func MollieEvent(in *Input, opts MollieOptions) (*Event, error) {
	doc, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	in.Original = raw
	if text(doc.Get("resource")) != "event" {
		return nil, fmt.Errorf("%w: not a Mollie event", ErrMalformed)
	}
	id, kind := text(doc.Get("id")), text(doc.Get("type"))
	if id == "" || kind == "" {
		return nil, fmt.Errorf("%w: id and type", ErrMissingField)
	}
	entity := doc.Get("_embedded.entity")
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		ProviderStatus:    kind,
		ProviderReference: text(doc.Get("entityId")),
		PaymentReference:  mollieEventPaymentReference(doc, entity),
		MerchantReference: mollieMetadata(entity.Get("metadata"), cmp.Or(opts.MetadataKey, "order_id")),
		Test:              mollieMode(entity),
		Original:          raw,
		Time:              mollieTime(doc, "createdAt"),
		NotificationID:    id,
	}
	status, known := mollieEventStatus[kind]
	ev.Status = cmp.Or(status, StatusUnknown)
	ev.Unmapped = !known && !slices.ContainsFunc(mollieOtherEvents, func(prefix string) bool { return strings.HasPrefix(kind, prefix) })
	if ev.Amount, err = mollieAmount(entity.Get("amount")); err != nil {
		return nil, err
	}
	return ev, nil
}

// mollieEventPaymentReference is the payment (tr_…) a next-gen event is
// about: the entity itself when it is a payment (payment.* events), else
// the paymentId the snapshot of a refund, chargeback or capture carries
// (docs.mollie.com, "Webhooks for the Refunds API"). Without a snapshot (a
// simple payload) only a payment.* event's entityId tells. A payment link,
// an invoice, a balance transaction name no payment.
func mollieEventPaymentReference(doc, entity gjson.Result) string {
	if text(entity.Get("resource")) == "payment" {
		return text(entity.Get("id"))
	}
	if id := text(entity.Get("paymentId")); id != "" {
		return id
	}
	if id := text(doc.Get("entityId")); strings.HasPrefix(text(doc.Get("type")), "payment.") && strings.HasPrefix(id, "tr_") {
		return id
	}
	return ""
}

// mollieSampleStatus is the payment status Mollie reports for each
// canonical status.
var mollieSampleStatus = map[Status]string{
	StatusPending: "open", StatusAuthorized: "authorized", StatusCaptured: "paid", StatusCancelled: "canceled",
	StatusExpired: "expired", StatusFailed: "failed", StatusRefunded: "paid", StatusPartiallyRefunded: "paid",
	StatusChargeback: "paid",
}

// MollieSamplePayment fabricates the payment a Mollie API stand-in serves
// for s (the id is s.ProviderReference, "tr_…"): refunded and charged back
// payments carry an embedded refund or chargeback.
func MollieSamplePayment(s Sample) ([]byte, error) {
	status, ok := mollieSampleStatus[s.Status]
	if !ok {
		return nil, fmt.Errorf("mollie reports no payment with status %q (it reports: %s)", s.Status, sampleStatuses(mollieSampleStatus))
	}
	decimal, err := s.Amount.Decimal()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	amount := map[string]any{"currency": s.Amount.Currency, "value": decimal}
	payment := map[string]any{
		"resource": "payment", "id": s.ProviderReference, "mode": "test", "createdAt": now, "amount": amount,
		"description": "Order " + s.MerchantReference, "method": "creditcard", "metadata": map[string]any{"order_id": s.MerchantReference},
		"status": status, "profileId": "pfl_payhookdemo", "sequenceType": "oneoff",
	}
	if field, ok := mollieTimeField[status]; ok {
		payment[field] = now
	}
	embedded := map[string]any{"refunds": []any{}, "chargebacks": []any{}}
	switch s.Status {
	case StatusRefunded, StatusPartiallyRefunded:
		refund := amount
		if s.Status == StatusPartiallyRefunded {
			half, err := Amount{MinorUnits: s.Amount.MinorUnits / 2, Currency: s.Amount.Currency}.Decimal()
			if err != nil {
				return nil, err
			}
			refund = map[string]any{"currency": s.Amount.Currency, "value": half}
		}
		embedded["refunds"] = []any{map[string]any{"resource": "refund", "id": "re_" + strings.TrimPrefix(s.ProviderReference, "tr_"),
			"amount": refund, "status": "refunded", "paymentId": s.ProviderReference, "createdAt": now}}
		payment["amountRefunded"] = refund
	case StatusChargeback:
		embedded["chargebacks"] = []any{map[string]any{"resource": "chargeback", "id": "chb_" + strings.TrimPrefix(s.ProviderReference, "tr_"),
			"amount": amount, "paymentId": s.ProviderReference, "createdAt": now, "reversedAt": nil}}
		payment["amountChargedBack"] = amount
	}
	payment["_embedded"] = embedded
	return json.Marshal(payment)
}
