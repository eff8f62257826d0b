package normalize

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// PayPal's webhooks are described in ../shared/providers.md ("PayPal") and
// developer.paypal.com (Webhooks, event names): {"id": "WH-…",
// "event_type": "PAYMENT.CAPTURE.COMPLETED", "create_time": …,
// "resource_type": "capture", "resource": {…}}, one event per webhook.

// PayPalEvent reads a webhook's body (bounded) and checks that it is a
// PayPal event: an object with an id and an event_type. It decodes in.Body
// once (see Decode): the normalizer's second call reads in.Original.
func PayPalEvent(in *Input) (gjson.Result, error) {
	if err := Decode(in); err != nil {
		return gjson.Result{}, err
	}
	doc := gjson.ParseBytes(in.Original)
	if text(doc.Get("id")) == "" || text(doc.Get("event_type")) == "" {
		return gjson.Result{}, fmt.Errorf("%w: id and event_type", ErrMissingField)
	}
	return doc, nil
}

// paypalMapping maps an event type: its object and status, where the
// amount is, and which field of the resource is the provider's reference.
type paypalMapping struct {
	object Object
	status Status
}

var paypalEvents = map[string]paypalMapping{
	// Orders v2
	"CHECKOUT.ORDER.APPROVED":  {ObjectPayment, StatusPending}, // the buyer approved; nothing is captured yet
	"CHECKOUT.ORDER.COMPLETED": {ObjectPayment, StatusCaptured},
	"CHECKOUT.ORDER.SAVED":     {ObjectPayment, StatusPending},
	"CHECKOUT.ORDER.VOIDED":    {ObjectPayment, StatusCancelled},
	// Payments v2
	"PAYMENT.AUTHORIZATION.CREATED": {ObjectPayment, StatusAuthorized},
	"PAYMENT.AUTHORIZATION.VOIDED":  {ObjectPayment, StatusCancelled},
	"PAYMENT.CAPTURE.COMPLETED":     {ObjectPayment, StatusCaptured},
	"PAYMENT.CAPTURE.PENDING":       {ObjectPayment, StatusPending},
	"PAYMENT.CAPTURE.DENIED":        {ObjectPayment, StatusFailed},
	"PAYMENT.CAPTURE.DECLINED":      {ObjectPayment, StatusFailed},
	"PAYMENT.CAPTURE.REFUNDED":      {ObjectPayment, StatusRefunded},
	"PAYMENT.CAPTURE.REVERSED":      {ObjectPayment, StatusChargeback},
	// Payments v1 (sales), still sent to older integrations
	"PAYMENT.SALE.COMPLETED": {ObjectPayment, StatusCaptured},
	"PAYMENT.SALE.PENDING":   {ObjectPayment, StatusPending},
	"PAYMENT.SALE.DENIED":    {ObjectPayment, StatusFailed},
	"PAYMENT.SALE.REFUNDED":  {ObjectPayment, StatusRefunded},
	"PAYMENT.SALE.REVERSED":  {ObjectPayment, StatusChargeback},
	// Disputes (RESOLVED is decided by its outcome)
	"CUSTOMER.DISPUTE.CREATED": {ObjectPayment, StatusChargeback},
	"CUSTOMER.DISPUTE.UPDATED": {ObjectPayment, StatusChargeback},
	// Subscriptions
	"BILLING.SUBSCRIPTION.ACTIVATED":      {ObjectSubscription, StatusActive},
	"BILLING.SUBSCRIPTION.RE-ACTIVATED":   {ObjectSubscription, StatusActive},
	"BILLING.SUBSCRIPTION.CANCELLED":      {ObjectSubscription, StatusCancelled},
	"BILLING.SUBSCRIPTION.EXPIRED":        {ObjectSubscription, StatusCancelled},
	"BILLING.SUBSCRIPTION.SUSPENDED":      {ObjectSubscription, StatusOverdue},
	"BILLING.SUBSCRIPTION.PAYMENT.FAILED": {ObjectSubscription, StatusOverdue},
}

// PayPal normalizes a verified PayPal webhook. The event's own id (WH-…)
// is the basis of the envelope's id.
func PayPal(in *Input) (*Event, error) {
	doc, err := PayPalEvent(in)
	if err != nil {
		return nil, err
	}
	kind := text(doc.Get("event_type"))
	resource := doc.Get("resource")
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		ProviderStatus:    kind,
		ProviderReference: firstText(resource, "dispute_id", "id"),
		PaymentReference:  paypalPaymentReference(kind, resource),
		MerchantReference: paypalReference(resource),
		Test:              in.Test,
		Original:          in.Original,
		Time:              rfc3339(text(doc.Get("create_time"))),
		NotificationID:    text(doc.Get("id")),
	}
	mapping, known := paypalEvents[kind]
	switch {
	case kind == "CUSTOMER.DISPUTE.RESOLVED":
		ev.Status = paypalDisputeOutcome(text(resource.Get("dispute_outcome.outcome_code")))
		ev.ProviderStatus += " " + text(resource.Get("dispute_outcome.outcome_code"))
	case known:
		ev.Object, ev.Status = mapping.object, mapping.status
	default:
		ev.Status, ev.Unmapped = StatusUnknown, true
	}
	if ev.Status == StatusFailed {
		if reason := firstText(resource, "status_details.reason", "reason_code"); reason != "" {
			ev.Failure = &Failure{Code: reason}
		}
	}
	if ev.Amount, err = paypalAmount(resource); err != nil {
		return nil, err
	}
	return ev, nil
}

// paypalPaymentReference is the order an event is about: the
// supplementary_data.related_ids.order_id that Payments v2 authorizations
// and captures carry (developer.paypal.com, Payments v2, supplementary_data),
// or a CHECKOUT.ORDER.* resource's own id; for the Payments v1 sales still
// sent to older integrations, the v1 payment (parent_payment, PAY-…) that
// plays the order's part. A v2 refund carries no order id, and the
// authorization and capture ids of related_ids (or a refund's "up" link)
// name a transaction, not the order, so they are not used: a refund, a
// dispute, a subscription event has none, rather than one that differs
// from its capture's.
func paypalPaymentReference(kind string, resource gjson.Result) string {
	if id := firstText(resource, "supplementary_data.related_ids.order_id", "parent_payment"); id != "" {
		return id
	}
	if strings.HasPrefix(kind, "CHECKOUT.ORDER.") {
		return text(resource.Get("id"))
	}
	return ""
}

// paypalDisputeOutcome: a dispute resolved for the seller gives the money
// back; for the buyer it stays taken; anything else (cancelled by the
// buyer, …) is for the shop to read.
func paypalDisputeOutcome(code string) Status {
	switch code {
	case "RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER", "DENIED":
		return StatusChargebackReversed
	case "RESOLVED_BUYER_FAVOUR", "ACCEPTED":
		return StatusChargeback
	}
	return StatusUnknown
}

// paypalReference finds the shop's reference: custom_id or invoice_id on
// the resource (captures, authorizations, refunds), on its first purchase
// unit (orders), on the disputed transaction (custom, invoice_number), or a
// subscription's custom_id.
func paypalReference(resource gjson.Result) string {
	if ref := firstText(resource, "custom_id", "invoice_id", "purchase_units.0.custom_id", "purchase_units.0.invoice_id",
		"disputed_transactions.0.custom", "disputed_transactions.0.invoice_number", "custom", "invoice_number"); ref != "" {
		return ref
	}
	if ref := text(resource.Get("purchase_units.0.reference_id")); ref != "default" {
		return ref
	}
	return ""
}

// paypalAmount reads the resource's amount: v2's {"currency_code", "value"}
// (on the resource, a dispute's dispute_amount, an order's first purchase
// unit, a subscription's last payment), or v1's {"currency", "total"}.
func paypalAmount(resource gjson.Result) (*Amount, error) {
	for _, path := range []string{"amount", "dispute_amount", "purchase_units.0.amount", "billing_info.last_payment.amount"} {
		amount := resource.Get(path)
		if !amount.IsObject() {
			continue
		}
		value, currency := amount.Get("value"), text(amount.Get("currency_code"))
		if !value.Exists() {
			value, currency = amount.Get("total"), text(amount.Get("currency"))
		}
		if !value.Exists() {
			continue
		}
		if value.Type != gjson.String {
			return nil, fmt.Errorf("%w: %s is not a decimal string", ErrMalformed, path)
		}
		return amountOf(value.Str, currency, ParseDecimalAmount)
	}
	return nil, nil
}

// paypalSampleType is the event PayPal sends for each canonical status.
var paypalSampleType = map[Status]string{
	StatusPending: "PAYMENT.CAPTURE.PENDING", StatusAuthorized: "PAYMENT.AUTHORIZATION.CREATED", StatusCaptured: "PAYMENT.CAPTURE.COMPLETED",
	StatusFailed: "PAYMENT.CAPTURE.DENIED", StatusCancelled: "PAYMENT.AUTHORIZATION.VOIDED", StatusRefunded: "PAYMENT.CAPTURE.REFUNDED",
	StatusChargeback: "PAYMENT.CAPTURE.REVERSED",
}

// PayPalSample fabricates a PayPal webhook event for s.
func PayPalSample(s Sample) ([]byte, error) {
	kind, ok := paypalSampleType[s.Status]
	if !ok {
		return nil, fmt.Errorf("paypal sends no webhook with status %q (it sends: %s)", s.Status, sampleStatuses(paypalSampleType))
	}
	decimal, err := s.Amount.Decimal()
	if err != nil {
		return nil, err
	}
	resourceType := strings.ToLower(strings.Split(kind, ".")[1])
	now := time.Now().UTC()
	resource := map[string]any{
		"id": s.ProviderReference, "status": "COMPLETED", "amount": map[string]any{"currency_code": s.Amount.Currency, "value": decimal},
		"custom_id": s.MerchantReference, "create_time": now.Format(time.RFC3339), "update_time": now.Format(time.RFC3339),
	}
	if s.Status == StatusFailed {
		resource["status"], resource["status_details"] = "DECLINED", map[string]any{"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
	}
	return json.Marshal(map[string]any{
		"id": "WH-" + s.ProviderReference, "event_version": "1.0", "create_time": now.Format("2006-01-02T15:04:05.000Z07:00"),
		"resource_type": resourceType, "resource_version": "2.0", "event_type": kind,
		"summary": "payhook sample", "resource": resource,
	})
}
