package normalize

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseDecimalAmount(t *testing.T) {
	tests := []struct {
		decimal, currency string
		want              int64
		err               error
	}{
		{"9.99", "EUR", 999, nil},
		{"0.01", "EUR", 1, nil},
		{"10", "EUR", 1000, nil},
		{"10.5", "EUR", 1050, nil},
		{"0", "EUR", 0, nil},
		{"-4.50", "EUR", -450, nil},
		{"100", "JPY", 100, nil},
		{"1.234", "KWD", 1234, nil},
		{"1.2", "KWD", 1200, nil},
		{"1.2345", "CLF", 12345, nil},
		{"00012.30", "EUR", 1230, nil},
		{"9.990", "EUR", 999, nil},
		{"100.000", "JPY", 100, nil},
		{"92233720368547758.07", "EUR", math.MaxInt64, nil},
		{"92233720368547758.08", "EUR", 0, ErrMalformed},
		{"9223372036854775807", "JPY", math.MaxInt64, nil},
		{"9.999", "EUR", 0, ErrInexactAmount},
		{"100.5", "JPY", 0, ErrInexactAmount},
		{"1.2341", "KWD", 0, ErrInexactAmount},
		{"9.99", "XAU", 0, ErrUnknownCurrency},
		{"9.99", "eur", 0, ErrUnknownCurrency},
		{"9.99", "", 0, ErrUnknownCurrency},
		{"", "EUR", 0, ErrMalformed},
		{"-", "EUR", 0, ErrMalformed},
		{".99", "EUR", 0, ErrMalformed},
		{"9.", "EUR", 0, ErrMalformed},
		{"+9.99", "EUR", 0, ErrMalformed},
		{"9,99", "EUR", 0, ErrMalformed},
		{"1,000.00", "EUR", 0, ErrMalformed},
		{"9.99e2", "EUR", 0, ErrMalformed},
		{"1e3", "EUR", 0, ErrMalformed},
		{" 9.99", "EUR", 0, ErrMalformed},
		{"9.99 ", "EUR", 0, ErrMalformed},
		{"9.9.9", "EUR", 0, ErrMalformed},
		{"NaN", "EUR", 0, ErrMalformed},
		{"Infinity", "EUR", 0, ErrMalformed},
		{"0x10", "EUR", 0, ErrMalformed},
		{"123456789012345678901234567890123", "EUR", 0, ErrMalformed},
	}
	for _, tt := range tests {
		got, err := ParseDecimalAmount(tt.decimal, tt.currency)
		if !errors.Is(err, tt.err) {
			t.Errorf("ParseDecimalAmount(%q, %q) error = %v, want %v", tt.decimal, tt.currency, err, tt.err)
			continue
		}
		if err == nil && (got.MinorUnits != tt.want || got.Currency != tt.currency) {
			t.Errorf("ParseDecimalAmount(%q, %q) = %+v, want %d", tt.decimal, tt.currency, got, tt.want)
		}
	}
}

func TestParseMinorUnits(t *testing.T) {
	tests := []struct {
		integer, currency string
		want              int64
		err               error
	}{
		{"999", "EUR", 999, nil},
		{"2", "JPY", 2, nil},
		{"1234", "KWD", 1234, nil},
		{"1200.0", "CHF", 1200, nil},
		{"1200.00", "CHF", 1200, nil},
		{"1200.5", "CHF", 0, ErrInexactAmount},
		{"12.x", "CHF", 0, ErrMalformed},
		{"1e3", "CHF", 0, ErrMalformed},
		{"", "CHF", 0, ErrMalformed},
		{"100", "XTS", 0, ErrUnknownCurrency},
	}
	for _, tt := range tests {
		got, err := ParseMinorUnits(tt.integer, tt.currency)
		if !errors.Is(err, tt.err) {
			t.Errorf("ParseMinorUnits(%q, %q) error = %v, want %v", tt.integer, tt.currency, err, tt.err)
			continue
		}
		if err == nil && got.MinorUnits != tt.want {
			t.Errorf("ParseMinorUnits(%q, %q) = %+v, want %d", tt.integer, tt.currency, got, tt.want)
		}
	}
}

func TestMinorUnitExponent(t *testing.T) {
	for currency, want := range map[string]int{
		"EUR": 2, "USD": 2, "CHF": 2, "SEK": 2, "GBP": 2, "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0,
		"XOF": 0, "VND": 0, "KWD": 3, "BHD": 3, "TND": 3, "OMR": 3, "CLF": 4, "UYW": 4, "HUF": 2, "IDR": 2,
	} {
		if got, ok := MinorUnitExponent(currency); !ok || got != want {
			t.Errorf("MinorUnitExponent(%s) = %d, %v; want %d", currency, got, ok, want)
		}
	}
	for _, currency := range []string{"XAU", "XAG", "XDR", "XTS", "XXX", "BTC", "eur", "EU", ""} {
		if _, ok := MinorUnitExponent(currency); ok {
			t.Errorf("MinorUnitExponent(%q) is known, want unknown", currency)
		}
	}
	// ISO 4217 List One has about 155 active codes with a minor unit.
	if n := len(minorUnitExponents); n < 155 {
		t.Errorf("table holds %d currencies, want the complete list", n)
	}
}

// FuzzParseDecimalAmount checks that every accepted amount is exactly the
// decimal it came from: formatting the minor units back gives the same value.
func FuzzParseDecimalAmount(f *testing.F) {
	for _, s := range []string{"9.99", "0", "-1.5", "1.234", "9.990", "1e3", "", ".", "92233720368547758.07"} {
		f.Add(s, "EUR")
		f.Add(s, "KWD")
		f.Add(s, "JPY")
	}
	f.Fuzz(func(t *testing.T, decimal, currency string) {
		got, err := ParseDecimalAmount(decimal, currency)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInexactAmount) && !errors.Is(err, ErrUnknownCurrency) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		exp, _ := MinorUnitExponent(currency)
		// Rebuild the decimal from the minor units and compare digit by digit
		// with the input stripped of leading and trailing zeros.
		back := strconv.FormatInt(got.MinorUnits, 10)
		if want := canonicalDecimal(decimal, exp); back != want {
			t.Fatalf("ParseDecimalAmount(%q, %s) = %d, want %s", decimal, currency, got.MinorUnits, want)
		}
	})
}

// canonicalDecimal scales an accepted decimal by 10^exp as a string.
func canonicalDecimal(decimal string, exp int) string {
	negative := decimal[0] == '-'
	if negative {
		decimal = decimal[1:]
	}
	intPart, frac := decimal, ""
	for i := range decimal {
		if decimal[i] == '.' {
			intPart, frac = decimal[:i], decimal[i+1:]
		}
	}
	for len(frac) < exp {
		frac += "0"
	}
	digits := intPart + frac[:exp]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	if negative && digits != "0" {
		return "-" + digits
	}
	return digits
}

func TestParseDecimalAmountOverflow(t *testing.T) {
	for _, s := range []string{"9223372036854775808", "50000000000000000000", "18446744073709551616", "99999999999999999999"} {
		if _, err := ParseDecimalAmount(s, "JPY"); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseDecimalAmount(%s, JPY) error = %v, want out of range", s, err)
		}
	}
}

// FuzzParseMinorUnits checks that an accepted minor-unit amount is the
// integer it came from.
func FuzzParseMinorUnits(f *testing.F) {
	for _, s := range []string{"999", "1200.0", "1200.5", "-1", "", "1e3", "00012", "9223372036854775807", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, integer string) {
		got, err := ParseMinorUnits(integer, "CHF")
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInexactAmount) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		whole, _, _ := strings.Cut(integer, ".")
		want, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || want != got.MinorUnits {
			t.Fatalf("ParseMinorUnits(%q) = %d, want %d (%v)", integer, got.MinorUnits, want, err)
		}
	})
}
