package verify

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Vectors computed by braintree_node 3.40.0 (webhookTesting.sampleSignature
// and webhookNotification.verify) with the key below.
var (
	vectorKey     = BraintreeKey{PublicKey: "vector_public_key", PrivateKey: []byte("vector_private_key")}
	vectorPayload = "PG5vdGlmaWNhdGlvbj48L25vdGlmaWNhdGlvbj4="
)

const (
	vectorSignature        = "vector_public_key|b1f37e93932ae5ae7062e05592b87db7dc71c37c" // of vectorPayload
	vectorSignatureNewline = "vector_public_key|9183e429f6b61f9e782072264b473ed9bad43fb1" // of vectorPayload + "\n"
	vectorChallenge        = "20f9f8ed05f77439fe955c977e4c8a53"
	vectorChallengeAnswer  = "vector_public_key|9507e86abc96e0285a167c296b2b82a921a3ecc0"
)

func TestBraintreeVectors(t *testing.T) {
	if got := SignBraintree(vectorKey, vectorPayload); got != vectorSignature {
		t.Errorf("SignBraintree = %s, want %s", got, vectorSignature)
	}
	if got := SignBraintree(vectorKey, vectorPayload+"\n"); got != vectorSignatureNewline {
		t.Errorf("SignBraintree with a newline = %s, want %s", got, vectorSignatureNewline)
	}
	if got, err := AnswerBraintreeChallenge(vectorKey, vectorChallenge); err != nil || got != vectorChallengeAnswer {
		t.Errorf("AnswerBraintreeChallenge = %s, %v; want %s", got, err, vectorChallengeAnswer)
	}
}

func TestCheckBraintreeSignature(t *testing.T) {
	other := BraintreeKey{PublicKey: "other_public_key", PrivateKey: []byte("other_private_key")}
	hexOf := func(s string) string { _, h, _ := strings.Cut(s, "|"); return h }
	for _, tt := range []struct {
		name, signature, payload string
		keys                     []BraintreeKey
		err                      error
	}{
		{"payload as signed", vectorSignature, vectorPayload, nil, nil},
		{"signed with a newline, sent without", vectorSignatureNewline, vectorPayload, nil, nil},
		{"signed as sent, with its newline", vectorSignatureNewline, vectorPayload + "\n", nil, nil},
		{"one pair per API key", "other_public_key|00&" + vectorSignature, vectorPayload, nil, nil},
		{"a rotation's second key", vectorSignature, vectorPayload, []BraintreeKey{other, vectorKey}, nil},
		{"pairs without a bar are skipped", "junk&" + vectorSignature, vectorPayload, nil, nil},
		{"another payload", vectorSignature, vectorPayload[:len(vectorPayload)-4], nil, ErrBadSignature},
		{"two newlines", vectorSignature, vectorPayload + "\n\n", nil, ErrBadSignature},
		{"upper-case hex", "vector_public_key|" + strings.ToUpper(hexOf(vectorSignature)), vectorPayload, nil, ErrBadSignature},
		{"another private key", vectorSignature, vectorPayload, []BraintreeKey{{PublicKey: "vector_public_key", PrivateKey: []byte("x")}}, ErrBadSignature},
		{"no pair of ours", "other_public_key|" + hexOf(vectorSignature), vectorPayload, nil, ErrBadSignature},
		{"no pair at all", hexOf(vectorSignature), vectorPayload, nil, ErrMalformedSignature},
		{"a space in the payload (a '+' decoded)", vectorSignature, strings.Replace(vectorPayload, "G", " ", 1), nil, ErrMalformedSignature},
		{"too many pairs", strings.Repeat("a|b&", 20) + vectorSignature, vectorPayload, nil, ErrMalformedSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = []BraintreeKey{vectorKey}
			}
			matched, err := CheckBraintreeSignature(keys, tt.signature, tt.payload)
			if tt.err == nil {
				if err != nil || matched != "vector_public_key" {
					t.Errorf("= %q, %v; want vector_public_key", matched, err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestParseBraintreeForm(t *testing.T) {
	good := url.Values{"bt_signature": {vectorSignature}, "bt_payload": {vectorPayload + "\n"}}.Encode()
	signature, payload, err := ParseBraintreeForm([]byte(good))
	if err != nil || signature != vectorSignature || payload != vectorPayload+"\n" {
		t.Fatalf("= %q, %q, %v", signature, payload, err)
	}
	for _, tt := range []struct {
		name, body string
		err        error
	}{
		{"empty", "", ErrNotSigned},
		{"no payload", "bt_signature=a%7Cb", ErrNotSigned},
		{"empty signature", "bt_signature=&bt_payload=AA%3D%3D", ErrNotSigned},
		{"signature twice", good + "&bt_signature=x%7Cy", ErrMalformedSignature},
		{"bad escape", "bt_signature=%zz&bt_payload=AA", ErrMalformedSignature},
		{"too many fields", strings.Repeat("a=1&", 20) + good, ErrMalformedSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseBraintreeForm([]byte(tt.body)); !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
	if _, _, err := ParseBraintreeForm([]byte("other=1&" + good)); err != nil {
		t.Errorf("another field: %v", err)
	}
}

func TestAnswerBraintreeChallenge(t *testing.T) {
	for _, challenge := range []string{"", "abc", strings.Repeat("a", 19), strings.Repeat("a", 33), "20F9F8ED05F77439FE955C977E4C8A53", "20f9f8ed05f77439fe955c977e4c8a5g"} {
		if _, err := AnswerBraintreeChallenge(vectorKey, challenge); !errors.Is(err, ErrBraintreeChallenge) {
			t.Errorf("%q: err = %v", challenge, err)
		}
	}
	for _, challenge := range []string{strings.Repeat("a", 20), strings.Repeat("0", 32)} {
		if _, err := AnswerBraintreeChallenge(vectorKey, challenge); err != nil {
			t.Errorf("%q: %v", challenge, err)
		}
	}
}

func FuzzBraintreeSignature(f *testing.F) {
	f.Add([]byte(url.Values{"bt_signature": {vectorSignature}, "bt_payload": {vectorPayload}}.Encode()))
	f.Add([]byte("bt_signature=a%7Cb%26c%7Cd&bt_payload=AA%0A"))
	f.Fuzz(func(t *testing.T, body []byte) {
		signature, payload, err := ParseBraintreeForm(body)
		if err != nil {
			if !errors.Is(err, ErrNotSigned) && !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		_, err = CheckBraintreeSignature([]BraintreeKey{vectorKey}, signature, payload)
		if err == nil && payload != vectorPayload && payload != vectorPayload+"\n" {
			t.Fatalf("a forged payload verified: %q", payload)
		}
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformedSignature) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
	})
}

func TestCheckBraintreeTimestamp(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		at  time.Time
		err error
	}{
		{now, nil},
		{now.Add(-7 * 24 * time.Hour), nil},
		{now.Add(-7*24*time.Hour - time.Second), ErrDateOutsideWindow},
		{now.Add(5 * time.Minute), nil},
		{now.Add(5*time.Minute + time.Second), ErrDateOutsideWindow},
		{time.Time{}, ErrMalformedDate},
	} {
		if err := CheckBraintreeTimestamp(tt.at, now, 7*24*time.Hour, 5*time.Minute); !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", tt.at, err, tt.err)
		}
	}
}
