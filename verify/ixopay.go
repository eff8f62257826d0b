package verify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
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
	var digestHex [2 * sha512.Size]byte
	signed := appendIXOPAYMessage(nil, msg.Method, bodyDigest(digestHex[:0], digest, msg.Body), msg.ContentType, msg.Date, msg.RequestURI)
	mac := hmac.New(sha512.New, secret)
	mac.Write(signed)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// bodyDigest appends the lowercase hex digest of body to dst.
func bodyDigest(dst []byte, digest IXOPAYBodyDigest, body []byte) []byte {
	if digest == IXOPAYMD5 {
		sum := md5.Sum(body)
		return hex.AppendEncode(dst, sum[:])
	}
	sum := sha512.Sum512(body)
	return hex.AppendEncode(dst, sum[:])
}

// appendIXOPAYMessage appends the signed message: the five parts joined by "\n".
func appendIXOPAYMessage(dst []byte, method string, bodyHex []byte, contentType, date, requestURI string) []byte {
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = append(dst, bodyHex...)
	dst = append(dst, '\n')
	dst = append(dst, contentType...)
	dst = append(dst, '\n')
	dst = append(dst, date...)
	dst = append(dst, '\n')
	return append(dst, requestURI...)
}

// macPool reuses HMAC-SHA512 states keyed with one secret: creating one
// costs two SHA-512 states and the key schedule, more than hashing a
// typical callback's message.
type macPool struct {
	pool sync.Pool
}

func newMACPool(secret []byte) *macPool {
	key := bytes.Clone(secret)
	return &macPool{pool: sync.Pool{New: func() any { return &macState{mac: hmac.New(sha512.New, key)} }}}
}

// macState is one pooled HMAC with room for its sum, so that computing it
// allocates nothing.
type macState struct {
	mac hash.Hash
	sum [sha512.Size]byte
}

// equal reports whether the HMAC of msg equals sig, in constant time.
func (p *macPool) equal(sig, msg []byte) bool {
	st := p.pool.Get().(*macState)
	st.mac.Reset()
	st.mac.Write(msg)
	ok := hmac.Equal(sig, st.mac.Sum(st.sum[:0]))
	p.pool.Put(st)
	return ok
}

// IXOPAY verifies callbacks signed with IXOPAY's X-Signature scheme
// (gateway.ixopay.com API v3 and its white labels).
type IXOPAY struct {
	// Secrets are the connector's shared secrets; any one of them verifies a
	// callback, so a rotation can keep the previous secret for a while. They
	// must not change once Verify has been called.
	Secrets [][]byte
	// MaxSkew is how far the signed Date may lie in the past or the future.
	MaxSkew time.Duration
	// LegacyMD5 also accepts the variant that hashes the body with MD5.
	LegacyMD5 bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	macsOnce sync.Once
	macs     []*macPool // one per secret
}

// messageBufs holds buffers for the signed message, which is a little
// longer than the request's headers.
var messageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

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
	var sigBuf [96]byte
	sig, err := decodeBase64(sigBuf[:0], sigHeader)
	if err != nil || len(sig) != sha512.Size {
		return Result{}, ErrMalformedSignature
	}
	v.macsOnce.Do(func() {
		for _, secret := range v.Secrets {
			v.macs = append(v.macs, newMACPool(secret))
		}
	})
	bufp := messageBufs.Get().(*[]byte)
	defer messageBufs.Put(bufp)

	contentTypes := []string{cb.Header.Get("Content-Type")}
	if contentTypes[0] != ixopayPHPContentType {
		contentTypes = append(contentTypes, ixopayPHPContentType)
	}
	digests := []IXOPAYBodyDigest{IXOPAYSHA512}
	if v.LegacyMD5 {
		digests = append(digests, IXOPAYMD5)
	}
	var digestHex [2 * sha512.Size]byte
	for _, digest := range digests {
		bodyHex := bodyDigest(digestHex[:0], digest, cb.Body)
		for _, contentType := range contentTypes {
			msg := appendIXOPAYMessage((*bufp)[:0], cb.Method, bodyHex, contentType, date, cb.RequestURI)
			*bufp = msg
			for _, mac := range v.macs {
				if mac.equal(sig, msg) {
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

// decodeBase64 appends the decoding of standard Base64, with or without
// padding, to dst.
func decodeBase64(dst []byte, s string) ([]byte, error) {
	if b, err := base64.StdEncoding.AppendDecode(dst, []byte(s)); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.AppendDecode(dst, []byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	return b, nil
}
