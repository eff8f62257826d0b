package verify

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURLToken(t *testing.T) {
	v := &URLToken{Tokens: [][]byte{[]byte("tok-current"), []byte("tok-previous")}}
	tests := []struct {
		uri  string
		want error
	}{
		{"/callbacks/pyxis?token=tok-current", nil},
		{"/callbacks/pyxis?order=7&token=tok-previous&x=1", nil},
		{"/callbacks/pyxis?token=tok%2Dcurrent", nil}, // percent-encoded
		{"/callbacks/pyxis?%74oken=tok-current", nil}, // encoded parameter name
		{"/callbacks/pyxis", ErrTokenMissing},
		{"/callbacks/pyxis?token=", ErrTokenMissing},
		{"/callbacks/pyxis?tokens=tok-current", ErrTokenMissing},
		{"/callbacks/pyxis?token=tok-curren", ErrBadToken},
		{"/callbacks/pyxis?token=tok-current-and-more", ErrBadToken},
		{"/callbacks/pyxis?token=TOK-CURRENT", ErrBadToken},
		{"/callbacks/pyxis?token=tok-current&token=forged", ErrBadToken},
		{"/callbacks/pyxis?token=%zz", ErrBadToken},
	}
	for _, tt := range tests {
		res, err := v.Verify(context.Background(), &Callback{RequestURI: tt.uri})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.uri, err, tt.want)
		}
		if err == nil && res.Method != "url-token" {
			t.Errorf("%s: method %q", tt.uri, res.Method)
		}
	}
}

func TestStripURLToken(t *testing.T) {
	for in, want := range map[string]string{
		"token=abc":                  "",
		"a=1&token=abc&b=%20x":       "a=1&b=%20x",
		"token=abc&token=def&keep=1": "keep=1",
		"%74oken=abc&a=1":            "a=1",
		"tokens=1&a=token":           "tokens=1&a=token",
		"":                           "",
		"a=1&b=2":                    "a=1&b=2",
	} {
		if got := StripURLToken(in); got != want {
			t.Errorf("StripURLToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithChecksRunsChecksFirstAndRecordsThem(t *testing.T) {
	token := &URLToken{Tokens: [][]byte{[]byte("t")}}
	inner := &IXOPAY{} // would fail: no signature
	v := WithChecks(inner, token)
	if _, err := v.Verify(context.Background(), &Callback{RequestURI: "/x?token=bad"}); !errors.Is(err, ErrBadToken) {
		t.Errorf("bad token: %v, want ErrBadToken before the provider's own check", err)
	}
	pass := WithChecks(&URLToken{Tokens: [][]byte{[]byte("u")}}, token)
	res, err := pass.Verify(context.Background(), &Callback{RequestURI: "/x?token=t"})
	if !errors.Is(err, ErrBadToken) { // inner wants "u"
		t.Errorf("inner check: %v", err)
	}
	_ = res
	ok := WithChecks(&URLToken{Tokens: [][]byte{[]byte("t")}}, token)
	res, err = ok.Verify(context.Background(), &Callback{RequestURI: "/x?token=t"})
	if err != nil || len(res.Also) != 1 || res.Also[0] != "url-token" {
		t.Errorf("result %+v, %v; want also [url-token]", res, err)
	}
}

func TestAllowList(t *testing.T) {
	a, err := ParseAllowList([]string{"20.91.170.120/29", "51.107.183.58", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]error{
		"20.91.170.120":        nil,
		"20.91.170.127":        nil,
		"20.91.170.128":        ErrAddressNotAllowed,
		"20.91.170.119":        ErrAddressNotAllowed,
		"51.107.183.58":        nil,
		"51.107.183.59":        ErrAddressNotAllowed,
		"::ffff:20.91.170.121": nil, // IPv4-mapped
		"2001:db8::1":          nil,
		"2001:db9::1":          ErrAddressNotAllowed,
		"fe80::1%eth0":         ErrAddressNotAllowed,
		"":                     ErrAddressNotAllowed,
		"not-an-ip":            ErrAddressNotAllowed,
		"20.91.170.121:443":    ErrAddressNotAllowed,
	} {
		if err := a.Allow(ip); !errors.Is(err, want) {
			t.Errorf("Allow(%q) = %v, want %v", ip, err, want)
		}
	}
	for _, bad := range [][]string{{"20.91.170.120/33"}, {"example.com"}, {}, {"1.2.3.4/"}} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("ParseAllowList(%q) accepted", bad)
		}
	}
}

// FuzzURLToken: a URI is accepted only with exactly the token, and after
// stripping no token parameter is left.
func FuzzURLToken(f *testing.F) {
	for _, s := range []string{"/p?token=tok", "/p?a=1&token=tok&b=2", "/p?%74oken=tok", "/p?token=tok&token=tok", "/p?token=%zz", "/p"} {
		f.Add(s)
	}
	v := &URLToken{Tokens: [][]byte{[]byte("tok")}}
	f.Fuzz(func(t *testing.T, uri string) {
		err := v.Check(&Callback{RequestURI: uri})
		_, rawQuery, _ := strings.Cut(uri, "?")
		stripped := StripURLToken(rawQuery)
		if again := v.Check(&Callback{RequestURI: "/p?" + stripped}); !errors.Is(again, ErrTokenMissing) {
			t.Fatalf("StripURLToken(%q) = %q still holds a token: %v", rawQuery, stripped, again)
		}
		if err == nil {
			values, perr := url.ParseQuery(rawQuery)
			if perr == nil && (len(values[URLTokenParam]) != 1 || values[URLTokenParam][0] != "tok") {
				t.Fatalf("accepted %q with token parameters %q", uri, values[URLTokenParam])
			}
		}
	})
}
