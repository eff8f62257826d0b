package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Swedbank Pay (formerly PayEx) callbacks are described in
// ../shared/providers.md ("Swedbank Pay"). They are unsigned and only name a
// resource; payhook fetches it, and the event is built from the fetched
// document (a payment order, or a transaction with its payment expanded).

// SwedbankPayClaim reads the resource a callback names, in any of the
// shapes the developer portal has shown: Checkout v2/v3.0 and v3.1
// ({"paymentOrder": {"id": …}}, printed for a while as "paymentorder"),
// and the legacy payment-instrument API ({"payment": {"id": "/psp/…"},
// "transaction": {"id": "/psp/…"}}, or the paths as bare strings). A
// payment order is preferred (as the documentation requires), then the
// transaction, then the payment. The path is not trusted here:
// the verifier checks it. It decodes in.Body first (see Decode), once.
func SwedbankPayClaim(in *Input) (kind, path string, err error) {
	if err := Decode(in); err != nil {
		return "", "", err
	}
	doc := gjson.ParseBytes(in.Original)
	for _, c := range [...]struct{ field, kind string }{
		{"paymentOrder", "paymentorder"}, {"paymentorder", "paymentorder"},
		{"transaction", "transaction"}, {"payment", "payment"},
	} {
		if id := resourceID(doc.Get(c.field)); id != "" {
			return c.kind, id, nil
		}
	}
	return "", "", fmt.Errorf("%w: paymentOrder, transaction or payment", ErrMissingField)
}

// resourceID reads {"id": "/psp/…"} or the bare "/psp/…" string.
func resourceID(r gjson.Result) string {
	if r.IsObject() {
		r = r.Get("id")
	}
	if r.Type == gjson.String {
		return r.Str
	}
	return ""
}

// swedbankOrderStatus maps a payment order's status. "Paid" is resolved by
// swedbankPaidStatus.
var swedbankOrderStatus = map[string]Status{
	"Initialized": StatusPending,
	"Pending":     StatusPending,
	"Failed":      StatusFailed,
	"Cancelled":   StatusCancelled, // authorization fully cancelled
	"Aborted":     StatusCancelled, // aborted by the merchant or the payer
	"Reversed":    StatusRefunded,  // fully reversed
}

// swedbankTransactionCompleted maps a transaction type whose state is Completed.
var swedbankTransactionCompleted = map[string]Status{
	"Authorization":  StatusAuthorized,
	"Capture":        StatusCaptured,
	"Sale":           StatusCaptured,
	"Reversal":       StatusRefunded,
	"Cancellation":   StatusCancelled,
	"Initialization": StatusPending,
	"Verification":   StatusVerified, // a card checked, no money moved
}

// swedbankTransactionStatus maps a transaction's type × state.
func swedbankTransactionStatus(transactionType, state string) (Status, bool) {
	completed, typeKnown := swedbankTransactionCompleted[transactionType]
	if !typeKnown {
		return StatusUnknown, false
	}
	reversal := transactionType == "Reversal"
	switch state {
	case "Completed":
		return completed, true
	case "Initialized", "Pending", "Ready", "AwaitingActivity":
		if reversal {
			return StatusRefundPending, true
		}
		return StatusPending, true
	case "Failed":
		if reversal {
			return StatusRefundFailed, true
		}
		return StatusFailed, true
	case "Aborted":
		if reversal {
			return StatusRefundFailed, true
		}
		return StatusCancelled, true
	}
	return StatusUnknown, false
}

// swedbankPaymentState maps a legacy payment's state.
var swedbankPaymentState = map[string]Status{
	"Ready": StatusPending, "Pending": StatusPending, "Failed": StatusFailed, "Aborted": StatusCancelled,
}

var errNothingFetched = errors.New("swedbankpay: no document was fetched from the API")

// SwedbankPay normalizes a Swedbank Pay callback from the fetched document.
// The callback itself is unverified: it only picks, among the financial
// transactions the API lists for the payment order, the one the callback
// is about.
func SwedbankPay(in *Input) (*Event, error) {
	if _, _, err := SwedbankPayClaim(in); err != nil {
		return nil, err
	}
	if len(in.Fetched) == 0 {
		return nil, errNothingFetched
	}
	doc, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched document: %w", err)
	}
	// The documents do not say which environment they come from; the API
	// they were fetched from does.
	ev := &Event{Provider: in.Provider, Object: ObjectPayment, Unverified: in.Original, Fetched: fetched, Test: in.Test}
	var amountField, currencyField gjson.Result
	operation := ""
	order := doc.Get("paymentOrder")
	if !order.IsObject() {
		order = doc.Get("paymentorder") // Checkout v2, as the portal prints it
	}
	switch transaction := doc.Get("transaction"); {
	case order.IsObject():
		operation = text(order.Get("operation"))
		ev.ProviderReference = text(order.Get("id"))
		// The payment order is the payment: its authorization, captures,
		// cancellations and reversals are its financial transactions.
		ev.PaymentReference = ev.ProviderReference
		ev.MerchantReference = firstText(order, "orderReference", "payeeInfo.orderReference", "payeeInfo.payeeReference", "paid.orderReference", "paid.payeeReference")
		currencyField = order.Get("currency")
		if ft, ok := swedbankClaimedTransaction(order, gjson.ParseBytes(in.Original)); ok {
			swedbankFinancialTransaction(ev, order, ft)
			amountField = ft.Get("amount")
			break
		}
		ev.ProviderStatus = text(order.Get("status"))
		ev.Time = swedbankTime(order)
		status, known := swedbankOrderStatus[ev.ProviderStatus]
		if ev.ProviderStatus == "Paid" {
			status, known = swedbankPaidStatus(order), true
		}
		if ev.ProviderStatus == "" {
			// Checkout v2 orders (and v3's first answers) have a state
			// (Ready, Pending, Failed, Aborted) as legacy payments do.
			ev.ProviderStatus = text(order.Get("state"))
			status, known = swedbankPaymentState[ev.ProviderStatus]
		}
		ev.Status, ev.Unmapped = orUnknown(status, known), !known
		// A partial capture, cancellation or reversal leaves the order's
		// status and amount as they were; what remains to do moves on.
		ev.Discriminator = swedbankRemaining(order)
		amountField = order.Get("amount")
	case transaction.IsObject():
		payment := doc.Get("payment")
		transactionType, state := text(transaction.Get("type")), text(transaction.Get("state"))
		ev.ProviderStatus = strings.TrimSpace(transactionType + " " + state)
		ev.ProviderReference = text(transaction.Get("id"))
		// The legacy payment-instrument API has no payment order: the
		// payment (expanded, or its bare /psp/… path) is what the
		// transaction belongs to.
		ev.PaymentReference = resourceID(payment)
		ev.MerchantReference = firstText(transaction, "payeeReference")
		if ev.MerchantReference == "" {
			ev.MerchantReference = firstText(payment, "payeeInfo.orderReference", "orderReference")
		}
		ev.Time = swedbankTime(transaction)
		status, known := swedbankTransactionStatus(transactionType, state)
		if status == StatusRefunded && swedbankReversible(payment) {
			status = StatusPartiallyRefunded
		}
		ev.Status, ev.Unmapped = orUnknown(status, known), !known
		if ev.Status == StatusFailed || ev.Status == StatusRefundFailed {
			ev.Failure = swedbankProblem(transaction.Get("problem"))
		}
		// A transaction is one notification per state: whether a reversal
		// reads as partial or full depends on later reversals too, so the
		// transaction and its state, not the status, make the id.
		ev.NotificationID = ev.ProviderReference + "#" + state
		amountField, currencyField = transaction.Get("amount"), payment.Get("currency")
		operation = text(payment.Get("operation"))
	case doc.Get("payment").IsObject():
		payment := doc.Get("payment")
		ev.ProviderStatus = text(payment.Get("state"))
		ev.ProviderReference = text(payment.Get("id"))
		ev.PaymentReference = ev.ProviderReference
		ev.MerchantReference = firstText(payment, "payeeInfo.orderReference", "orderReference", "payeeInfo.payeeReference")
		ev.Time = swedbankTime(payment)
		status, known := swedbankPaymentState[ev.ProviderStatus]
		ev.Status, ev.Unmapped = orUnknown(status, known), !known
		ev.Discriminator = swedbankRemaining(payment)
		amountField, currencyField = payment.Get("amount"), payment.Get("currency")
		operation = text(payment.Get("operation"))
	default:
		return nil, fmt.Errorf("fetched document: %w: paymentOrder, transaction or payment", ErrMissingField)
	}

	if ev.Amount, err = amountOf(text(amountField), text(currencyField), ParseMinorUnits); err != nil {
		return nil, err
	}
	swedbankOperation(ev, operation)
	return ev, nil
}

// swedbankOperation corrects what a payment order's operation changes: a
// Payout order's money goes to the payer (paid_out, never captured), and a
// Verify order moves no money (verified, and its amount, only shown to the
// payer, is no amount of the event). Purchase, Recur, UnscheduledPurchase
// and FinancingConsumer orders take money as their status says.
func swedbankOperation(ev *Event, operation string) {
	taken := ev.Status == StatusCaptured || ev.Status == StatusAuthorized
	switch {
	case operation == "Payout" && taken:
		ev.Status = StatusPaidOut
	case strings.HasPrefix(operation, "Verify") && taken:
		ev.Status, ev.Amount = StatusVerified, nil
	case ev.Status == StatusVerified:
		ev.Amount = nil
	}
}

// swedbankClaimedTransaction finds, among the financial transactions of
// the fetched order (expanded by the verifier), the one the callback names:
// by its number (Checkout v3.1's paymentOrder.number, v2/v3.0's
// transaction.number) or by the last segment of its id. The callback is
// unverified, but a transaction found in the fetched list is real: the
// callback can only choose which of the order's transactions to report.
func swedbankClaimedTransaction(order, callback gjson.Result) (gjson.Result, bool) {
	list := order.Get("financialTransactions.financialTransactionsList")
	if !list.IsArray() {
		return gjson.Result{}, false
	}
	var numbers []string
	for _, path := range [...]string{"transaction.number", "paymentOrder.number"} {
		if n := text(callback.Get(path)); n != "" {
			numbers = append(numbers, n)
		}
	}
	claimedID := resourceID(callback.Get("transaction"))
	var found gjson.Result
	list.ForEach(func(_, ft gjson.Result) bool {
		number, id := text(ft.Get("number")), text(ft.Get("id"))
		for _, n := range numbers {
			if number != "" && number == n {
				found = ft
				return false
			}
		}
		if claimedID != "" && id != "" && lastSegment(id) == lastSegment(claimedID) {
			found = ft
			return false
		}
		return true
	})
	return found, found.IsObject()
}

func lastSegment(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// swedbankFinancialTransactionStatus maps a financial transaction's type;
// a Reversal is resolved by swedbankFinancialTransaction.
var swedbankFinancialTransactionStatus = map[string]Status{
	"Capture":       StatusCaptured,
	"Sale":          StatusCaptured,
	"Cancellation":  StatusCancelled,
	"Authorization": StatusAuthorized,
	"Reversal":      StatusRefunded,
}

// swedbankFinancialTransaction makes ev the event of one financial
// transaction of order: its type, its own amount, its time. A reversal that
// leaves something to reverse is partially_refunded.
func swedbankFinancialTransaction(ev *Event, order, ft gjson.Result) {
	kind := text(ft.Get("type"))
	ev.ProviderStatus = strings.TrimSpace(text(order.Get("status")) + " " + kind)
	status, known := swedbankFinancialTransactionStatus[kind]
	if status == StatusRefunded && text(order.Get("status")) != "Reversed" && swedbankReversible(order) {
		status = StatusPartiallyRefunded
	}
	ev.Status, ev.Unmapped = orUnknown(status, known), !known
	ev.Time = swedbankTime(ft)
	if ref := text(ft.Get("payeeReference")); ev.MerchantReference == "" {
		ev.MerchantReference = ref
	}
	// A financial transaction never changes once made: its id is the
	// notification's. (Whether a reversal reads as partial or full can
	// change with later reversals; the id must not.)
	ev.NotificationID = text(ft.Get("id"))
}

// swedbankReversible reports whether a payment or order still has an amount
// left to reverse.
func swedbankReversible(resource gjson.Result) bool {
	remaining := text(resource.Get("remainingReversalAmount"))
	return remaining != "" && remaining != "0"
}

// swedbankRemaining is the Discriminator of an order or payment reported as
// a whole: the amounts it still has to capture, cancel and reverse. Empty
// when the document gives none.
func swedbankRemaining(resource gjson.Result) string {
	capture, cancel, reverse := text(resource.Get("remainingCaptureAmount")), text(resource.Get("remainingCancellationAmount")), text(resource.Get("remainingReversalAmount"))
	if capture == "" && cancel == "" && reverse == "" {
		return ""
	}
	return "remaining:" + capture + "/" + cancel + "/" + reverse
}

// swedbankPaidStatus resolves "Paid": the payer completed, which on a Sale
// order means captured and on an Authorization order means authorized until
// it is captured. Checkout v3.1 orders carry no transactionType; there an
// amount still to capture means authorized.
func swedbankPaidStatus(order gjson.Result) Status {
	remaining := order.Get("remainingCaptureAmount")
	toCapture := remaining.Exists() && text(remaining) != "0" && text(remaining) != ""
	switch text(order.Get("transactionType")) {
	case "Sale":
		return StatusCaptured
	case "Authorization":
		if remaining.Exists() && !toCapture {
			return StatusCaptured
		}
		return StatusAuthorized
	}
	if toCapture {
		return StatusAuthorized
	}
	return StatusCaptured
}

// swedbankProblem reads an RFC 7807 problem document.
func swedbankProblem(problem gjson.Result) *Failure {
	if !problem.IsObject() {
		return nil
	}
	f := &Failure{Code: firstText(problem, "type", "title"), Message: firstText(problem, "detail", "title")}
	if first := problem.Get("problems.0"); first.IsObject() && f.Message == "" {
		f.Message = text(first.Get("description"))
	}
	return f
}

// swedbankTime is the resource's last update, else its creation.
func swedbankTime(resource gjson.Result) time.Time {
	for _, field := range []string{"updated", "created"} {
		if t, err := time.Parse(time.RFC3339Nano, text(resource.Get(field))); err == nil {
			return t
		}
	}
	return time.Time{}
}

func orUnknown(s Status, known bool) Status {
	if !known {
		return StatusUnknown
	}
	return s
}

// SwedbankPaySample fabricates a Checkout v3.1 callback. Swedbank Pay
// callbacks carry no status: payhook fetches the payment order, so the
// sample only names one (ProviderReference becomes its id).
func SwedbankPaySample(s Sample) ([]byte, string, error) {
	body, err := json.Marshal(map[string]any{
		"orderReference": s.MerchantReference,
		"paymentOrder":   map[string]any{"id": "/psp/paymentorders/" + s.ProviderReference, "instrument": "paymentorders", "number": 12345678},
	})
	return body, "application/json", err
}

// swedbankSampleOrderStatus is the payment order's status a sample's
// status makes; "Paid" with something left to capture is authorized.
var swedbankSampleOrderStatus = map[Status]string{
	StatusPending: "Initialized", StatusAuthorized: "Paid", StatusCaptured: "Paid",
	StatusFailed: "Failed", StatusCancelled: "Cancelled", StatusRefunded: "Reversed",
}

// SwedbankPaySampleOrder is the payment order GET
// /psp/paymentorders/{id} answers for SwedbankPaySample's callback, in
// the shape of a Checkout v3.1 order, at its path.
func SwedbankPaySampleOrder(s Sample) (path string, doc []byte, err error) {
	status, ok := swedbankSampleOrderStatus[s.Status]
	if !ok {
		return "", nil, fmt.Errorf("swedbankpay samples know the statuses %s", sampleStatuses(swedbankSampleOrderStatus))
	}
	path = "/psp/paymentorders/" + s.ProviderReference
	order := map[string]any{
		"id": path, "operation": "Purchase", "status": status, "currency": s.Amount.Currency, "amount": s.Amount.MinorUnits,
		"vatAmount": 0, "description": "payhook sample", "orderReference": s.MerchantReference,
		"created": "2026-11-20T10:34:47.000Z", "updated": "2026-11-20T10:34:50.000Z",
	}
	switch s.Status {
	case StatusAuthorized:
		order["remainingCaptureAmount"], order["remainingCancellationAmount"] = s.Amount.MinorUnits, s.Amount.MinorUnits
	case StatusCaptured:
		order["remainingCaptureAmount"], order["remainingReversalAmount"] = 0, s.Amount.MinorUnits
	}
	doc, err = json.Marshal(map[string]any{"paymentOrder": order})
	return path, doc, err
}
