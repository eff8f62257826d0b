package verify

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stripeLike is a scheme of several values in one header: "t=…,v1=…".
func stripeLike(t *testing.T) *HMAC {
	t.Helper()
	content, err := ParseTemplate("{timestamp}.{body}")
	if err != nil {
		t.Fatal(err)
	}
	v := &HMAC{Secrets: [][]byte{[]byte("whsec_test")}, Algorithm: "sha256", Header: "Stripe-Signature", SignatureKey: "v1",
		Encoding: "hex", Content: content, TimestampKey: "t", MaxSkew: 5 * time.Minute,
		Now: func() time.Time { return time.Unix(1700000000, 0) }}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHMACSchemeRules(t *testing.T) {
	v := stripeLike(t)
	body := []byte(`{"id":"evt_1"}`)
	sig := v.SignHMAC([]byte("whsec_test"), []byte("1700000000."+string(body)))
	other := v.SignHMAC([]byte("other"), []byte("1700000000."+string(body)))
	for _, tt := range []struct {
		name   string
		header []string
		want   error
	}{
		{"quirk_key_value_header", []string{"t=1700000000,v1=" + sig}, nil},
		{"quirk_several_v1_one_matches", []string{"t=1700000000,v1=" + other + ",v1=" + sig + ",v0=abc"}, nil},
		{"quirk_semicolons_and_spaces", []string{"t=1700000000; v1=" + sig}, nil},
		{"quirk_two_header_lines", []string{"t=1700000000,v1=" + other, "t=1700000000,v1=" + sig}, nil},
		{"wrong secret", []string{"t=1700000000,v1=" + other}, ErrBadSignature},
		{"no v1", []string{"t=1700000000,v0=" + sig}, ErrNotSigned},
		{"no timestamp", []string{"v1=" + sig}, ErrNoDate},
		{"stale", []string{"t=1699999000,v1=" + sig}, ErrDateOutsideWindow},
		{"future", []string{"t=1700001000,v1=" + sig}, ErrDateOutsideWindow},
		{"timestamp with a fraction", []string{"t=1700000000.5,v1=" + sig}, ErrMalformedDate},
		{"not hex", []string{"t=1700000000,v1=zz" + sig[2:]}, ErrMalformedSignature},
		{"truncated", []string{"t=1700000000,v1=" + sig[:10]}, ErrMalformedSignature},
		{"huge header", []string{"t=1700000000,v1=" + strings.Repeat("a", 9000)}, ErrMalformedSignature},
		{"no header", nil, ErrNotSigned},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cb := &Callback{Method: "POST", Header: http.Header{"Stripe-Signature": tt.header}, Body: body}
			_, err := v.Verify(context.Background(), cb)
			if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	for _, tt := range []struct {
		template, want string
		err            bool
	}{
		{"{body}", "BODY", false},
		{"{timestamp}.{body}", "123.BODY", false},
		{`{http.request.method}\n{http.request.uri}\n{body.sha256.hex}`, "POST\n/x\n" + "ef8a1b8a8f5b11ebeb1bf1b6c6e33da89a83da1b8e1a2b56cd2cfc0c7f38b47f"[:0], false},
		{`a\{b\}{body}\\`, `a{b}BODY\`, false},
		{"{url}{body}", "https://h/x?q=1BODY", false},
		{"{timestamp}", "", true},             // does not cover the body
		{"{body", "", true},                   // unterminated
		{"{}{body}", "", true},                // empty placeholder
		{`{body}\q`, "", true},                // unknown escape
		{"}{body}", "", true},                 // unmatched brace
		{strings.Repeat("a", 2000), "", true}, // too long
	} {
		tmpl, err := ParseTemplate(tt.template)
		if tt.err {
			if err == nil {
				t.Errorf("ParseTemplate(%q) accepted", tt.template)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.template, err)
			continue
		}
		got, err := tmpl.Append(nil, TemplateValues{Body: []byte("BODY"), Timestamp: "123", URL: "https://h/x?q=1",
			Placeholders: mapPlaceholders{"http.request.method": "POST", "http.request.uri": "/x"}})
		if err != nil {
			t.Errorf("%q: %v", tt.template, err)
			continue
		}
		if tt.want != "" && !strings.HasPrefix(string(got), tt.want) {
			t.Errorf("%q built %q, want %q", tt.template, got, tt.want)
		}
	}
	// A server placeholder that does not resolve cannot be signed over.
	tmpl, _ := ParseTemplate("{http.request.header.X-Missing}{body}")
	if _, err := tmpl.Append(nil, TemplateValues{Body: []byte("b"), Placeholders: mapPlaceholders{}}); !errors.Is(err, ErrNotSigned) {
		t.Errorf("unresolved placeholder: %v", err)
	}
}

// A timestamp the signature does not cover is the sender's to choose, so
// checking it would bound no replay: such a scheme is a configuration error.
func TestHMACUnsignedTimestampIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name, content, key, header string
		ok                         bool
	}{
		{"quirk_timestamp_key_signed", "{timestamp}.{body}", "t", "", true},
		{"quirk_timestamp_header_signed_as_timestamp", "{timestamp}{body}", "", "X-Ts", true},
		{"quirk_timestamp_header_signed_as_its_placeholder", `{http.request.header.x-ms-date};{body.sha256.base64}`, "", "X-Ms-Date", true},
		{"timestamp_key unsigned", "{body}", "t", "", false},
		{"timestamp_header unsigned", "{body}", "", "X-Ts", false},
		{"another header's placeholder", "{http.request.header.X-Other}{body}", "", "X-Ts", false},
		{"no timestamp at all", "{body}", "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content, err := ParseTemplate(tt.content)
			if err != nil {
				t.Fatal(err)
			}
			v := &HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Content: content, MaxSkew: time.Minute,
				TimestampHeader: tt.header, TimestampKey: tt.key}
			if tt.key != "" {
				v.SignatureKey = "v1"
			}
			err = v.Check()
			if tt.ok != (err == nil) {
				t.Fatalf("Check() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "not signed") {
				t.Errorf("error %q does not say the timestamp is not signed", err)
			}
		})
	}
}

type mapPlaceholders map[string]string

func (m mapPlaceholders) Get(name string) (any, bool) {
	v, ok := m[name]
	return v, ok
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"{body}", `{timestamp}.{body}`, `{http.request.method}\n{http.request.uri}\n{body.sha256.base64}`, `\{{body}\}`, "{{body}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		if !tmpl.uses(partBody) && !tmpl.uses(partBodySHA256Hex) && !tmpl.uses(partBodySHA256Base64) {
			t.Fatalf("%q accepted without covering the body", s)
		}
		_, _ = tmpl.Append(nil, TemplateValues{Body: []byte("b"), Placeholders: mapPlaceholders{}})
	})
}

func FuzzHMACSignatureHeader(f *testing.F) {
	f.Add("t=1700000000,v1=00", "1700000000")
	f.Add("t=,v1=,=,,;;&&", "")
	f.Add("HMAC-SHA256 SignedHeaders=a;b&Signature=abc=", "")
	f.Fuzz(func(t *testing.T, header, timestamp string) {
		content, _ := ParseTemplate("{timestamp}.{body}")
		v := &HMAC{Secrets: [][]byte{[]byte("k")}, Algorithm: "sha256", Header: "S", SignatureKey: "v1", Encoding: "hex",
			Content: content, TimestampKey: "t", MaxSkew: time.Minute, Now: func() time.Time { return time.Unix(1700000000, 0) }}
		body := []byte("body")
		res, err := v.Verify(context.Background(), &Callback{Header: http.Header{"S": {header}}, Body: body})
		if err != nil {
			return
		}
		// Only the genuine signature over the genuine timestamp passes.
		want := v.SignHMAC([]byte("k"), []byte(res.Date+".body"))
		if !strings.Contains(header, "v1="+want) {
			t.Fatalf("accepted %q", header)
		}
		if _, err := strconv.ParseInt(res.Date, 10, 64); err != nil {
			t.Fatalf("accepted timestamp %q", res.Date)
		}
	})
}

// An optional prefix takes a signature with it or without it (Mollie's
// X-Mollie-Signature); a required one refuses the bare signature.
func TestHMACOptionalPrefix(t *testing.T) {
	body := []byte(`{"id":"event_1"}`)
	for _, tt := range []struct {
		optional  bool
		signature string
		want      error
	}{
		{true, "sha256=" + SignHexHMACSHA256([]byte("k"), body), nil},
		{true, SignHexHMACSHA256([]byte("k"), body), nil},
		{false, SignHexHMACSHA256([]byte("k"), body), ErrMalformedSignature},
		{true, "sha256=" + SignHexHMACSHA256([]byte("other"), body), ErrBadSignature},
	} {
		v := &HMAC{Algorithm: "sha256", Header: "X-Mollie-Signature", Encoding: "hex", Prefix: "sha256=", PrefixOptional: tt.optional,
			Content: mustTemplate(t, "{body}"), Secrets: [][]byte{[]byte("k")}}
		_, err := v.Verify(context.Background(), &Callback{Header: http.Header{"X-Mollie-Signature": {tt.signature}}, Body: body})
		if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("optional %v, %q: %v, want %v", tt.optional, tt.signature, err, tt.want)
		}
	}
}

// With an optional prefix, only the genuine signature passes, with the
// prefix or without it.
func FuzzHMACOptionalPrefix(f *testing.F) {
	body := []byte("body")
	genuine := SignHexHMACSHA256([]byte("k"), body)
	f.Add("sha256=" + genuine)
	f.Add(genuine)
	f.Add("sha256=sha256=" + genuine)
	f.Add("sha256=")
	f.Fuzz(func(t *testing.T, header string) {
		v := &HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Prefix: "sha256=", PrefixOptional: true,
			Content: mustTemplate(t, "{body}"), Secrets: [][]byte{[]byte("k")}}
		if _, err := v.Verify(context.Background(), &Callback{Header: http.Header{"S": {header}}, Body: body}); err != nil {
			return
		}
		if sig := strings.TrimSpace(header); !strings.EqualFold(sig, genuine) && !strings.EqualFold(sig, "sha256="+genuine) {
			t.Fatalf("accepted %q", header)
		}
	})
}

func mustTemplate(t testing.TB, s string) Template {
	t.Helper()
	tmpl, err := ParseTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}
