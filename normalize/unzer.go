package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Unzer's webhooks (docs.unzer.com, "Notifications") are unsigned JSON,
// {"event", "publicKey", "retrieveUrl", "paymentId"}, posted as text/plain
// or JSON. payhook fetches the payment they name (GET /v1/payments/{id})
// and builds the event from the answer; the webhook's event name only
// chooses among the statuses the fetched payment leaves open.

// UnzerNotification is what an Unzer webhook claims. Nothing of it is
// trusted but as a pointer to the payment to fetch.
type UnzerNotification struct {
	// Event is the event's name, one of unzerEvents.
	Event string
	// PublicKey is the public key of the merchant the webhook is for.
	PublicKey string
	// PaymentID is the payment the webhook is about: its paymentId, or the
	// payment its retrieveUrl's path names.
	PaymentID string
}

// unzerEvents are the event names Unzer sends (docs.unzer.com "Supported
// webhook events"; unzerdev/php-sdk WebhookEvents, unzerdev/java-sdk
// WebhookEventEnum). A name outside the list is refused: the name is part
// of the event id, and a forger must not mint ids without end.
var unzerEvents = func() map[string]bool {
	m := map[string]bool{"chargeback": true, "types": true, "shipment": true, "payout.succeeded": true, "payout.failed": true}
	// The families, which a webhook is registered for, in case one is
	// sent as a name of its own.
	for _, family := range []string{"authorize", "preauthorize", "charge", "payment", "payout", "customer", "basket"} {
		m[family] = true
	}
	for _, kind := range []string{"authorize", "preauthorize", "charge"} {
		for _, outcome := range []string{"succeeded", "failed", "pending", "expired", "canceled", "resumed"} {
			m[kind+"."+outcome] = true
		}
	}
	for _, state := range []string{"pending", "completed", "canceled", "partly", "payment_review", "chargeback"} {
		m["payment."+state] = true
	}
	for _, name := range []string{"customer.created", "customer.deleted", "customer.updated", "basket.created", "basket.updated", "basket.used"} {
		m[name] = true
	}
	return m
}()

// maxUnzerField bounds the webhook's strings: real ones are under 100 bytes.
const maxUnzerField = 256

// UnzerClaim reads what an Unzer webhook claims. It decodes in.Body first
// (see Decode), once. The payment id is not checked here: the verifier
// accepts only the ids it will ever request.
func UnzerClaim(in *Input) (UnzerNotification, error) {
	if err := Decode(in); err != nil {
		return UnzerNotification{}, err
	}
	doc := gjson.ParseBytes(in.Original)
	var n UnzerNotification
	for _, f := range []struct {
		name   string
		target *string
	}{{"event", &n.Event}, {"publicKey", &n.PublicKey}, {"paymentId", &n.PaymentID}} {
		value := doc.Get(f.name)
		if value.Exists() && value.Type != gjson.String && value.Type != gjson.Null {
			return UnzerNotification{}, fmt.Errorf("%w: %s is not a string", ErrMalformed, f.name)
		}
		if len(value.Str) > maxUnzerField {
			return UnzerNotification{}, fmt.Errorf("%w: %s longer than %d bytes", ErrMalformed, f.name, maxUnzerField)
		}
		*f.target = value.Str
	}
	switch {
	case n.Event == "":
		return UnzerNotification{}, fmt.Errorf("%w: event", ErrMissingField)
	case !unzerEvents[n.Event]:
		return UnzerNotification{}, fmt.Errorf("%w: event %q is none of Unzer's", ErrMalformed, truncate(n.Event, 40))
	case n.PublicKey == "":
		return UnzerNotification{}, fmt.Errorf("%w: publicKey", ErrMissingField)
	}
	retrieve := doc.Get("retrieveUrl")
	if len(retrieve.Str) > 2*maxUnzerField {
		return UnzerNotification{}, fmt.Errorf("%w: retrieveUrl longer than %d bytes", ErrMalformed, 2*maxUnzerField)
	}
	named := unzerRetrievedPayment(retrieve.Str)
	switch {
	case n.PaymentID == "":
		n.PaymentID = named
	case named != "" && named != n.PaymentID:
		return UnzerNotification{}, fmt.Errorf("%w: paymentId and retrieveUrl name different payments", ErrMalformed)
	}
	if n.PaymentID == "" {
		if unzerNoPaymentFamily(n.Event) {
			return UnzerNotification{}, fmt.Errorf("%w: Unzer's event %s", ErrNotAPayment, n.Event)
		}
		return UnzerNotification{}, fmt.Errorf("%w: paymentId (event %s)", ErrMissingField, n.Event)
	}
	return n, nil
}

// unzerNoPaymentFamily tells the events that concern no payment: a payment
// type stored (types), a customer or a basket created, updated or deleted.
func unzerNoPaymentFamily(event string) bool {
	family, _, _ := strings.Cut(event, ".")
	return family == "types" || family == "customer" || family == "basket"
}

// unzerRetrievedPayment is the payment a retrieveUrl's path names
// (…/v1/payments/s-pay-1/charges/s-chg-1 → s-pay-1), "" for none. Only the
// path is read: its host is never asked anything.
func unzerRetrievedPayment(retrieveURL string) string {
	if retrieveURL == "" {
		return ""
	}
	u, err := url.Parse(retrieveURL)
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(u.Path, "/payments/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// unzerStates maps a payment's state id to its name (docs.unzer.com
// "Payment states"; unzerdev/php-sdk PaymentState), for an answer that
// gives only the id.
var unzerStates = map[string]string{
	"0": "pending", "1": "completed", "2": "canceled", "3": "partly", "4": "payment review", "5": "chargeback", "6": "create",
}

// unzerAmounts are a payment's amounts (its "amount" object) in minor units.
type unzerAmounts struct {
	total, charged, canceled, remaining int64
	currency                            string
}

// unzerTransactions is what a payment's transaction list says.
type unzerTransactions struct {
	listed                                 bool // the answer lists them
	authorized, charged, refunded, paidOut bool // a successful one of the kind
	errored                                bool // one failed
	digest                                 string
}

// maxUnzerTransactions bounds the transaction list read.
const maxUnzerTransactions = 1000

// Unzer normalizes an Unzer webhook from the payment fetched for it.
func Unzer(in *Input) (*Event, error) {
	claim, err := UnzerClaim(in)
	if err != nil {
		return nil, err
	}
	if len(in.Fetched) == 0 {
		return nil, fmt.Errorf("unzer: no payment was fetched from the API")
	}
	payment, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched payment: %w", err)
	}
	id := text(payment.Get("id"))
	if id == "" {
		return nil, fmt.Errorf("fetched payment: %w: id", ErrMissingField)
	}
	state := text(payment.Get("state.name"))
	if state == "" {
		state = unzerStates[text(payment.Get("state.id"))]
	}
	if state == "" {
		return nil, fmt.Errorf("fetched payment: %w: state", ErrMissingField)
	}
	amounts, err := unzerPaymentAmounts(payment)
	if err != nil {
		return nil, err
	}
	transactions, err := unzerPaymentTransactions(payment.Get("transactions"))
	if err != nil {
		return nil, err
	}
	ev := &Event{
		Provider: in.Provider, Object: ObjectPayment, ProviderStatus: state,
		ProviderReference: id, PaymentReference: id, MerchantReference: text(payment.Get("orderId")),
		Fetched: fetched, Unverified: in.Original,
	}
	// Sandbox ids start with s-, production ids with p- (docs.unzer.com
	// "Authentication": s-priv/p-priv keys).
	switch id[0] {
	case 's':
		ev.Test = new(bool)
		*ev.Test = true
	case 'p':
		ev.Test = new(bool)
	}
	status, known := unzerStatus(state, claim.Event, amounts, transactions)
	ev.Status, ev.Unmapped = orUnknown(status, known), !known
	if amounts != nil {
		ev.Amount = &Amount{MinorUnits: unzerEventAmount(ev.Status, *amounts), Currency: amounts.currency}
	}
	// The event id: the webhook's event name, the payment, and the payment
	// as fetched (its state, its four amounts, its transactions). A retry
	// finds the payment as it was and keeps the id; a webhook that finds
	// the payment moved on is a new event, and so is another event name
	// about the same state (Unzer sends charge.succeeded and
	// payment.completed for one charge).
	ev.NotificationID = unzerNotificationID(claim.Event, id, state, amounts, transactions)
	return ev, nil
}

// unzerPaymentAmounts reads the amount object (decimal strings such as
// "100.0000") in the payment's currency; nil when the answer has none.
func unzerPaymentAmounts(payment gjson.Result) (*unzerAmounts, error) {
	amount := payment.Get("amount")
	if !amount.IsObject() {
		return nil, nil
	}
	currency := strings.ToUpper(text(payment.Get("currency")))
	if currency == "" {
		return nil, fmt.Errorf("fetched payment: %w: currency", ErrMissingField)
	}
	// Checked here, not only by the amounts' parser: an amount object
	// without a value parses nothing.
	if _, ok := MinorUnitExponent(currency); !ok {
		return nil, fmt.Errorf("fetched payment: %w: %q", ErrUnknownCurrency, truncate(currency, 8))
	}
	a := &unzerAmounts{currency: currency}
	for _, f := range []struct {
		name   string
		target *int64
	}{{"total", &a.total}, {"charged", &a.charged}, {"canceled", &a.canceled}, {"remaining", &a.remaining}} {
		value := text(amount.Get(f.name))
		if value == "" {
			continue // absent: zero
		}
		parsed, err := ParseDecimalAmount(value, currency)
		if err != nil {
			return nil, fmt.Errorf("fetched payment: amount.%s: %w", f.name, err)
		}
		*f.target = parsed.MinorUnits
	}
	return a, nil
}

// unzerPaymentTransactions reads the payment's transaction list: which
// kinds succeeded (unzerdev/php-sdk TransactionTypes: authorize,
// preauthorize, charge, cancel-authorize, cancel-charge, chargeback,
// shipment, payout; TransactionStatus: success, pending, error, resumed),
// and a digest of the list for the event id.
func unzerPaymentTransactions(list gjson.Result) (unzerTransactions, error) {
	var t unzerTransactions
	if !list.IsArray() {
		return t, nil
	}
	t.listed = true
	digest := sha256.New()
	n := 0
	var err error
	list.ForEach(func(_, tx gjson.Result) bool {
		if n++; n > maxUnzerTransactions {
			err = fmt.Errorf("fetched payment: %w: more than %d transactions", ErrMalformed, maxUnzerTransactions)
			return false
		}
		kind, status := text(tx.Get("type")), text(tx.Get("status"))
		for _, part := range []string{kind, status, text(tx.Get("amount")), text(tx.Get("date"))} {
			digest.Write([]byte(part))
			digest.Write([]byte{0})
		}
		if status == "error" {
			t.errored = true
		}
		if status != "success" {
			return true
		}
		switch kind {
		case "authorize", "preauthorize":
			t.authorized = true
		case "charge":
			t.charged = true
		case "cancel-charge":
			t.refunded = true
		case "payout":
			t.paidOut = true
		}
		return true
	})
	t.digest = hex.EncodeToString(digest.Sum(nil)[:12]) + "/" + strconv.Itoa(n)
	return t, err
}

// unzerStatus maps the fetched payment's state (docs.unzer.com "Payment
// states") and transactions. The webhook's event name, which nobody signed,
// decides only where the fetched payment leaves the choice open: between
// failed, expired and cancelled for a payment that never took money, and,
// when the answer lists no transactions, between a refund (a charge
// canceled) and a reversal (an authorization canceled).
func unzerStatus(state, event string, amounts *unzerAmounts, t unzerTransactions) (Status, bool) {
	kind, outcome, _ := strings.Cut(event, ".")
	switch state {
	case "pending":
		// An authorization leaves the payment pending until it is charged.
		if t.authorized && !t.charged {
			return StatusAuthorized, true
		}
		return StatusPending, true
	case "create": // a payment page initiated
		return StatusPending, true
	case "completed", "partly":
		// "partly": part of the total charged; either way money was taken.
		if state == "completed" && t.paidOut && !t.charged {
			return StatusPaidOut, true
		}
		refunded := t.refunded
		if !t.listed {
			refunded = kind == "charge" && outcome == "canceled" && amounts != nil && amounts.canceled > 0
		}
		if refunded {
			return StatusPartiallyRefunded, true
		}
		return StatusCaptured, true
	case "payment review":
		// The customer paid more than due; Unzer's own shop plugins treat
		// the payment as paid (unzerdev/shopware6 AbstractTransitionMapper).
		return StatusCaptured, true
	case "chargeback":
		return StatusChargeback, true
	case "canceled":
		// Fully reversed or refunded, or never completed.
		switch {
		case t.charged, !t.listed && kind == "charge" && outcome == "canceled":
			return StatusRefunded, true
		case t.authorized, !t.listed && (kind == "authorize" || kind == "preauthorize") && outcome == "canceled":
			return StatusCancelled, true
		case outcome == "expired":
			return StatusExpired, true
		case outcome == "failed", t.errored:
			return StatusFailed, true
		}
		return StatusCancelled, true
	}
	return StatusUnknown, false
}

// unzerEventAmount is the amount an event reports: what was taken for a
// capture, what was canceled (refunded, reversed, charged back) for a
// refund, cancellation or chargeback, else the payment's total.
func unzerEventAmount(status Status, a unzerAmounts) int64 {
	switch status {
	case StatusCaptured:
		if a.charged > 0 {
			return a.charged
		}
	case StatusRefunded, StatusPartiallyRefunded, StatusChargeback, StatusCancelled:
		if a.canceled > 0 {
			return a.canceled
		}
	}
	return a.total
}

// unzerNotificationID is the event's identity: event, payment, state,
// amounts and transactions, each followed by a NUL byte.
func unzerNotificationID(event, id, state string, a *unzerAmounts, t unzerTransactions) string {
	var b strings.Builder
	for _, part := range []string{"unzer-v1", event, id, state} {
		b.WriteString(part)
		b.WriteByte(0)
	}
	if a != nil {
		for _, v := range []int64{a.total, a.charged, a.canceled, a.remaining} {
			b.WriteString(strconv.FormatInt(v, 10))
			b.WriteByte(0)
		}
		b.WriteString(a.currency)
	}
	b.WriteByte(0)
	b.WriteString(t.digest)
	return b.String()
}

// UnzerSamplePublicKey is the public key of the samples `caddy payhook
// send unzer` fabricates, unless --secret names the route's.
const UnzerSamplePublicKey = "s-pub-payhook-sample"

// unzerSampleEvents is the event name a sample of each status carries.
var unzerSampleEvents = map[Status]string{
	StatusPending: "payment.pending", StatusAuthorized: "authorize.succeeded", StatusCaptured: "charge.succeeded",
	StatusPartiallyRefunded: "charge.canceled", StatusRefunded: "charge.canceled", StatusCancelled: "authorize.canceled",
	StatusChargeback: "chargeback", StatusFailed: "charge.failed", StatusExpired: "charge.expired",
}

// UnzerSamplePaymentID is the sample's payment id: s-pay- and the sample's
// reference, unless it is a payment id already.
func UnzerSamplePaymentID(s Sample) string {
	if strings.HasPrefix(s.ProviderReference, "s-pay-") || strings.HasPrefix(s.ProviderReference, "p-pay-") {
		return s.ProviderReference
	}
	return "s-pay-" + strings.ToLower(s.ProviderReference)
}

// UnzerSample fabricates a webhook naming the sample's payment, which must
// exist where payhook fetches it (a sandbox payment, or the demo's
// stand-in of the API: UnzerSamplePayment).
func UnzerSample(s Sample, publicKey string) ([]byte, string, error) {
	event, ok := unzerSampleEvents[s.Status]
	if !ok {
		return nil, "", fmt.Errorf("unzer samples know the statuses %s", sampleStatuses(unzerSampleEvents))
	}
	id := UnzerSamplePaymentID(s)
	body, err := json.Marshal(map[string]string{
		"event": event, "publicKey": publicKey, "retrieveUrl": "https://sbx-api.unzer.com/v1/payments/" + id, "paymentId": id,
	})
	return body, "application/json", err
}

// UnzerSamplePayment is the payment GET /v1/payments/{id} answers for the
// sample, in the shape of docs.unzer.com's "Check payment details".
func UnzerSamplePayment(s Sample) ([]byte, error) {
	if _, ok := unzerSampleEvents[s.Status]; !ok {
		return nil, fmt.Errorf("unzer samples know the statuses %s", sampleStatuses(unzerSampleEvents))
	}
	exp, ok := MinorUnitExponent(s.Amount.Currency)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCurrency, s.Amount.Currency)
	}
	id := UnzerSamplePaymentID(s)
	total := s.Amount.MinorUnits
	half := total / 2
	decimal := func(v int64) string { return formatDecimal(v, exp) }
	tx := func(kind, status, path string, v int64) map[string]string {
		return map[string]string{"date": "2026-11-20 10:34:47", "type": kind, "status": status,
			"url": "https://sbx-api.unzer.com/v1/payments/" + id + path, "amount": decimal(v)}
	}
	authorize := tx("authorize", "success", "/authorize/s-aut-1", total)
	charge := tx("charge", "success", "/charges/s-chg-1", total)
	var stateID int
	var charged, canceled, remaining int64
	var transactions []map[string]string
	switch s.Status {
	case StatusPending:
		stateID, remaining = 0, total
		transactions = []map[string]string{tx("charge", "pending", "/charges/s-chg-1", total)}
	case StatusAuthorized:
		stateID, remaining = 0, total
		transactions = []map[string]string{authorize}
	case StatusCaptured:
		stateID, charged = 1, total
		transactions = []map[string]string{charge}
	case StatusPartiallyRefunded:
		stateID, charged, canceled = 1, total-half, half
		transactions = []map[string]string{charge, tx("cancel-charge", "success", "/charges/s-chg-1/cancels/s-cnl-1", half)}
	case StatusRefunded:
		stateID, canceled = 2, total
		transactions = []map[string]string{charge, tx("cancel-charge", "success", "/charges/s-chg-1/cancels/s-cnl-1", total)}
	case StatusCancelled:
		stateID, canceled = 2, total
		transactions = []map[string]string{authorize, tx("cancel-authorize", "success", "/authorize/s-aut-1/cancels/s-cnl-1", total)}
	case StatusChargeback:
		stateID, canceled = 5, total
		transactions = []map[string]string{charge, tx("chargeback", "success", "/charges/s-chg-1/chargebacks/s-cbk-1", total)}
	case StatusFailed, StatusExpired:
		stateID = 2
		transactions = []map[string]string{tx("charge", "error", "/charges/s-chg-1", total)}
	}
	return json.Marshal(map[string]any{
		"id":    id,
		"state": map[string]any{"id": stateID, "name": unzerStates[strconv.Itoa(stateID)]},
		"amount": map[string]string{
			"total": decimal(total), "charged": decimal(charged), "canceled": decimal(canceled), "remaining": decimal(remaining),
		},
		"currency":     s.Amount.Currency,
		"orderId":      s.MerchantReference,
		"resources":    map[string]string{"customerId": "", "paymentId": id, "basketId": "", "metadataId": "", "typeId": "s-crd-sample"},
		"transactions": transactions,
	})
}
