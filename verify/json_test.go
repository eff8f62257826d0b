package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
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
