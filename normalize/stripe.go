package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Stripe's events are described in ../shared/providers.md ("Stripe") and
// Stripe's API reference: {"id": "evt_…", "type": "payment_intent.succeeded",
// "livemode": false, "created": <unix>, "data": {"object": {…}}}. The event
// id is the notification's id; the object's type decides which of its
// fields are the status, the amount and the references.

// StripeDefaultMetadataKey is the metadata key read for the merchant's
// reference when an object has no better one.
const StripeDefaultMetadataKey = "order_id"

// stripeZeroDecimal lists the currencies Stripe amounts in major units
// ("zero-decimal currencies", stripe.com/docs/currencies#zero-decimal).
var stripeZeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true, "KRW": true, "MGA": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

// stripeTwoDecimal lists the currencies Stripe amounts in hundredths where
// ISO 4217 has none: ISK "remains a two-decimal currency in the Stripe API"
// (stripe.com/docs/currencies#special-cases; 100 is 1 króna).
var stripeTwoDecimal = map[string]bool{"ISK": true}

// StripeAmount converts an amount in Stripe's smallest unit into ISO 4217
// minor units, exactly: Stripe's zero-decimal MGA (ISO: 2 decimals) is
// multiplied by 100, its two-decimal ISK (ISO: none) divided by 100, where
// a remainder (fractional króna of old charges) is ErrInexactAmount; every
// other currency's units agree (HUF, TWD and the three-decimal ones
// included). currency may be lower case, as Stripe writes it.
func StripeAmount(integer, currency string) (Amount, error) {
	return providerMinorUnits(integer, currency, func(currency string, iso int) int {
		switch {
		case stripeZeroDecimal[currency]:
			return 0
		case stripeTwoDecimal[currency]:
			return 2
		}
		return iso
	})
}

// StripeOptions are a route's choices for Stripe events.
type StripeOptions struct {
	// MetadataKey is the metadata key of the merchant's reference; default
	// StripeDefaultMetadataKey.
	MetadataKey string
}

// stripeEvent describes how one event type maps: the object, the status
// (given the data object), and the field of the amount.
type stripeEvent struct {
	object Object
	status func(obj gjson.Result) (Status, string) // canonical status, and words for provider_status
	amount string                                  // the amount's field; "" for none
}

func fixed(s Status) func(gjson.Result) (Status, string) {
	return func(gjson.Result) (Status, string) { return s, "" }
}

var stripeEvents = map[string]stripeEvent{
	"payment_intent.succeeded":                 {ObjectPayment, fixed(StatusCaptured), "amount_received"},
	"payment_intent.processing":                {ObjectPayment, fixed(StatusPending), "amount"},
	"payment_intent.requires_action":           {ObjectPayment, fixed(StatusPending), "amount"},
	"payment_intent.created":                   {ObjectPayment, fixed(StatusPending), "amount"},
	"payment_intent.partially_funded":          {ObjectPayment, fixed(StatusPending), "amount"},
	"payment_intent.amount_capturable_updated": {ObjectPayment, fixed(StatusAuthorized), "amount_capturable"},
	"payment_intent.payment_failed":            {ObjectPayment, fixed(StatusFailed), "amount"},
	"payment_intent.canceled":                  {ObjectPayment, fixed(StatusCancelled), "amount"},

	"charge.succeeded": {ObjectPayment, func(o gjson.Result) (Status, string) {
		if o.Get("captured").Bool() {
			return StatusCaptured, "captured"
		}
		return StatusAuthorized, "uncaptured"
	}, "amount"},
	"charge.captured": {ObjectPayment, fixed(StatusCaptured), "amount_captured"},
	"charge.pending":  {ObjectPayment, fixed(StatusPending), "amount"},
	"charge.failed":   {ObjectPayment, fixed(StatusFailed), "amount"},
	"charge.expired":  {ObjectPayment, fixed(StatusExpired), "amount"},
	"charge.refunded": {ObjectPayment, func(o gjson.Result) (Status, string) {
		if o.Get("refunded").Bool() || text(o.Get("amount_refunded")) == text(o.Get("amount")) {
			return StatusRefunded, "full"
		}
		return StatusPartiallyRefunded, "partial"
	}, "amount_refunded"},
	"charge.refund.updated": {ObjectPayment, stripeRefundStatus, "amount"},
	"refund.created":        {ObjectPayment, stripeRefundStatus, "amount"},
	"refund.updated":        {ObjectPayment, stripeRefundStatus, "amount"},
	"refund.failed":         {ObjectPayment, fixed(StatusRefundFailed), "amount"},

	"charge.dispute.created":                   {ObjectPayment, fixed(StatusChargeback), "amount"},
	"charge.dispute.funds_withdrawn":           {ObjectPayment, fixed(StatusChargeback), "amount"},
	"charge.dispute.funds_reinstated":          {ObjectPayment, fixed(StatusChargebackReversed), "amount"},
	"charge.dispute.updated":                   {ObjectPayment, fixed(StatusChargeback), "amount"},
	"charge.dispute.closed":                    {ObjectPayment, stripeDisputeClosed, "amount"},
	"checkout.session.completed":               {ObjectPayment, stripeCheckoutCompleted, "amount_total"},
	"checkout.session.async_payment_succeeded": {ObjectPayment, fixed(StatusCaptured), "amount_total"},
	"checkout.session.async_payment_failed":    {ObjectPayment, fixed(StatusFailed), "amount_total"},
	"checkout.session.expired":                 {ObjectPayment, fixed(StatusExpired), "amount_total"},
	"setup_intent.succeeded":                   {ObjectPayment, fixed(StatusVerified), ""},
	"setup_intent.setup_failed":                {ObjectPayment, fixed(StatusFailed), ""},

	"customer.subscription.created":   {ObjectSubscription, stripeSubscriptionStatus, ""},
	"customer.subscription.updated":   {ObjectSubscription, stripeSubscriptionStatus, ""},
	"customer.subscription.deleted":   {ObjectSubscription, stripeSubscriptionStatus, ""},
	"customer.subscription.paused":    {ObjectSubscription, stripeSubscriptionStatus, ""},
	"customer.subscription.resumed":   {ObjectSubscription, stripeSubscriptionStatus, ""},
	"invoice.paid":                    {ObjectSubscription, fixed(StatusActive), "amount_paid"},
	"invoice.payment_succeeded":       {ObjectSubscription, fixed(StatusActive), "amount_paid"},
	"invoice.payment_failed":          {ObjectSubscription, fixed(StatusOverdue), "amount_due"},
	"invoice.payment_action_required": {ObjectSubscription, fixed(StatusOverdue), "amount_due"},
}

// stripeRefundStatus maps a Refund object's status.
func stripeRefundStatus(o gjson.Result) (Status, string) {
	switch s := text(o.Get("status")); s {
	case "succeeded":
		return StatusRefunded, s
	case "pending", "requires_action":
		return StatusRefundPending, s
	case "failed", "canceled":
		return StatusRefundFailed, s
	default:
		return StatusUnknown, s
	}
}

// stripeDisputeClosed: a dispute won is the money back; lost is the
// chargeback standing.
func stripeDisputeClosed(o gjson.Result) (Status, string) {
	switch s := text(o.Get("status")); s {
	case "won":
		return StatusChargebackReversed, s
	case "lost":
		return StatusChargeback, s
	default: // warning_closed: an inquiry closed without a chargeback
		return StatusUnknown, s
	}
}

// stripeCheckoutCompleted: a completed session is paid, or waiting for an
// asynchronous payment, or needed no payment at all.
func stripeCheckoutCompleted(o gjson.Result) (Status, string) {
	switch s := text(o.Get("payment_status")); s {
	case "paid":
		return StatusCaptured, s
	case "unpaid":
		return StatusPending, s
	case "no_payment_required":
		return StatusVerified, s
	default:
		return StatusUnknown, s
	}
}

// stripeSubscriptionStatus maps a Subscription's status; an active one
// cancelled at the period's end is in its notice period.
func stripeSubscriptionStatus(o gjson.Result) (Status, string) {
	s := text(o.Get("status"))
	switch s {
	case "active", "trialing":
		if o.Get("cancel_at_period_end").Bool() {
			return StatusInNotice, s + " cancel_at_period_end"
		}
		return StatusActive, s
	case "past_due", "unpaid":
		return StatusOverdue, s
	case "canceled":
		return StatusCancelled, s
	case "incomplete_expired":
		return StatusFailed, s
	default: // incomplete, paused: no canonical meaning
		return StatusUnknown, s
	}
}

// Stripe normalizes a Stripe event. in.Body must have been verified.
func Stripe(in *Input, opts StripeOptions) (*Event, error) {
	doc, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	return stripeSnapshot(in, doc, raw, opts)
}

// StripeThinEvent reports whether a verified Stripe body is a thin event
// (API v2 event destinations: {"object": "v2.core.event", "related_object":
// {…}}), which names the object it is about instead of carrying it.
func StripeThinEvent(body []byte) bool {
	return gjson.GetBytes(body, "object").Str == "v2.core.event"
}

// StripeThinObject reads what a verified thin event names: the related
// object's id and its API path, and the context to fetch it in (a connected
// account), for the caller to fetch.
func StripeThinObject(body []byte) (id, path, context string, err error) {
	doc, _, err := parseJSONObject(body)
	if err != nil {
		return "", "", "", err
	}
	related := doc.Get("related_object")
	id, path = text(related.Get("id")), text(related.Get("url"))
	if id == "" || path == "" {
		return "", "", "", fmt.Errorf("%w: related_object", ErrMissingField)
	}
	return id, path, text(doc.Get("context")), nil
}

// StripeThin normalizes a Stripe thin event, in.Body, with the object it
// names as the API answered it, in.Fetched: as the snapshot event of the
// same type would be ("v1.payment_intent.succeeded" as
// "payment_intent.succeeded"), whose document it builds for data.original
// ({"id", "object": "event", "type", "created", "livemode", "data":
// {"object": <fetched>}, "related_object", "context"}).
func StripeThin(in *Input, opts StripeOptions) (*Event, error) {
	thin, _, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	fetched, _, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, err
	}
	eventType := text(thin.Get("type"))
	if !strings.HasPrefix(eventType, "v2.") {
		// A v1 resource's thin event names the snapshot event's type.
		eventType = strings.TrimPrefix(eventType, "v1.")
	}
	created := thin.Get("created")
	if t, err := time.Parse(time.RFC3339Nano, created.Str); err == nil {
		created = gjson.Parse(strconv.FormatInt(t.Unix(), 10))
	}
	quote := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var doc bytes.Buffer
	doc.WriteString(`{"object":"event"`)
	for _, field := range [][2]string{
		{"id", quote(text(thin.Get("id")))},
		{"type", quote(eventType)},
		{"created", created.Raw},
		{"livemode", thin.Get("livemode").Raw},
		{"data", `{"object":` + fetched.Raw + `}`},
		{"related_object", thin.Get("related_object").Raw},
		{"context", thin.Get("context").Raw},
	} {
		if field[1] != "" {
			fmt.Fprintf(&doc, ",%q:%s", field[0], field[1])
		}
	}
	doc.WriteByte('}')
	return stripeSnapshot(in, gjson.ParseBytes(doc.Bytes()), doc.Bytes(), opts)
}

// stripeSnapshot maps a snapshot event, doc (raw, its bytes).
func stripeSnapshot(in *Input, doc gjson.Result, raw []byte, opts StripeOptions) (*Event, error) {
	id, eventType := text(doc.Get("id")), text(doc.Get("type"))
	if id == "" {
		return nil, fmt.Errorf("%w: id", ErrMissingField)
	}
	if eventType == "" {
		return nil, fmt.Errorf("%w: type", ErrMissingField)
	}
	obj := doc.Get("data.object")
	if !obj.IsObject() {
		return nil, fmt.Errorf("%w: data.object", ErrMissingField)
	}
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		Status:            StatusUnknown,
		ProviderStatus:    eventType,
		ProviderReference: text(obj.Get("id")),
		PaymentReference:  stripePaymentReference(obj),
		Original:          raw,
		NotificationID:    id,
		Time:              stripeTime(doc.Get("created")),
	}
	if live := doc.Get("livemode"); live.Type == gjson.True || live.Type == gjson.False {
		ev.Test = boolPtr(!live.Bool())
	}
	key := opts.MetadataKey
	if key == "" {
		key = StripeDefaultMetadataKey
	}
	ev.MerchantReference = text(obj.Get("client_reference_id"))
	if ev.MerchantReference == "" {
		ev.MerchantReference = text(obj.Get("metadata." + gjsonEscape(key)))
	}

	mapping, known := stripeEvents[eventType]
	if !known {
		ev.Unmapped = true
		return ev, nil
	}
	ev.Object = mapping.object
	status, words := mapping.status(obj)
	ev.Status = status
	if words != "" {
		ev.ProviderStatus += " " + words
	}
	if status == StatusUnknown && words == "" {
		ev.Unmapped = true
	}
	switch mapping.object {
	case ObjectSubscription:
		// An invoice's subscription is the subject; the invoice is in original.
		if sub := text(obj.Get("subscription")); sub != "" && strings.HasPrefix(eventType, "invoice.") {
			ev.ProviderReference = sub
		}
	}
	if status == StatusFailed || status == StatusRefundFailed {
		ev.Failure = stripeFailure(obj)
	}
	if mapping.amount != "" {
		if value := text(obj.Get(mapping.amount)); value != "" {
			amount, err := StripeAmount(value, text(obj.Get("currency")))
			if err != nil {
				return nil, err
			}
			ev.Amount = &amount
		}
	}
	return ev, nil
}

// stripePaymentReference is the PaymentIntent a payment object belongs to,
// by the object's type (Stripe's API reference): a PaymentIntent's own id;
// the payment_intent of a Charge, Refund, Dispute or Checkout Session (in
// payment mode). A Charge made without a PaymentIntent (the Charges API;
// payment_intent null, as in Stripe's own Dispute example) is the payment
// itself: its id, and its refunds' and disputes' charge. Other objects
// (SetupIntent, Subscription, Invoice, …) have none.
func stripePaymentReference(obj gjson.Result) string {
	switch text(obj.Get("object")) {
	case "payment_intent":
		return text(obj.Get("id"))
	case "charge":
		return firstText(obj, "payment_intent", "id")
	case "refund", "dispute":
		return firstText(obj, "payment_intent", "charge")
	case "checkout.session":
		return text(obj.Get("payment_intent"))
	}
	return ""
}

// stripeFailure reads the reason of a failed payment, charge or refund.
func stripeFailure(obj gjson.Result) *Failure {
	if e := obj.Get("last_payment_error"); e.IsObject() {
		// An error may carry only its type (api_error, idempotency_error,
		// as Stripe's own fixtures show): then the type is the code.
		code := firstText(e, "decline_code", "code", "type")
		if code == "" && text(e.Get("message")) == "" {
			return nil
		}
		return &Failure{Code: code, Message: text(e.Get("message"))}
	}
	if code := firstText(obj, "failure_code", "failure_reason"); code != "" {
		return &Failure{Code: code, Message: text(obj.Get("failure_message"))}
	}
	if e := obj.Get("last_setup_error"); e.IsObject() {
		return &Failure{Code: text(e.Get("code")), Message: text(e.Get("message"))}
	}
	return nil
}

func stripeTime(r gjson.Result) time.Time {
	if n, err := strconv.ParseInt(text(r), 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	return time.Time{}
}

// gjsonEscape escapes the characters gjson treats specially in a path
// component.
func gjsonEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '#', '|', '@', '\\', '!', '=', '<', '>', '%', '(', ')', '[', ']', '{', '}', ',':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// stripeSampleType is the event type Stripe sends for each canonical status.
var stripeSampleType = map[Status]string{
	StatusCaptured: "payment_intent.succeeded", StatusPending: "payment_intent.processing",
	StatusAuthorized: "payment_intent.amount_capturable_updated", StatusFailed: "payment_intent.payment_failed",
	StatusCancelled: "payment_intent.canceled",
}

// StripeSample fabricates a payment_intent event for s.
func StripeSample(s Sample) ([]byte, string, error) {
	eventType, object, err := stripeSampleObject(s)
	if err != nil {
		return nil, "", err
	}
	body, err := json.Marshal(map[string]any{
		"id": "evt_" + s.ProviderReference, "object": "event", "api_version": "2025-10-29.clover", "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": eventType, "data": map[string]any{"object": object},
	})
	return body, "application/json", err
}

// StripeThinSample fabricates the thin event (API v2 event destinations)
// of StripeSample's event: it names the payment intent, which must exist
// where payhook fetches it (the demo's stand-in of the API serves
// StripeSampleObject).
func StripeThinSample(s Sample) ([]byte, string, error) {
	eventType, object, err := stripeSampleObject(s)
	if err != nil {
		return nil, "", err
	}
	id := object["id"].(string)
	body, err := json.Marshal(map[string]any{
		"id": "evt_" + s.ProviderReference, "object": "v2.core.event", "type": "v1." + eventType, "livemode": false,
		"created":        time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"related_object": map[string]string{"id": id, "type": "payment_intent", "url": "/v1/payment_intents/" + id},
	})
	return body, "application/json", err
}

// StripeSampleObject is the payment intent a thin sample names, at its API
// path, as Stripe's API answers it.
func StripeSampleObject(s Sample) (path string, doc []byte, err error) {
	_, object, err := stripeSampleObject(s)
	if err != nil {
		return "", nil, err
	}
	doc, err = json.Marshal(object)
	return "/v1/payment_intents/" + object["id"].(string), doc, err
}

// stripeSampleObject is the type of the sample's event and its payment
// intent.
func stripeSampleObject(s Sample) (string, map[string]any, error) {
	eventType, ok := stripeSampleType[s.Status]
	if !ok {
		return "", nil, fmt.Errorf("the sample sends no Stripe event with status %q (it sends: %s)", s.Status, sampleStatuses(stripeSampleType))
	}
	amount := s.Amount.MinorUnits
	switch exp, _ := MinorUnitExponent(s.Amount.Currency); {
	case stripeZeroDecimal[s.Amount.Currency] && exp == 2:
		amount /= 100
	case stripeTwoDecimal[s.Amount.Currency] && exp == 0:
		amount *= 100
	}
	object := map[string]any{
		"id": "pi_" + s.ProviderReference, "object": "payment_intent", "amount": amount, "currency": strings.ToLower(s.Amount.Currency),
		"status": map[Status]string{StatusCaptured: "succeeded", StatusPending: "processing", StatusAuthorized: "requires_capture",
			StatusFailed: "requires_payment_method", StatusCancelled: "canceled"}[s.Status],
		"metadata": map[string]string{StripeDefaultMetadataKey: s.MerchantReference},
	}
	switch s.Status {
	case StatusCaptured:
		object["amount_received"] = amount
	case StatusAuthorized:
		object["amount_capturable"] = amount
	case StatusFailed:
		object["last_payment_error"] = map[string]any{"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}
	}
	return eventType, object, nil
}
