package normalize

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// MultiSafepay notifications carry, or make payhook fetch, one order as
// MultiSafepay's API describes it (GET /v1/json/orders/{order_id}, its
// "data"): order_id (the merchant's), transaction_id (MultiSafepay's),
// status (the order's) and financial_status (the transaction's), amount
// and amount_refunded in cents, currency, reason and reason_code.
// docs.multisafepay.com "Payment statuses" and "Get order".

// MultiSafepayNotification is what the query of a notification URL says:
// the order it is about, and when MultiSafepay sent it.
type MultiSafepayNotification struct {
	// OrderID is the transactionid parameter: the merchant's order_id
	// (docs: "In the notification url, the transaction_id should have the
	// same value as the order_id").
	OrderID string
	// Timestamp is the timestamp parameter; MultiSafepay always sends one.
	Timestamp string
}

// maxMultiSafepayQuery bounds the query read for the notification's
// parameters.
const maxMultiSafepayQuery = 2048

// MultiSafepayQuery reads transactionid and timestamp from a notification
// URL's query (rawQuery, bounded); each must appear at most once.
func MultiSafepayQuery(rawQuery string) (MultiSafepayNotification, error) {
	if len(rawQuery) > maxMultiSafepayQuery {
		return MultiSafepayNotification{}, fmt.Errorf("%w: a query over %d bytes", ErrMalformed, maxMultiSafepayQuery)
	}
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return MultiSafepayNotification{}, fmt.Errorf("%w: query: %v", ErrMalformed, err)
	}
	var n MultiSafepayNotification
	for _, p := range []struct {
		name string
		dst  *string
	}{{"transactionid", &n.OrderID}, {"timestamp", &n.Timestamp}} {
		switch v := values[p.name]; len(v) {
		case 0:
		case 1:
			*p.dst = v[0]
		default:
			return MultiSafepayNotification{}, fmt.Errorf("%w: %s given %d times", ErrMalformed, p.name, len(v))
		}
	}
	if n.OrderID == "" {
		return MultiSafepayNotification{}, fmt.Errorf("%w: transactionid in the query", ErrMissingField)
	}
	return n, nil
}

// multisafepayStatuses maps an order's status; "completed" depends on the
// transaction's financial_status (multisafepayStatus).
var multisafepayStatuses = map[string]Status{
	"initialized":      StatusPending,
	"uncleared":        StatusPending,
	"reserved":         StatusPending,
	"completed":        StatusCaptured,
	"shipped":          StatusCaptured,
	"declined":         StatusFailed,
	"cancelled":        StatusCancelled,
	"canceled":         StatusCancelled,
	"void":             StatusCancelled,
	"expired":          StatusExpired,
	"refunded":         StatusRefunded,
	"partial_refunded": StatusPartiallyRefunded,
	"chargedback":      StatusChargeback,
	"chargeback":       StatusChargeback,
}

// multisafepayStatus: a completed order whose transaction is still
// uncleared or initialized is authorized, awaiting capture (the payment
// methods' pages, e.g. "Betaal per Maand": completed/uncleared).
func multisafepayStatus(status, financialStatus string) (Status, bool) {
	if status == "completed" && (financialStatus == "uncleared" || financialStatus == "initialized") {
		return StatusAuthorized, true
	}
	s, ok := multisafepayStatuses[status]
	return s, ok
}

// MultiSafepay normalizes a MultiSafepay notification: the order fetched
// (in.Fetched, the legacy notification) or else the signed body.
func MultiSafepay(in *Input) (*Event, error) {
	raw, what := in.Fetched, "fetched order"
	if len(raw) == 0 {
		raw, what = in.Body, "notification"
	}
	order, doc, err := parseJSONObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	status := text(order.Get("status"))
	if status == "" {
		return nil, fmt.Errorf("%s: %w: status", what, ErrMissingField)
	}
	financial := text(order.Get("financial_status"))
	orderID := text(order.Get("order_id"))
	transactionID := text(order.Get("transaction_id"))
	if orderID == "" && transactionID == "" {
		return nil, fmt.Errorf("%s: %w: order_id", what, ErrMissingField)
	}
	ev := &Event{
		Provider: in.Provider, Object: ObjectPayment, ProviderStatus: status,
		MerchantReference: orderID, ProviderReference: transactionID, PaymentReference: transactionID,
		Test: in.Test,
	}
	if len(in.Fetched) > 0 {
		ev.Fetched, ev.Unverified = doc, in.Original
	} else {
		ev.Original = doc
	}
	if ev.PaymentReference == "" {
		ev.PaymentReference = orderID
	}
	s, known := multisafepayStatus(status, financial)
	ev.Status, ev.Unmapped = orUnknown(s, known), !known
	amount, currency := order.Get("amount"), text(order.Get("currency"))
	if amount.Exists() && amount.Type != gjson.Null {
		if amount.Type != gjson.Number && amount.Type != gjson.String {
			return nil, fmt.Errorf("%s: %w: amount is not a number", what, ErrMalformed)
		}
		a, err := ParseMinorUnits(text(amount), currency)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ev.Amount = &a
	}
	if ev.Status == StatusFailed {
		ev.Failure = &Failure{Code: text(order.Get("reason_code")), Message: truncate(text(order.Get("reason")), 200)}
	}
	// An order without amount_refunded has refunded nothing: written so,
	// a posted and a fetched order that differ only there are one state.
	refunded := text(order.Get("amount_refunded"))
	if refunded == "" {
		refunded = "0"
	}
	ev.NotificationID = MultiSafepayNotificationID(orderID, transactionID, status, financial, text(amount), refunded, currency)
	return ev, nil
}

// MultiSafepayNotificationID is the event's identity: the order, its
// transaction, its status and financial_status, its amount, refunded
// amount and currency, each followed by a NUL byte. Both ways of notifying
// (the signed POST of the order, the fetch after a GET) give one order
// state the same identity, so a state notified both ways reaches the shop
// once; a retry finds the same state, and any change in status or amount
// is another event. Neither MultiSafepay's timestamp (new on each resend)
// nor fields that change without a new state (modified, costs) take part.
func MultiSafepayNotificationID(orderID, transactionID, status, financialStatus, amount, refunded, currency string) string {
	var b strings.Builder
	for _, part := range []string{"multisafepay-v1", orderID, transactionID, status, financialStatus, amount, refunded, currency} {
		b.WriteString(part)
		b.WriteByte(0)
	}
	return b.String()
}

// multisafepaySampleStatuses are the order's status and financial_status
// a sample of each canonical status carries.
var multisafepaySampleStatuses = map[Status][2]string{
	StatusPending:           {"initialized", "initialized"},
	StatusAuthorized:        {"completed", "uncleared"},
	StatusCaptured:          {"completed", "completed"},
	StatusFailed:            {"declined", "declined"},
	StatusCancelled:         {"void", "cancelled"},
	StatusExpired:           {"expired", "expired"},
	StatusRefunded:          {"refunded", "completed"},
	StatusPartiallyRefunded: {"partial_refunded", "completed"},
	StatusChargeback:        {"chargedback", "completed"},
}

// MultiSafepaySample is the order of a sample notification, in the shape
// of the notification the PHP SDK's tests carry.
func MultiSafepaySample(s Sample) ([]byte, error) {
	st, ok := multisafepaySampleStatuses[s.Status]
	if !ok {
		return nil, fmt.Errorf("multisafepay samples know the statuses %s", sampleStatuses(multisafepaySampleStatuses))
	}
	reason, code := "Successful approval/completion", "0"
	if s.Status == StatusFailed {
		reason, code = "3DS Authentication Failed / Card authentication failed", "3001"
	}
	refunded := int64(0)
	switch s.Status {
	case StatusRefunded:
		refunded = s.Amount.MinorUnits
	case StatusPartiallyRefunded:
		refunded = s.Amount.MinorUnits / 2
	}
	return json.Marshal(multisafepayOrder{
		Amount: s.Amount.MinorUnits, AmountRefunded: refunded, Currency: s.Amount.Currency,
		Description: "Order " + s.MerchantReference, FinancialStatus: st[1], OrderID: s.MerchantReference,
		PaymentDetails: map[string]string{"type": "VISA"}, Reason: reason, ReasonCode: code, Status: st[0],
		TransactionID: s.ProviderReference,
	})
}

// multisafepayOrder is the sample's order, its fields in the API's order.
type multisafepayOrder struct {
	Amount          int64             `json:"amount"`
	AmountRefunded  int64             `json:"amount_refunded"`
	Currency        string            `json:"currency"`
	Description     string            `json:"description"`
	FinancialStatus string            `json:"financial_status"`
	OrderID         string            `json:"order_id"`
	PaymentDetails  map[string]string `json:"payment_details"`
	Reason          string            `json:"reason"`
	ReasonCode      string            `json:"reason_code"`
	Status          string            `json:"status"`
	TransactionID   string            `json:"transaction_id"`
}

// MultiSafepaySampleAnswer is what GET /v1/json/orders/{order_id} answers
// for the sample: {"success":true,"data":<the order>}.
func MultiSafepaySampleAnswer(s Sample) ([]byte, error) {
	order, err := MultiSafepaySample(s)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(`{"success":true,"data":`), order...), '}'), nil
}
