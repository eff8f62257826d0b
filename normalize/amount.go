package normalize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is a sum of money in the minor unit of its currency (cents for EUR,
// yen for JPY, fils for KWD).
type Amount struct {
	MinorUnits int64  `json:"value"`
	Currency   string `json:"currency"`
}

// maxAmountLen bounds the decimal text accepted for an amount. No real amount
// needs more; int64 holds 18 digits safely.
const maxAmountLen = 32

// ParseDecimalAmount converts a decimal amount such as "9.99" in currency
// into minor units (999 for EUR), exactly. It accepts digits with an optional
// leading minus and an optional fraction; trailing zeros beyond the
// currency's exponent are allowed ("9.990" EUR), any other extra digit is
// ErrInexactAmount, never rounded. Exponents, signs other than a leading
// minus, spaces and thousands separators are ErrMalformed; an unknown
// currency is ErrUnknownCurrency. No float is ever involved.
func ParseDecimalAmount(decimal, currency string) (Amount, error) {
	exp, ok := MinorUnitExponent(currency)
	if !ok {
		return Amount{}, fmt.Errorf("%w: %q", ErrUnknownCurrency, truncate(currency, 8))
	}
	return parseScaled(decimal, currency, exp)
}

// Decimal writes a in its currency's major units ("9.99" for 999 EUR), the
// inverse of ParseDecimalAmount. An unknown currency is ErrUnknownCurrency.
func (a Amount) Decimal() (string, error) {
	exp, ok := MinorUnitExponent(a.Currency)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownCurrency, a.Currency)
	}
	return formatDecimal(a.MinorUnits, exp), nil
}

// formatDecimal writes minor units as a decimal with exp fraction digits.
func formatDecimal(minorUnits int64, exp int) string {
	s := strconv.FormatInt(minorUnits, 10)
	if exp == 0 {
		return s
	}
	negative := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for len(s) <= exp {
		s = "0" + s
	}
	s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	if negative {
		return "-" + s
	}
	return s
}

// parseScaled reads decimal as an exact multiple of 10^-exp and returns it
// multiplied by 10^exp.
func parseScaled(decimal, currency string, exp int) (Amount, error) {
	if len(decimal) == 0 || len(decimal) > maxAmountLen {
		return Amount{}, fmt.Errorf("%w: amount of %d characters", ErrMalformed, len(decimal))
	}
	s := decimal
	negative := false
	if s[0] == '-' {
		negative, s = true, s[1:]
	}
	intPart, fracPart := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, fracPart = s[:i], s[i+1:]
			break
		}
	}
	if intPart == "" || (len(fracPart) == 0 && len(intPart) < len(s)) {
		return Amount{}, fmt.Errorf("%w: amount is not a decimal number", ErrMalformed)
	}
	if !allDigits(intPart) || !allDigits(fracPart) {
		return Amount{}, fmt.Errorf("%w: amount is not a decimal number", ErrMalformed)
	}
	if len(fracPart) > exp {
		if strings.TrimRight(fracPart[exp:], "0") != "" {
			return Amount{}, fmt.Errorf("%w: %d decimals in %s, which has %d", ErrInexactAmount, len(fracPart), currency, exp)
		}
		fracPart = fracPart[:exp]
	}
	var units uint64
	for _, part := range [2]string{intPart, fracPart} {
		for i := 0; i < len(part); i++ {
			if units > math.MaxInt64/10 {
				return Amount{}, fmt.Errorf("%w: amount out of range", ErrMalformed)
			}
			units = units*10 + uint64(part[i]-'0')
			if units > math.MaxInt64 {
				return Amount{}, fmt.Errorf("%w: amount out of range", ErrMalformed)
			}
		}
	}
	for i := len(fracPart); i < exp; i++ {
		if units > math.MaxInt64/10 {
			return Amount{}, fmt.Errorf("%w: amount out of range", ErrMalformed)
		}
		units *= 10
	}
	v := int64(units)
	if negative {
		v = -v
	}
	return Amount{MinorUnits: v, Currency: currency}, nil
}

// ParseMinorUnits reads an amount that a provider already states in minor
// units (Payrexx, Swedbank Pay): an integer, possibly sent as a string or as
// a JSON number with a zero fraction ("1200.0"). A non-zero fraction is
// ErrInexactAmount: there is no smaller unit to put it in.
func ParseMinorUnits(integer, currency string) (Amount, error) {
	for i := 0; i < len(integer); i++ {
		if integer[i] == '.' {
			for _, c := range []byte(integer[i+1:]) {
				if c != '0' {
					if c < '1' || c > '9' {
						return Amount{}, fmt.Errorf("%w: amount is not an integer", ErrMalformed)
					}
					return Amount{}, fmt.Errorf("%w: fraction of a minor unit", ErrInexactAmount)
				}
			}
			integer = integer[:i]
			break
		}
	}
	if _, ok := MinorUnitExponent(currency); !ok {
		return Amount{}, fmt.Errorf("%w: %q", ErrUnknownCurrency, truncate(currency, 8))
	}
	return parseScaled(integer, currency, 0)
}

// amountOf reads an optional amount: nil when value is empty, else parsed
// by parse in currency (upper-cased), which is then required.
func amountOf(value, currency string, parse func(value, currency string) (Amount, error)) (*Amount, error) {
	if value == "" {
		return nil, nil
	}
	if currency == "" {
		return nil, fmt.Errorf("%w: currency", ErrMissingField)
	}
	amount, err := parse(value, strings.ToUpper(currency))
	if err != nil {
		return nil, err
	}
	return &amount, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// providerMinorUnits reads an integer amount in a provider's own smallest
// unit of currency (case-insensitive), whose exponent exponent gives from
// ISO 4217's, and converts it into ISO 4217 minor units exactly: an amount
// the conversion cannot express exactly is ErrInexactAmount.
func providerMinorUnits(integer, currency string, exponent func(currency string, iso int) int) (Amount, error) {
	currency = strings.ToUpper(currency)
	iso, ok := MinorUnitExponent(currency)
	if !ok {
		return Amount{}, fmt.Errorf("%w: %q", ErrUnknownCurrency, truncate(currency, 8))
	}
	amount, err := ParseMinorUnits(integer, currency)
	if err != nil {
		return Amount{}, err
	}
	for exp := exponent(currency, iso); exp != iso; {
		if exp < iso {
			if amount.MinorUnits > math.MaxInt64/10 || amount.MinorUnits < math.MinInt64/10 {
				return Amount{}, fmt.Errorf("%w: amount out of range", ErrMalformed)
			}
			amount.MinorUnits *= 10
			exp++
			continue
		}
		if amount.MinorUnits%10 != 0 {
			return Amount{}, fmt.Errorf("%w: %s %s is a fraction of the unit ISO 4217 counts %s in", ErrInexactAmount, integer, currency, currency)
		}
		amount.MinorUnits /= 10
		exp--
	}
	return amount, nil
}
