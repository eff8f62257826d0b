package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The cases of mollie-api-php's SignatureValidatorTest: with and without
// the sha256= prefix, one of several secrets, one of several headers.
func TestCheckMollieSignature(t *testing.T) {
	const payload = `{"id":"tr_12345","event_type":"payment-link.paid"}`
	mac := hmac.New(sha256.New, []byte("test_webhook_secret"))
	mac.Write([]byte(payload))
	sig := hex.EncodeToString(mac.Sum(nil))
	secrets := [][]byte{[]byte("invalid_secret"), []byte("test_webhook_secret"), []byte("another_invalid_secret")}
	for _, tt := range []struct {
		name    string
		secrets [][]byte
		headers []string
		want    error
	}{
		{"bare hex", secrets[1:2], []string{sig}, nil},
		{"prefixed", secrets[1:2], []string{"sha256=" + sig}, nil},
		{"one of several secrets", secrets, []string{sig}, nil},
		{"one of several headers", secrets[1:2], []string{"invalid_signature", "sha256=" + sig}, nil},
		{"one of a comma-separated header", secrets[1:2], []string{"sha256=00, sha256=" + sig}, nil},
		{"wrong secret", secrets[2:], []string{sig}, ErrBadSignature},
		{"none", secrets, nil, ErrNotSigned},
		{"not hex", secrets, []string{"invalid_signature"}, ErrMalformedSignature},
		{"too short", secrets, []string{"sha256=" + sig[:62]}, ErrMalformedSignature},
		{"upper-case hex", secrets[1:2], []string{"sha256=" + upper(sig)}, nil},
	} {
		if err := CheckMollieSignature(tt.secrets, tt.headers, []byte(payload)); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if got := SignMollie([]byte("test_webhook_secret"), []byte(payload)); got != "sha256="+sig {
		t.Errorf("SignMollie = %s", got)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestCheckMolliePaymentID(t *testing.T) {
	for id, ok := range map[string]bool{
		"tr_WDqYK6vllg": true, "tr_7UhSN1zuXS": true, "tr_a": true,
		"tr_": false, "ord_kEn1PlbGa": false, "re_4qqhO89gsT": false, "tr_a/b": false, "tr_a?b": false, "tr_a%2F": false,
		"tr_a-b": false, "tr_a.b": false, " tr_a": false, "tr_a\n": false, "TR_a": false,
		"tr_01234567890123456789012345678901234567890123456789012345678901": false,
	} {
		if err := CheckMolliePaymentID(id); (err == nil) != ok {
			t.Errorf("CheckMolliePaymentID(%q) = %v", id, err)
		}
	}
}

// FuzzMollieSignatureHeader: any X-Mollie-Signature headers are a
// verdict, never a panic, and only the real signature verifies.
func FuzzMollieSignatureHeader(f *testing.F) {
	f.Add("sha256=0c9f6f2e0d6a8c1f0b3f5b7a2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f80", "id=tr_WDqYK6vllg", "tr_WDqYK6vllg")
	f.Add("sha256=00, sha256=zz,,", "{}", "ord_1")
	f.Fuzz(func(t *testing.T, header, body, id string) {
		secret := []byte("fuzz-secret")
		err := CheckMollieSignature([][]byte{secret}, []string{header}, []byte(body))
		if err == nil && !strings.Contains(header, SignHexHMACSHA256(secret, []byte(body))[:16]) &&
			!strings.Contains(strings.ToLower(header), SignHexHMACSHA256(secret, []byte(body))[:16]) {
			t.Fatalf("header %q verified body %q", header, body)
		}
		if CheckMolliePaymentID(id) == nil && (!strings.HasPrefix(id, "tr_") || strings.ContainsAny(id, "/?#%.\\ ")) {
			t.Fatalf("CheckMolliePaymentID accepted %q", id)
		}
	})
}
