package normalize

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// Braintree's webhooks (developer.paypal.com/braintree/docs/guides/webhooks
// and reference/general/webhooks) are a form of bt_signature and bt_payload,
// the base64 of an XML notification:
//
//	<notification>
//	  <timestamp type="datetime">2026-11-20T10:34:47Z</timestamp>
//	  <kind>transaction_settled</kind>
//	  <subject><transaction>…</transaction></subject>
//	</notification>
//
// The kind says what happened; the subject is a snapshot of the object it
// happened to (a transaction, dispute, subscription, disbursement, local
// payment, …), as the API returns it. Amounts are decimal text in the major
// unit ("10.00") beside a currency-iso-code.

// braintreeKind is how a notification kind maps.
type braintreeKind struct {
	object Object
	// status is the canonical status; for the transaction kinds, that of a
	// sale, credit giving the status of a credit (a refund).
	status, credit Status
}

var braintreeKinds = map[string]braintreeKind{
	// Sent for ACH and SEPA Direct Debit sales and refunds ("Transaction"
	// webhooks): a refund is a transaction of type credit.
	"transaction_settled":             {ObjectPayment, StatusCaptured, StatusRefunded},
	"transaction_settlement_declined": {ObjectPayment, StatusFailed, StatusRefundFailed},
	"refund_failed":                   {ObjectPayment, StatusRefundFailed, StatusRefundFailed},

	"dispute_opened":        {ObjectPayment, StatusChargeback, ""},
	"dispute_under_review":  {ObjectPayment, StatusChargeback, ""},
	"dispute_disputed":      {ObjectPayment, StatusChargeback, ""},
	"dispute_accepted":      {ObjectPayment, StatusChargeback, ""},
	"dispute_auto_accepted": {ObjectPayment, StatusChargeback, ""},
	"dispute_expired":       {ObjectPayment, StatusChargeback, ""},
	"dispute_lost":          {ObjectPayment, StatusChargeback, ""},
	"dispute_won":           {ObjectPayment, StatusChargebackReversed, ""},

	// "The customer has approved the instant local payment and the purchase
	// amount has been withdrawn from their account"; funded: a non-instant
	// one completed; reversed: refunded to the customer.
	"local_payment_completed": {ObjectPayment, StatusCaptured, ""},
	"local_payment_funded":    {ObjectPayment, StatusCaptured, ""},
	"local_payment_reversed":  {ObjectPayment, StatusRefunded, ""},
	"local_payment_expired":   {ObjectPayment, StatusExpired, ""},

	"subscription_charged_successfully":   {ObjectSubscription, StatusActive, ""},
	"subscription_charged_unsuccessfully": {ObjectSubscription, StatusOverdue, ""},
	"subscription_went_active":            {ObjectSubscription, StatusActive, ""},
	"subscription_trial_ended":            {ObjectSubscription, StatusActive, ""},
	"subscription_billing_skipped":        {ObjectSubscription, StatusActive, ""},
	"subscription_went_past_due":          {ObjectSubscription, StatusOverdue, ""},
	"subscription_canceled":               {ObjectSubscription, StatusCancelled, ""},
	"subscription_expired":                {ObjectSubscription, StatusCancelled, ""},
}

// braintreeOtherKinds are Braintree's kinds that tell of no payment's or
// subscription's state (braintree_node lib/braintree/webhook_notification.js
// Kind): forwarded as unknown without a warning. A disbursement is
// Braintree paying the merchant, not a payment of the shop's.
var braintreeOtherKinds = map[string]bool{
	"check": true, "disbursement": true, "transaction_disbursed": true, "transaction_retried": true, "transaction_reviewed": true,
	"account_updater_daily_report": true, "connected_merchant_paypal_status_changed": true, "connected_merchant_status_transitioned": true,
	"granted_payment_instrument_update": true, "granted_payment_method_revoked": true, "grantor_updated_granted_payment_method": true,
	"recipient_updated_granted_payment_method": true, "oauth_access_revoked": true, "partner_merchant_connected": true,
	"partner_merchant_disconnected": true, "partner_merchant_declined": true, "payment_method_customer_data_updated": true,
	"payment_method_revoked_by_customer": true, "sub_merchant_account_approved": true, "sub_merchant_account_declined": true,
}

// Braintree normalizes a Braintree webhook, whose signature has been
// checked: the form's bt_payload is decoded (base64, then the XML, bounded)
// into in.Original, and the event built from it.
//
// Its id (see Event.ID) is built from the subject's id (or, for a subject
// without one, the payload's SHA-256), the kind, the canonical status, the
// amount, and the notification's timestamp as Braintree wrote it, with the
// charged transaction's id for a subscription's: Braintree's retries resend
// the notification with its timestamp, which is when it was triggered,
// while two notifications differ in their kind, subject, charge, or time.
func Braintree(in *Input) (*Event, error) {
	if err := DecodeBraintree(in); err != nil {
		return nil, err
	}
	n := gjson.GetBytes(in.Original, "notification")
	kind, timestamp := text(n.Get("kind")), text(n.Get("timestamp"))
	if kind == "" || timestamp == "" {
		return nil, fmt.Errorf("%w: notification kind and timestamp", ErrMissingField)
	}
	subject, subjectName := braintreeSubject(n.Get("subject"))
	ev := &Event{
		Provider:       in.Provider,
		Object:         ObjectPayment,
		Status:         StatusUnknown,
		ProviderStatus: kind,
		Original:       in.Original,
		Time:           rfc3339(timestamp),
		Discriminator:  "timestamp:" + timestamp,
	}
	mapping, known := braintreeKinds[kind]
	ev.Unmapped = !known && !braintreeOtherKinds[kind]
	if known {
		ev.Object, ev.Status = mapping.object, mapping.status
	}

	var amount, currency string
	switch subjectName {
	case "transaction":
		ev.ProviderReference = text(subject.Get("id"))
		ev.MerchantReference = text(subject.Get("order-id"))
		ev.PaymentReference = ev.ProviderReference
		if text(subject.Get("type")) == "credit" || kind == "refund_failed" {
			// A refund: the payment is the transaction it refunds.
			ev.PaymentReference = text(subject.Get("refunded-transaction-id"))
			if known {
				ev.Status = mapping.credit
			}
		}
		amount, currency = text(subject.Get("amount")), text(subject.Get("currency-iso-code"))
		if ev.Status == StatusFailed || ev.Status == StatusRefundFailed {
			ev.Failure = braintreeFailure(subject)
		}
	case "dispute":
		ev.ProviderReference = text(subject.Get("id"))
		ev.PaymentReference = text(subject.Get("transaction.id"))
		ev.MerchantReference = text(subject.Get("transaction.order-id"))
		amount, currency = firstText(subject, "amount-disputed", "amount"), text(subject.Get("currency-iso-code"))
	case "disbursement":
		ev.ProviderReference = text(subject.Get("id"))
		amount, currency = text(subject.Get("amount")), text(subject.Get("merchant-account.currency-iso-code"))
	case "subscription":
		ev.ProviderReference = text(subject.Get("id"))
		// The subscription's transactions, newest first: a charge
		// notification's is the first.
		if charge := subject.Get("transactions.0"); charge.IsObject() && (kind == "subscription_charged_successfully" || kind == "subscription_charged_unsuccessfully") {
			ev.PaymentReference = text(charge.Get("id"))
			ev.MerchantReference = text(charge.Get("order-id"))
			ev.Discriminator += "\x00transaction:" + ev.PaymentReference
			amount, currency = text(charge.Get("amount")), text(charge.Get("currency-iso-code"))
		}
	case "local-payment", "local-payment-funded", "local-payment-reversed", "local-payment-expired":
		// The payment-id ties a local payment's notifications together;
		// the transaction, when there is one, is the money.
		transaction := subject.Get("transaction")
		ev.PaymentReference = text(subject.Get("payment-id"))
		ev.ProviderReference = cmp.Or(text(transaction.Get("id")), ev.PaymentReference)
		ev.MerchantReference = text(transaction.Get("order-id"))
		amount, currency = text(transaction.Get("amount")), text(transaction.Get("currency-iso-code"))
	default:
		ev.ProviderReference = text(subject.Get("id"))
	}
	// A subject without a currency (a subscription's transactions in
	// Braintree's own samples) leaves the amount out rather than refuse a
	// genuine notification.
	if currency != "" {
		var err error
		if ev.Amount, err = amountOf(amount, currency, ParseDecimalAmount); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// DecodeBraintree sets in.Original to the notification of a Braintree
// form as JSON (DecodeBraintreeXML), once.
func DecodeBraintree(in *Input) error {
	if in.Original != nil {
		return nil
	}
	_, payload, err := verify.ParseBraintreeForm(in.Body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	doc, err := verify.DecodeBraintreePayload(payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	original, err := DecodeBraintreeXML(doc)
	if err != nil {
		return err
	}
	if !gjson.GetBytes(original, "notification").IsObject() {
		return fmt.Errorf("%w: not a Braintree notification", ErrMalformed)
	}
	in.Original = original
	return nil
}

// braintreeSubject returns the object of a notification's subject and its
// element name ("transaction", "dispute", …); an error answer of the API
// (api-error-response) is looked into, as the SDKs do.
func braintreeSubject(subject gjson.Result) (gjson.Result, string) {
	if inner := subject.Get("api-error-response"); inner.IsObject() {
		subject = inner
	}
	var object gjson.Result
	var name string
	subject.ForEach(func(key, value gjson.Result) bool {
		object, name = value, key.String()
		return false
	})
	return object, name
}

// braintreeFailure reads why a transaction failed: the processor's
// settlement response, else its authorization response, else the status.
func braintreeFailure(transaction gjson.Result) *Failure {
	if code := text(transaction.Get("processor-settlement-response-code")); code != "" {
		return &Failure{Code: code, Message: text(transaction.Get("processor-settlement-response-text"))}
	}
	if code := text(transaction.Get("processor-response-code")); code != "" {
		return &Failure{Code: code, Message: text(transaction.Get("processor-response-text"))}
	}
	if status := text(transaction.Get("status")); status != "" {
		return &Failure{Code: status, Message: text(transaction.Get("processor-settlement-response-text"))}
	}
	return nil
}

// braintreeSampleKind is the notification kind sent for each canonical
// status by BraintreeSampleXML.
var braintreeSampleKind = map[Status]string{
	StatusCaptured: "transaction_settled", StatusFailed: "transaction_settlement_declined", StatusRefunded: "transaction_settled",
	StatusRefundFailed: "refund_failed", StatusChargeback: "dispute_opened", StatusChargebackReversed: "dispute_won",
}

// BraintreeSampleXML fabricates a notification for s, in the shapes of
// Braintree's own samples (webhook_testing_gateway.js), dated at: a
// transaction for captured, failed, refunded and refund_failed (a refund
// is a credit transaction of its own, "r" and the sale's id), a dispute for
// chargeback and chargeback_reversed ("d" and the sale's id).
func BraintreeSampleXML(s Sample, at time.Time) ([]byte, error) {
	kind, ok := braintreeSampleKind[s.Status]
	if !ok {
		return nil, fmt.Errorf("the sample sends no Braintree notification with status %q (it sends: %s)", s.Status, sampleStatuses(braintreeSampleKind))
	}
	decimal, err := s.Amount.Decimal()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	element := func(indent, name, value string) {
		b.WriteString(indent + "<" + name + ">")
		_ = xml.EscapeText(&b, []byte(value))
		b.WriteString("</" + name + ">\n")
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<notification>\n")
	b.WriteString(`  <timestamp type="datetime">` + at.UTC().Format(time.RFC3339) + "</timestamp>\n")
	element("  ", "kind", kind)
	b.WriteString("  <subject>\n")
	switch s.Status {
	case StatusChargeback, StatusChargebackReversed:
		b.WriteString("    <dispute>\n")
		element("      ", "id", "d"+s.ProviderReference)
		element("      ", "amount-disputed", decimal)
		element("      ", "currency-iso-code", s.Amount.Currency)
		element("      ", "kind", "chargeback")
		element("      ", "status", map[Status]string{StatusChargeback: "open", StatusChargebackReversed: "won"}[s.Status])
		element("      ", "reason", "fraud")
		b.WriteString("      <transaction>\n")
		element("        ", "id", s.ProviderReference)
		element("        ", "amount", decimal)
		element("        ", "order-id", s.MerchantReference)
		b.WriteString("      </transaction>\n    </dispute>\n")
	default:
		id, transactionType, status := s.ProviderReference, "sale", "settled"
		switch s.Status {
		case StatusFailed:
			status = "settlement_declined"
		case StatusRefunded:
			id, transactionType = "r"+s.ProviderReference, "credit"
		case StatusRefundFailed:
			id, transactionType, status = "r"+s.ProviderReference, "credit", "processor_declined"
		}
		b.WriteString("    <transaction>\n")
		element("      ", "id", id)
		element("      ", "status", status)
		element("      ", "type", transactionType)
		element("      ", "currency-iso-code", s.Amount.Currency)
		element("      ", "amount", decimal)
		element("      ", "order-id", s.MerchantReference)
		switch s.Status {
		case StatusFailed:
			element("      ", "processor-settlement-response-code", "4001")
			element("      ", "processor-settlement-response-text", "Settlement Declined")
		case StatusRefunded:
			element("      ", "refunded-transaction-id", s.ProviderReference)
		case StatusRefundFailed:
			element("      ", "refunded-transaction-id", s.ProviderReference)
			element("      ", "processor-response-code", "2005")
			element("      ", "processor-response-text", "Invalid Credit Card Number")
		}
		b.WriteString("    </transaction>\n")
	}
	b.WriteString("  </subject>\n</notification>\n")
	return []byte(b.String()), nil
}
