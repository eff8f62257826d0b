package verify

import (
	"errors"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	want := time.Date(2026, 11, 20, 10, 34, 47, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Time
		err   error
	}{
		{"IMF-fixdate", "Fri, 20 Nov 2026 10:34:47 GMT", want, nil},
		{"quirk: UTC instead of GMT", "Fri, 20 Nov 2026 10:34:47 UTC", want, nil},
		{"numeric zero offset", "Fri, 20 Nov 2026 10:34:47 +0000", want, nil},
		{"numeric offset converted to UTC", "Fri, 20 Nov 2026 11:34:47 +0100", want, nil},
		{"RFC 850", "Friday, 20-Nov-26 10:34:47 GMT", want, nil},
		{"asctime", "Fri Nov 20 10:34:47 2026", want, nil},
		{"zone abbreviation other than GMT/UTC", "Fri, 20 Nov 2026 10:34:47 CET", time.Time{}, ErrMalformedDate},
		{"quirk: fractional seconds with a period", "Fri, 20 Nov 2026 10:34:47.5 GMT", time.Time{}, ErrMalformedDate},
		{"quirk: fractional seconds with a comma", "Friday, 20-Nov-26 10:34:47,1 GMT", time.Time{}, ErrMalformedDate},
		{"quirk: zero fraction", "Fri Nov 20 10:34:47.0 2026", time.Time{}, ErrMalformedDate},
		{"RFC 3339", "2026-11-20T10:34:47Z", time.Time{}, ErrMalformedDate},
		{"unix seconds", "1795170887", time.Time{}, ErrMalformedDate},
		{"empty", "", time.Time{}, ErrMalformedDate},
		{"trailing garbage", "Fri, 20 Nov 2026 10:34:47 GMT x", time.Time{}, ErrMalformedDate},
		{"over long", "Fri, 20 Nov 2026 10:34:47 GMT                                         ", time.Time{}, ErrMalformedDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDate(tt.value)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseDate(%q) error = %v, want %v", tt.value, err, tt.err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseDate(%q) = %v, want %v", tt.value, got, tt.want)
			}
			// Again, from the cache of the last value parsed when it was valid.
			if again, err := ParseDate(tt.value); !errors.Is(err, tt.err) || !again.Equal(tt.want) || again.Location() != time.UTC {
				t.Errorf("ParseDate(%q) again = %v, %v", tt.value, again, err)
			}
		})
	}
}

func TestCheckDate(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 34, 47, 0, time.UTC)
	tests := []struct {
		value string
		err   error
	}{
		{"", ErrNoDate},
		{"garbage", ErrMalformedDate},
		{"Fri, 20 Nov 2026 10:34:47 GMT", nil},
		{"Fri, 20 Nov 2026 10:29:47 GMT", nil},                  // exactly max skew in the past
		{"Fri, 20 Nov 2026 10:39:47 GMT", nil},                  // exactly max skew in the future
		{"Fri, 20 Nov 2026 10:29:46 GMT", ErrDateOutsideWindow}, // one second too old
		{"Fri, 20 Nov 2026 10:39:48 GMT", ErrDateOutsideWindow}, // one second too far ahead
		{"Thu, 19 Nov 2026 10:34:47 GMT", ErrDateOutsideWindow}, // a replay a day later
	}
	for _, tt := range tests {
		if _, err := CheckDate(tt.value, now, 5*time.Minute); !errors.Is(err, tt.err) {
			t.Errorf("CheckDate(%q) error = %v, want %v", tt.value, err, tt.err)
		}
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"Fri, 20 Nov 2026 10:34:47 GMT", "Fri, 20 Nov 2026 10:34:47 UTC", "Fri, 20 Nov 2026 11:34:47 +0100",
		"Friday, 20-Nov-26 10:34:47 GMT", "Fri Nov 20 10:34:47 2026", "", "Fri, 99 Nov 2026 10:34:47 GMT",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseDate(value)
		if err != nil {
			if !errors.Is(err, ErrMalformedDate) {
				t.Fatalf("ParseDate(%q) error %v does not wrap ErrMalformedDate", value, err)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseDate(%q) = %v, not in UTC", value, got)
		}
		// Whatever parsed must parse to the same instant again when formatted canonically.
		again, err := ParseDate(got.Format("Mon, 02 Jan 2006 15:04:05 GMT"))
		if err != nil || !again.Equal(got) {
			t.Fatalf("ParseDate(%q) = %v does not round-trip: %v, %v", value, got, again, err)
		}
	})
}
