package normalize

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DecodePHPForm decodes an application/x-www-form-urlencoded body the way
// PHP fills $_POST, and returns it as JSON the way json_encode($_POST)
// writes it:
//
//   - pairs split on '&'; key and value are URL-decoded ('+' is a space,
//     an invalid %-escape stays as it is); a pair without '=' has value "";
//   - leading spaces of a key are dropped, and in its base name (before the
//     first '[') spaces and dots become '_'; an empty base name drops the pair;
//   - a[b][c]=x nests, a[]=x (or a[ ]=x) appends at the next integer index, a key
//     after the last ']' is ignored (a[b]c → a[b]), and a '[' without a
//     matching ']' is not an index (a[b=1 → a_b);
//   - integer-looking keys ("0", "-7", not "01" or "1.0") are integers, so
//     keys 0..n-1 in order make a JSON array and anything else an object;
//   - a repeated key keeps its first position and its last value; all
//     values are strings;
//   - keys nested deeper than 64 levels are dropped, as PHP's
//     max_input_nesting_level does;
//   - only the first 1001 pairs count, empty ones included: PHP's
//     max_input_vars (1000) stops $_POST after the pair that exceeds it;
//   - beyond PHP: once the pairs have made 4096 arrays, a pair that could
//     make more is dropped, so that nesting cannot multiply the memory a
//     body takes (1001 pairs of 64 levels would make 64,064 arrays).
//
// The work is linear in the size of the body, and the memory it takes is
// bounded by the size of the body, whatever its shape. Brackets may be sent
// raw or percent-encoded.
func DecodePHPForm(body []byte) []byte {
	return decodePHPForm(body, maxInputVars)
}

// maxInputVars is PHP's default max_input_vars.
const maxInputVars = 1000

func decodePHPForm(body []byte, maxVars int) []byte {
	var out bytes.Buffer
	out.Grow(len(body) + 2)
	d := phpDecoder{root: newPHPArray()}
	// PHP registers a pair, then counts it, and stops once the count is
	// over the limit: the pair that exceeds it is kept.
	for pairs := 0; len(body) > 0 && pairs <= maxVars; pairs++ {
		var pair []byte
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			pair, body = body[:i], body[i+1:]
		} else {
			pair, body = body, nil
		}
		if len(pair) == 0 {
			continue
		}
		rawKey, rawValue := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			rawKey, rawValue = pair[:i], pair[i+1:]
		}
		d.register(urlDecode(rawKey), urlDecode(rawValue))
	}
	d.root.writeJSON(&out)
	return out.Bytes()
}

// phpDecoder decodes one form body.
type phpDecoder struct {
	root    *phpArray
	arrays  int        // arrays made below the root
	indices []phpIndex // a pair's [index] parts, reused
}

// maxPHPArrays bounds the arrays one body makes; a Payrexx webhook with
// dozens of products makes a few hundred.
const maxPHPArrays = 4096

// maxNesting is PHP's default max_input_nesting_level.
const maxNesting = 64

// register stores one decoded pair, following php_register_variable_ex.
func (d *phpDecoder) register(key, value string) {
	a := d.root
	if i := strings.IndexByte(key, 0); i >= 0 {
		key = key[:i] // PHP reads the name as a C string
	}
	key = strings.TrimLeft(key, " ")
	open := strings.IndexByte(key, '[')
	base := key
	if open >= 0 {
		base = key[:open]
	}
	if base == "" {
		return
	}
	base = underscore(base, " .")
	if open < 0 {
		a.set(phpKeyOf(base), phpValue{str: value})
		return
	}

	// Walk the [index] parts. indices[0] is the base name.
	indices := append(d.indices[:0], phpIndex{name: base})
	defer func() { d.indices = indices[:0] }() // reused by the next pair
	rest := key[open:]                         // starts with '['
	for nest := 1; ; nest++ {
		if nest > maxNesting {
			return
		}
		inner := rest[1:]
		closeAt := strings.IndexByte(inner, ']')
		if closeAt < 0 {
			if len(indices) == 1 {
				// Not an index: the '[' and what follows join the base name.
				name := base + "_" + underscore(inner, " .[")
				a.set(phpKeyOf(name), phpValue{str: value})
				return
			}
			break // the unterminated part is ignored
		}
		// PHP skips one white-space character before looking for ']',
		// so "[ ]" appends too while "[  ]" and "[ b]" are keys.
		if closeAt == 0 || (closeAt == 1 && isSpace(inner[0])) {
			indices = append(indices, phpIndex{appends: true})
		} else {
			indices = append(indices, phpIndex{name: inner[:closeAt]})
		}
		rest = inner[closeAt+1:]
		if !strings.HasPrefix(rest, "[") {
			break // anything after the last ']' is ignored
		}
	}

	// Each level below the base may make an array.
	if d.arrays+len(indices)-1 > maxPHPArrays {
		return
	}
	arr := a
	for i, idx := range indices {
		if i == len(indices)-1 {
			if idx.appends {
				arr.appendValue(phpValue{str: value})
			} else {
				arr.set(phpKeyOf(idx.name), phpValue{str: value})
			}
			return
		}
		arr = arr.child(idx, &d.arrays)
	}
}

// phpIndex is one [index] of a key: a name, or an append ([]).
type phpIndex struct {
	name    string
	appends bool
}

// underscore replaces each of chars in s with '_', allocating only when
// there is something to replace.
func underscore(s, chars string) string {
	if !strings.ContainsAny(s, chars) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if strings.IndexByte(chars, c) >= 0 {
			b[i] = '_'
		}
	}
	return string(b)
}

// phpKey is a PHP array key: an integer or a string.
type phpKey struct {
	isInt bool
	i     int64
	s     string
}

// phpKeyOf applies PHP's symtable rule: a canonical decimal integer string
// is an integer key.
func phpKeyOf(s string) phpKey {
	if n, ok := canonicalInt(s); ok {
		return phpKey{isInt: true, i: n}
	}
	return phpKey{s: s}
}

func canonicalInt(s string) (int64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 19 || (digits[0] == '0' && len(digits) > 1) || (s[0] == '-' && digits == "0") {
		return 0, false
	}
	if !allDigits(digits) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

type phpValue struct {
	str string
	arr *phpArray // nil for a string
}

// phpArray is an ordered PHP array. Small arrays (the products and custom
// fields of a webhook) are searched linearly; an index map is built once
// an array grows past smallArray entries, so decoding stays linear.
type phpArray struct {
	keys     []phpKey
	values   []phpValue
	index    map[phpKey]int // nil while the array is small
	nextFree int64
	hasNext  bool
}

const smallArray = 16

func newPHPArray() *phpArray {
	return &phpArray{}
}

// find returns the position of k, or -1.
func (a *phpArray) find(k phpKey) int {
	if a.index != nil {
		if i, ok := a.index[k]; ok {
			return i
		}
		return -1
	}
	for i := range a.keys {
		if a.keys[i] == k {
			return i
		}
	}
	return -1
}

func (a *phpArray) set(k phpKey, v phpValue) {
	if i := a.find(k); i >= 0 {
		a.values[i] = v // last value wins, first position stays
		return
	}
	if a.index == nil && len(a.keys) >= smallArray {
		a.index = make(map[phpKey]int, 2*smallArray)
		for i, key := range a.keys {
			a.index[key] = i
		}
	}
	if a.index != nil {
		a.index[k] = len(a.keys)
	}
	a.keys = append(a.keys, k)
	a.values = append(a.values, v)
	if k.isInt && (!a.hasNext || k.i >= a.nextFree) && k.i < 1<<62 {
		a.nextFree, a.hasNext = k.i+1, true
	}
}

func (a *phpArray) appendValue(v phpValue) {
	k := phpKey{isInt: true}
	if a.hasNext {
		k.i = a.nextFree
	}
	a.set(k, v)
}

// child returns the array at idx (an append makes a new one), replacing a
// string found there, as PHP does.
func (a *phpArray) child(idx phpIndex, made *int) *phpArray {
	if idx.appends {
		arr := newPHPArray()
		*made++
		a.appendValue(phpValue{arr: arr})
		return arr
	}
	k := phpKeyOf(idx.name)
	if i := a.find(k); i >= 0 && a.values[i].arr != nil {
		return a.values[i].arr
	}
	arr := newPHPArray()
	*made++
	a.set(k, phpValue{arr: arr})
	return arr
}

// isList reports whether the keys are 0..n-1 in order (json_encode writes a list).
func (a *phpArray) isList() bool {
	for i, k := range a.keys {
		if !k.isInt || k.i != int64(i) {
			return false
		}
	}
	return true
}

func (a *phpArray) writeJSON(out *bytes.Buffer) {
	list := len(a.keys) > 0 && a.isList()
	if list {
		out.WriteByte('[')
	} else {
		out.WriteByte('{')
	}
	for i, k := range a.keys {
		if i > 0 {
			out.WriteByte(',')
		}
		if !list {
			if k.isInt {
				writeJSONString(out, strconv.FormatInt(k.i, 10))
			} else {
				writeJSONString(out, k.s)
			}
			out.WriteByte(':')
		}
		if v := a.values[i]; v.arr != nil {
			v.arr.writeJSON(out)
		} else {
			writeJSONString(out, v.str)
		}
	}
	if list {
		out.WriteByte(']')
	} else {
		out.WriteByte('}')
	}
}

// writeJSONString writes s as a JSON string (see appendJSONString).
func writeJSONString(out *bytes.Buffer, s string) {
	out.Write(appendJSONString(out.AvailableBuffer(), s))
}

// appendJSONString appends s as a JSON string without HTML escaping. Each
// maximal ill-formed UTF-8 subsequence becomes one U+FFFD, as Unicode
// recommends (§3.9, "U+FFFD Substitution of Maximal Subparts").
func appendJSONString(out []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			out = append(out, s[start:i]...)
			switch c {
			case '"', '\\':
				out = append(out, '\\', c)
			case '\n':
				out = append(out, `\n`...)
			case '\r':
				out = append(out, `\r`...)
			case '\t':
				out = append(out, `\t`...)
			default:
				out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += maximalSubpart(s[i:])
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// urlDecode decodes like PHP's urldecode: '+' is a space and an invalid
// %-escape is kept literally.
func urlDecode(b []byte) string {
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]):
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// maximalSubpart returns the length of the maximal ill-formed subsequence
// at the start of s: the longest prefix of a well-formed sequence (Unicode
// Table 3-7), or 1 when the first byte cannot start one.
func maximalSubpart(s string) int {
	lo, hi, n := byte(0x80), byte(0xBF), 0 // range of the second byte, continuation bytes expected
	switch c := s[0]; {
	case 0xC2 <= c && c <= 0xDF:
		n = 1
	case c == 0xE0:
		lo, n = 0xA0, 2
	case 0xE1 <= c && c <= 0xEC, c == 0xEE, c == 0xEF:
		n = 2
	case c == 0xED:
		hi, n = 0x9F, 2
	case c == 0xF0:
		lo, n = 0x90, 3
	case 0xF1 <= c && c <= 0xF3:
		n = 3
	case c == 0xF4:
		hi, n = 0x8F, 3
	default:
		return 1
	}
	length := 1
	for k := 1; k <= n && k < len(s); k++ {
		c := s[k]
		if k > 1 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			break
		}
		length++
	}
	return length
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
