package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Mapping turns the payload of a provider payhook has no code for into
// events, from configuration alone: which JSON paths (gjson syntax) give
// the notification's id, its status (through a table into the canonical
// vocabulary), its amount, currency, references, time and test flag. A
// form-encoded body is decoded with PHP's rules first. Batch names the
// array of a callback that carries several events (GoCardless's
// {"events": […]}); every other path is then read in each item.
//
// A field may name several paths, in order of preference: the first that
// holds a value is read (a refund's own amount before its payment's, a
// provider's current time field before its older one).
type Mapping struct {
	// Batch is the path of the array of events, for providers that send
	// several in one callback; empty for one event per callback.
	Batch string `json:"batch,omitempty"`
	// ID is the path of the notification's own id.
	ID Paths `json:"id,omitempty"`
	// Object is "payment" (default) or "subscription", or the path of a
	// value that Objects maps to one of them.
	Object string `json:"object,omitempty"`
	// Objects maps the values at Object to "payment" or "subscription".
	Objects map[string]string `json:"objects,omitempty"`
	// Status lists the paths whose values, joined by a space, are the
	// provider's status ("resource_type action" gives "payments confirmed");
	// a path without a value adds no word.
	Status []string `json:"status,omitempty"`
	// StatusRules map a provider status to a canonical one when other
	// fields of the payload say so (a refund's payment refunded in full or
	// in part); the first rule whose conditions all hold wins, before
	// Statuses.
	StatusRules []StatusRule `json:"status_rules,omitempty"`
	// Statuses maps the provider's status to a canonical one; a value it
	// does not know (and no rule maps) is forwarded as unknown, with a
	// warning.
	Statuses map[string]string `json:"statuses,omitempty"`
	// Amount is the path of the amount, in AmountUnit: "minor" (an
	// integer of the currency's minor unit, 999 for 9.99 EUR) or
	// "decimal" ("9.99").
	Amount     Paths  `json:"amount,omitempty"`
	AmountUnit string `json:"amount_unit,omitempty"`
	// Currency is the path of the ISO 4217 currency; CurrencyDefault is
	// the currency when the payload names none.
	Currency        Paths  `json:"currency,omitempty"`
	CurrencyDefault string `json:"currency_default,omitempty"`
	// MerchantReference and ProviderReference are the paths of the shop's
	// and the provider's references.
	MerchantReference Paths `json:"merchant_reference,omitempty"`
	ProviderReference Paths `json:"provider_reference,omitempty"`
	// PaymentReference is the path of the provider's id of the payment
	// the event is about, alike for its captures, refunds and disputes (a
	// refund's payment id before a payment's own id); none when unset.
	PaymentReference Paths `json:"payment_reference,omitempty"`
	// Time is the path of the event's time (see ParseEventTime). A value
	// that is not a time rejects the callback, rather than passing the
	// receive time off as the provider's.
	Time Paths `json:"time,omitempty"`
	// Test is the path of a test flag (true, "test", "sandbox" are test;
	// false, "live", "production" are live); Live the path of its opposite
	// (Stripe's livemode).
	Test Paths `json:"test,omitempty"`
	Live Paths `json:"live,omitempty"`
	// FailureCode and FailureMessage are the paths of a failure's reason,
	// read only when the canonical status is failed or refund_failed: a
	// successful event's response code ("10000 Approved") is no failure.
	FailureCode    Paths `json:"failure_code,omitempty"`
	FailureMessage Paths `json:"failure_message,omitempty"`
}

// Paths are gjson paths in order of preference: the first that holds a
// value (not missing, null or "") is read. In JSON a single path may be
// written as a string.
type Paths []string

// UnmarshalJSON reads a list of paths, or one path as a string.
func (p *Paths) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = Paths{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want a path or a list of paths: %w", err)
	}
	*p = list
	return nil
}

// StatusRule maps ProviderStatus (the joined words of Mapping.Status) to the
// canonical Status when every condition in When holds.
type StatusRule struct {
	ProviderStatus string      `json:"provider_status"`
	Status         string      `json:"status"`
	When           []Condition `json:"when"`
}

// Condition holds when the value at Path is Value (with Not, when it is
// another value). A path without a value satisfies no condition, Not or
// not: a payload that does not tell falls through to the table, or to
// unknown.
type Condition struct {
	Path  string `json:"path"`
	Value string `json:"value"`
	Not   bool   `json:"not,omitempty"`
}

// MaxBatchEvents bounds the events of one callback.
const MaxBatchEvents = 1000

// Check reports a mistake in the mapping: a path that cannot parse, a
// status or object outside the vocabulary, an amount without its unit.
func (m *Mapping) Check() error {
	type field struct {
		name  string
		paths []string
	}
	fields := []field{
		{"batch", []string{m.Batch}}, {"id", m.ID}, {"status", m.Status}, {"amount", m.Amount}, {"currency", m.Currency},
		{"merchant_reference", m.MerchantReference}, {"provider_reference", m.ProviderReference},
		{"payment_reference", m.PaymentReference}, {"time", m.Time},
		{"test", m.Test}, {"live", m.Live}, {"failure_code", m.FailureCode}, {"failure_message", m.FailureMessage},
	}
	if m.Object != "" && m.Object != string(ObjectPayment) && m.Object != string(ObjectSubscription) {
		fields = append(fields, field{"object", []string{m.Object}})
		if len(m.Objects) == 0 {
			return fmt.Errorf("object %q is a path, so objects must map its values to payment or subscription", m.Object)
		}
	}
	for i, rule := range m.StatusRules {
		name := fmt.Sprintf("statuses: %q if", rule.ProviderStatus)
		if rule.ProviderStatus == "" || len(rule.When) == 0 {
			return fmt.Errorf("status rule #%d needs a provider status and at least one condition", i+1)
		}
		if !slices.Contains(Statuses(), Status(rule.Status)) {
			return fmt.Errorf("statuses: %q maps to %q, which is not a canonical status (%s)", rule.ProviderStatus, rule.Status, statusNames())
		}
		for _, c := range rule.When {
			if c.Path == "" || c.Value == "" {
				return fmt.Errorf("%s %s: a condition needs a path and a value", name, c.Path)
			}
			fields = append(fields, field{name, []string{c.Path}})
		}
	}
	for _, f := range fields {
		for i, p := range f.paths {
			if p == "" && (f.name == "batch" || len(f.paths) == 1) {
				continue
			}
			if err := CheckPath(p); err != nil {
				if len(f.paths) > 1 {
					return fmt.Errorf("%s #%d: %w", f.name, i+1, err)
				}
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	for value, object := range m.Objects {
		if object != string(ObjectPayment) && object != string(ObjectSubscription) {
			return fmt.Errorf("objects: %q maps to %q; want payment or subscription", value, object)
		}
	}
	for value, status := range m.Statuses {
		if !slices.Contains(Statuses(), Status(status)) {
			return fmt.Errorf("statuses: %q maps to %q, which is not a canonical status (%s)", value, status, statusNames())
		}
	}
	if (len(m.Statuses) > 0 || len(m.StatusRules) > 0) && len(m.Status) == 0 {
		return errors.New("statuses needs status: the path of the provider's status")
	}
	switch m.AmountUnit {
	case "":
		if len(m.Amount) > 0 {
			return errors.New("amount needs its unit: minor (integer minor units) or decimal (\"9.99\")")
		}
	case "minor", "decimal":
	default:
		return fmt.Errorf("amount unit %q: want minor or decimal", m.AmountUnit)
	}
	if m.CurrencyDefault != "" {
		if _, ok := MinorUnitExponent(strings.ToUpper(m.CurrencyDefault)); !ok {
			return fmt.Errorf("currency_default %q is not an ISO 4217 code with a minor unit", m.CurrencyDefault)
		}
	}
	return nil
}

func statusNames() string {
	names := make([]string, 0, len(Statuses()))
	for _, s := range Statuses() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// maxPathLen bounds a configured path.
const maxPathLen = 256

// CheckPath accepts the gjson paths a mapping may use: dot-separated
// non-empty components of letters, digits and "_-:$ ", with '\' escaping a
// special character, "#" for an array's length or all of its items, "*"
// and "?" wildcards, and "#(…)" queries with balanced parentheses. It
// refuses modifiers ("@"), multipaths, pipes and anything that does not
// parse, so that a mistake fails at validation, not on a callback.
func CheckPath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if len(path) > maxPathLen {
		return fmt.Errorf("path longer than %d bytes", maxPathLen)
	}
	component := 0
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '\\':
			if i+1 == len(path) {
				return fmt.Errorf("path %q ends with a backslash", path)
			}
			i++
			component++
		case c == '.':
			if component == 0 {
				return fmt.Errorf("path %q has an empty component", path)
			}
			component = 0
		case c == '#' && i+1 < len(path) && path[i+1] == '(':
			depth := 0
			j := i + 1
			for ; j < len(path); j++ {
				if path[j] == '\\' {
					j++
					continue
				}
				if path[j] == '(' {
					depth++
				}
				if path[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(path) {
				return fmt.Errorf("path %q has an unterminated query", path)
			}
			if j+1 < len(path) && path[j+1] == '#' {
				j++ // #(…)# : every match
			}
			i = j
			component++
		case c == '@' || c == '|' || c == '[' || c == ']' || c == '{' || c == '}' || c == '(' || c == ')' || c == '!' || c == ',':
			return fmt.Errorf("path %q: %q is not allowed (no modifiers, multipaths or pipes)", path, c)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("path %q has a control character", path)
		default:
			component++
		}
	}
	if component == 0 {
		return fmt.Errorf("path %q has an empty component", path)
	}
	return nil
}

// MappingInput is what a mapping reads besides the payload: the provider's
// name and the notification id the verification authenticated (a Standard
// Webhooks webhook-id), if any.
type MappingInput struct {
	NotificationID string
	// Mapped is false when the route has no mapping at all: every event is
	// then unknown by design, not for want of a table entry.
	Mapped bool
}

// Map normalizes in with the mapping m. The body must be a JSON object (or
// a PHP form, decoded first). Each event's identity is its id (the item's, or
// the verified notification id, with the item's index in a batch), else
// its facts and its payload's digest.
func (m *Mapping) Map(in *Input, mi MappingInput) ([]*Event, error) {
	if err := Decode(in); err != nil {
		return nil, err
	}
	doc, raw, err := parseJSONObject(in.Original)
	if err != nil {
		return nil, err
	}
	in.Original = raw
	if m.Batch == "" {
		ev, err := m.event(in, doc, raw, mi.NotificationID, mi.Mapped)
		if err != nil {
			return nil, err
		}
		return []*Event{ev}, nil
	}
	items := doc.Get(m.Batch)
	if !items.IsArray() {
		return nil, fmt.Errorf("%w: %s is not an array of events", ErrMissingField, m.Batch)
	}
	var events []*Event
	var ferr error
	items.ForEach(func(key, item gjson.Result) bool {
		if len(events) == MaxBatchEvents {
			ferr = fmt.Errorf("%w: more than %d events in one callback", ErrMalformed, MaxBatchEvents)
			return false
		}
		if !item.IsObject() {
			ferr = fmt.Errorf("%w: event %d of %s is not an object", ErrMalformed, len(events), m.Batch)
			return false
		}
		id := ""
		if mi.NotificationID != "" {
			id = mi.NotificationID + "#" + strconv.Itoa(len(events))
		}
		itemRaw := unsafe.Slice(unsafe.StringData(item.Raw), len(item.Raw))
		ev, err := m.event(in, item, itemRaw, id, mi.Mapped)
		if err != nil {
			ferr = fmt.Errorf("event %d: %w", len(events), err)
			return false
		}
		events = append(events, ev)
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: %s holds no events", ErrMissingField, m.Batch)
	}
	return events, nil
}

// event maps one event (the whole payload, or one item of a batch).
func (m *Mapping) event(in *Input, doc gjson.Result, raw []byte, notificationID string, mapped bool) (*Event, error) {
	ev := &Event{
		Provider:          in.Provider,
		Object:            ObjectPayment,
		Status:            StatusUnknown,
		MerchantReference: m.first(doc, m.MerchantReference),
		ProviderReference: m.first(doc, m.ProviderReference),
		PaymentReference:  m.first(doc, m.PaymentReference),
		Original:          raw,
	}
	var err error
	if ev.Time, err = m.time(doc); err != nil {
		return nil, err
	}
	if id := m.first(doc, m.ID); id != "" {
		notificationID = id
	}
	ev.NotificationID = notificationID
	if notificationID == "" {
		ev.PayloadInID = true
	}
	switch m.Object {
	case "", string(ObjectPayment):
	case string(ObjectSubscription):
		ev.Object = ObjectSubscription
	default:
		if object, ok := m.Objects[m.text(doc, m.Object)]; ok {
			ev.Object = Object(object)
		}
	}
	if len(m.Status) > 0 {
		words := make([]string, 0, len(m.Status))
		for _, p := range m.Status {
			if w := m.text(doc, p); w != "" {
				words = append(words, w)
			}
		}
		ev.ProviderStatus = strings.Join(words, " ")
		if status, ok := m.status(doc, ev.ProviderStatus); ok {
			ev.Status = Status(status)
		} else {
			ev.Unmapped = mapped
		}
	}
	switch test := strings.ToLower(m.first(doc, m.Test)); test {
	case "true", "1", "test", "sandbox":
		ev.Test = boolPtr(true)
	case "false", "0", "live", "production":
		ev.Test = boolPtr(false)
	}
	switch live := strings.ToLower(m.first(doc, m.Live)); live {
	case "true", "1", "live":
		ev.Test = boolPtr(false)
	case "false", "0", "test":
		ev.Test = boolPtr(true)
	}
	// The contract: a failure only on a failing status, never the response
	// code or reason a provider also puts on its successful events.
	if ev.Status == StatusFailed || ev.Status == StatusRefundFailed {
		if code, message := m.first(doc, m.FailureCode), m.first(doc, m.FailureMessage); code != "" || message != "" {
			ev.Failure = &Failure{Code: code, Message: message}
		}
	}
	if len(m.Amount) > 0 {
		currency := m.first(doc, m.Currency)
		if currency == "" {
			currency = m.CurrencyDefault
		}
		if currency == "" {
			// An amount without its currency says nothing the shop can
			// use: the event goes without one (the payload still has
			// it), never refused for it (Paystack's invoice.payment_failed
			// names none; refusing a genuine event would lose it).
			return ev, nil
		}
		parse := ParseMinorUnits
		if m.AmountUnit == "decimal" {
			parse = ParseDecimalAmount
		}
		if ev.Amount, err = amountOf(m.first(doc, m.Amount), currency, parse); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// status maps the provider's status: the first rule for it whose
// conditions all hold, else the table.
func (m *Mapping) status(doc gjson.Result, providerStatus string) (string, bool) {
	for _, rule := range m.StatusRules {
		if rule.ProviderStatus == providerStatus && m.holds(doc, rule.When) {
			return rule.Status, true
		}
	}
	status, ok := m.Statuses[providerStatus]
	return status, ok
}

// holds reports whether every condition holds; a field without a value
// satisfies none.
func (m *Mapping) holds(doc gjson.Result, conditions []Condition) bool {
	for _, c := range conditions {
		value := m.text(doc, c.Path)
		if value == "" || (value == c.Value) == c.Not {
			return false
		}
	}
	return true
}

func (m *Mapping) text(doc gjson.Result, path string) string {
	if path == "" {
		return ""
	}
	return text(doc.Get(path))
}

// first returns the value of the first of paths that has one.
func (m *Mapping) first(doc gjson.Result, paths Paths) string {
	for _, p := range paths {
		if v := m.text(doc, p); v != "" {
			return v
		}
	}
	return ""
}

// time reads the event's time at the first of the time paths that holds a
// value; none: the zero time, and the envelope carries the receive time. A
// value that is not a time is an error: the map names the wrong field, or
// the provider changed its format, and the receive time passed off as the
// provider's would hide it.
func (m *Mapping) time(doc gjson.Result) (time.Time, error) {
	for _, p := range m.Time {
		if p == "" {
			continue
		}
		r := doc.Get(p)
		if !r.Exists() || r.Type == gjson.Null || (r.Type == gjson.String && r.Str == "") {
			continue
		}
		if r.Type == gjson.String || r.Type == gjson.Number {
			if t, ok := ParseEventTime(text(r)); ok {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%w: the time at %s is neither RFC 3339 nor Unix time", ErrMalformed, p)
	}
	return time.Time{}, nil
}
