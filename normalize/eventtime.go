package normalize

import (
	"strconv"
	"strings"
	"time"
)

// maxTimeLen bounds a time payhook tries to read: the longest RFC 3339
// time with nanoseconds and an offset is 35 bytes.
const maxTimeLen = 48

// eventTimeLayouts are the RFC 3339 shapes providers send. Go reads a
// fraction of any length after the seconds with each of them ("Z" or an
// offset follows).
var eventTimeLayouts = [...]string{
	time.RFC3339,               // 2026-11-20T10:34:47.123Z, +01:00
	"2006-01-02T15:04:05Z0700", // +0100: Worldline's SDK sample, 2017-02-02T11:24:14.040+0100
	"2006-01-02T15:04:05Z07",   // +01
}

// ParseEventTime reads a provider's event time: RFC 3339 ("T", or the "t" and
// space RFC 3339 also allows, between date and time; "Z" or "z"), a fraction
// of seconds of any length (beyond nanoseconds it is cut), an offset with or
// without its colon (+01:00, +0100, +01); or Unix time as digits: seconds,
// milliseconds past 10^11 (up to 10^13), and seconds with a fraction. A time without a zone
// is refused, since nothing says which zone it is in, and so is a year
// outside 0001 to 9999, which RFC 3339 cannot write.
func ParseEventTime(s string) (time.Time, bool) {
	if s == "" || len(s) > maxTimeLen {
		return time.Time{}, false
	}
	if s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, "-:") {
		return unixTime(s)
	}
	if len(s) > 10 && (s[10] == 't' || s[10] == ' ') {
		s = s[:10] + "T" + s[11:]
	}
	if strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "Z"
	}
	for _, layout := range eventTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, writable(t)
		}
	}
	return time.Time{}, false
}

// unixTime reads Unix seconds ("1652339806", "1652339806.25") or
// milliseconds ("1652339806250", past 10^11: no provider sends seconds that
// far in the future, year 5138). Milliseconds stop at 10^13 (year 2286), so
// that fourteen digits of a date without a zone ("20170202112414", as in
// Worldline's statusCodeChangeDateTime) are not read as a time in 2609.
func unixTime(s string) (time.Time, bool) {
	whole, fraction, hasFraction := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	var t time.Time
	switch {
	case hasFraction:
		if n > 1e11 || fraction == "" || len(fraction) > 9 || strings.Trim(fraction, "0123456789") != "" {
			return time.Time{}, false
		}
		nanos, _ := strconv.ParseInt(fraction+strings.Repeat("0", 9-len(fraction)), 10, 64)
		t = time.Unix(n, nanos)
	case n >= 1e13:
		return time.Time{}, false
	case n > 1e11:
		t = time.UnixMilli(n)
	default:
		t = time.Unix(n, 0)
	}
	return t, writable(t)
}

// writable reports whether t has a year RFC 3339 can write in UTC.
func writable(t time.Time) bool {
	year := t.UTC().Year()
	return year >= 1 && year <= 9999
}
