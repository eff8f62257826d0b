package normalize

import (
	"bytes"
	"encoding/json"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDecodePHPForm pins PHP's $_POST rules. TestDecodePHPFormMatchesPHP
// runs every case through PHP itself.
var phpFormCases = []struct {
	name, body, want string
}{
	{"flat", "a=1&b=two", `{"a":"1","b":"two"}`},
	{"plus and percent", "a=hello+world%21&b=%C3%A9", `{"a":"hello world!","b":"é"}`},
	{"invalid percent kept", "a=100%&b=%zz&c=%4", `{"a":"100%","b":"%zz","c":"%4"}`},
	{"no equals sign", "a&b=", `{"a":"","b":""}`},
	{"empty pairs skipped", "&&a=1&&", `{"a":"1"}`},
	{"value with equals sign", "a=x=y", `{"a":"x=y"}`},
	{"repeated key: last wins, first position", "a=1&b=2&a=3", `{"a":"3","b":"2"}`},
	{"nested", "a[b][c]=x", `{"a":{"b":{"c":"x"}}}`},
	{"percent-encoded brackets", "a%5Bb%5D%5Bc%5D=x", `{"a":{"b":{"c":"x"}}}`},
	{"append", "a[]=x&a[]=y", `{"a":["x","y"]}`},
	{"append after integer keys", "a[5]=x&a[]=y", `{"a":{"5":"x","6":"y"}}`},
	{"append after string keys", "a[k]=x&a[]=y", `{"a":{"k":"x","0":"y"}}`},
	{"append nested arrays", "a[][n]=x&a[][n]=y", `{"a":[{"n":"x"},{"n":"y"}]}`},
	{"consecutive integer keys are a list", "a[0]=x&a[1]=y&a[2]=z", `{"a":["x","y","z"]}`},
	{"integer keys out of order are an object", "a[1]=y&a[0]=x", `{"a":{"1":"y","0":"x"}}`},
	{"gap makes an object", "a[0]=x&a[2]=z", `{"a":{"0":"x","2":"z"}}`},
	{"leading zero is a string key", "a[0]=x&a[01]=y", `{"a":{"0":"x","01":"y"}}`},
	{"negative integer key", "a[-1]=x", `{"a":{"-1":"x"}}`},
	{"append after negative key", "a[-5]=x&a[]=y", `{"a":{"-5":"x","-4":"y"}}`},
	{"minus zero is a string", "a[-0]=x", `{"a":{"-0":"x"}}`},
	{"int overflow is a string", "a[9223372036854775808]=x", `{"a":{"9223372036854775808":"x"}}`},
	{"top level integer keys", "0=a&1=b", `["a","b"]`},
	{"dot and space in base name", "a.b=1&c d=2", `{"a_b":"1","c_d":"2"}`},
	{"dot inside index kept", "a[b.c]=1", `{"a":{"b.c":"1"}}`},
	{"leading spaces dropped", "%20%20a=1", `{"a":"1"}`},
	{"empty base name dropped", "[a]=1&=2&b=3", `{"b":"3"}`},
	{"unterminated first bracket", "a[b=1", `{"a_b":"1"}`},
	{"unterminated first bracket with dots", "a[b.c[d=1", `{"a_b_c_d":"1"}`},
	{"unterminated later bracket", "a[b][c=1", `{"a":{"b":"1"}}`},
	{"text after bracket ignored", "a[b]c=1", `{"a":{"b":"1"}}`},
	{"text between brackets ignored", "a[b]c[d]=1", `{"a":{"b":"1"}}`},
	{"scalar replaced by array", "a=1&a[b]=2", `{"a":{"b":"2"}}`},
	{"array replaced by scalar", "a[b]=2&a=1", `{"a":"1"}`},
	{"one space is an append", "a[]=x&a[%20]=y", `{"a":["x","y"]}`},
	{"one tab is an append", "a[%09]=x", `{"a":["x"]}`},
	{"two spaces are a key", "a[%20%20]=x", `{"a":{"  ":"x"}}`},
	{"leading space in index kept", "a[%20b]=x&a[b%20]=y", `{"a":{" b":"x","b ":"y"}}`},
	{"nul byte truncates the key", "a%00b=1", `{"a":"1"}`},
	{"nul byte in value kept", "a=x%00y", `{"a":"x\u0000y"}`},
	{"invalid utf-8 value", "a=%FF", `{"a":"\ufffd"}`},
	{"html kept unescaped", "a=%3Cb%3E%26", `{"a":"<b>&"}`},
	{"empty body", "", `{}`},
	{"payrexx custom field", "transaction[invoice][custom_fields][0][name]=Hobby&transaction[invoice][custom_fields][0][value]=Golf",
		`{"transaction":{"invoice":{"custom_fields":[{"name":"Hobby","value":"Golf"}]}}}`},
}

func TestDecodePHPForm(t *testing.T) {
	for _, tt := range phpFormCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(DecodePHPForm([]byte(tt.body))); got != tt.want {
				t.Errorf("DecodePHPForm(%q)\n got %s\nwant %s", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodePHPFormNestingLimit(t *testing.T) {
	deep := "a" + strings.Repeat("[x]", 64) + "=1&b=2"
	if got := string(DecodePHPForm([]byte(deep))); !strings.HasPrefix(got, `{"a":{"x":`) {
		t.Errorf("64 levels must be kept, got %.40s", got)
	}
	tooDeep := "a" + strings.Repeat("[x]", 65) + "=1&b=2"
	if got := string(DecodePHPForm([]byte(tooDeep))); got != `{"b":"2"}` {
		t.Errorf("65 levels must be dropped, got %s", got)
	}
}

// FuzzDecodePHPForm checks that any body decodes to valid JSON and that a
// body without brackets decodes like url.ParseQuery with the last value.
func FuzzDecodePHPForm(f *testing.F) {
	for _, s := range []string{
		"a=1&b=2", "a[b][c]=x", "a[]=1&a[]=2", "a[b=1", "a%5B0%5D=x", "0=a&1=b", "a[-5]=x&a[]=y",
		"transaction[invoice][products][0][name]=T-Shirt&transaction[invoice][products][0][price]=1990",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := DecodePHPForm(body)
		if !json.Valid(out) {
			t.Fatalf("DecodePHPForm(%q) = %s, not JSON", body, out)
		}
		s := string(body)
		if strings.ContainsAny(s, "[]%+ .;\x00") || !utf8.ValidString(s) {
			return
		}
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			return // a list: all keys were integers
		}
		for k, vs := range q {
			if k == "" {
				continue
			}
			if _, isInt := canonicalInt(k); isInt {
				continue
			}
			if got[k] != vs[len(vs)-1] {
				t.Fatalf("DecodePHPForm(%q)[%q] = %v, want %q", body, k, got[k], vs[len(vs)-1])
			}
		}
	})
}

func TestInvalidUTF8BecomesOneReplacementPerMaximalSubpart(t *testing.T) {
	for in, want := range map[string]string{
		"a\xe3\x82b":       `"a\ufffdb"`,                 // a truncated three-byte sequence: one
		"\xe2\x82\xac":     `"€"`,                        // a complete one
		"\xff\xfe":         `"\ufffd\ufffd"`,             // bytes that start nothing: one each
		"\xed\xa0\x80":     `"\ufffd\ufffd\ufffd"`,       // a surrogate: ED A0 is ill-formed at A0
		"\xf0\x9f\x98":     `"\ufffd"`,                   // a truncated emoji
		"\xf4\x90\x80\x80": `"\ufffd\ufffd\ufffd\ufffd"`, // above U+10FFFF
		"ok\xc3":           `"ok\ufffd"`,
	} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}

// Hostile forms cost memory in proportion to their size at most, whatever
// their shape: 1 MiB bodies of appends, of deeply nested pairs and of one
// endlessly nested key each allocate a few MiB, not the tens of MiB they
// took before max_input_vars and the array budget.
func TestDecodePHPFormMemoryIsBoundedByTheBody(t *testing.T) {
	const size = 1 << 20
	fill := func(unit string) []byte {
		return bytes.Repeat([]byte(unit), size/len(unit))
	}
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"quirk_appends", fill("a[]=&")},
		{"quirk_wide_keys", fill("k=&")},
		{"quirk_deep_pairs", fill("p[]" + strings.Repeat("[q]", 62) + "=v&")},
		{"quirk_deep_new_chains", fill("p[]" + strings.Repeat("[]", 63) + "=v&")},
		{"quirk_one_endless_key", fill("[")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out := DecodePHPForm(tt.body)
			runtime.ReadMemStats(&after)
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 4*size {
				t.Errorf("decoding %d bytes allocated %d bytes", len(tt.body), allocated)
			}
			if !json.Valid(out) {
				t.Errorf("output is not JSON")
			}
		})
	}
}
