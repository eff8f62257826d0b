package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Payrexx's old time format is Swiss local time

	"github.com/tidwall/gjson"
)

// Payrexx webhooks and API documents are described in ../shared/providers.md
// ("Payrexx"). A webhook is {"transaction": {…}} or {"subscription": {…}},
// as JSON or as a PHP form post; payhook fetches the object back and builds
// the event from the fetched document, keeping the webhook in data.original.

// payrexxTransactionStatus maps every transaction status Payrexx has used:
// the documented ones, those only the PHP SDK knows, and the names from
// before 2019-02-13.
var payrexxTransactionStatus = map[string]Status{
	"waiting":            StatusPending,
	"initiated":          StatusPending, // SDK only
	"confirmed":          StatusCaptured,
	"authorized":         StatusAuthorized,
	"reserved":           StatusAuthorized,
	"uncaptured":         StatusAuthorized, // authorized, capture outstanding (Clearhaus)
	"cancelled":          StatusCancelled,
	"declined":           StatusFailed,
	"error":              StatusFailed,
	"technical error":    StatusFailed, // before 2019-02-13
	"refunded":           StatusRefunded,
	"partially-refunded": StatusPartiallyRefunded,
	"partially refunded": StatusPartiallyRefunded, // before 2019-02-13
	"refund_pending":     StatusRefundPending,
	"chargeback":         StatusChargeback,
	"chargeback dispute": StatusChargeback, // before 2019-02-13
	"disputed":           StatusChargeback, // SDK only
	"expired":            StatusExpired,    // SDK only
	// "insecure" is in the SDK without documentation; what it means for the
	// money is not known, so it is forwarded as unknown for the shop to decide.
	"insecure": StatusUnknown,
}

var payrexxSubscriptionStatus = map[string]Status{
	"active":    StatusActive,
	"overdue":   StatusOverdue,
	"in_notice": StatusInNotice,
	"cancelled": StatusCancelled,
	"failed":    StatusFailed,
}

// PayrexxClaim reads what a Payrexx webhook says it is about: the kind
// ("Transaction" or "Subscription"), its id and its claimed status. It
// decodes in.Body first (see Decode).
func PayrexxClaim(in *Input) (kind, id, status string, err error) {
	if err := Decode(in); err != nil {
		return "", "", "", err
	}
	doc := gjson.ParseBytes(in.Original)
	object := doc.Get("transaction")
	kind = "Transaction"
	if !object.IsObject() {
		object, kind = doc.Get("subscription"), "Subscription"
	}
	if !object.IsObject() {
		if doc.Get("payout").IsObject() {
			// Payrexx's third kind of webhook tells the merchant of a
			// payout to their bank account: no payment of the shop's.
			return "", "", "", fmt.Errorf("%w: transaction or subscription (this is a payout webhook: send payout webhooks elsewhere)", ErrMissingField)
		}
		return "", "", "", fmt.Errorf("%w: transaction or subscription", ErrMissingField)
	}
	id = text(object.Get("id"))
	if id == "" {
		return "", "", "", fmt.Errorf("%w: %s id", ErrMissingField, strings.ToLower(kind))
	}
	if !allDigits(id) || len(id) > 19 {
		return "", "", "", fmt.Errorf("%w: %s id is not a Payrexx id", ErrMalformed, strings.ToLower(kind))
	}
	return kind, id, text(object.Get("status")), nil
}

// errNotFetched means Payrexx was called without the fetched document: a
// wiring mistake, not a provider's fault.
var errNotFetched = errors.New("payrexx: no document was fetched from the API")

// Payrexx normalizes a Payrexx webhook. Status, amount, currency and
// references come from in.Fetched (the API's document); the webhook itself
// goes to data.original.
func Payrexx(in *Input) (*Event, error) {
	kind, _, _, err := PayrexxClaim(in)
	if err != nil {
		return nil, err
	}
	if len(in.Fetched) == 0 {
		return nil, errNotFetched
	}
	doc, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched document: %w", err)
	}

	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		ProviderStatus:    text(doc.Get("status")),
		ProviderReference: text(doc.Get("id")),
		MerchantReference: firstText(doc, "referenceId", "invoice.referenceId"),
		Unverified:        in.Original,
		Fetched:           fetched,
		Time:              payrexxTime(text(doc.Get("time"))),
	}
	// A second partial refund leaves status and amount as they were; the
	// refunded total moves on. (Left out while nothing is refunded, so that
	// the ids of plain payments stay what they were.)
	if refunded := text(doc.Get("invoice.refundedAmount")); refunded != "" && refunded != "0" {
		ev.Discriminator = "refunded:" + refunded
	}
	// A Payrexx transaction is the payment: its capture, refunds and
	// chargeback are new statuses of the same transaction (the same id),
	// not transactions of their own. A subscription is no payment.
	statuses := payrexxTransactionStatus
	if kind == "Transaction" {
		ev.PaymentReference = ev.ProviderReference
	}
	if kind == "Subscription" {
		ev.Object, statuses = ObjectSubscription, payrexxSubscriptionStatus
		// A renewal leaves an active subscription active; its period moves on.
		ev.Discriminator = "period:" + text(doc.Get("valid_until")) + "/" + text(doc.Get("end"))
	}
	status, known := statuses[strings.ToLower(ev.ProviderStatus)]
	ev.Status, ev.Unmapped = status, !known
	if !known {
		ev.Status = StatusUnknown
	}

	switch strings.ToUpper(text(doc.Get("mode"))) {
	case "TEST":
		ev.Test = boolPtr(true)
	case "LIVE":
		ev.Test = boolPtr(false)
	default: // a subscription has no mode; its invoice says test or not
		switch text(doc.Get("invoice.test")) {
		case "1", "true":
			ev.Test = boolPtr(true)
		case "0", "false":
			ev.Test = boolPtr(false)
		}
	}

	// Amounts are in the smallest unit since 2020-06-10 (2 JPY is 2). A
	// transaction has its amount; where the API's answer gives none (its
	// published examples, a subscription), the invoice's total, else its
	// original amount (the invoice's own amount since 2021-10-12, when
	// invoice.amount was removed). The currency is the invoice's, named
	// currencyAlpha3 in the published transaction example.
	ev.Amount, err = amountOf(firstText(doc, "amount", "invoice.amount", "invoice.totalAmount", "invoice.originalAmount"),
		firstText(doc, "currency", "invoice.currency", "invoice.currencyAlpha3"), ParseMinorUnits)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// zurich is the time zone of Payrexx's old "YYYY-MM-DD HH:MM:SS" times,
// which carry none: Payrexx runs in Switzerland and shows these times in
// Swiss local time.
var zurich = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// payrexxTime reads a Payrexx time: ISO 8601 (since 2025) or the older
// "YYYY-MM-DD HH:MM:SS" in Swiss time. An unreadable time is ignored: the
// envelope then carries the receive time.
func payrexxTime(s string) time.Time {
	if s == "" || len(s) > 40 {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, zurich); err == nil {
			return t
		}
	}
	return time.Time{}
}

// firstText returns the first non-empty scalar among paths.
func firstText(doc gjson.Result, paths ...string) string {
	for _, p := range paths {
		if s := text(doc.Get(p)); s != "" {
			return s
		}
	}
	return ""
}

func boolPtr(b bool) *bool { return &b }

// payrexxSampleStatus is the transaction status Payrexx sends for each
// canonical status.
var payrexxSampleStatus = map[Status]string{
	StatusPending: "waiting", StatusCaptured: "confirmed", StatusAuthorized: "authorized", StatusCancelled: "cancelled",
	StatusFailed: "declined", StatusRefunded: "refunded", StatusPartiallyRefunded: "partially-refunded",
	StatusRefundPending: "refund_pending", StatusChargeback: "chargeback", StatusExpired: "expired",
}

// PayrexxSample fabricates a Payrexx webhook (JSON) for s. The provider
// reference must be a Payrexx transaction id (digits).
func PayrexxSample(s Sample) ([]byte, string, error) {
	status, ok := payrexxSampleStatus[s.Status]
	if !ok {
		return nil, "", fmt.Errorf("payrexx sends no webhook with status %q (it sends: %s)", s.Status, sampleStatuses(payrexxSampleStatus))
	}
	body, err := json.Marshal(map[string]any{"transaction": map[string]any{
		"id": s.ProviderReference, "status": status, "mode": "TEST", "referenceId": s.MerchantReference,
		"amount": s.Amount.MinorUnits, "time": time.Now().UTC().Format(time.RFC3339),
		"invoice": map[string]any{"currency": s.Amount.Currency, "referenceId": s.MerchantReference},
	}})
	return body, "application/json", err
}

// PayrexxSampleAnswer is what the API answers for PayrexxSample's
// transaction (GET /v1.x/Transaction/{id}/): the webhook's transaction,
// wrapped as the API wraps what it returns.
func PayrexxSampleAnswer(s Sample) ([]byte, error) {
	webhook, _, err := PayrexxSample(s)
	if err != nil {
		return nil, err
	}
	var sample struct {
		Transaction json.RawMessage `json:"transaction"`
	}
	if err := json.Unmarshal(webhook, &sample); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"status": "success", "data": []json.RawMessage{sample.Transaction}})
}
