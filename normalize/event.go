// Package normalize turns provider payloads into payhook's canonical event
// and encodes it as the envelope the merchant's upstream receives: a
// CloudEvents 1.0 event in structured mode (see caddymodule/docs/envelope.md).
//
// Each provider is one file here (ixopay.go, …). The package has no Caddy
// import.
package normalize

import (
	"errors"
	"time"
)

// Sentinel errors for payloads that cannot become an event. All of them mean
// the callback is rejected with 400; errors wrap one of them and never quote
// payload content beyond a currency code.
var (
	// ErrMalformed means the body is not parseable as the provider's format.
	ErrMalformed = errors.New("payload malformed")
	// ErrMissingField means a field the envelope needs is absent.
	ErrMissingField = errors.New("required field missing")
	// ErrInexactAmount means the amount has more precision than its currency's minor unit.
	ErrInexactAmount = errors.New("amount not exact in its currency")
	// ErrUnknownCurrency means the currency is not an ISO 4217 code with a minor unit.
	ErrUnknownCurrency = errors.New("unknown currency")
	// ErrNotAPayment means the notification is one of the provider's own
	// that concerns no payment (Unzer's types, customer and basket events):
	// not an error of the provider's, so it is acknowledged, not refused (a
	// refusal would only make the provider send it again), and nothing is
	// forwarded.
	ErrNotAPayment = errors.New("the notification concerns no payment")
)

// Status is a canonical status from the envelope contract's vocabulary.
type Status string

// Payment statuses.
const (
	StatusPending            Status = "pending"
	StatusAuthorized         Status = "authorized"
	StatusCaptured           Status = "captured"
	StatusFailed             Status = "failed"
	StatusCancelled          Status = "cancelled"
	StatusRefunded           Status = "refunded"
	StatusPartiallyRefunded  Status = "partially_refunded"
	StatusRefundPending      Status = "refund_pending"
	StatusRefundFailed       Status = "refund_failed"
	StatusChargeback         Status = "chargeback"
	StatusChargebackReversed Status = "chargeback_reversed"
	StatusPaidOut            Status = "paid_out"
	StatusExpired            Status = "expired"
	// StatusVerified is a payment method verified or saved, no money moved.
	StatusVerified Status = "verified"
	StatusUnknown  Status = "unknown"
)

// Subscription statuses.
const (
	StatusActive   Status = "active"
	StatusOverdue  Status = "overdue"
	StatusInNotice Status = "in_notice"
	// StatusCancelled and StatusFailed serve subscriptions too.
)

// Statuses lists the canonical statuses, payments' and subscriptions'.
func Statuses() []Status {
	return []Status{
		StatusPending, StatusAuthorized, StatusCaptured, StatusFailed, StatusCancelled, StatusRefunded,
		StatusPartiallyRefunded, StatusRefundPending, StatusRefundFailed, StatusChargeback,
		StatusChargebackReversed, StatusPaidOut, StatusExpired, StatusVerified, StatusUnknown,
		StatusActive, StatusOverdue, StatusInNotice,
	}
}

// Object is what an event is about.
type Object string

// Objects.
const (
	ObjectPayment      Object = "payment"
	ObjectSubscription Object = "subscription"
)

// Failure is the provider's reason for a failed payment or refund.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Input is one callback's payload as a normalizer sees it.
type Input struct {
	// Provider is the provider's name as configured ("ixopay", "shopandpay", …).
	Provider string
	// ContentType is the media type of Body, without parameters, lower case.
	ContentType string
	// Body is the raw body exactly as received. The Event made from it
	// shares its memory, so it must not be modified afterwards.
	Body []byte
	// Original is Body as JSON (a form body decoded with PHP's rules); set
	// by Decode, nil before.
	Original []byte
	// Fetched is the document fetched back from the provider's API, for
	// providers verified that way; it is the truth the event is built from.
	Fetched []byte
	// DefaultCurrency is the configured currency for providers whose
	// payloads name none (Pyxis).
	DefaultCurrency string
	// Test says whether the configured API is the provider's test
	// environment, for providers whose documents do not say (Swedbank Pay);
	// nil when the configuration does not tell.
	Test *bool
}

// Decode sets in.Original from in.Body: a form body decoded with PHP's
// rules, any other body checked to be a JSON object and kept as it is.
func Decode(in *Input) error {
	if in.Original != nil {
		return nil
	}
	if in.ContentType == "application/x-www-form-urlencoded" {
		in.Original = DecodePHPForm(in.Body)
		return nil
	}
	_, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return err
	}
	in.Original = raw
	return nil
}

// Event is the canonical form of one provider callback.
type Event struct {
	Provider          string
	Object            Object
	Status            Status
	ProviderStatus    string
	MerchantReference string // empty when the callback carries none
	ProviderReference string // empty when the callback carries none
	PaymentReference  string // the payment the event is about, alike for its authorization, captures, refunds and disputes; empty when the callback does not tell
	Amount            *Amount
	Test              *bool
	Failure           *Failure
	// Time is the provider's own event time; zero when the callback has none.
	Time time.Time
	// Original is the payload as JSON when its authenticity was established
	// (a signed body, a request carrying the URL token): a JSON body as
	// received, a form body decoded with PHP's rules. Nil otherwise.
	Original []byte
	// Fetched is the document fetched from the provider's API, if any. For
	// providers verified by fetching, every other field comes from it.
	Fetched []byte
	// Unverified is the callback's own body as JSON where authenticity came
	// from fetching: nobody signed it, so it is kept for the shop's
	// information only (data.unverified) and no field is taken from it.
	Unverified []byte

	// NotificationID is the provider's own id of this notification (Stripe's
	// evt_…, a Standard Webhooks webhook-id), when it gives one: the event
	// id is derived from it and the provider alone.
	NotificationID string
	// Discriminator holds what else tells this notification apart from
	// another about the same transaction with the same status and amount
	// (the amounts a Swedbank Pay order has left to capture and reverse). It
	// takes part in the event id.
	Discriminator string
	// PayloadInID makes the SHA-256 of Original take part in the event id,
	// for providers that sign their payload but give the notification no id
	// of its own (IXOPAY, Pyxis): a retry is the same bytes, and two
	// notifications that differ in anything, however alike their status and
	// amount, differ in it.
	PayloadInID bool
	// StatusUnsigned says that Status comes from a field the provider does
	// not sign (the action of Adyen's CANCEL_OR_REFUND): it then takes no
	// part in the event id, so that a genuine notification with that field
	// changed is the same event, not a second one. ProviderStatus, which the
	// provider signs, still does.
	StatusUnsigned bool
	// Unmapped is true when the provider's status is not in the mapping, so
	// Status is StatusUnknown: the caller logs a warning.
	Unmapped bool

	id string // ID's result, computed once
}

// Normalizer turns one provider's payload into an Event.
type Normalizer func(in *Input) (*Event, error)
