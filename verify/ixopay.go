package verify

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"time"
)

// IXOPAYBodyDigest selects how the body enters IXOPAY's signed message.
type IXOPAYBodyDigest int

const (
	// IXOPAYSHA512 hashes the body with SHA-512: the current scheme.
	IXOPAYSHA512 IXOPAYBodyDigest = iota
	// IXOPAYMD5 hashes the body with MD5: the legacy "Postback Format
	// Version" some merchants' connectors still inherit.
	IXOPAYMD5
)

// ixopayPHPContentType is the content type IXOPAY's official PHP client signs
// when it validates, whatever the header says.
const ixopayPHPContentType = "application/json; charset=utf-8"

// IXOPAYMessage is the part of a request that IXOPAY's X-Signature covers.
type IXOPAYMessage struct {
	Method      string
	ContentType string // the Content-Type header exactly as sent
	Date        string // the X-Date header, else the Date header, exactly as sent
	RequestURI  string // path plus query string exactly as sent
	Body        []byte
}

// SignIXOPAY returns the X-Signature value for msg under secret: standard
// Base64 of the binary HMAC-SHA512 over method, the hex digest of the body,
// content type, date and request URI, joined by "\n". It is the one
// implementation both the verifier and the test sender use.
func SignIXOPAY(secret []byte, digest IXOPAYBodyDigest, msg IXOPAYMessage) string {
	return base64.StdEncoding.EncodeToString(ixopayMAC(secret, msg.Method, bodyDigest(digest, msg.Body), msg.ContentType, msg.Date, msg.RequestURI))
}

func bodyDigest(digest IXOPAYBodyDigest, body []byte) string {
	if digest == IXOPAYMD5 {
		sum := md5.Sum(body)
		return hex.EncodeToString(sum[:])
	}
	sum := sha512.Sum512(body)
	return hex.EncodeToString(sum[:])
}

func ixopayMAC(secret []byte, method, bodyHex, contentType, date, requestURI string) []byte {
	mac := hmac.New(sha512.New, secret)
	for i, part := range [...]string{method, bodyHex, contentType, date, requestURI} {
		if i > 0 {
			mac.Write([]byte{'\n'})
		}
		writeString(mac, part)
	}
	return mac.Sum(nil)
}

func writeString(h hash.Hash, s string) {
	h.Write([]byte(s))
}

// IXOPAY verifies callbacks signed with IXOPAY's X-Signature scheme
// (gateway.ixopay.com API v3 and its white labels).
type IXOPAY struct {
	// Secrets are the connector's shared secrets; any one of them verifies a
	// callback, so a rotation can keep the previous secret for a while.
	Secrets [][]byte
	// MaxSkew is how far the signed Date may lie in the past or the future.
	MaxSkew time.Duration
	// LegacyMD5 also accepts the variant that hashes the body with MD5.
	LegacyMD5 bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verify checks the X-Signature header and the X-Date (else Date) header of cb.
func (v *IXOPAY) Verify(_ context.Context, cb *Callback) (Result, error) {
	sigHeader := cb.Header.Get("X-Signature")
	if sigHeader == "" {
		return Result{}, ErrNotSigned
	}
	// The docs give X-Date precedence over Date.
	date := cb.Header.Get("X-Date")
	if date == "" {
		date = cb.Header.Get("Date")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if _, err := CheckDate(date, now(), v.MaxSkew); err != nil {
		return Result{}, err
	}
	// Base64 of a 64-byte MAC is 88 characters; refuse to decode anything larger.
	if len(sigHeader) > 96 {
		return Result{}, ErrMalformedSignature
	}
	sig, err := decodeBase64(sigHeader)
	if err != nil || len(sig) != sha512.Size {
		return Result{}, ErrMalformedSignature
	}

	contentTypes := []string{cb.Header.Get("Content-Type")}
	if contentTypes[0] != ixopayPHPContentType {
		contentTypes = append(contentTypes, ixopayPHPContentType)
	}
	digests := []IXOPAYBodyDigest{IXOPAYSHA512}
	if v.LegacyMD5 {
		digests = append(digests, IXOPAYMD5)
	}
	for _, digest := range digests {
		bodyHex := bodyDigest(digest, cb.Body)
		for _, contentType := range contentTypes {
			for _, secret := range v.Secrets {
				if hmac.Equal(sig, ixopayMAC(secret, cb.Method, bodyHex, contentType, date, cb.RequestURI)) {
					res := Result{Method: "hmac-sha512", Date: date}
					if digest == IXOPAYMD5 {
						res.Variant = "legacy-md5"
					}
					return res, nil
				}
			}
		}
	}
	return Result{}, ErrBadSignature
}

// decodeBase64 decodes standard Base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	return b, nil
}
