package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/payhook/payhook/verify"
)

// EnvelopeContentType is the Content-Type of the forwarded envelope
// (CloudEvents structured mode).
const EnvelopeContentType = "application/cloudevents+json; charset=utf-8"

// ID returns the event's deterministic id: the lowercase hex of the first 16
// bytes of a SHA-256. Retries and replays of one provider notification
// share it; two notifications that tell the shop something different never
// do.
//
// With a NotificationID, the hash is over "payhook-event-v1", provider,
// "notification" and the NotificationID, each followed by a NUL byte.
// Otherwise it is over "payhook-event-v1", provider, object,
// provider_reference, provider_status, canonical status, amount value and
// currency, the Discriminator if there is one, and "payload:" with the
// SHA-256 of the original payload (32 bytes) if PayloadInID, each followed
// by a NUL byte. The canonical status is included because some providers keep their
// own status word while the state moves on (a Swedbank Pay order stays
// "Paid" from authorization to capture); the Discriminator tells apart
// notifications alike in all of these (a second partial capture of the
// same amount, an update of the same transaction). When the callback
// carries no provider reference, the SHA-256 of the original (or else the
// fetched) payload stands in for it.
//
// The id is computed once; an Event is not changed after it is built.
func (e *Event) ID() string {
	if e.id == "" {
		e.id = string(appendID(nil, e))
	}
	return e.id
}

// appendID appends the event id to b.
func appendID(b []byte, e *Event) []byte {
	var stack [256]byte
	in := append(stack[:0], "payhook-event-v1\x00"...)
	if e.NotificationID != "" {
		for _, part := range [...]string{e.Provider, "notification", e.NotificationID} {
			in = append(in, part...)
			in = append(in, 0)
		}
		sum := sha256.Sum256(in)
		return hex.AppendEncode(b, sum[:16])
	}
	reference := e.ProviderReference
	var payloadHex [2 * sha256.Size]byte
	if reference == "" {
		payload := e.Original
		if len(payload) == 0 {
			payload = e.Fetched
		}
		sum := sha256.Sum256(payload)
		hex.Encode(payloadHex[:], sum[:])
	}
	for _, part := range [...]string{e.Provider, string(e.Object)} {
		in = append(in, part...)
		in = append(in, 0)
	}
	if reference == "" {
		in = append(in, "sha256:"...)
		in = append(in, payloadHex[:]...)
	} else {
		in = append(in, reference...)
	}
	in = append(in, 0)
	in = append(in, e.ProviderStatus...)
	in = append(in, 0)
	if !e.StatusUnsigned {
		in = append(in, e.Status...)
	}
	in = append(in, 0)
	if e.Amount != nil {
		in = strconv.AppendInt(in, e.Amount.MinorUnits, 10)
		in = append(in, 0)
		in = append(in, e.Amount.Currency...)
		in = append(in, 0)
	} else {
		in = append(in, 0, 0)
	}
	if e.Discriminator != "" {
		in = append(in, e.Discriminator...)
		in = append(in, 0)
	}
	if e.PayloadInID {
		sum := sha256.Sum256(e.Original)
		in = append(in, "payload:"...)
		in = append(in, sum[:]...)
		in = append(in, 0)
	}
	sum := sha256.Sum256(in)
	return hex.AppendEncode(b, sum[:16])
}

// Type returns the CloudEvents type, payhook.<object>.<status>.
func (e *Event) Type() string {
	return "payhook." + string(e.Object) + "." + string(e.Status)
}

// appendUTC appends t, which must be in UTC in the years 0000 to 9999, as
// RFC 3339 ("Z"), with
// milliseconds if millis: what time.AppendFormat writes, without parsing a
// layout for every callback.
func appendUTC(b []byte, t time.Time, millis bool) []byte {
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	if millis {
		b = append(b, '.')
		b = appendDigits(b, t.Nanosecond()/1e6, 3)
	}
	return append(b, 'Z')
}

func appendDigits(b []byte, n, width int) []byte {
	var digits [4]byte
	for i := width - 1; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, digits[:width]...)
}

// Encode returns the envelope for e: verification describes how authenticity
// was established (it must hold no secret), receivedAt is when the callback
// arrived. The output is compact JSON without HTML escaping, in the field
// order of caddymodule/docs/envelope.md. The original and fetched payloads were validated
// when they were parsed and are embedded as they are, not re-encoded.
func Encode(e *Event, verification verify.Result, receivedAt time.Time) []byte {
	receivedAt = receivedAt.UTC()
	eventTime := receivedAt
	// A provider's time outside RFC 3339's four-digit years is no time.
	if t := e.Time.UTC(); !e.Time.IsZero() && t.Year() >= 0 && t.Year() <= 9999 {
		eventTime = t
	}
	b := make([]byte, 0, 768+len(e.Original)+len(e.Fetched)+len(e.Unverified))
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, e.ID()...)
	b = append(b, `","source":`...)
	b = appendJSONString(b, "payhook/"+e.Provider)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type())
	if e.MerchantReference != "" {
		b = append(b, `,"subject":`...)
		b = appendJSONString(b, e.MerchantReference)
	}
	b = append(b, `,"time":"`...)
	b = appendUTC(b, eventTime, false)
	b = append(b, `","datacontenttype":"application/json","data":{"provider":`...)
	b = appendJSONString(b, e.Provider)
	b = append(b, `,"object":`...)
	b = appendJSONString(b, string(e.Object))
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(e.Status))
	b = append(b, `,"provider_status":`...)
	b = appendJSONString(b, e.ProviderStatus)
	b = append(b, `,"merchant_reference":`...)
	b = appendNullableString(b, e.MerchantReference)
	b = append(b, `,"provider_reference":`...)
	b = appendNullableString(b, e.ProviderReference)
	b = append(b, `,"payment_reference":`...)
	b = appendNullableString(b, e.PaymentReference)
	b = append(b, `,"amount":`...)
	if e.Amount == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"value":`...)
		b = strconv.AppendInt(b, e.Amount.MinorUnits, 10)
		b = append(b, `,"currency":`...)
		b = appendJSONString(b, e.Amount.Currency)
		b = append(b, '}')
	}
	b = append(b, `,"test":`...)
	switch {
	case e.Test == nil:
		b = append(b, "null"...)
	case *e.Test:
		b = append(b, "true"...)
	default:
		b = append(b, "false"...)
	}
	b = append(b, `,"failure":`...)
	if e.Failure == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"code":`...)
		b = appendJSONString(b, e.Failure.Code)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, e.Failure.Message)
		b = append(b, '}')
	}
	b = append(b, `,"verification":`...)
	b = appendVerification(b, &verification)
	b = append(b, `,"received_at":"`...)
	b = appendUTC(b, receivedAt, true)
	b = append(b, '"')
	for _, payload := range [...]struct {
		name string
		raw  []byte
	}{{"original", e.Original}, {"fetched", e.Fetched}, {"unverified", e.Unverified}} {
		if len(bytes.TrimSpace(payload.raw)) > 0 {
			b = append(b, `,"`...)
			b = append(b, payload.name...)
			b = append(b, `":`...)
			b = append(b, payload.raw...)
		}
	}
	return append(b, "}}"...)
}

// appendVerification writes data.verification: how authenticity was
// established, never a secret (verify.Result holds none).
func appendVerification(b []byte, v *verify.Result) []byte {
	b = append(b, `{"method":`...)
	b = appendJSONString(b, v.Method)
	for _, field := range [...]struct{ name, value string }{
		{"date", v.Date}, {"variant", v.Variant},
	} {
		if field.value != "" {
			b = append(b, ',', '"')
			b = append(b, field.name...)
			b = append(b, '"', ':')
			b = appendJSONString(b, field.value)
		}
	}
	if len(v.Also) > 0 {
		b = append(b, `,"also":[`...)
		for i, check := range v.Also {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, check)
		}
		b = append(b, ']')
	}
	for _, field := range [...]struct{ name, value string }{
		{"resource", v.Resource}, {"status", v.Status}, {"claimed_status", v.ClaimedStatus},
	} {
		if field.value != "" {
			b = append(b, ',', '"')
			b = append(b, field.name...)
			b = append(b, '"', ':')
			b = appendJSONString(b, field.value)
		}
	}
	return append(b, '}')
}

func appendNullableString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}
