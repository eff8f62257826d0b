package normalize

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// Adyen's standard webhooks are described in ../shared/providers.md
// ("Adyen") and docs.adyen.com (webhooks, "Webhook types and event codes"):
// {"live": "false", "notificationItems": [{"NotificationRequestItem": {…}},
// …]}, each item an event of its own, signed on its own by
// additionalData.hmacSignature.

// AdyenItem is one NotificationRequestItem: the fields its HMAC signs, its
// signature, and the item as JSON.
type AdyenItem struct {
	PSPReference        string
	OriginalReference   string
	MerchantAccountCode string
	MerchantReference   string
	Value               string // amount.value, as its literal digits
	Currency            string
	EventCode           string
	Success             string
	HMACSignature       string
	Raw                 []byte
}

// SignedData is what the item's HMAC covers: the eight fields joined by
// ':', each as sent (no escaping), an empty field staying empty.
func (it *AdyenItem) SignedData() string {
	return strings.Join([]string{it.PSPReference, it.OriginalReference, it.MerchantAccountCode, it.MerchantReference,
		it.Value, it.Currency, it.EventCode, it.Success}, ":")
}

// adyenSignedKeys are the keys of the fields an item's HMAC covers, by
// object ("" for the item itself), as Adyen spells them.
var adyenSignedKeys = []adyenObjectKeys{
	newAdyenObjectKeys("", "pspReference", "originalReference", "merchantAccountCode", "merchantReference", "amount", "eventCode", "success"),
	newAdyenObjectKeys("amount", "value", "currency"),
}

// adyenObjectKeys are keys of the object at path, with their folded forms
// (verify.FoldKey).
type adyenObjectKeys struct {
	path         string
	keys, folded []string
}

func newAdyenObjectKeys(path string, keys ...string) adyenObjectKeys {
	object := adyenObjectKeys{path: path, keys: keys}
	for _, key := range keys {
		object.folded = append(object.folded, verify.FoldKey(key))
	}
	return object
}

// adyenMisspelledKey returns a key of item that case-insensitive decoders
// take for a signed field's but that is not spelled as Adyen spells it
// ("Success", "amount.VALUE"), and the field's key, both as dotted paths;
// "" when there is none. payhook reads the signed fields spelled as Adyen
// spells them: an item of Adyen's without an originalReference, with
// "OriginalReference" added, verifies with the field empty while the
// shop's decoder would read the one added.
func adyenMisspelledKey(item gjson.Result) (misspelled, signed string) {
	for _, object := range adyenSignedKeys {
		within := item
		if object.path != "" {
			within = item.Get(object.path)
		}
		if !within.IsObject() {
			continue
		}
		within.ForEach(func(key, _ gjson.Result) bool {
			if i := slices.Index(object.folded, verify.FoldKey(key.Str)); i >= 0 && key.Str != object.keys[i] {
				misspelled, signed = key.Str, object.keys[i]
				return false
			}
			return true
		})
		if misspelled != "" {
			prefix := strings.TrimPrefix(object.path+".", ".")
			return prefix + misspelled, prefix + signed
		}
	}
	return "", ""
}

// AdyenItems reads the items of a notification, bounded (at most
// MaxBatchEvents), for their signatures to be checked. Adyen signs eight
// fields of each item, not the notification's bytes, so whoever holds a
// genuine notification can add to it: a notification with an object that
// names a key twice, in the same letter case or not, is malformed (see
// verify.CheckJSONKeys): payhook verifies the first "success", while the
// shop's decoder reads the last from data.original (PHP's, JavaScript's),
// or a "Success" too (Go's, Json.NET's, ASP.NET Core's); Adyen's own
// library checks the last. A signed field's key spelled in another letter
// case is malformed too (see adyenMisspelledKey). It decodes in.Body once
// (see Decode): the normalizer's second call reads in.Original.
func AdyenItems(in *Input) ([]AdyenItem, gjson.Result, error) {
	if err := Decode(in); err != nil {
		return nil, gjson.Result{}, err
	}
	if err := verify.CheckJSONKeys(in.Original, verify.MaxJSONDepth); err != nil {
		return nil, gjson.Result{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	doc := gjson.ParseBytes(in.Original)
	list := doc.Get("notificationItems")
	if !list.IsArray() {
		return nil, doc, fmt.Errorf("%w: notificationItems", ErrMissingField)
	}
	var items []AdyenItem
	var ferr error
	list.ForEach(func(_, wrapper gjson.Result) bool {
		if len(items) == MaxBatchEvents {
			ferr = fmt.Errorf("%w: more than %d items", ErrMalformed, MaxBatchEvents)
			return false
		}
		item := wrapper.Get("NotificationRequestItem")
		if !item.IsObject() {
			ferr = fmt.Errorf("%w: item %d has no NotificationRequestItem", ErrMalformed, len(items))
			return false
		}
		if misspelled, signed := adyenMisspelledKey(item); misspelled != "" {
			ferr = fmt.Errorf("%w: item %d has %q, which case-insensitive decoders read as the signed %s", ErrMalformed, len(items), truncate(misspelled, 64), signed)
			return false
		}
		value := item.Get("amount.value")
		if value.Type != gjson.Number && value.Type != gjson.String && value.Exists() && value.Type != gjson.Null {
			ferr = fmt.Errorf("%w: item %d's amount.value", ErrMalformed, len(items))
			return false
		}
		items = append(items, AdyenItem{
			PSPReference:        text(item.Get("pspReference")),
			OriginalReference:   text(item.Get("originalReference")),
			MerchantAccountCode: text(item.Get("merchantAccountCode")),
			MerchantReference:   text(item.Get("merchantReference")),
			Value:               text(value),
			Currency:            text(item.Get("amount.currency")),
			EventCode:           text(item.Get("eventCode")),
			Success:             text(item.Get("success")),
			HMACSignature:       text(item.Get("additionalData.hmacSignature")),
			Raw:                 unsafe.Slice(unsafe.StringData(item.Raw), len(item.Raw)),
		})
		return true
	})
	if ferr != nil {
		return nil, doc, ferr
	}
	if len(items) == 0 {
		return nil, doc, fmt.Errorf("%w: notificationItems is empty", ErrMissingField)
	}
	return items, doc, nil
}

// adyenEvent maps an event code: its status when success is "true" and
// when it is "false". known: the code is Adyen's, even where it has no
// canonical status (unknown, not flagged).
type adyenEvent struct {
	ok, failed Status
}

var adyenEvents = map[string]adyenEvent{
	"AUTHORISATION":              {StatusAuthorized, StatusFailed},
	"AUTHORISATION_ADJUSTMENT":   {StatusAuthorized, StatusFailed},
	"CAPTURE":                    {StatusCaptured, StatusFailed},
	"CAPTURE_FAILED":             {StatusFailed, StatusFailed},
	"CANCELLATION":               {StatusCancelled, StatusFailed},
	"TECHNICAL_CANCEL":           {StatusCancelled, StatusFailed},
	"REFUND":                     {StatusRefunded, StatusRefundFailed},
	"REFUND_WITH_DATA":           {StatusRefunded, StatusRefundFailed},
	"REFUND_FAILED":              {StatusRefundFailed, StatusRefundFailed},
	"REFUNDED_REVERSED":          {StatusRefundFailed, StatusRefundFailed},
	"CHARGEBACK":                 {StatusChargeback, StatusChargeback},
	"SECOND_CHARGEBACK":          {StatusChargeback, StatusChargeback},
	"NOTIFICATION_OF_CHARGEBACK": {StatusChargeback, StatusChargeback},
	"PREARBITRATION_LOST":        {StatusChargeback, StatusChargeback},
	"CHARGEBACK_REVERSED":        {StatusChargebackReversed, StatusChargebackReversed},
	"PREARBITRATION_WON":         {StatusChargebackReversed, StatusChargebackReversed},
	"OFFER_CLOSED":               {StatusExpired, StatusExpired},
	"PENDING":                    {StatusPending, StatusPending},
	"ORDER_OPENED":               {StatusPending, StatusPending},
	"ORDER_CLOSED":               {StatusAuthorized, StatusCancelled},
	"MANUAL_REVIEW_ACCEPT":       {StatusAuthorized, StatusAuthorized},
	"MANUAL_REVIEW_REJECT":       {StatusFailed, StatusFailed},
	"PAYOUT_THIRDPARTY":          {StatusPaidOut, StatusFailed},
	"PAYOUT_DECLINE":             {StatusFailed, StatusFailed},
	"PAYOUT_EXPIRE":              {StatusExpired, StatusExpired},
	"RECURRING_CONTRACT":         {StatusVerified, StatusFailed},
	// Adyen's, with no canonical meaning: forwarded as unknown, not warned.
	"REQUEST_FOR_INFORMATION":           {StatusUnknown, StatusUnknown},
	"DISPUTE_DEFENSE_PERIOD_ENDED":      {StatusUnknown, StatusUnknown},
	"INFORMATION_SUPPLIED":              {StatusUnknown, StatusUnknown},
	"ISSUER_COMMENTS":                   {StatusUnknown, StatusUnknown},
	"ISSUER_RESPONSE_TIMEFRAME_EXPIRED": {StatusUnknown, StatusUnknown},
	"REPORT_AVAILABLE":                  {StatusUnknown, StatusUnknown},
	"AUTORESCUE":                        {StatusUnknown, StatusFailed},
	"CANCEL_AUTORESCUE":                 {StatusUnknown, StatusUnknown},
}

// adyenExponent is Adyen's number of decimals where it "differs from
// standard" (docs.adyen.com/development-resources/currency-codes: CLP,
// CVE, IDR and ISK).
func adyenExponent(currency string, iso int) int {
	switch currency {
	case "CLP", "ISK":
		return 2
	case "CVE", "IDR":
		return 0
	}
	return iso
}

// AdyenAmount converts an amount in Adyen's minor units into ISO 4217's.
func AdyenAmount(value, currency string) (Amount, error) {
	return providerMinorUnits(value, currency, adyenExponent)
}

// Adyen normalizes a notification into one event per item, in order. The
// items' signatures must have been checked.
func Adyen(in *Input) ([]*Event, error) {
	items, doc, err := AdyenItems(in)
	if err != nil {
		return nil, err
	}
	var test *bool
	switch strings.ToLower(text(doc.Get("live"))) {
	case "true":
		test = boolPtr(false)
	case "false":
		test = boolPtr(true)
	}
	events := make([]*Event, 0, len(items))
	for i := range items {
		it := &items[i]
		item := gjson.ParseBytes(it.Raw)
		ev := &Event{
			Provider:          in.Provider,
			Object:            ObjectPayment,
			ProviderStatus:    strings.TrimSpace(it.EventCode + " " + it.Success),
			MerchantReference: it.MerchantReference,
			ProviderReference: it.PSPReference,
			PaymentReference:  adyenPaymentReference(it),
			Test:              test,
			Original:          it.Raw,
			Time:              rfc3339(text(item.Get("eventDate"))),
			// A modification's own pspReference is the reference; the
			// payment it modifies tells two alike apart.
			Discriminator: it.OriginalReference,
		}
		mapping, known := adyenEvents[strings.ToUpper(it.EventCode)]
		switch {
		case !known:
			ev.Status, ev.Unmapped = StatusUnknown, true
		case strings.EqualFold(it.Success, "true"):
			ev.Status = mapping.ok
		default:
			ev.Status = mapping.failed
		}
		if strings.EqualFold(it.EventCode, "CANCEL_OR_REFUND") {
			ev.Status = adyenCancelOrRefund(item, it.Success)
			ev.StatusUnsigned = true
		}
		if ev.Status == StatusFailed || ev.Status == StatusRefundFailed {
			if reason := text(item.Get("reason")); reason != "" {
				ev.Failure = &Failure{Code: it.EventCode, Message: reason}
			}
		}
		if it.Value != "" {
			amount, err := AdyenAmount(it.Value, it.Currency)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			ev.Amount = &amount
		}
		events = append(events, ev)
	}
	return events, nil
}

// adyenPaymentReference is the pspReference of the payment an item is
// about: a modification's (capture, refund, cancellation, chargeback)
// originalReference, "the payment request assigned to the original payment"
// (Adyen's webhook reference), else the item's own pspReference. A
// REPORT_AVAILABLE item's pspReference is the report's file name: no payment.
func adyenPaymentReference(it *AdyenItem) string {
	switch {
	case strings.EqualFold(it.EventCode, "REPORT_AVAILABLE"):
		return ""
	case it.OriginalReference != "":
		return it.OriginalReference
	}
	return it.PSPReference
}

// adyenCancelOrRefund: Adyen cancels an authorisation or refunds a capture,
// and says which in additionalData's modification.action.
func adyenCancelOrRefund(item gjson.Result, success string) Status {
	action := strings.ToLower(text(item.Get(`additionalData.modification\.action`)))
	if !strings.EqualFold(success, "true") {
		return StatusRefundFailed
	}
	switch action {
	case "refund":
		return StatusRefunded
	case "cancel":
		return StatusCancelled
	}
	return StatusUnknown
}

// adyenSampleCode is the event code Adyen sends for each canonical status.
var adyenSampleCode = map[Status][2]string{
	StatusAuthorized: {"AUTHORISATION", "true"}, StatusFailed: {"AUTHORISATION", "false"},
	StatusCaptured: {"CAPTURE", "true"}, StatusCancelled: {"CANCELLATION", "true"}, StatusRefunded: {"REFUND", "true"},
	StatusRefundFailed: {"REFUND_FAILED", "true"}, StatusChargeback: {"CHARGEBACK", "true"},
	StatusChargebackReversed: {"CHARGEBACK_REVERSED", "true"}, StatusPending: {"PENDING", "true"},
}

// AdyenSampleItem fabricates one notification item for s, unsigned.
func AdyenSampleItem(s Sample) (map[string]any, error) {
	code, ok := adyenSampleCode[s.Status]
	if !ok {
		return nil, fmt.Errorf("adyen sends no notification with status %q (it sends: %s)", s.Status, sampleStatuses(adyenSampleCode))
	}
	value := s.Amount.MinorUnits
	if iso, _ := MinorUnitExponent(s.Amount.Currency); adyenExponent(s.Amount.Currency, iso) != iso {
		for exp := adyenExponent(s.Amount.Currency, iso); exp > iso; exp-- {
			value *= 10
		}
		for exp := adyenExponent(s.Amount.Currency, iso); exp < iso; exp++ {
			value /= 10
		}
	}
	item := map[string]any{
		"additionalData": map[string]any{}, "amount": map[string]any{"currency": s.Amount.Currency, "value": value},
		"eventCode": code[0], "eventDate": time.Now().UTC().Format(time.RFC3339), "merchantAccountCode": "PayhookSample",
		"merchantReference": s.MerchantReference, "paymentMethod": "visa", "pspReference": s.ProviderReference,
		"reason": "", "success": code[1],
	}
	if code[0] != "AUTHORISATION" && code[0] != "PENDING" {
		item["originalReference"] = "ORIG" + s.ProviderReference
	}
	return item, nil
}

// AdyenNotification wraps signed items into a notification body.
func AdyenNotification(items ...map[string]any) ([]byte, error) {
	wrapped := make([]map[string]any, len(items))
	for i, item := range items {
		wrapped[i] = map[string]any{"NotificationRequestItem": item}
	}
	return json.Marshal(map[string]any{"live": "false", "notificationItems": wrapped})
}
