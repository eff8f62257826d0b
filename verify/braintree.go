package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Braintree posts a webhook as a form of two fields
// (developer.paypal.com/braintree/docs/guides/webhooks/parse): bt_payload,
// the base64 of an XML notification, and bt_signature, a list of
// "public_key|hex_signature" pairs joined by "&", one per API key of the
// merchant. Each signature is the hex HMAC-SHA1 of bt_payload (as sent,
// base64 text) keyed with the SHA-1 of that key's private key; like the
// official SDKs (braintree_node lib/braintree/webhook_notification_gateway.js
// validateSignature, digest.js hmacSha1), payhook also accepts it over
// bt_payload with a newline added. Only the pair of a configured public key
// is checked, as the SDKs do.
//
// Before a destination URL is saved, Braintree checks it with a GET whose
// bt_challenge query parameter holds 20 to 32 lower-case hex digits; the
// answer is "public_key|" and the hex HMAC-SHA1 of the challenge under the
// same key (the SDKs' webhookNotification.verify).

// Braintree's form fields and the challenge's query parameter.
const (
	BraintreeSignatureField = "bt_signature"
	BraintreePayloadField   = "bt_payload"
	BraintreeChallengeParam = "bt_challenge"
)

// Bounds of what is read before the signature is checked: a form of a few
// fields, a signature of a few pairs (one per API key of the account).
const (
	maxBraintreeFormFields = 16
	maxBraintreePairs      = 16
	maxBraintreePublicKey  = 64
)

// BraintreeKey is one API key pair of a Braintree account.
type BraintreeKey struct {
	// PublicKey names the key in bt_signature; it is no secret.
	PublicKey string
	// PrivateKey signs.
	PrivateKey []byte
}

// ErrBraintreeChallenge means a bt_challenge that is not 20 to 32
// lower-case hex digits: the SDKs refuse to answer it.
var ErrBraintreeChallenge = errors.New("bt_challenge malformed")

// ParseBraintreeForm reads bt_signature and bt_payload from a form body
// (application/x-www-form-urlencoded), bounded: at most 16 fields, each
// of the two exactly once. A body without either is ErrNotSigned; a body
// that is not such a form, or names one twice, is ErrMalformedSignature.
// Other fields are ignored.
func ParseBraintreeForm(body []byte) (signature, payload string, err error) {
	var gotSignature, gotPayload bool
	fields := 0
	for part := range strings.SplitSeq(string(body), "&") {
		if part == "" {
			continue
		}
		if fields++; fields > maxBraintreeFormFields {
			return "", "", fmt.Errorf("%w: more than %d form fields", ErrMalformedSignature, maxBraintreeFormFields)
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return "", "", fmt.Errorf("%w: form field name not decodable", ErrMalformedSignature)
		}
		var target *string
		var seen *bool
		switch key {
		case BraintreeSignatureField:
			target, seen = &signature, &gotSignature
		case BraintreePayloadField:
			target, seen = &payload, &gotPayload
		default:
			continue
		}
		if *seen {
			return "", "", fmt.Errorf("%w: %s given twice", ErrMalformedSignature, key)
		}
		*seen = true
		if *target, err = url.QueryUnescape(rawValue); err != nil {
			return "", "", fmt.Errorf("%w: %s not decodable", ErrMalformedSignature, key)
		}
	}
	if signature == "" || payload == "" {
		return "", "", fmt.Errorf("%w: %s and %s", ErrNotSigned, BraintreeSignatureField, BraintreePayloadField)
	}
	return signature, payload, nil
}

// CheckBraintreeSignature checks bt_signature against bt_payload with the
// configured keys and returns the public key that matched. The payload
// must hold only base64 characters and newlines (as the SDKs require). A
// signature with no pair of a configured public key, or whose pair does not
// match, is ErrBadSignature; one with no pair at all, ErrMalformedSignature.
func CheckBraintreeSignature(keys []BraintreeKey, signature, payload string) (string, error) {
	for i := 0; i < len(payload); i++ {
		if !isBraintreePayloadByte(payload[i]) {
			return "", fmt.Errorf("%w: bt_payload holds a character that is not base64", ErrMalformedSignature)
		}
	}
	pairs := 0
	matchedKey := false
	for pair := range strings.SplitSeq(signature, "&") {
		publicKey, hexSignature, ok := strings.Cut(pair, "|")
		if !ok {
			continue // the SDKs skip what is not a pair
		}
		if pairs++; pairs > maxBraintreePairs {
			return "", fmt.Errorf("%w: more than %d signature pairs", ErrMalformedSignature, maxBraintreePairs)
		}
		for _, key := range keys {
			if key.PublicKey != publicKey {
				continue
			}
			matchedKey = true
			// The SDKs compare the hex text: lower case, as they write it.
			for _, signed := range [...]string{payload, payload + "\n"} {
				if hmac.Equal([]byte(hexSignature), []byte(BraintreeHexDigest(key.PrivateKey, signed))) {
					return key.PublicKey, nil
				}
			}
		}
	}
	switch {
	case pairs == 0:
		return "", fmt.Errorf("%w: no public_key|signature pair", ErrMalformedSignature)
	case !matchedKey:
		return "", fmt.Errorf("%w: no pair of a configured public key", ErrBadSignature)
	}
	return "", ErrBadSignature
}

// isBraintreePayloadByte accepts what the SDKs accept in bt_payload:
// A-Z, a-z, 0-9, '+', '/', '=' and the newline.
func isBraintreePayloadByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' || c == '\n'
}

// BraintreeHexDigest is Braintree's signature of text: the hex HMAC-SHA1
// keyed with the SHA-1 of the private key.
func BraintreeHexDigest(privateKey []byte, text string) string {
	key := sha1.Sum(privateKey)
	mac := hmac.New(sha1.New, key[:])
	mac.Write([]byte(text))
	return hex.EncodeToString(mac.Sum(nil))
}

// SignBraintree returns the bt_signature Braintree sends for payload under
// key: one "public_key|hex" pair.
func SignBraintree(key BraintreeKey, payload string) string {
	return key.PublicKey + "|" + BraintreeHexDigest(key.PrivateKey, payload)
}

// AnswerBraintreeChallenge returns the answer to a destination URL check:
// "public_key|" and the hex signature of the challenge, which must be 20 to
// 32 lower-case hex digits (ErrBraintreeChallenge otherwise).
func AnswerBraintreeChallenge(key BraintreeKey, challenge string) (string, error) {
	if len(challenge) < 20 || len(challenge) > 32 {
		return "", fmt.Errorf("%w: %d characters", ErrBraintreeChallenge, len(challenge))
	}
	for i := 0; i < len(challenge); i++ {
		if c := challenge[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("%w: not lower-case hex", ErrBraintreeChallenge)
		}
	}
	return SignBraintree(key, challenge), nil
}

// CheckBraintreePublicKey accepts a public key that can stand in
// bt_signature: 1 to 64 characters, none of them '|', '&' or a space.
func CheckBraintreePublicKey(publicKey string) error {
	if publicKey == "" || len(publicKey) > maxBraintreePublicKey || strings.ContainsAny(publicKey, "|& \t\r\n") {
		return errors.New("a Braintree public key is 1 to 64 characters without '|', '&' or spaces")
	}
	return nil
}

// DecodeBraintreePayload decodes bt_payload (base64, maybe in lines) into
// the XML notification.
func DecodeBraintreePayload(payload string) ([]byte, error) {
	xml, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("bt_payload is not base64: %w", err)
	}
	return xml, nil
}

// CheckBraintreeTimestamp checks a notification's timestamp (when it was
// triggered, signed inside the payload): no older than maxAge, so that a
// notification replayed after the dedupe records are gone is refused, and
// no further than maxFuture ahead. A zero time (no timestamp, or none that
// reads as a date) is ErrMalformedDate.
func CheckBraintreeTimestamp(timestamp, now time.Time, maxAge, maxFuture time.Duration) error {
	switch {
	case timestamp.IsZero():
		return fmt.Errorf("%w: the notification's timestamp", ErrMalformedDate)
	case now.Sub(timestamp) > maxAge:
		return fmt.Errorf("%w: the notification is %s old, more than %s", ErrDateOutsideWindow, now.Sub(timestamp).Round(time.Second), maxAge)
	case timestamp.Sub(now) > maxFuture:
		return fmt.Errorf("%w: the notification is dated %s ahead", ErrDateOutsideWindow, timestamp.Sub(now).Round(time.Second))
	}
	return nil
}
