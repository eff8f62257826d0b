package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		ok     bool
		repair bool
		fixed  string // RepairJSON's result, when repair
	}{
		{"object", `{"a":1,"b":[true,false,null,"x",-1.5e+3,{}],"c":{}}`, true, false, ""},
		{"white space around", " \t\n{ \"a\" : [ 1 , 2 ] }\r\n", true, false, ""},
		{"scalar", `"x"`, true, false, ""},
		{"empty array", `[]`, true, false, ""},
		{"empty", ``, false, false, ""},
		{"trailing comma", `[1,]`, false, false, ""},
		{"trailing data", `{} {}`, false, false, ""},
		{"leading zero", `01`, false, false, ""},
		{"bare minus", `-`, false, false, ""},
		{"fraction without digits", `1.`, false, false, ""},
		{"exponent without digits", `1e+`, false, false, ""},
		{"single quotes", `{'a':1}`, false, false, ""},
		{"unquoted key", `{a:1}`, false, false, ""},
		{"missing colon", `{"a" 1}`, false, false, ""},
		{"raw control character", "[\"a\x01\"]", false, false, ""},
		{"bad escape", `["\x"]`, false, false, ""},
		{"short unicode escape", `["\u12"]`, false, false, ""},
		{"unterminated", `["abc`, false, false, ""},
		{"mismatched close", `[1}`, false, false, ""},
		{"surrogate pair", `["\ud83d\ude00"]`, true, false, ""},
		{"quirk_lone_high_surrogate", `["a\ud800b"]`, true, true, `["a\ufffdb"]`},
		{"quirk_lone_low_surrogate", `{"k":"\udc00"}`, true, true, `{"k":"\ufffd"}`},
		{"quirk_high_surrogate_then_escape", `["\ud800\n"]`, true, true, `["\ufffd\n"]`},
		{"quirk_invalid_utf8", "{\"k\":\"a\xffb\"}", true, true, `{"k":"a\ufffdb"}`},
		{"quirk_utf8_encoded_surrogate", "[\"\xed\xa0\x80\"]", true, true, `["\ufffd\ufffd\ufffd"]`},
		{"quirk_key_starting_with_nul", `{"\u0000a":1,"b\u0000":2}`, true, true, `{"\ufffda":1,"b\u0000":2}`},
		{"quirk_nul_in_value_is_fine", `{"a":"\u0000"}`, true, false, ""},
		{"valid multi-byte", `{"name":"Zoë ✓ 😀"}`, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repair, err := CheckJSON([]byte(tt.doc), MaxJSONDepth)
			if (err == nil) != tt.ok || repair != tt.repair {
				t.Fatalf("CheckJSON(%q) = repair %v, err %v; want ok %v repair %v", tt.doc, repair, err, tt.ok, tt.repair)
			}
			if !tt.repair {
				return
			}
			fixed, err := RepairJSON([]byte(tt.doc), MaxJSONDepth)
			if err != nil || string(fixed) != tt.fixed {
				t.Errorf("RepairJSON = %s, %v; want %s", fixed, err, tt.fixed)
			}
		})
	}
}

func TestCheckJSONDepth(t *testing.T) {
	for _, tt := range []struct {
		doc string
		ok  bool
	}{
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), false},
		{strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64), true},
		{strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), false},
	} {
		_, err := CheckJSON([]byte(tt.doc), MaxJSONDepth)
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, ErrJSONTooDeep)) {
			t.Errorf("depth %d: err %v, want ok %v", strings.Count(tt.doc, "[")+strings.Count(tt.doc, "{"), err, tt.ok)
		}
	}
}

// A megabyte of '[' is the input that used to exhaust goroutine stacks
// (gjson validates recursively): it must be refused at once, cheaply.
func TestCheckJSONHugeNestingIsRefusedWithoutRecursion(t *testing.T) {
	doc := bytes.Repeat([]byte("["), 64<<20)
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := CheckJSON(doc, MaxJSONDepth); !errors.Is(err, ErrJSONTooDeep) {
			t.Fatalf("err = %v", err)
		}
	})
	if allocs > 2 && !raceEnabled {
		t.Errorf("%v allocations, want at most 2 (the error)", allocs)
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{"a":[1,2,{"b":null}]}`, `["\ud800"]`, "[\"\xff\"]", `{"\u0000":1}`, `[[[[`, `-0.5e-7`, `"\\\""`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		repair, err := CheckJSON(doc, 16)
		valid := json.Valid(doc)
		depthOK := jsonDepth(doc) <= 16
		switch {
		case err == nil && !valid:
			t.Fatalf("CheckJSON accepted what encoding/json refuses: %q", doc)
		case err != nil && valid && depthOK:
			t.Fatalf("CheckJSON refused valid JSON: %q: %v", doc, err)
		case err == nil && !repair && !utf8.Valid(doc):
			t.Fatalf("invalid UTF-8 not flagged for repair: %q", doc)
		}
		if err != nil || !repair {
			return
		}
		fixed, err := RepairJSON(doc, 16)
		if err != nil {
			t.Fatalf("RepairJSON: %v", err)
		}
		if again, err := CheckJSON(fixed, 16); err != nil || again {
			t.Fatalf("repaired %q into %q, which still needs repair (%v, %v)", doc, fixed, again, err)
		}
		if !utf8.Valid(fixed) || !json.Valid(fixed) {
			t.Fatalf("repaired %q into %q, not valid UTF-8 JSON", doc, fixed)
		}
	})
}

// jsonDepth is the nesting depth of a document encoding/json accepts.
func jsonDepth(doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

func BenchmarkCheckJSON(b *testing.B) {
	doc, err := os.ReadFile("../normalize/testdata/bench/ixopay_2k.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := CheckJSON(doc, MaxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHasStringSpecialMatchesTable checks the eight-byte test against the
// byte table in every lane: it must never call a special byte plain.
func TestHasStringSpecialMatchesTable(t *testing.T) {
	for lane := range 8 {
		for c := range 256 {
			w := []byte("aaaaaaaa")
			w[lane] = byte(c)
			if got := hasStringSpecial(binary.LittleEndian.Uint64(w)); got == plainStringByte[c] {
				t.Errorf("byte %#x in lane %d: hasStringSpecial = %v", c, lane, got)
			}
		}
	}
}

func TestCheckJSONKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		dup  bool
	}{
		{"distinct", `{"success":"false","amount":{"value":500,"currency":"EUR"}}`, false},
		{"exact", `{"success":"false","success":"true"}`, true},
		{"letter case", `{"success":"false","Success":"true"}`, true},
		{"letter case nested", `{"amount":{"value":500,"currency":"EUR","Value":99900}}`, true},
		{"letter case in an array's object", `[{"a":1},{"b":1,"B":2}]`, true},
		{"escaped", `{"success":"false","\u0053ucc\u0065ss":"true"}`, true},
		{"escaped slash", `{"a/b":1,"a\/B":2}`, true},
		{"the same key in other objects", `{"a":{"a":{"A":1}},"b":[{"a":1},{"A":1}],"c":{"a":1}}`, false},
		{"a key after a nested object", `{"a":{"b":1,"c":{"d":1}},"e":{"f":1},"A":2}`, true},
		{"Kelvin sign", `{"k":1,"` + "\u212a" + `":2}`, true},
		{"long s", `{"s":1,"` + "\u017f" + `":2}`, true},
		{"dotless i (.NET's upper case)", `{"i":1,"` + "\u0131" + `":2}`, true},
		{"dotted capital I (lower case)", `{"i":1,"` + "\u0130" + `":2}`, true},
		{"Deseret, beyond the BMP", `{"` + "\U00010400" + `":1,"\ud801\udc28":2}`, true},
		{"sharp s is not ss", `{"ss":1,"` + "\u00df" + `":2}`, false},
		{"accents differ", `{"e":1,"` + "\u00e9" + `":2}`, false},
		{"ill-formed bytes read alike", "{\"a\xff\":1,\"a\xfe\":2}", true},
		{"lone surrogates read alike", `{"\ud800":1,"\udc00":2}`, true},
		{"a leading U+0000 reads as U+FFFD", `{"\u0000x":1,"\ufffdX":2}`, true},
		{"U+0000 elsewhere stays", `{"x\u0000":1,"x\ufffd":2}`, false},
		{"empty keys", `{"":1,"":2}`, true},
		{"empty objects", `{"a":{},"b":{},"c":[{},{}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckJSONKeys([]byte(tt.doc), MaxJSONDepth)
			if errors.Is(err, ErrDuplicateKey) != tt.dup || (err != nil && !errors.Is(err, ErrDuplicateKey)) {
				t.Errorf("CheckJSONKeys(%q) = %v, want a duplicate: %v", tt.doc, err, tt.dup)
			}
			if _, err := CheckJSON([]byte(tt.doc), MaxJSONDepth); err != nil {
				t.Errorf("CheckJSON refuses it: %v", err)
			}
		})
	}
	err := CheckJSONKeys([]byte(`{"success":"false","amount":{"value":1},"Success":"true"}`), MaxJSONDepth)
	if want := `JSON object names a key twice: "success" at byte 1 and "Success" at byte 40`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	for _, doc := range []string{`{"a":1,}`, `{"a":1,"A"}`, strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65)} {
		if err := CheckJSONKeys([]byte(doc), MaxJSONDepth); err == nil || errors.Is(err, ErrDuplicateKey) {
			t.Errorf("CheckJSONKeys(%q) = %v, want CheckJSON's error", doc, err)
		}
	}
}

func TestFoldKey(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"success", "Success", true},
		{"success", "\u017fUCCESS", true},
		{"key", "\u212aey", true},
		{"value", "values", false},
		{"a\xff", "a\xfe", true}, // both U+FFFD
		{"strasse", "stra\u00dfe", false},
	} {
		if got := FoldKey(tt.a) == FoldKey(tt.b); got != tt.same {
			t.Errorf("FoldKey(%q) == FoldKey(%q): %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// TestFoldRuneIsOneRunePerClass checks every rune: its fold is the fold of
// each rune a case-insensitive reader may take for it.
func TestFoldRuneIsOneRunePerClass(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		folded := foldRune(r)
		for _, other := range []rune{unicode.SimpleFold(r), unicode.ToUpper(r), unicode.ToLower(r), unicode.ToTitle(r), folded} {
			if foldRune(other) != folded {
				t.Fatalf("foldRune(%U) = %U but foldRune(%U) = %U", r, folded, other, foldRune(other))
			}
		}
	}
}

// An object of many keys costs a sort, not a comparison of every pair.
func TestCheckJSONKeysManyKeys(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(`{`)
	for i := range 100_000 {
		fmt.Fprintf(&doc, `"k%d":%d,`, i, i)
	}
	distinct := append(bytes.Clone(doc.Bytes()), `"end":0}`...)
	twice := append(bytes.Clone(doc.Bytes()), `"K99999":0}`...)
	if err := CheckJSONKeys(distinct, MaxJSONDepth); err != nil {
		t.Fatal(err)
	}
	if err := CheckJSONKeys(twice, MaxJSONDepth); !errors.Is(err, ErrDuplicateKey) {
		t.Fatal(err)
	}
}

func FuzzCheckJSONKeys(f *testing.F) {
	for _, seed := range []string{`{"success":"false","Success":"true"}`, `{"a":{"b":1,"B":2}}`, `[{"a":1},{"A":1}]`,
		`{"k":1,"` + "\u212a" + `":2}`, `{"\u0000x":1,"\ufffdX":2}`, "{\"a\xff\":1,\"a\xfe\":2}", `{"\ud800":1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		// Syntax is CheckJSON's (a key named twice may be found before an
		// error further on).
		err := CheckJSONKeys(doc, 16)
		_, syntax := CheckJSON(doc, 16)
		if (syntax != nil && err == nil) || (syntax == nil && err != nil && !errors.Is(err, ErrDuplicateKey)) {
			t.Fatalf("CheckJSONKeys = %v but CheckJSON = %v on %q", err, syntax, doc)
		}
		if err != nil {
			return
		}
		// Accepted: no object has two keys that encoding/json decodes
		// (unescaped, ill-formed bytes replaced) into strings a
		// case-insensitive reader takes for the same.
		for _, keys := range jsonObjectKeys(t, doc) {
			for i, a := range keys {
				for _, b := range keys[:i] {
					if strings.EqualFold(a, b) || strings.ToUpper(a) == strings.ToUpper(b) || strings.ToLower(a) == strings.ToLower(b) {
						t.Fatalf("accepted %q, whose object has keys %q and %q", doc, b, a)
					}
				}
			}
		}
	})
}

// jsonObjectKeys returns the keys of each object of doc, as encoding/json
// decodes them.
func jsonObjectKeys(t *testing.T, doc []byte) [][]string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var objects [][]string
	var open []int // for each open container, its object's index, -1 for an array
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return objects
		}
		if err != nil {
			t.Fatalf("encoding/json on %q: %v", doc, err)
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, len(objects))
			objects = append(objects, nil)
			expectKey = true
			continue
		case json.Delim('['):
			open = append(open, -1)
		case json.Delim('}'), json.Delim(']'):
			open = open[:len(open)-1]
		default:
			if key, ok := tok.(string); ok && expectKey {
				objects[open[len(open)-1]] = append(objects[open[len(open)-1]], key)
				expectKey = false
				continue
			}
		}
		expectKey = len(open) > 0 && open[len(open)-1] >= 0
	}
}
