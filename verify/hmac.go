package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// HMAC verifies callbacks signed with an HMAC scheme described by
// configuration: which hash, which header carries the signature (alone, or
// as one key=value pair among several, as in Stripe's "t=…,v1=…" or
// Paddle's "ts=…;h1=…"), how it is encoded, what content is signed (a
// Template over the raw body, a timestamp, an id, the URL, the server's
// request placeholders) and which timestamp bounds a replay.
type HMAC struct {
	// Secrets are the keys, decoded; any one verifies.
	Secrets [][]byte
	// Algorithm is "sha1", "sha256" or "sha512".
	Algorithm string
	// Header carries the signature. Several header lines are several
	// candidate signatures (a provider rotating its secret sends both).
	Header string
	// SignatureKey, when set, makes Header a list of key=value pairs
	// (separated by ',', ';' or '&'): the signatures are the values of
	// this key; several are candidates.
	SignatureKey string
	// Encoding of a signature: "hex", "base64" or "base64url".
	Encoding string
	// Prefix must start each signature ("sha256="); it is removed before
	// decoding. With PrefixOptional, a signature without it is taken as it
	// is (Mollie's SDK strips "sha256=" when present, its docs compare the
	// bare hex).
	Prefix         string
	PrefixOptional bool
	// Content is what is signed.
	Content Template
	// TimestampKey takes the timestamp from Header's key=value pairs;
	// TimestampHeader from a header of its own. With neither, no
	// timestamp is checked (and {timestamp} is refused by the template).
	TimestampKey    string
	TimestampHeader string
	// TimestampFormat is "seconds", "milliseconds" or "http-date".
	TimestampFormat string
	// MaxSkew bounds the timestamp, in the past and in the future.
	MaxSkew time.Duration
	// IDHeader carries the {id} of the template.
	IDHeader string
	// URL is the {url} of the template; empty means the URL the provider
	// called (scheme, host, path and query).
	URL string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// HashFor returns the hash of an algorithm name, or nil.
func HashFor(algorithm string) func() hash.Hash {
	switch algorithm {
	case "sha1":
		return sha1.New
	case "sha256":
		return sha256.New
	case "sha512":
		return sha512.New
	}
	return nil
}

// DecodeSecret decodes a configured secret: "raw" (its bytes as written),
// "base64" or "hex".
func DecodeSecret(secret, encoding string) ([]byte, error) {
	switch encoding {
	case "", "raw":
		return []byte(secret), nil
	case "base64":
		return base64.StdEncoding.DecodeString(secret)
	case "hex":
		return hex.DecodeString(secret)
	}
	return nil, fmt.Errorf("unknown secret encoding %q (raw, base64, hex)", encoding)
}

// Check reports a configuration mistake, before any callback.
func (v *HMAC) Check() error {
	if HashFor(v.Algorithm) == nil {
		return fmt.Errorf("algorithm %q: want sha1, sha256 or sha512", v.Algorithm)
	}
	if v.Header == "" {
		return errors.New("header is required: the header that carries the signature")
	}
	switch v.Encoding {
	case "hex", "base64", "base64url":
	default:
		return fmt.Errorf("signature_encoding %q: want hex, base64 or base64url", v.Encoding)
	}
	switch v.TimestampFormat {
	case "", "seconds", "milliseconds", "http-date":
	default:
		return fmt.Errorf("timestamp format %q: want seconds, milliseconds or http-date", v.TimestampFormat)
	}
	if v.TimestampKey != "" && v.SignatureKey == "" {
		return errors.New("a timestamp key needs signature_key: both come from the signature header's key=value pairs")
	}
	hasTimestamp := v.TimestampKey != "" || v.TimestampHeader != ""
	for _, p := range v.Content.parts {
		switch {
		case p.kind == partTimestamp && !hasTimestamp:
			return errors.New("content uses {timestamp}, but no timestamp_header (or timestamp key) says where it is")
		case p.kind == partID && v.IDHeader == "":
			return errors.New("content uses {id}, but no id_header says where it is")
		}
	}
	if hasTimestamp && v.MaxSkew <= 0 {
		return errors.New("max_skew must be positive")
	}
	if hasTimestamp && !v.signsTimestamp() {
		// A timestamp outside the signed content is the sender's to
		// choose: a replay of a genuine callback would pass with a fresh one.
		return errors.New("the timestamp is checked but not signed: put {timestamp} in content (or, for timestamp_header, " +
			"the header's placeholder); a timestamp the signature does not cover bounds no replay")
	}
	return nil
}

// signsTimestamp reports whether the content covers the timestamp: as
// {timestamp}, or as the timestamp header's server placeholder.
func (v *HMAC) signsTimestamp() bool {
	if v.Content.uses(partTimestamp) {
		return true
	}
	if v.TimestampHeader == "" {
		return false
	}
	for _, p := range v.Content.parts {
		if p.kind == partPlaceholder && strings.EqualFold(p.text, "http.request.header."+v.TimestampHeader) {
			return true
		}
	}
	return false
}

// maxSignatureHeader bounds the signature header payhook reads.
const maxSignatureHeader = 8 << 10

// Verify checks the signature (and the timestamp, if the scheme has one)
// over the content built from cb's raw bytes.
func (v *HMAC) Verify(_ context.Context, cb *Callback) (Result, error) {
	values := cb.Header.Values(v.Header)
	total := 0
	for _, value := range values {
		total += len(value)
	}
	if total == 0 {
		return Result{}, ErrNotSigned
	}
	if total > maxSignatureHeader {
		return Result{}, fmt.Errorf("%w: header over %d bytes", ErrMalformedSignature, maxSignatureHeader)
	}
	candidates, timestamp := v.signatures(values)
	if v.TimestampHeader != "" {
		timestamp = cb.Header.Get(v.TimestampHeader)
	}
	if len(candidates) == 0 {
		return Result{}, ErrNotSigned
	}
	if len(candidates) > maxSignatureEntries {
		return Result{}, fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxSignatureEntries)
	}
	if v.TimestampKey != "" || v.TimestampHeader != "" {
		if err := v.checkTimestamp(timestamp); err != nil {
			return Result{}, err
		}
	}
	newHash := HashFor(v.Algorithm)
	size := newHash().Size()
	sigs := make([][]byte, 0, len(candidates))
	for _, c := range candidates {
		sig, err := v.decode(c)
		if err != nil || len(sig) != size {
			continue
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return Result{}, ErrMalformedSignature
	}
	var id string
	if v.IDHeader != "" {
		if id = cb.Header.Get(v.IDHeader); id == "" && v.Content.uses(partID) {
			return Result{}, fmt.Errorf("%w: no %s header", ErrNotSigned, v.IDHeader)
		}
	}
	content, err := v.Content.Append(nil, TemplateValues{
		Body: cb.Body, Timestamp: timestamp, ID: id, URL: v.url(cb), Placeholders: cb.Placeholders,
	})
	if err != nil {
		return Result{}, err
	}
	for _, secret := range v.Secrets {
		mac := hmac.New(newHash, secret)
		mac.Write(content)
		sum := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sig, sum) {
				res := Result{Method: "hmac-" + v.Algorithm, Date: timestamp}
				if v.Content.uses(partID) {
					res.NotificationID = id
				}
				return res, nil
			}
		}
	}
	return Result{}, ErrBadSignature
}

// signatures reads the candidate signatures, and the timestamp when it is
// one of the header's key=value pairs.
func (v *HMAC) signatures(values []string) (candidates []string, timestamp string) {
	for _, value := range values {
		if v.SignatureKey == "" {
			if s := strings.TrimSpace(value); s != "" {
				candidates = append(candidates, s)
			}
			continue
		}
		for _, pair := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ';' || r == '&' }) {
			key, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				continue
			}
			// A key may follow a word, as in "HMAC-SHA256 SignedHeaders=…".
			if i := strings.LastIndexByte(key, ' '); i >= 0 {
				key = key[i+1:]
			}
			switch key {
			case v.SignatureKey:
				candidates = append(candidates, val)
			case v.TimestampKey:
				if timestamp == "" {
					timestamp = val
				}
			}
		}
	}
	return candidates, timestamp
}

func (v *HMAC) decode(sig string) ([]byte, error) {
	if v.Prefix != "" {
		rest, ok := strings.CutPrefix(sig, v.Prefix)
		if !ok && !v.PrefixOptional {
			return nil, ErrMalformedSignature
		}
		sig = rest
	}
	switch v.Encoding {
	case "hex":
		return hex.DecodeString(sig)
	case "base64url":
		if b, err := base64.URLEncoding.DecodeString(sig); err == nil {
			return b, nil
		}
		return base64.RawURLEncoding.DecodeString(sig)
	default:
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil {
			return b, nil
		}
		return base64.RawStdEncoding.DecodeString(sig)
	}
}

func (v *HMAC) checkTimestamp(value string) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	switch v.TimestampFormat {
	case "http-date":
		_, err := CheckDate(value, now(), v.MaxSkew)
		return err
	case "milliseconds":
		_, err := checkUnixTimestamp(value, time.Millisecond, now(), v.MaxSkew)
		return err
	default:
		_, err := checkUnixTimestamp(value, time.Second, now(), v.MaxSkew)
		return err
	}
}

// url is the template's {url}: the configured one, or the URL called.
func (v *HMAC) url(cb *Callback) string {
	if v.URL != "" {
		return v.URL
	}
	scheme := cb.Scheme
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + cb.Host + cb.RequestURI
}

// SignHMAC signs content as the scheme's sender would: the signature's
// encoding with its prefix. Tests and `caddy payhook send` use it.
func (v *HMAC) SignHMAC(secret, content []byte) string {
	mac := hmac.New(HashFor(v.Algorithm), secret)
	mac.Write(content)
	sum := mac.Sum(nil)
	switch v.Encoding {
	case "hex":
		return v.Prefix + hex.EncodeToString(sum)
	case "base64url":
		return v.Prefix + base64.URLEncoding.EncodeToString(sum)
	default:
		return v.Prefix + base64.StdEncoding.EncodeToString(sum)
	}
}
