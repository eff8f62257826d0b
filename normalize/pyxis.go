package normalize

import (
	"encoding/json"
	"errors"
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

// Pyxis normalizes a Pyxis payment notification posted to a URL of either
// outcome: see PyxisAt.
func Pyxis(in *Input) (*Event, error) { return PyxisAt(in, "") }

// ErrOutcomeMismatch means a Pyxis notification's status disagrees with the
// URL it was posted to: Pyxis posts a payment that succeeded to the payment
// request's OnSuccess URL, one that failed to its OnFail URL.
var ErrOutcomeMismatch = errors.New("status disagrees with the URL the notification was sent to")

// Pyxis outcomes: which of a payment request's URLs a route receives.
const (
	PyxisOnSuccess = "success"
	PyxisOnFail    = "fail"
)

// PyxisAt normalizes a Pyxis payment notification posted to the payment
// request's OnSuccess URL (outcome PyxisOnSuccess), its OnFail URL
// (PyxisOnFail), or a URL used for both (""). The amount is taken as a
// decimal in the currency's major unit ("12.50" is £12.50), in
// payment.currency if present, else in.DefaultCurrency, else GBP.
//
// The URL is part of what Pyxis says. On the OnSuccess URL a payment that
// failed cannot arrive (refused), and one whose body names no status
// succeeded (Pyxis's published notification shows none). On the OnFail URL
// a payment that succeeded cannot arrive (refused), and any other is
// failed, whatever word the body uses (its word stays provider_status).
// Without an outcome the body must name the status.
func PyxisAt(in *Input, outcome string) (*Event, error) {
	doc, raw, err := parseJSONObject(in.Body)
	if err != nil {
		return nil, err
	}
	payment := doc.Get("payment")
	if !payment.IsObject() {
		return nil, fmt.Errorf("%w: payment", ErrMissingField)
	}
	providerStatus := text(payment.Get("status"))
	status, known := pyxisStatus[strings.ToLower(providerStatus)]
	switch {
	case outcome == PyxisOnSuccess && providerStatus == "":
		providerStatus, status, known = "OnSuccess", StatusCaptured, true
	case outcome == PyxisOnSuccess && status == StatusFailed:
		return nil, fmt.Errorf("%w: %q on the OnSuccess URL", ErrOutcomeMismatch, truncate(providerStatus, 24))
	case outcome == PyxisOnFail && status == StatusCaptured:
		return nil, fmt.Errorf("%w: %q on the OnFail URL", ErrOutcomeMismatch, truncate(providerStatus, 24))
	case outcome == PyxisOnFail:
		if providerStatus == "" {
			providerStatus = "OnFail"
		}
		status, known = StatusFailed, true
	case providerStatus == "":
		return nil, fmt.Errorf("%w: payment.status (on routes for the OnSuccess and OnFail URLs, set outcome success or fail)", ErrMissingField)
	}
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		Status:            orUnknown(status, known),
		Unmapped:          !known,
		ProviderStatus:    providerStatus,
		ProviderReference: text(payment.Get("id")),
		PaymentReference:  text(payment.Get("id")), // the Payment notified of, not its history's processor references
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
