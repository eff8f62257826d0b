package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/tidwall/gjson"
)

// wallee and PostFinance Checkout (one platform) notify a webhook URL with
// a small JSON document that names an entity and no amount:
//
//	{"entityId":11,"eventId":35,"listenerEntityId":1472041829003,
//	 "listenerEntityTechnicalName":"Transaction","spaceId":1,
//	 "state":"PROCESSING","timestamp":"2023-12-19T13:43:35+0000",
//	 "webhookListenerId":2}
//
// "state" (and the X-Signature header) come only from listeners with
// "payload signature and state" enabled. The entity itself (a Transaction,
// a Refund) is read from the API, and gives the amount, the currency, the
// merchant's reference and the environment.

// WalleeNotification is what a notification says, before anything in it is
// trusted.
type WalleeNotification struct {
	Kind     string // listenerEntityTechnicalName: "Transaction", "Refund", …
	SpaceID  string
	EntityID string
	EventID  string
	State    string // only from listeners with payload signature and state
}

// ReadWalleeNotification decodes in.Body (see Decode) and reads the
// notification's fields; entityId, spaceId and listenerEntityTechnicalName
// are required, as integers (ids) and a string.
func ReadWalleeNotification(in *Input) (WalleeNotification, error) {
	if err := Decode(in); err != nil {
		return WalleeNotification{}, err
	}
	doc := gjson.ParseBytes(in.Original)
	n := WalleeNotification{
		Kind:     text(doc.Get("listenerEntityTechnicalName")),
		SpaceID:  walleeID(doc.Get("spaceId")),
		EntityID: walleeID(doc.Get("entityId")),
		EventID:  walleeID(doc.Get("eventId")),
		State:    text(doc.Get("state")),
	}
	switch {
	case n.Kind == "":
		return n, fmt.Errorf("%w: listenerEntityTechnicalName", ErrMissingField)
	case n.SpaceID == "":
		return n, fmt.Errorf("%w: spaceId", ErrMissingField)
	case n.EntityID == "":
		return n, fmt.Errorf("%w: entityId", ErrMissingField)
	}
	return n, nil
}

// walleeID reads an id the platform writes as a JSON integer; a string of
// digits is taken too. Anything else is no id.
func walleeID(r gjson.Result) string {
	id := text(r)
	if r.Type != gjson.Number && r.Type != gjson.String || id == "" || len(id) > 19 || !allDigits(id) {
		return ""
	}
	return id
}

// walleeTransactionStatus maps a Transaction's state. COMPLETED is the
// capture done but the delivery decision not yet made: the platform says
// to fulfil only on FULFILL (DECLINE: do not), so COMPLETED is not
// "captured", which tells the shop to ship.
var walleeTransactionStatus = map[string]Status{
	"CREATE":     StatusPending,
	"PENDING":    StatusPending,
	"CONFIRMED":  StatusPending,
	"PROCESSING": StatusPending,
	"AUTHORIZED": StatusAuthorized,
	"COMPLETED":  StatusAuthorized,
	"FULFILL":    StatusCaptured,
	"FAILED":     StatusFailed,
	"DECLINE":    StatusFailed,
	"VOIDED":     StatusCancelled,
}

// walleeRefundStatus maps a Refund's state.
var walleeRefundStatus = map[string]Status{
	"CREATE":       StatusRefundPending,
	"SCHEDULED":    StatusRefundPending,
	"PENDING":      StatusRefundPending,
	"MANUAL_CHECK": StatusRefundPending,
	"SUCCESSFUL":   StatusRefunded,
	"FAILED":       StatusRefundFailed,
}

var errWalleeNothingFetched = errors.New("wallee: no entity was fetched from the API")

// Wallee normalizes a notification from the entity fetched from the API
// (in.Fetched). signed says whether the notification's signature was
// verified: its state is then the event's (the entity may have moved on
// since), its eventId the event's identity, and its body data.original;
// otherwise everything comes from the entity, and the body is kept as
// data.unverified.
func Wallee(in *Input, signed bool) (*Event, error) {
	n, err := ReadWalleeNotification(in)
	if err != nil {
		return nil, err
	}
	if len(in.Fetched) == 0 {
		return nil, errWalleeNothingFetched
	}
	entity, fetched, err := parseJSONObject(in.Fetched)
	if err != nil {
		return nil, fmt.Errorf("fetched entity: %w", err)
	}
	ev := &Event{Provider: in.Provider, Object: ObjectPayment, Fetched: fetched}
	state := text(entity.Get("state"))
	if signed {
		ev.Original = in.Original
		if n.State != "" {
			state = n.State
		}
		if n.EventID != "" {
			// The platform's id of the entity change; a retry resends it.
			ev.NotificationID = n.SpaceID + "/" + n.EventID
		}
		ev.Time = rfc3339(text(gjson.GetBytes(in.Original, "timestamp")))
	} else {
		ev.Unverified = in.Original
		// Transaction 11 and Refund 11 are different entities.
		ev.Discriminator = n.Kind + "/" + n.SpaceID
	}
	ev.ProviderStatus = state
	ev.ProviderReference = text(entity.Get("id"))
	switch environment := text(entity.Get("environment")); environment {
	case "PREVIEW", "LIVE":
		test := environment == "PREVIEW"
		ev.Test = &test
	}

	var mapping map[string]Status
	var amount, currency string
	transaction := entity
	switch n.Kind {
	case "Transaction":
		mapping = walleeTransactionStatus
		ev.PaymentReference = ev.ProviderReference
		amount = text(entity.Get("authorizationAmount"))
		if completed := text(entity.Get("completedAmount")); completed != "" && (state == "COMPLETED" || state == "FULFILL" || state == "DECLINE") {
			amount = completed
		}
	case "Refund":
		mapping = walleeRefundStatus
		transaction = entity.Get("transaction")
		ev.PaymentReference = text(transaction.Get("id"))
		if !transaction.IsObject() {
			ev.PaymentReference = text(transaction) // the transaction's id alone
		}
		amount = text(entity.Get("amount"))
	default:
		return nil, fmt.Errorf("%w: entity %q is not a Transaction or a Refund", ErrMalformed, truncate(n.Kind, 32))
	}
	currency = text(transaction.Get("currency"))
	if currency == "" {
		currency = text(entity.Get("currency"))
	}
	ev.MerchantReference = text(transaction.Get("merchantReference"))
	if ev.MerchantReference == "" {
		ev.MerchantReference = text(entity.Get("merchantReference"))
	}
	if ev.Amount, err = amountOf(amount, currency, ParseDecimalAmount); err != nil {
		return nil, err
	}
	status, ok := mapping[state]
	if !ok {
		status, ev.Unmapped = StatusUnknown, true
	}
	ev.Status = status
	if status == StatusFailed || status == StatusRefundFailed {
		ev.Failure = walleeFailure(entity)
	}
	return ev, nil
}

// walleeFailure reads an entity's failureReason: its id, and its name in
// English (the platform localizes it), else in any language, else the
// message meant for the customer.
func walleeFailure(entity gjson.Result) *Failure {
	reason := entity.Get("failureReason")
	message := text(reason.Get("name.en-US"))
	if message == "" {
		reason.Get("name").ForEach(func(_, v gjson.Result) bool {
			message = text(v)
			return message == ""
		})
	}
	if message == "" {
		message = text(entity.Get("userFailureMessage"))
	}
	code := text(reason.Get("id"))
	if code == "" && message == "" {
		return nil
	}
	return &Failure{Code: code, Message: message}
}

// walleeSampleStates are the states a sample notification names, by
// status.
var walleeSampleStates = map[Status]string{
	StatusPending: "PROCESSING", StatusAuthorized: "AUTHORIZED", StatusCaptured: "FULFILL",
	StatusFailed: "FAILED", StatusCancelled: "VOIDED",
}

// WalleeSample fabricates a notification naming the Transaction
// s.ProviderReference, written "<spaceId>/<transactionId>" (space 1 when
// only the transaction is given). Its state is s.Status's; payhook reads
// the transaction from the API (WalleeSampleTransaction is what a stand-in
// of the API serves). Its eventId, the identity of a signed notification,
// is the transaction's and the state's: sending the same sample again is a
// retry, another state of the transaction a new event.
func WalleeSample(s Sample) ([]byte, string, error) {
	space, entity, state, err := walleeSampleIDs(s)
	if err != nil {
		return nil, "", err
	}
	event := fnv.New32a()
	event.Write([]byte(space + "/" + entity + "/" + state))
	body, err := json.Marshal(map[string]any{
		"entityId": json.Number(entity), "eventId": event.Sum32(), "listenerEntityId": 1472041829003,
		"listenerEntityTechnicalName": "Transaction", "spaceId": json.Number(space), "state": state,
		"timestamp": "2026-11-20T10:34:47+0000", "webhookListenerId": 1,
	})
	return body, "application/json", err
}

// WalleeSampleTransaction is the Transaction the API answers for the
// sample (GET /api/transaction/read?spaceId=&id=), in the platform's
// shape: amounts as decimals, in a test space (environment PREVIEW).
func WalleeSampleTransaction(s Sample) (spaceID, transactionID string, doc []byte, err error) {
	space, entity, state, err := walleeSampleIDs(s)
	if err != nil {
		return "", "", nil, err
	}
	exp, ok := MinorUnitExponent(s.Amount.Currency)
	if !ok {
		return "", "", nil, fmt.Errorf("%w: %q", ErrUnknownCurrency, s.Amount.Currency)
	}
	amount := json.Number(formatDecimal(s.Amount.MinorUnits, exp))
	transaction := map[string]any{
		"id": json.Number(entity), "linkedSpaceId": json.Number(space), "state": state, "currency": s.Amount.Currency,
		"authorizationAmount": amount, "merchantReference": s.MerchantReference, "environment": "PREVIEW", "version": 1,
	}
	if state == "FULFILL" {
		transaction["completedAmount"] = amount
	}
	doc, err = json.Marshal(transaction)
	return space, entity, doc, err
}

// walleeSampleIDs reads the sample's space and transaction ids and the
// state of its status.
func walleeSampleIDs(s Sample) (space, entity, state string, err error) {
	state, ok := walleeSampleStates[s.Status]
	if !ok {
		return "", "", "", fmt.Errorf("wallee samples know the statuses %s", sampleStatuses(walleeSampleStates))
	}
	space, entity, found := strings.Cut(s.ProviderReference, "/")
	if !found {
		space, entity = "1", s.ProviderReference
	}
	// An id is a JSON integer: send's random ids may start with zeros.
	space, entity = strings.TrimLeft(space, "0"), strings.TrimLeft(entity, "0")
	if walleeID(gjson.Parse(space)) == "" || walleeID(gjson.Parse(entity)) == "" {
		return "", "", "", fmt.Errorf("wallee: the reference must be a transaction id, or <spaceId>/<transactionId>; got %q", s.ProviderReference)
	}
	return space, entity, state, nil
}
