package normalize_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
)

func TestParseEventTime(t *testing.T) {
	utc := func(year int, month time.Month, day, hour, minute, second, nanos int) time.Time {
		return time.Date(year, month, day, hour, minute, second, nanos, time.UTC)
	}
	for _, tt := range []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-11-20T10:34:47Z", utc(2026, 11, 20, 10, 34, 47, 0)},
		{"2026-11-20T10:34:47.123Z", utc(2026, 11, 20, 10, 34, 47, 123e6)},
		// Worldline's own signed SDK sample: an offset without a colon.
		{"2017-02-02T11:24:14.040+0100", utc(2017, 2, 2, 10, 24, 14, 40e6)},
		{"2017-02-02T11:24:14.040+01:00", utc(2017, 2, 2, 10, 24, 14, 40e6)},
		{"2017-02-02T11:24:14+01", utc(2017, 2, 2, 10, 24, 14, 0)},
		{"2026-11-20T05:34:47-0500", utc(2026, 11, 20, 10, 34, 47, 0)},
		// Checkout.com: seven digits of fraction in created_on, three and an offset in timestamp.
		{"2023-05-24T09:28:33.7515599Z", utc(2023, 5, 24, 9, 28, 33, 751559900)},
		{"2023-05-24T09:12:32.357+00:00", utc(2023, 5, 24, 9, 12, 32, 357e6)},
		// Paddle: six digits.
		{"2024-03-20T10:07:35.590857Z", utc(2024, 3, 20, 10, 7, 35, 590857e3)},
		// Beyond nanoseconds, the rest is cut.
		{"2026-11-20T10:34:47.123456789123Z", utc(2026, 11, 20, 10, 34, 47, 123456789)},
		// RFC 3339's own allowances: lower case, a space.
		{"2026-11-20t10:34:47z", utc(2026, 11, 20, 10, 34, 47, 0)},
		{"2026-11-20 10:34:47Z", utc(2026, 11, 20, 10, 34, 47, 0)},
		// Unix time: seconds (Razorpay), milliseconds, seconds with a fraction.
		{"1652339806", utc(2022, 5, 12, 7, 16, 46, 0)},
		{"1652339806250", utc(2022, 5, 12, 7, 16, 46, 250e6)},
		{"1652339806.25", utc(2022, 5, 12, 7, 16, 46, 250e6)},
		// Refused: no zone, not a time, out of RFC 3339's years, nonsense.
		{"2026-11-20T10:34:47", time.Time{}},
		{"2026-11-20 10:34:47", time.Time{}},
		{"20170202112414", time.Time{}}, // Worldline's statusCodeChangeDateTime: no zone, and too far a Unix time
		{"Thu, 20 Nov 2026 10:34:47 GMT", time.Time{}},
		{"0", time.Time{}},
		{"-1652339806", time.Time{}},
		{"1652339806.", time.Time{}},
		{"1652339806.1234567890", time.Time{}},
		{"99999999999999999999", time.Time{}},
		{"2026-11-20T10:34:47+25:00", time.Time{}},
		{"", time.Time{}},
		{strings.Repeat("1", 60), time.Time{}},
	} {
		got, ok := ParseEventTime(tt.in)
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
			t.Errorf("ParseEventTime(%q) = %s, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
}

// Whatever a provider writes, ParseEventTime either refuses it or returns
// a time RFC 3339 can write, which reads back as the same instant.
func FuzzParseEventTime(f *testing.F) {
	for _, s := range []string{"2017-02-02T11:24:14.040+0100", "2023-05-24T09:28:33.7515599Z", "2026-11-20 10:34:47z",
		"2017-02-02T11:24:14+01", "1652339806", "1652339806250", "1652339806.25", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseEventTime(s)
		if !ok {
			return
		}
		if year := got.UTC().Year(); year < 1 || year > 9999 || len(s) > 48 {
			t.Fatalf("%q: %s accepted", s, got)
		}
		again, ok := ParseEventTime(got.UTC().Format(time.RFC3339Nano))
		if !ok || !again.Equal(got) {
			t.Fatalf("%q: %s reads back as %s, %v", s, got, again, ok)
		}
	})
}
