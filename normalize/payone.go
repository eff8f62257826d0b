package normalize

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// PAYONE's TransactionStatus notification (docs.payone.com, "Parameter for
// the TransactionStatus query"): an application/x-www-form-urlencoded POST,
// always in ISO-8859-1, of the transaction's fields: txaction, txid,
// sequencenumber, reference (the merchant's), mode (test or live),
// clearingtype, currency, price, balance and receivable (decimals in the
// currency's major unit), transaction_status (completed or pending, from
// notify_version 7.4), failedcause (txaction failed), and the customer's
// and the payment method's details. See ../shared/providers.md ("PAYONE").

// PayoneMaxFields bounds the fields of a notification: PHP's max_input_vars,
// which the shop plugins that read PAYONE's notifications run under. A
// notification with dozens of invoice items has a few hundred.
const PayoneMaxFields = 1000

// payoneStatus maps txaction, for notifications PAYONE marks completed
// (or does not mark: before notify_version 7.4). The ones that depend on
// the amounts or the clearing type are decided by payoneStatusOf.
var payoneStatus = map[string]Status{
	"capture": StatusCaptured,
	// Money received: balance 0 (underpaid: some is still outstanding).
	"paid":      StatusCaptured,
	"underpaid": StatusPending,
	// A chargeback or a returned direct debit: PAYONE's plugins call it
	// "Rückbelastung", "Rücklastschrift (CANCELATION)" (Magento 2, OXID).
	"cancelation": StatusChargeback,
	"failed":      StatusFailed,
	// Bookkeeping that moves no money of this payment, or dunning: the
	// notification says nothing of the payment's state.
	"reminder":       StatusUnknown,
	"transfer":       StatusUnknown,
	"invoice":        StatusUnknown,
	"vauthorization": StatusUnknown,
	"vsettlement":    StatusUnknown,
}

// payoneAmountActions are the txactions decided by their amounts.
var payoneAmountActions = map[string]bool{"appointed": true, "refund": true, "debit": true}

// payonePaysLater are the clearing types whose customer pays after the
// order (prepayment, invoice, cash on delivery): only "paid" says the
// money arrived.
var payonePaysLater = map[string]bool{"vor": true, "rec": true, "cod": true}

// PayoneCredentials are the fields that authenticate a notification.
type PayoneCredentials struct {
	Key       string // the MD5 of the portal key, hex
	PortalID  string
	AccountID string
}

// PayoneDecode decodes a notification's body, bounded, into in.Original
// (DecodeLatin1Form) and returns its credentials. A body of more than
// PayoneMaxFields fields is ErrMalformed; a credential that is not a
// string is left empty.
func PayoneDecode(in *Input) (PayoneCredentials, error) {
	if in.Original == nil {
		if fields := bytes.Count(in.Body, []byte{'&'}) + 1; fields > PayoneMaxFields {
			return PayoneCredentials{}, fmt.Errorf("%w: more than %d fields", ErrMalformed, PayoneMaxFields)
		}
		in.Original = DecodeLatin1Form(in.Body)
	}
	doc := gjson.ParseBytes(in.Original)
	return PayoneCredentials{
		Key:       stringMember(doc, "key"),
		PortalID:  stringMember(doc, "portalid"),
		AccountID: stringMember(doc, "aid"),
	}, nil
}

// Payone normalizes a PAYONE TransactionStatus notification whose
// credentials were checked.
//
// The status comes from txaction and transaction_status (pending is
// pending whatever the action; a pending refund refund_pending). appointed
// is authorized when nothing was claimed yet (receivable 0: a
// preauthorization) and captured when it was (an authorization); refund
// and debit are refunded when the receivable dropped to 0 and
// partially_refunded when it dropped below price (a debit that claims
// more is captured). For prepayment, invoice and cash on delivery
// (clearingtype vor, rec, cod) the customer pays later: appointed is
// pending, only paid is captured, and what would otherwise be captured is
// pending.
//
// The amount is price, in currency; balance and receivable must be exact
// too and take part in the event id with sequencenumber and
// transaction_status (see PayoneDiscriminator). txtime is when the payment
// process began, not the notification's time, so the event has none.
func Payone(in *Input) (*Event, error) {
	if _, err := PayoneDecode(in); err != nil {
		return nil, err
	}
	doc := gjson.ParseBytes(in.Original)
	if !doc.IsObject() {
		return nil, fmt.Errorf("%w: no fields", ErrMalformed)
	}
	fields := map[string]string{}
	for _, name := range []string{"txaction", "txid", "sequencenumber", "reference", "mode", "clearingtype", "currency",
		"price", "balance", "receivable", "transaction_status", "failedcause", "reminderlevel"} {
		v := doc.Get(name)
		if v.Exists() && v.Type != gjson.String {
			return nil, fmt.Errorf("%w: %s is not a single value", ErrMalformed, name)
		}
		fields[name] = v.String()
	}
	txaction, txid := fields["txaction"], fields["txid"]
	if txaction == "" {
		return nil, fmt.Errorf("%w: txaction", ErrMissingField)
	}
	if txid == "" {
		return nil, fmt.Errorf("%w: txid", ErrMissingField)
	}
	if !allDigits(txid) || len(txid) > 20 {
		return nil, fmt.Errorf("%w: txid is not a number", ErrMalformed)
	}
	if seq := fields["sequencenumber"]; !allDigits(seq) || len(seq) > 10 {
		return nil, fmt.Errorf("%w: sequencenumber is not a number", ErrMalformed)
	}
	amounts := map[string]*Amount{}
	for _, name := range []string{"price", "balance", "receivable"} {
		if fields[name] == "" {
			continue
		}
		if fields["currency"] == "" {
			return nil, fmt.Errorf("%w: currency (for %s)", ErrMissingField, name)
		}
		a, err := ParseDecimalAmount(fields[name], strings.ToUpper(fields["currency"]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		amounts[name] = &a
	}
	status, known := payoneStatusOf(txaction, fields["transaction_status"], fields["clearingtype"], amounts["price"], amounts["receivable"])
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		Status:            status,
		ProviderStatus:    txaction,
		MerchantReference: fields["reference"],
		ProviderReference: txid,
		PaymentReference:  txid, // captures, refunds and chargebacks keep the transaction's txid
		Amount:            amounts["price"],
		Original:          withoutMember(in.Original, "key"),
		Discriminator:     PayoneDiscriminator(fields["sequencenumber"], fields["transaction_status"], amounts["receivable"], amounts["balance"], fields["reminderlevel"]),
		Unmapped:          !known,
	}
	switch fields["mode"] {
	case "test":
		ev.Test = boolPtr(true)
	case "live":
		ev.Test = boolPtr(false)
	}
	if status == StatusFailed {
		ev.Failure = &Failure{Code: fields["failedcause"]}
	}
	return ev, nil
}

// payoneStatusOf decides a notification's status; known is false for a
// txaction PAYONE does not document.
func payoneStatusOf(txaction, transactionStatus, clearingType string, price, receivable *Amount) (status Status, known bool) {
	_, known = payoneStatus[txaction]
	known = known || payoneAmountActions[txaction]
	if transactionStatus == "pending" {
		if txaction == "refund" {
			return StatusRefundPending, known
		}
		return StatusPending, known
	}
	claimed := receivable != nil && receivable.MinorUnits > 0
	switch txaction {
	case "appointed":
		if payonePaysLater[clearingType] {
			return StatusPending, true // the order is placed; the money is to come
		}
		if !claimed {
			return StatusAuthorized, true
		}
		return StatusCaptured, true
	case "refund":
		if claimed {
			return StatusPartiallyRefunded, true
		}
		return StatusRefunded, true
	case "debit":
		switch {
		case receivable == nil:
			return StatusUnknown, true
		case !claimed:
			return StatusRefunded, true
		case price != nil && receivable.MinorUnits < price.MinorUnits:
			return StatusPartiallyRefunded, true
		}
		status = StatusCaptured
	default:
		if s, ok := payoneStatus[txaction]; ok {
			status = s
		} else {
			return StatusUnknown, false
		}
	}
	if status == StatusCaptured && txaction != "paid" && payonePaysLater[clearingType] {
		return StatusPending, true
	}
	return status, true
}

// PayoneDiscriminator tells apart notifications of one transaction with
// the same txaction: sequencenumber counts the merchant's requests on the
// transaction (a second partial capture or refund has the next one), but
// PAYONE's own notifications keep it (appointed pending, then completed;
// underpaid, then paid; a reminder of each level), so transaction_status,
// the receivable, the balance and the reminder level take part too. A
// retry of a notification repeats all of them.
func PayoneDiscriminator(sequenceNumber, transactionStatus string, receivable, balance *Amount, reminderLevel string) string {
	var b strings.Builder
	b.WriteString("seq=" + sequenceNumber + ";status=" + transactionStatus)
	for _, part := range []struct {
		name   string
		amount *Amount
	}{{"receivable", receivable}, {"balance", balance}} {
		b.WriteString(";" + part.name + "=")
		if part.amount != nil {
			fmt.Fprintf(&b, "%d", part.amount.MinorUnits)
		}
	}
	b.WriteString(";reminderlevel=" + reminderLevel)
	return b.String()
}

// stringMember returns the top-level member name of doc when it is a
// string, else "".
func stringMember(doc gjson.Result, name string) string {
	if !doc.IsObject() {
		return ""
	}
	if v := doc.Get(name); v.Type == gjson.String {
		return v.String()
	}
	return ""
}

// withoutMember returns the JSON object raw without its top-level member
// name: the notification's key, a credential, never reaches the shop.
func withoutMember(raw []byte, name string) []byte {
	doc := gjson.ParseBytes(raw)
	out := make([]byte, 0, len(raw))
	out = append(out, '{')
	doc.ForEach(func(key, value gjson.Result) bool {
		if key.String() == name {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, key.Raw...)
		out = append(out, ':')
		out = append(out, value.Raw...)
		return true
	})
	return append(out, '}')
}

// DecodeLatin1Form decodes a form body whose text is ISO-8859-1, as PAYONE
// sends it, the way PHP fills $_POST (DecodePHPForm), with every key and
// value converted to UTF-8 exactly as PHP's mb_convert_encoding(…,
// "UTF-8", "ISO-8859-1") does: each byte is the code point of its value
// (0xE4 is "ä", 0x80 to 0x9F the C1 controls, not Windows-1252's "€" and
// friends).
func DecodeLatin1Form(body []byte) []byte {
	return DecodePHPForm(Latin1FormToUTF8(body))
}

// Latin1FormToUTF8 rewrites a form body whose text is ISO-8859-1 as the
// same form in UTF-8: each byte of 0x80 and above becomes the UTF-8 of its
// code point, raw where it was raw and %-escaped where it was; everything else,
// separators and invalid escapes included, stays as it is, so the form's
// pairs and keys are those of the original. The result is at most twice as
// long.
func Latin1FormToUTF8(body []byte) []byte {
	out := make([]byte, 0, len(body)+len(body)/8)
	const hexDigits = "0123456789ABCDEF"
	escape := func(c byte) {
		var enc [2]byte
		utf8.EncodeRune(enc[:], rune(c))
		for _, e := range enc {
			out = append(out, '%', hexDigits[e>>4], hexDigits[e&0xf])
		}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '%' && i+2 < len(body) && isHex(body[i+1]) && isHex(body[i+2]):
			if v := unhex(body[i+1])<<4 | unhex(body[i+2]); v >= utf8.RuneSelf {
				escape(v)
			} else {
				out = append(out, body[i:i+3]...)
			}
			i += 2
		case c >= utf8.RuneSelf:
			out = utf8.AppendRune(out, rune(c))
		default:
			out = append(out, c)
		}
	}
	return out
}

// payoneSampleActions are the notifications PayoneSample fabricates, by
// status: txaction, transaction_status, and whether price is claimed
// (receivable) and outstanding (balance).
var payoneSampleActions = map[Status]struct {
	txaction, transactionStatus string
	receivable, balance         int64 // times price
}{
	StatusPending:           {"appointed", "pending", 0, 0},
	StatusAuthorized:        {"appointed", "completed", 0, 0},
	StatusCaptured:          {"paid", "completed", 1, 0},
	StatusRefunded:          {"refund", "completed", 0, -1},
	StatusChargeback:        {"cancelation", "completed", 1, 1},
	StatusFailed:            {"failed", "completed", 0, 0},
	StatusPartiallyRefunded: {"debit", "completed", 0, 0}, // receivable: half of price
}

// PayoneSampleStatuses lists the statuses PayoneSample fabricates.
func PayoneSampleStatuses() string { return sampleStatuses(payoneSampleActions) }

// PayoneSample fabricates a credit card TransactionStatus notification of
// the payment portal portalID and sub-account accountID, in ISO-8859-1 as
// PAYONE sends it (the customer is "Jörg Müller"), without its key: the
// sender adds key, the MD5 of the portal key, first.
func PayoneSample(s Sample, portalID, accountID string) ([]byte, string, error) {
	action, ok := payoneSampleActions[s.Status]
	if !ok {
		return nil, "", fmt.Errorf("payone: no sample for status %q (have: %s)", s.Status, PayoneSampleStatuses())
	}
	price, err := s.Amount.Decimal()
	if err != nil {
		return nil, "", err
	}
	amount := func(times int64) (string, error) {
		return Amount{MinorUnits: times * s.Amount.MinorUnits, Currency: s.Amount.Currency}.Decimal()
	}
	receivable, err := amount(action.receivable)
	if err != nil {
		return nil, "", err
	}
	balance, err := amount(action.balance)
	if err != nil {
		return nil, "", err
	}
	sequence := "0"
	if s.Status == StatusPartiallyRefunded {
		receivable, _ = Amount{MinorUnits: s.Amount.MinorUnits / 2, Currency: s.Amount.Currency}.Decimal()
		sequence = "1"
	}
	txid := s.ProviderReference
	if !allDigits(txid) || txid == "" {
		txid = "4711"
	}
	form := url.Values{}
	form.Set("txaction", action.txaction)
	form.Set("transaction_status", action.transactionStatus)
	form.Set("notify_version", "7.6")
	form.Set("portalid", portalID)
	form.Set("aid", accountID)
	form.Set("mode", "test")
	form.Set("clearingtype", "cc")
	form.Set("txtime", "1765100000")
	form.Set("currency", s.Amount.Currency)
	form.Set("txid", txid)
	form.Set("reference", s.MerchantReference)
	form.Set("sequencenumber", sequence)
	form.Set("price", price)
	form.Set("receivable", receivable)
	form.Set("balance", balance)
	// url.Values encodes UTF-8; PAYONE sends ISO-8859-1.
	body := form.Encode() + "&firstname=J%F6rg&lastname=M%FCller&street=J%E4gerweg+12"
	return []byte(body), "application/x-www-form-urlencoded", nil
}
