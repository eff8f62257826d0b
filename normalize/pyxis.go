package normalize

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The Pyxis hosted payment system (docs.pyxis.co.uk) posts {"payment":
// {…Payment model…}, "data": {…the merchant's Data map…}} to the OnSuccess
// or OnFail URL of a payment request. See ../shared/providers.md ("Pyxis").

var pyxisStatus = map[string]Status{
	"success": StatusCaptured,
	"failed":  StatusFailed,
	"pending": StatusPending, // bank transfers complete later
}

// PyxisDefaultCurrency is the currency of Pyxis amounts when the payment
// does not name one: Pyxis is a UK system and its Payment model carries no
// currency.
const PyxisDefaultCurrency = "GBP"

// Pyxis normalizes a Pyxis payment notification. The amount is taken as a
// decimal in the currency's major unit ("12.50" is £12.50), in
// payment.currency if present, else in.DefaultCurrency, else GBP.
func Pyxis(in *Input) (*Event, error) {
	doc, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	payment := doc.Get("payment")
	if !payment.IsObject() {
		return nil, fmt.Errorf("%w: payment", ErrMissingField)
	}
	providerStatus := text(payment.Get("status"))
	if providerStatus == "" {
		return nil, fmt.Errorf("%w: payment.status", ErrMissingField)
	}
	status, known := pyxisStatus[strings.ToLower(providerStatus)]
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		Status:            orUnknown(status, known),
		Unmapped:          !known,
		ProviderStatus:    providerStatus,
		ProviderReference: text(payment.Get("id")),
		Original:          raw,
		PayloadInID:       true,
		Time:              pyxisTime(text(payment.Get("timeStamp"))),
	}
	if ev.Status == StatusFailed {
		if reason := text(payment.Get("statusReason")); reason != "" {
			ev.Failure = &Failure{Code: providerStatus, Message: reason}
		}
	}
	currency := firstText(payment, "currency")
	if currency == "" {
		currency = in.DefaultCurrency
	}
	if currency == "" {
		currency = PyxisDefaultCurrency
	}
	if ev.Amount, err = amountOf(text(payment.Get("amount")), currency, ParseDecimalAmount); err != nil {
		return nil, err
	}
	return ev, nil
}

// pyxisTime reads an ISO 8601 time stamp; one without a zone is UTC.
func pyxisTime(s string) time.Time {
	if len(s) > 40 {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t
	}
	return time.Time{}
}

var pyxisSampleStatus = map[Status]string{StatusCaptured: "Success", StatusFailed: "Failed", StatusPending: "Pending"}

// PyxisSample fabricates a Pyxis payment notification for s.
func PyxisSample(s Sample) ([]byte, string, error) {
	status, ok := pyxisSampleStatus[s.Status]
	if !ok {
		return nil, "", fmt.Errorf("pyxis sends no notification with status %q (it sends: %s)", s.Status, sampleStatuses(pyxisSampleStatus))
	}
	amount, err := s.Amount.Decimal()
	if err != nil {
		return nil, "", err
	}
	body, err := json.Marshal(map[string]any{
		"payment": map[string]any{
			"id": s.ProviderReference, "amount": json.Number(amount), "currency": s.Amount.Currency,
			"status": status, "timeStamp": time.Now().UTC().Format(time.RFC3339), "description": "sample from caddy payhook send",
		},
		"data": map[string]any{"orderId": s.MerchantReference},
	})
	return body, "application/json", err
}
