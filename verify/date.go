package verify

import (
	"fmt"
	"sync/atomic"
	"time"
)

// dateLayouts are the Date header forms accepted, most common first. RFC 7231
// §7.1.1.1 requires senders to use IMF-fixdate (GMT) and recipients to accept
// the two obsolete forms. PHP clients formatting with `D, d M Y H:i:s T` in
// UTC send "UTC" instead of "GMT"; others send RFC 2822's numeric offset.
// Zone abbreviations other than GMT and UTC are refused: Go would silently
// read "CET" as a zero offset.
var dateLayouts = []string{
	"Mon, 02 Jan 2006 15:04:05 GMT", // IMF-fixdate
	"Mon, 02 Jan 2006 15:04:05 UTC", // PHP's `T` in UTC
	"Mon, 02 Jan 2006 15:04:05 -0700",
	"Monday, 02-Jan-06 15:04:05 GMT", // RFC 850, obsolete
	"Mon Jan _2 15:04:05 2006",       // asctime, obsolete
}

// maxDateLen bounds the work done on a hostile header: the longest layout is
// RFC 850 with the longest weekday name.
const maxDateLen = len("Wednesday, 02-Jan-06 15:04:05 GMT")

// ParseDate parses an HTTP Date header value. It accepts the three RFC 7231
// forms and the "UTC" spelling that PHP clients send; the result is in UTC.
// A failure wraps ErrMalformedDate.
func ParseDate(value string) (time.Time, error) {
	if len(value) > maxDateLen {
		return time.Time{}, fmt.Errorf("%w: too long", ErrMalformedDate)
	}
	if hasFraction(value) {
		return time.Time{}, fmt.Errorf("%w: fractional seconds", ErrMalformedDate)
	}
	if last := lastDate.Load(); last != nil && last.value == value {
		return last.t, nil
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, value); err == nil {
			t = t.UTC()
			lastDate.Store(&parsedDate{value: value, t: t})
			return t, nil
		}
	}
	return time.Time{}, ErrMalformedDate
}

// lastDate is the last Date value parsed successfully: callbacks that arrive
// within the same second carry the same one, and time.Parse may try every
// layout before it finds the one that fits.
var lastDate atomic.Pointer[parsedDate]

type parsedDate struct {
	value string
	t     time.Time
}

// hasFraction reports whether value carries a fraction after a number, as in
// "10:34:47.5" or "10:34:47,5". No HTTP date form has one, but time.Parse
// accepts a fraction after the seconds of any layout, which would make the
// signed Date a different instant from the one the sender formatted.
func hasFraction(value string) bool {
	for i := 1; i < len(value); i++ {
		if (value[i] == '.' || value[i] == ',') && '0' <= value[i-1] && value[i-1] <= '9' {
			return true
		}
	}
	return false
}

// CheckDate parses value with ParseDate and checks that it lies within maxSkew
// of now, in the past or in the future. An empty value wraps ErrNoDate.
func CheckDate(value string, now time.Time, maxSkew time.Duration) (time.Time, error) {
	if value == "" {
		return time.Time{}, ErrNoDate
	}
	t, err := ParseDate(value)
	if err != nil {
		return time.Time{}, err
	}
	skew := now.Sub(t)
	if skew > maxSkew || skew < -maxSkew {
		return t, fmt.Errorf("%w: %s off, %s allowed", ErrDateOutsideWindow, skew.Round(time.Second), maxSkew)
	}
	return t, nil
}
