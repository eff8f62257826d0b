package verify

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (standardwebhooks.com): the headers <prefix>-id,
// <prefix>-timestamp (Unix seconds) and <prefix>-signature, a
// space-separated list of "<version>,<base64 signature>" over
// "<id>.<timestamp>.<raw body>". Version v1 is HMAC-SHA256, v1a ed25519.

// Limits on what a sender controls.
const (
	maxWebhookIDLen     = 256
	maxTimestampLen     = 19
	maxSignatureEntries = 32
)

// StandardWebhooks verifies callbacks signed with the Standard Webhooks
// scheme, or a vendor's copy of it under another header prefix (svix).
type StandardWebhooks struct {
	// Secrets are the v1 (HMAC-SHA256) keys, decoded (see
	// DecodeStandardWebhooksSecret); any one verifies.
	Secrets [][]byte
	// PublicKeys are the v1a (ed25519) keys; any one verifies.
	PublicKeys []ed25519.PublicKey
	// HeaderPrefix is the headers' prefix: "webhook" (default) or "svix".
	HeaderPrefix string
	// MaxSkew is how far the timestamp may lie in the past or the future.
	MaxSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// DecodeStandardWebhooksSecret reads a v1 secret: "whsec_<base64>", or the
// bare base64 the reference libraries also accept.
func DecodeStandardWebhooksSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("a Standard Webhooks secret is whsec_ followed by base64")
	}
	return key, nil
}

// DecodeStandardWebhooksPublicKey reads a v1a public key: "whpk_<base64 of
// 32 bytes>".
func DecodeStandardWebhooksPublicKey(key string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, "whpk_"))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("a Standard Webhooks public key is whpk_ followed by the base64 of 32 bytes")
	}
	return ed25519.PublicKey(raw), nil
}

// DecodeStandardWebhooksPrivateKey reads a v1a secret key: "whsk_<base64 of
// the 32-byte seed and the 32-byte public key>".
func DecodeStandardWebhooksPrivateKey(key string) (ed25519.PrivateKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, "whsk_"))
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("a Standard Webhooks secret key is whsk_ followed by the base64 of 64 bytes")
	}
	return ed25519.PrivateKey(raw), nil
}

// standardWebhooksContent is what is signed: "<id>.<timestamp>.<body>".
func standardWebhooksContent(id, timestamp string, body []byte) []byte {
	content := make([]byte, 0, len(id)+len(timestamp)+2+len(body))
	content = append(content, id...)
	content = append(content, '.')
	content = append(content, timestamp...)
	content = append(content, '.')
	return append(content, body...)
}

// SignStandardWebhooks returns the v1 signature entry ("v1,<base64>") of a
// message: the code the verifier uses, for tests and `caddy payhook send`.
func SignStandardWebhooks(secret []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(standardWebhooksContent(id, timestamp, body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignStandardWebhooksV1a returns the v1a signature entry ("v1a,<base64>").
func SignStandardWebhooksV1a(key ed25519.PrivateKey, id, timestamp string, body []byte) string {
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(key, standardWebhooksContent(id, timestamp, body)))
}

// Verify checks the id, the timestamp (within MaxSkew, either way) and the
// signatures: any one of a known version that matches any key verifies;
// entries of versions it does not know are skipped. The id, authenticated
// with the rest, is Result.NotificationID.
func (v *StandardWebhooks) Verify(_ context.Context, cb *Callback) (Result, error) {
	prefix := v.HeaderPrefix
	if prefix == "" {
		prefix = "webhook"
	}
	id := cb.Header.Get(prefix + "-id")
	signatures := cb.Header.Get(prefix + "-signature")
	if id == "" || signatures == "" {
		return Result{}, ErrNotSigned
	}
	if len(id) > maxWebhookIDLen {
		return Result{}, fmt.Errorf("%w: id longer than %d bytes", ErrMalformedSignature, maxWebhookIDLen)
	}
	timestamp := cb.Header.Get(prefix + "-timestamp")
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if _, err := checkUnixTimestamp(timestamp, time.Second, now(), v.MaxSkew); err != nil {
		return Result{}, err
	}

	var content []byte
	known := false
	entries := strings.Fields(signatures)
	if len(entries) > maxSignatureEntries {
		return Result{}, fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxSignatureEntries)
	}
	for _, entry := range entries {
		version, encoded, ok := strings.Cut(entry, ",")
		if !ok || (version != "v1" && version != "v1a") {
			continue // a version this verifier does not know
		}
		sig, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		known = true
		if content == nil {
			content = standardWebhooksContent(id, timestamp, cb.Body)
		}
		switch version {
		case "v1":
			if len(sig) != sha256.Size {
				continue
			}
			for _, secret := range v.Secrets {
				mac := hmac.New(sha256.New, secret)
				mac.Write(content)
				if hmac.Equal(sig, mac.Sum(nil)) {
					return Result{Method: "standard-webhooks", Variant: "v1", Date: timestamp, NotificationID: id}, nil
				}
			}
		case "v1a":
			if len(sig) != ed25519.SignatureSize {
				continue
			}
			for _, key := range v.PublicKeys {
				if ed25519.Verify(key, content, sig) {
					return Result{Method: "standard-webhooks", Variant: "v1a", Date: timestamp, NotificationID: id}, nil
				}
			}
		}
	}
	if !known {
		return Result{}, fmt.Errorf("%w: no signature of a known version", ErrMalformedSignature)
	}
	return Result{}, ErrBadSignature
}

// checkUnixTimestamp reads a Unix timestamp in unit (seconds or
// milliseconds): digits only, no sign, no fraction, at most 19 of them, and
// checks that it lies within maxSkew of now, either way.
func checkUnixTimestamp(value string, unit time.Duration, now time.Time, maxSkew time.Duration) (time.Time, error) {
	if value == "" {
		return time.Time{}, ErrNoDate
	}
	if len(value) > maxTimestampLen || !isDigits(value) {
		return time.Time{}, fmt.Errorf("%w: not a Unix timestamp", ErrMalformedDate)
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: out of range", ErrMalformedDate)
	}
	var t time.Time
	if unit == time.Millisecond {
		t = time.UnixMilli(n)
	} else {
		t = time.Unix(n, 0)
	}
	skew := now.Sub(t)
	if skew > maxSkew || skew < -maxSkew {
		return t, fmt.Errorf("%w: %s off, %s allowed", ErrDateOutsideWindow, skew.Round(time.Second), maxSkew)
	}
	return t, nil
}
