package verify

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// MaxJSONDepth is how deeply payhook lets JSON from a provider nest: no
// provider's payload comes near it (the deepest seen are under 10 levels),
// and it keeps the envelope, which embeds the payload two levels down, far
// inside the 512 levels PHP's json_decode accepts.
const MaxJSONDepth = 64

// ErrJSONTooDeep means a JSON document nests deeper than allowed.
var ErrJSONTooDeep = errors.New("JSON nested too deeply")

// ErrDuplicateKey means a JSON object names a key twice, in the same
// letter case or not (see CheckJSONKeys).
var ErrDuplicateKey = errors.New("JSON object names a key twice")

// CheckJSON reports whether doc is exactly one JSON value (RFC 8259),
// surrounded by optional white space and nested at most maxDepth arrays or
// objects deep. It never recurses, allocates nothing for a depth up to 128,
// and does linear work whatever the input: it is safe on bytes nobody
// vouched for.
//
// repair is true when doc is well-formed but would be refused by strict
// JSON readers downstream: a string with invalid UTF-8, an escaped lone
// UTF-16 surrogate ("\ud800"), or an object key that begins with U+0000
// (PHP's json_decode refuses each of these). RepairJSON fixes them.
func CheckJSON(doc []byte, maxDepth int) (repair bool, err error) {
	s := jsonScanner{doc: doc, maxDepth: maxDepth}
	err = s.scan()
	return s.repair, err
}

// RepairJSON returns doc, which CheckJSON accepted, with every string made
// safe for strict readers: each ill-formed UTF-8 subsequence and each lone
// surrogate escape becomes U+FFFD, and a key's leading U+0000 does too.
// Everything else stays byte for byte as it was. doc is not modified.
func RepairJSON(doc []byte, maxDepth int) ([]byte, error) {
	s := jsonScanner{doc: doc, maxDepth: maxDepth, out: make([]byte, 0, len(doc)+16)}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return append(s.out, doc[s.copied:]...), nil
}

// CheckJSONKeys is CheckJSON for a document only part of which is signed
// (Adyen signs eight fields of each item): it also refuses an object that
// names a key twice, in any letter case, with an error wrapping
// ErrDuplicateKey. Readers disagree on such an object, so the part that is
// signed could be read one way by payhook and another by the shop. payhook
// (gjson) reads keys exactly and takes the first; PHP's json_decode and
// JavaScript's JSON.parse take the last; Go's encoding/json, Json.NET,
// ASP.NET Core's System.Text.Json and many PHP frameworks' mappers also
// take "Success" for "success", and the last of the two.
//
// Keys are compared as those readers see them: unescaped, with the defects
// RepairJSON replaces replaced, and folded with Unicode's simple case
// mappings, so that two keys strings.EqualFold (Go) or OrdinalIgnoreCase
// (.NET) finds equal, or that ToLower or ToUpper makes equal, are the same
// key. The work is O(n log n) in the size of doc, its memory O(n).
func CheckJSONKeys(doc []byte, maxDepth int) error {
	s := jsonScanner{doc: doc, maxDepth: maxDepth, keys: new(objectKeys)}
	return s.scan()
}

// jsonScanner walks one JSON document with an explicit stack of open
// containers.
type jsonScanner struct {
	doc      []byte
	i        int
	maxDepth int
	repair   bool

	// keys, when not nil, collects the keys of the open objects to find
	// one named twice (see CheckJSONKeys).
	keys *objectKeys

	// out, when not nil, receives the repaired document: doc[copied:i] is
	// still to be copied.
	out    []byte
	copied int
}

func (s *jsonScanner) syntaxError(what string) error {
	return fmt.Errorf("invalid JSON: %s at byte %d", what, s.i)
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// scan validates the whole document.
func (s *jsonScanner) scan() error {
	var stackBuf [128]bool // true: object, false: array
	stack := stackBuf[:0]
	s.skipSpace()
	for {
		// A value is expected at s.i.
		if s.i >= len(s.doc) {
			return s.syntaxError("unexpected end")
		}
		switch c := s.doc[s.i]; c {
		case '{', '[':
			if len(stack) >= s.maxDepth {
				return fmt.Errorf("%w: more than %d levels", ErrJSONTooDeep, s.maxDepth)
			}
			object := c == '{'
			stack = append(stack, object)
			s.i++
			s.skipSpace()
			closer := byte(']')
			if object {
				closer = '}'
			}
			if s.i < len(s.doc) && s.doc[s.i] == closer {
				s.i++
				stack = stack[:len(stack)-1]
				break // an empty container is a complete value
			}
			if object {
				if s.keys != nil {
					s.keys.open()
				}
				if err := s.member(); err != nil {
					return err
				}
			}
			continue // the first element (or member value) follows
		case '"':
			if err := s.str(false); err != nil {
				return err
			}
		case 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return s.syntaxError("unexpected character")
			}
			if err := s.number(); err != nil {
				return err
			}
		}

		// A value ended: close containers, or find the next element.
		for {
			s.skipSpace()
			if len(stack) == 0 {
				if s.i != len(s.doc) {
					return s.syntaxError("data after the value")
				}
				return nil
			}
			if s.i >= len(s.doc) {
				return s.syntaxError("unexpected end")
			}
			object := stack[len(stack)-1]
			c := s.doc[s.i]
			if c == ',' {
				s.i++
				s.skipSpace()
				if object {
					if err := s.member(); err != nil {
						return err
					}
				}
				break // the next value follows
			}
			if (object && c == '}') || (!object && c == ']') {
				if object && s.keys != nil {
					if err := s.keys.close(s.doc); err != nil {
						return err
					}
				}
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			return s.syntaxError("unexpected character")
		}
	}
}

// member reads an object member's key and colon; the value follows.
func (s *jsonScanner) member() error {
	if s.i >= len(s.doc) || s.doc[s.i] != '"' {
		return s.syntaxError("object key expected")
	}
	start := s.i
	if err := s.str(true); err != nil {
		return err
	}
	if s.keys != nil {
		s.keys.add(s.doc, start, s.i)
	}
	s.skipSpace()
	if s.i >= len(s.doc) || s.doc[s.i] != ':' {
		return s.syntaxError("':' expected")
	}
	s.i++
	s.skipSpace()
	return nil
}

func (s *jsonScanner) literal(word string) error {
	if len(s.doc)-s.i < len(word) || string(s.doc[s.i:s.i+len(word)]) != word {
		return s.syntaxError("invalid literal")
	}
	s.i += len(word)
	return nil
}

// number reads an RFC 8259 number.
func (s *jsonScanner) number() error {
	d := s.doc
	if d[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(d) && d[s.i] == '0':
		s.i++
	case !s.digits():
		return s.syntaxError("invalid number")
	}
	if s.i < len(d) && d[s.i] == '.' {
		s.i++
		if !s.digits() {
			return s.syntaxError("invalid number")
		}
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if s.i < len(d) && (d[s.i] == '+' || d[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.syntaxError("invalid number")
		}
	}
	return nil
}

// digits reads one or more decimal digits; false when there is none.
func (s *jsonScanner) digits() bool {
	start := s.i
	for s.i < len(s.doc) && '0' <= s.doc[s.i] && s.doc[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str reads a string starting at its opening quote. When the string needs
// repair and s.out is set, the repaired string is written there.
func (s *jsonScanner) str(key bool) error {
	start := s.i
	d := s.doc
	s.i++
	bad := false
	for {
		// The common case: a run of plain ASCII, eight bytes at a time.
		i := s.i
		for i+8 <= len(d) && !hasStringSpecial(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < len(d) && plainStringByte[d[i]] {
			i++
		}
		s.i = i
		if s.i >= len(d) {
			return s.syntaxError("unterminated string")
		}
		switch c := d[s.i]; {
		case c == '"':
			s.i++
			if key && s.i-start > 7 && string(d[start+1:start+7]) == `\u0000` {
				bad = true
			}
			if bad {
				s.repair = true
				if s.out != nil {
					s.out = append(s.out, d[s.copied:start]...)
					s.out = appendRepairedString(s.out, d[start+1:s.i-1], key)
					s.copied = s.i
				}
			}
			return nil
		case c < 0x20:
			return s.syntaxError("control character in string")
		case c == '\\':
			if s.i+1 >= len(d) {
				return s.syntaxError("unterminated string")
			}
			switch d[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				r, ok := hex4(d, s.i+2)
				if !ok {
					return s.syntaxError("invalid \\u escape")
				}
				s.i += 6
				switch {
				case 0xD800 <= r && r < 0xDC00:
					// A high surrogate must be followed by a low one.
					if low, ok := hex4(d, s.i+2); ok && s.i+1 < len(d) && d[s.i] == '\\' && d[s.i+1] == 'u' && 0xDC00 <= low && low < 0xE000 {
						s.i += 6
					} else {
						bad = true
					}
				case 0xDC00 <= r && r < 0xE000:
					bad = true
				}
			default:
				return s.syntaxError("invalid escape")
			}
		default: // the start of a multi-byte sequence
			r, size := utf8.DecodeRune(d[s.i:])
			if r == utf8.RuneError && size <= 1 {
				bad = true
				size = 1
			}
			s.i += size
		}
	}
}

// plainStringByte marks the bytes a string can hold as they are: printable
// ASCII other than the quote and the backslash.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hasStringSpecial reports whether any of the eight bytes in w may not be
// plain (see plainStringByte): a control character, a quote, a backslash or
// a byte of a multi-byte sequence. It may report true for plain bytes next
// to such a byte, never false for a special one.
func hasStringSpecial(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := w^(ones*'"'), w^(ones*'\\')
	return ((w-ones*0x20)|(quote-ones)|(backslash-ones)|w)&highs != 0
}

// hex4 decodes the four hex digits at d[i:i+4].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendRepairedString appends the string whose contents (between the
// quotes, already validated) are raw, quoted, with its defects replaced.
func appendRepairedString(out, raw []byte, key bool) []byte {
	out = append(out, '"')
	i := 0
	if key && len(raw) >= 6 && string(raw[:6]) == `\u0000` {
		out = append(out, `\ufffd`...)
		i = 6
	}
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '\\' && raw[i+1] == 'u':
			r, _ := hex4(raw, i+2)
			switch {
			case 0xD800 <= r && r < 0xDC00:
				if low, ok := hex4(raw, i+8); ok && i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' && 0xDC00 <= low && low < 0xE000 {
					out = append(out, raw[i:i+12]...)
					i += 12
					continue
				}
				out = append(out, `\ufffd`...)
			case 0xDC00 <= r && r < 0xE000:
				out = append(out, `\ufffd`...)
			default:
				out = append(out, raw[i:i+6]...)
			}
			i += 6
		case c == '\\':
			out = append(out, raw[i:i+2]...)
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size <= 1 {
				out = append(out, `\ufffd`...)
				i++
				continue
			}
			out = append(out, raw[i:i+size]...)
			i += size
		}
	}
	return append(out, '"')
}

// FoldKey returns key, an unescaped JSON key, folded as CheckJSONKeys
// folds keys: two keys that a case-insensitive reader takes for the same
// fold alike.
func FoldKey(key string) string {
	folded := make([]byte, 0, len(key))
	for _, r := range key { // an ill-formed byte is utf8.RuneError
		folded = utf8.AppendRune(folded, foldRune(r))
	}
	return string(folded)
}

// objectKeys collects the folded keys of the objects a scan has open. An
// object's keys are sorted once, when it closes, so that a key named twice
// is found in O(n log n) however many keys the object has.
type objectKeys struct {
	folded  []byte       // the open objects' folded keys, one after another
	keys    []objectKey  // the open objects' keys, the innermost object's last
	objects []openObject // the open objects, the innermost last
}

// objectKey is one key: its folded form, folded[start:end], and where it is
// in the document, quotes included.
type objectKey struct {
	start, end       int
	rawStart, rawEnd int
}

// openObject is where an open object's keys begin in keys and folded.
type openObject struct {
	keys, folded int
}

func (k *objectKeys) open() {
	k.objects = append(k.objects, openObject{keys: len(k.keys), folded: len(k.folded)})
}

// add records the key at doc[start:end], quotes included, in the innermost
// open object.
func (k *objectKeys) add(doc []byte, start, end int) {
	from := len(k.folded)
	k.folded = appendFoldedKey(k.folded, doc[start+1:end-1])
	k.keys = append(k.keys, objectKey{start: from, end: len(k.folded), rawStart: start, rawEnd: end})
}

// close checks the innermost open object's keys and forgets them.
func (k *objectKeys) close(doc []byte) error {
	object := k.objects[len(k.objects)-1]
	k.objects = k.objects[:len(k.objects)-1]
	keys := k.keys[object.keys:]
	folded := func(key objectKey) []byte { return k.folded[key.start:key.end] }
	slices.SortFunc(keys, func(a, b objectKey) int {
		return cmp.Or(bytes.Compare(folded(a), folded(b)), cmp.Compare(a.rawStart, b.rawStart))
	})
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(folded(keys[i-1]), folded(keys[i])) {
			first, second := keys[i-1], keys[i]
			return fmt.Errorf("%w: %q at byte %d and %q at byte %d", ErrDuplicateKey,
				truncate(string(doc[first.rawStart+1:first.rawEnd-1]), 64), first.rawStart,
				truncate(string(doc[second.rawStart+1:second.rawEnd-1]), 64), second.rawStart)
		}
	}
	k.keys, k.folded = k.keys[:object.keys], k.folded[:object.folded]
	return nil
}

// appendFoldedKey appends the folded form of a key, whose contents (between
// the quotes) are raw, already validated: unescaped, its defects replaced
// with U+FFFD as RepairJSON replaces them, each rune folded by foldRune.
func appendFoldedKey(out, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		var r rune
		switch {
		case c == '\\' && raw[i+1] == 'u':
			r, _ = hex4(raw, i+2)
			i += 6
			switch {
			case 0xD800 <= r && r < 0xDC00:
				if low, ok := hex4(raw, i+2); ok && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' && 0xDC00 <= low && low < 0xE000 {
					r = utf16Pair(r, low)
					i += 6
				} else {
					r = utf8.RuneError
				}
			case 0xDC00 <= r && r < 0xE000:
				r = utf8.RuneError
			case r == 0 && i == 6:
				r = utf8.RuneError // a key's leading U+0000, as RepairJSON makes it
			}
		case c == '\\':
			r = rune(jsonEscapes[raw[i+1]])
			i += 2
		case c < utf8.RuneSelf:
			r = rune(c)
			i++
		default:
			var size int
			r, size = utf8.DecodeRune(raw[i:]) // an ill-formed byte is utf8.RuneError, of size 1
			i += size
		}
		out = utf8.AppendRune(out, foldRune(r))
	}
	return out
}

// jsonEscapes maps the letter of a two-character escape to its character.
var jsonEscapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func utf16Pair(high, low rune) rune {
	return 0x10000 + (high-0xD800)<<10 + (low - 0xDC00)
}

// foldRune maps r to one rune of the runes that case-insensitive readers
// take for the same: Go's (strings.EqualFold: the orbit of
// unicode.SimpleFold), .NET's OrdinalIgnoreCase (equal upper cases: 'ı'
// and 'i') and those comparing lower cases ('İ' and 'i'). It is the
// smallest rune of the orbit of the upper case of r's lower case, as
// encoding/json's foldName takes the smallest of the orbit.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	r = unicode.ToUpper(unicode.ToLower(r))
	for {
		next := unicode.SimpleFold(r)
		if next <= r {
			return next
		}
		r = next
	}
}
