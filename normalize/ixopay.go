package normalize

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// IXOPAY's callback fields are documented at gateway.ixopay.com
// (API v3, "Callbacks"); see ../shared/providers.md. The canonical status
// comes from transactionType × result.

// ixopayOK maps a transactionType whose result is OK.
var ixopayOK = map[string]Status{
	"DEBIT":                     StatusCaptured,
	"CAPTURE":                   StatusCaptured,
	"PREAUTHORIZE":              StatusAuthorized,
	"INCREMENTAL-AUTHORIZATION": StatusAuthorized,
	"VOID":                      StatusCancelled,
	"REFUND":                    StatusRefunded,
	"PAYOUT":                    StatusPaidOut,
	"CHARGEBACK":                StatusChargeback,
	"CHARGEBACK-REVERSAL":       StatusChargebackReversed,
	// Registering or removing a stored payment instrument moves no money and
	// has no status in the vocabulary.
	"REGISTER":   StatusUnknown,
	"DEREGISTER": StatusUnknown,
}

// ixopayStatus maps transactionType × result to a canonical status; known is
// false when either is outside IXOPAY's documented values.
func ixopayStatus(transactionType, result string) (status Status, known bool) {
	ok, typeKnown := ixopayOK[transactionType]
	if !typeKnown {
		return StatusUnknown, false
	}
	switch result {
	case "OK":
		return ok, true
	case "PENDING":
		if transactionType == "REFUND" {
			return StatusRefundPending, true
		}
		return StatusPending, true
	case "ERROR", "INVALID_REQUEST":
		// A declined refund leaves the payment standing.
		if transactionType == "REFUND" {
			return StatusRefundFailed, true
		}
		return StatusFailed, true
	}
	return StatusUnknown, false
}

// IXOPAY normalizes an IXOPAY status-change callback (JSON).
func IXOPAY(in *Input) (*Event, error) {
	doc, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	result := text(doc.Get("result"))
	if result == "" {
		return nil, fmt.Errorf("%w: result", ErrMissingField)
	}
	uuid := text(doc.Get("uuid"))
	if uuid == "" {
		return nil, fmt.Errorf("%w: uuid", ErrMissingField)
	}
	transactionType := text(doc.Get("transactionType"))
	status, known := ixopayStatus(strings.ToUpper(transactionType), strings.ToUpper(result))

	ev := &Event{
		Provider: in.Provider,
		Object:   ObjectPayment,
		Status:   status,
		// The sub-type, where IXOPAY gives one ("cb-resolved"), is part of
		// what the provider says.
		ProviderStatus:    strings.TrimSpace(transactionType + " " + result + " " + text(doc.Get("transactionSubType"))),
		MerchantReference: text(doc.Get("merchantTransactionId")),
		ProviderReference: uuid,
		PaymentReference:  ixopayPaymentReference(doc, strings.ToUpper(transactionType), uuid),
		Original:          raw,
		PayloadInID:       true,
		Unmapped:          !known,
	}

	// A chargeback callback may carry its amount only in chargebackData.
	amountField, currencyField := doc.Get("amount"), doc.Get("currency")
	if !amountField.Exists() || amountField.Type == gjson.Null {
		if cb := doc.Get("chargebackData"); cb.IsObject() {
			amountField, currencyField = cb.Get("amount"), cb.Get("currency")
		}
	}
	if ev.Amount, err = amountOf(text(amountField), text(currencyField), ParseDecimalAmount); err != nil {
		return nil, err
	}

	if status == StatusFailed || status == StatusRefundFailed {
		ev.Failure = ixopayFailure(doc)
	}
	return ev, nil
}

// ixopayOwnPayment lists the transaction types that begin a payment of
// their own (true) or move no money at all (false: registering or removing
// a stored instrument). On these, referenceUuid names an earlier, different
// transaction: the registered instrument or the first of a recurring series
// ("use the uuid for recurring charges in the field referenceUuid",
// IXOPAY's transaction response documentation), not the payment itself.
var ixopayOwnPayment = map[string]bool{
	"DEBIT": true, "PREAUTHORIZE": true, "PAYOUT": true, "REGISTER": false, "DEREGISTER": false,
}

// ixopayPaymentReference is the uuid of the transaction that began the
// payment. A capture, void, incremental authorization, refund or chargeback
// names it in referenceUuid (php-ixopay: "a reference uuid … for
// void/capture/refund"); a chargeback also in chargebackData.originalUuid,
// and a chargeback reversal in chargebackReversalData.originalUuid, where its
// referenceUuid may name the chargeback instead, so the original uuids come
// first. Without any of them, and for a payment of its own, it is the
// transaction's own uuid; a registration has none. A refund of a capture
// that names the capture, not its authorization, gets the capture's uuid:
// the callback names nothing further back.
func ixopayPaymentReference(doc gjson.Result, transactionType, uuid string) string {
	if own, listed := ixopayOwnPayment[transactionType]; listed {
		if own {
			return uuid
		}
		return ""
	}
	if ref := firstText(doc, "chargebackReversalData.originalUuid", "chargebackData.originalUuid", "referenceUuid"); ref != "" {
		return ref
	}
	return uuid
}

// ixopayFailure takes the first entry of errors[], else the top-level code
// and message some callbacks carry; nil when the callback gives no reason.
func ixopayFailure(doc gjson.Result) *Failure {
	source := doc
	if first := doc.Get("errors.0"); first.IsObject() {
		source = first
	}
	f := Failure{Code: text(source.Get("code")), Message: text(source.Get("message"))}
	if f.Code == "" {
		f.Code = text(source.Get("adapterCode"))
	}
	if f.Message == "" {
		f.Message = text(source.Get("adapterMessage"))
	}
	if f == (Failure{}) {
		return nil
	}
	return &f
}

// ixopaySampleStatus is the transactionType and result that IXOPAY sends
// for each canonical status.
var ixopaySampleStatus = map[Status][2]string{
	StatusCaptured:           {"DEBIT", "OK"},
	StatusAuthorized:         {"PREAUTHORIZE", "OK"},
	StatusPending:            {"DEBIT", "PENDING"},
	StatusFailed:             {"DEBIT", "ERROR"},
	StatusCancelled:          {"VOID", "OK"},
	StatusRefunded:           {"REFUND", "OK"},
	StatusRefundPending:      {"REFUND", "PENDING"},
	StatusRefundFailed:       {"REFUND", "ERROR"},
	StatusChargeback:         {"CHARGEBACK", "OK"},
	StatusChargebackReversed: {"CHARGEBACK-REVERSAL", "OK"},
	StatusPaidOut:            {"PAYOUT", "OK"},
}

// IXOPAYSample fabricates an IXOPAY status-change callback for s.
func IXOPAYSample(s Sample) ([]byte, string, error) {
	tr, ok := ixopaySampleStatus[s.Status]
	if !ok {
		return nil, "", fmt.Errorf("ixopay sends no callback with status %q (it sends: %s)", s.Status, sampleStatuses(ixopaySampleStatus))
	}
	amount, err := s.Amount.Decimal()
	if err != nil {
		return nil, "", err
	}
	doc := map[string]any{
		"result":                tr[1],
		"uuid":                  s.ProviderReference,
		"merchantTransactionId": s.MerchantReference,
		"purchaseId":            "sample-" + s.ProviderReference,
		"transactionType":       tr[0],
		"paymentMethod":         "Creditcard",
		"amount":                amount,
		"currency":              s.Amount.Currency,
		"returnData": map[string]any{
			"_TYPE": "cardData", "type": "visa", "cardHolder": "Sample Customer",
			"expiryMonth": "12", "expiryYear": "2030", "firstSixDigits": "411111", "lastFourDigits": "1111",
		},
		"extraData": map[string]string{"sentBy": "caddy payhook send"},
	}
	if tr[1] == "ERROR" {
		doc["errors"] = []map[string]any{{"message": "Sample decline", "code": "2003", "adapterMessage": "sample", "adapterCode": "05"}}
	}
	body, err := json.Marshal(doc)
	return body, "application/json; charset=utf-8", err
}
