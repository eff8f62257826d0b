package verify

import (
	"errors"
	"strings"
	"testing"
)

// TestPayoneKeyMatchesPublishedExample: docs.payone.com's example
// notification ("Getting Started with TransactionStatus Notifications")
// shows key=3c6e0b8a9c15224a8228b9a98ca1531d, "your key as md5 hash": the
// MD5 of the word "key".
func TestPayoneKeyMatchesPublishedExample(t *testing.T) {
	if got := PayoneKey([]byte("key")); got != "3c6e0b8a9c15224a8228b9a98ca1531d" {
		t.Fatalf("PayoneKey(key) = %s", got)
	}
}

func TestPayoneCheck(t *testing.T) {
	v := NewPayone([][]byte{[]byte("old-portal-key"), []byte("portal-key")}, "2000002", "12345")
	good := PayoneKey([]byte("portal-key"))
	for _, c := range []struct {
		name, key, portal, aid string
		want                   error
	}{
		{"current key", good, "2000002", "12345", nil},
		{"previous key, during a change", PayoneKey([]byte("old-portal-key")), "2000002", "12345", nil},
		{"upper-case hex", strings.ToUpper(good), "2000002", "12345", nil},
		{"no key", "", "2000002", "12345", ErrNotSigned},
		{"the portal key itself", "portal-key", "2000002", "12345", ErrMalformedSignature},
		{"not hex", strings.Repeat("g", 32), "2000002", "12345", ErrMalformedSignature},
		{"too long", good + "00", "2000002", "12345", ErrMalformedSignature},
		{"another key", PayoneKey([]byte("portal-key ")), "2000002", "12345", ErrBadSignature},
		{"sha-256 of the key", strings.Repeat("0", 64), "2000002", "12345", ErrMalformedSignature},
		{"another portal", good, "2000003", "12345", ErrBadSignature},
		{"another sub-account", good, "2000002", "12346", ErrBadSignature},
		{"no portal", good, "", "12345", ErrBadSignature},
		{"no sub-account", good, "2000002", "", ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := v.Check(c.key, c.portal, c.aid)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "portal-key") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestPayoneSourceRangesParse(t *testing.T) {
	list, err := ParseAllowList(PayoneSourceRanges)
	if err != nil {
		t.Fatal(err)
	}
	for addr, allowed := range map[string]bool{
		"185.60.20.1": true, "185.60.20.254": true, "::ffff:185.60.20.2": true, "54.246.203.105": true,
		"185.60.21.1": false, "54.246.203.106": false, "213.178.72.196": false, "127.0.0.1": false,
	} {
		if err := list.Allow(addr); (err == nil) != allowed {
			t.Errorf("Allow(%s) = %v, want allowed %v", addr, err, allowed)
		}
	}
}
