package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Adyen's standard webhooks sign each NotificationRequestItem on its own:
// additionalData.hmacSignature is the standard base64 of the HMAC-SHA256
// of eight of the item's fields joined by ':' (pspReference,
// originalReference, merchantAccountCode, merchantReference, amount value,
// currency, eventCode, success), keyed with the hex-decoded HMAC key.

// DecodeAdyenHMACKey decodes an HMAC key as the Customer Area shows it:
// hex.
func DecodeAdyenHMACKey(key string) ([]byte, error) {
	raw, err := hex.DecodeString(key)
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("an Adyen HMAC key is hex, as the Customer Area shows it")
	}
	return raw, nil
}

// SignAdyen returns the hmacSignature of an item's signed data.
func SignAdyen(key []byte, signedData string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signedData))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// CheckAdyenItem checks one item's signature against every key (several
// during a rotation). Missing, malformed and wrong are told apart.
func CheckAdyenItem(keys [][]byte, signedData, signature string) error {
	if signature == "" {
		return ErrNotSigned
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != sha256.Size {
		return ErrMalformedSignature
	}
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(signedData))
		if hmac.Equal(sig, mac.Sum(nil)) {
			return nil
		}
	}
	return ErrBadSignature
}
