package verify

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
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
	// Mode is how a signature is made from a secret: ModeHMAC (the
	// default), ModeHash, ModeSecret or ModeSecretHash.
	Mode string
	// Algorithm is "md5", "sha1", "sha256" or "sha512": the hash of every
	// signature, or of those whose algorithm the header does not name.
	Algorithm string
	// Algorithms are the hashes accepted where the header names each
	// signature's (AlgorithmKey, or an "algorithm" field); empty means
	// Algorithm alone. A signature naming another is no candidate.
	Algorithms []string
	// Header carries the signature. Several header lines are several
	// candidate signatures (a provider rotating its secret sends both).
	Header string
	// HeaderEncoding "base64" means each of Header's values is the base64
	// of what is read (MultiSafepay's Auth).
	HeaderEncoding string
	// SignatureKey, when set, makes Header a list of key=value pairs
	// (separated by ',', ';' or '&'): the signatures are the values of
	// this key; several are candidates. AlgorithmKey names the pair that
	// gives their algorithm (PayU's "algorithm=MD5").
	SignatureKey string
	AlgorithmKey string
	// PairSeparator joins the pairs of a signature Sign makes (default
	// ","; Paddle's and PayU's libraries split on ";"). Verify reads any
	// of ',', ';' and '&'.
	PairSeparator string
	// Fields, when set, makes Header a list of entries separated by ','
	// each made of these fields, in this order, separated by
	// FieldSeparator: "signature", "timestamp", "algorithm", "key_id" or
	// "_" (Worldpay's "1/SHA256/<hex>": "/" and key_id, algorithm,
	// signature). Every secret is tried against every entry.
	Fields         []string
	FieldSeparator string
	// Encoding of a signature: "hex", "base64" or "base64url".
	Encoding string
	// Prefix must start each signature ("sha256="); it is removed before
	// decoding. With PrefixOptional, a signature without it is taken as it
	// is (Mollie's SDK strips "sha256=" when present, its docs compare the
	// bare hex).
	Prefix         string
	PrefixOptional bool
	// Content is what is signed (ModeHMAC, ModeHash).
	Content Template
	// UnsignedBody accepts a Content that does not cover the body, for
	// providers whose signature leaves it out: the caller must bind the
	// body to the signature itself (WeaklySigned in the Caddy module).
	UnsignedBody bool
	// TimestampKey takes the timestamp from Header's key=value pairs;
	// TimestampHeader from a header of its own. With neither, no
	// timestamp is checked (and {timestamp} is refused by the template).
	TimestampKey    string
	TimestampHeader string
	// TimestampFormat is "seconds", "milliseconds", "http-date" or
	// "rfc3339".
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

// The modes of an HMAC scheme: how a signature is made from a secret.
const (
	// ModeHMAC: the HMAC of the content, keyed with the secret.
	ModeHMAC = "hmac"
	// ModeHash: the plain digest of the content, which holds {secret}
	// (PayU's MD5 or SHA-256 of the body followed by its second key).
	ModeHash = "hash"
	// ModeSecret: the header carries the secret itself (Flutterwave's
	// verif-hash). The body is not signed.
	ModeSecret = "secret"
	// ModeSecretHash: the header carries the encoded digest of the secret
	// (PhonePe's SHA-256 of username:password). The body is not signed.
	ModeSecretHash = "secret_hash"
)

// HashFor returns the hash of an algorithm name, or nil. The name is
// compared in lower case without dashes, so headers' "SHA-256" and "MD5"
// name sha256 and md5.
func HashFor(algorithm string) func() hash.Hash {
	switch algorithmName(algorithm) {
	case "md5":
		return md5.New
	case "sha1":
		return sha1.New
	case "sha256":
		return sha256.New
	case "sha512":
		return sha512.New
	}
	return nil
}

// digestSize is the size of an accepted algorithm's digest, without
// making a hash per candidate signature.
func digestSize(algorithm string) int {
	switch algorithmName(algorithm) {
	case "md5":
		return md5.Size
	case "sha1":
		return sha1.Size
	case "sha256":
		return sha256.Size
	case "sha512":
		return sha512.Size
	}
	return 0
}

// algorithmName is an algorithm's name as configured: lower case, no
// dashes ("SHA-256" is sha256).
func algorithmName(name string) string {
	if len(name) > 16 {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(name), "-", "")
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
	mode := v.mode()
	switch mode {
	case ModeHMAC, ModeHash, ModeSecret, ModeSecretHash:
	default:
		return fmt.Errorf("mode %q: want hmac, hash, secret or secret_hash", v.Mode)
	}
	if HashFor(v.Algorithm) == nil && mode != ModeSecret {
		return fmt.Errorf("algorithm %q: want md5, sha1, sha256 or sha512", v.Algorithm)
	}
	for _, a := range v.Algorithms {
		if HashFor(a) == nil {
			return fmt.Errorf("algorithm %q: want md5, sha1, sha256 or sha512", a)
		}
	}
	namesAlgorithm := v.AlgorithmKey != "" || slices.Contains(v.Fields, "algorithm")
	if len(v.Algorithms) > 1 && !namesAlgorithm {
		return errors.New("several algorithms need the header to name each signature's: algorithm_key, or an algorithm field")
	}
	if v.Header == "" {
		return errors.New("header is required: the header that carries the signature")
	}
	switch v.Encoding {
	case "hex", "base64", "base64url":
	default:
		if mode != ModeSecret {
			return fmt.Errorf("signature_encoding %q: want hex, base64 or base64url", v.Encoding)
		}
	}
	switch v.HeaderEncoding {
	case "", "base64":
	default:
		return fmt.Errorf("header_encoding %q: want base64", v.HeaderEncoding)
	}
	switch v.TimestampFormat {
	case "", "seconds", "milliseconds", "http-date", "rfc3339":
	default:
		return fmt.Errorf("timestamp format %q: want seconds, milliseconds, http-date or rfc3339", v.TimestampFormat)
	}
	if err := v.checkFields(); err != nil {
		return err
	}
	if v.TimestampKey != "" && v.SignatureKey == "" {
		return errors.New("a timestamp key needs signature_key: both come from the signature header's key=value pairs")
	}
	switch v.PairSeparator {
	case "", ",", ";", "&":
	default:
		return fmt.Errorf("pair separator %q: want , ; or &", v.PairSeparator)
	}
	if v.AlgorithmKey != "" && v.SignatureKey == "" {
		return errors.New("an algorithm key needs signature_key: both come from the signature header's key=value pairs")
	}
	hasTimestamp := v.TimestampKey != "" || v.TimestampHeader != "" || slices.Contains(v.Fields, "timestamp")
	if mode == ModeSecret || mode == ModeSecretHash {
		// The header is the same on every callback: nothing is signed, so
		// nothing may claim to be.
		if len(v.Content.parts) > 0 || hasTimestamp || v.IDHeader != "" || v.UnsignedBody {
			return fmt.Errorf("mode %s: the header carries the secret itself, so no content, timestamp, id_header or unsigned_body applies", mode)
		}
		return nil
	}
	switch {
	case mode == ModeHash && !v.Content.uses(partSecret):
		return errors.New("mode hash: content must hold {secret}, or anyone can compute the signature")
	case mode == ModeHMAC && v.Content.uses(partSecret):
		return errors.New("content uses {secret}: the secret keys the HMAC (mode hash hashes content with {secret} instead)")
	case v.UnsignedBody && v.Content.CoversBody():
		return errors.New("unsigned_body, but the content signs the body: remove unsigned_body")
	case !v.UnsignedBody && !v.Content.CoversBody():
		return errors.New("content does not cover the body: use {body} or one of its digests " +
			"(unsigned_body, only for a provider whose signature leaves the body out)")
	case v.UnsignedBody && !hasTimestamp:
		return errors.New("unsigned_body needs a signed timestamp: the body is bound to a signature only while it is fresh")
	}
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

// checkFields checks the names of an entry's fields.
func (v *HMAC) checkFields() error {
	if len(v.Fields) == 0 {
		if v.FieldSeparator != "" {
			return errors.New("a field separator needs fields")
		}
		return nil
	}
	if v.SignatureKey != "" {
		return errors.New("fields and a signature key are two ways to read the header: choose one")
	}
	if len(v.FieldSeparator) != 1 || v.FieldSeparator == "," {
		return fmt.Errorf("field separator %q: one character, not ','", v.FieldSeparator)
	}
	seen := map[string]bool{}
	for _, f := range v.Fields {
		switch f {
		case "signature", "timestamp", "algorithm", "key_id":
			if seen[f] {
				return fmt.Errorf("field %s named twice", f)
			}
			seen[f] = true
		case "_":
		default:
			return fmt.Errorf("field %q: want signature, timestamp, algorithm, key_id or _", f)
		}
	}
	if !seen["signature"] {
		return errors.New("fields: one must be signature")
	}
	return nil
}

func (v *HMAC) mode() string {
	if v.Mode == "" {
		return ModeHMAC
	}
	return v.Mode
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

// candidate is one signature the header offers: its text, and the
// algorithm it names, if any.
type candidate struct {
	signature string
	algorithm string
}

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
	if v.HeaderEncoding == "base64" {
		decoded := make([]string, 0, len(values))
		for _, value := range values {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
			if err != nil {
				return Result{}, fmt.Errorf("%w: header is not base64", ErrMalformedSignature)
			}
			decoded = append(decoded, string(b))
		}
		values = decoded
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
	mode := v.mode()
	if mode == ModeSecret || mode == ModeSecretHash {
		return v.verifySecret(candidates)
	}
	if v.TimestampKey != "" || v.TimestampHeader != "" || slices.Contains(v.Fields, "timestamp") {
		if err := v.checkTimestamp(timestamp); err != nil {
			return Result{}, err
		}
	}
	type signature struct {
		sum       []byte
		algorithm string
	}
	sigs := make([]signature, 0, len(candidates))
	for _, c := range candidates {
		algorithm, ok := v.algorithmOf(c)
		if !ok {
			continue
		}
		sig, err := v.decode(c.signature)
		if err != nil || len(sig) != digestSize(algorithm) {
			continue
		}
		sigs = append(sigs, signature{sig, algorithm})
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
	tv := TemplateValues{Body: cb.Body, Timestamp: timestamp, ID: id, URL: v.url(cb), Placeholders: cb.Placeholders}
	var content []byte
	if mode == ModeHMAC {
		var err error
		if content, err = v.Content.Append(nil, tv); err != nil {
			return Result{}, err
		}
	}
	for _, secret := range v.Secrets {
		if mode == ModeHash {
			tv.Secret = secret
			var err error
			if content, err = v.Content.Append(content[:0], tv); err != nil {
				return Result{}, err
			}
		}
		for _, sig := range sigs {
			if hmac.Equal(sig.sum, v.sum(sig.algorithm, secret, content)) {
				res := Result{Method: mode + "-" + algorithmName(sig.algorithm), Date: timestamp}
				if v.Content.uses(partID) {
					res.NotificationID = id
				}
				return res, nil
			}
		}
	}
	return Result{}, ErrBadSignature
}

// sum is the signature of content under the scheme's mode.
func (v *HMAC) sum(algorithm string, secret, content []byte) []byte {
	newHash := HashFor(algorithm)
	if v.mode() == ModeHash {
		h := newHash()
		h.Write(content)
		return h.Sum(nil)
	}
	mac := hmac.New(newHash, secret)
	mac.Write(content)
	return mac.Sum(nil)
}

// verifySecret checks a header that carries the secret (ModeSecret) or
// its digest (ModeSecretHash). Both sides are hashed before the
// comparison, so that its time tells nothing, not even the secret's length.
func (v *HMAC) verifySecret(candidates []candidate) (Result, error) {
	for _, c := range candidates {
		given := []byte(c.signature)
		if v.Prefix != "" {
			rest, ok := strings.CutPrefix(c.signature, v.Prefix)
			if !ok && !v.PrefixOptional {
				continue
			}
			given = []byte(rest)
		}
		if v.mode() == ModeSecretHash {
			var err error
			if given, err = v.decode(string(given)); err != nil {
				continue
			}
		}
		givenSum := sha256.Sum256(given)
		for _, secret := range v.Secrets {
			want := secret
			if v.mode() == ModeSecretHash {
				h := HashFor(v.Algorithm)()
				h.Write(secret)
				want = h.Sum(nil)
			}
			wantSum := sha256.Sum256(want)
			if hmac.Equal(givenSum[:], wantSum[:]) {
				if v.mode() == ModeSecret {
					return Result{Method: "shared-secret"}, nil
				}
				return Result{Method: "shared-secret-" + algorithmName(v.Algorithm)}, nil
			}
		}
	}
	return Result{}, ErrBadSignature
}

// algorithmOf is the hash a candidate signature is checked with: the one
// it names, if the scheme accepts it, else the scheme's.
func (v *HMAC) algorithmOf(c candidate) (string, bool) {
	if c.algorithm == "" {
		return v.Algorithm, true
	}
	named := algorithmName(c.algorithm)
	accepted := v.Algorithms
	if len(accepted) == 0 {
		accepted = []string{v.Algorithm}
	}
	for _, a := range accepted {
		if algorithmName(a) == named {
			return a, true
		}
	}
	return "", false
}

// signatures reads the candidate signatures, and the timestamp when it is
// one of the header's key=value pairs or fields.
func (v *HMAC) signatures(values []string) (candidates []candidate, timestamp string) {
	for _, value := range values {
		switch {
		case len(v.Fields) > 0:
			for _, entry := range strings.Split(value, ",") {
				fields := strings.Split(strings.TrimSpace(entry), v.FieldSeparator)
				if len(fields) != len(v.Fields) {
					continue
				}
				var c candidate
				for i, name := range v.Fields {
					switch name {
					case "signature":
						c.signature = fields[i]
					case "algorithm":
						c.algorithm = fields[i]
					case "timestamp":
						if timestamp == "" {
							timestamp = fields[i]
						}
					}
				}
				if c.signature != "" {
					candidates = append(candidates, c)
				}
				if len(candidates) > maxSignatureEntries {
					return candidates, timestamp
				}
			}
		case v.SignatureKey == "":
			if s := strings.TrimSpace(value); s != "" {
				candidates = append(candidates, candidate{signature: s})
			}
		default:
			var algorithm string
			first := len(candidates)
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
					candidates = append(candidates, candidate{signature: val})
				case v.TimestampKey:
					if timestamp == "" {
						timestamp = val
					}
				case v.AlgorithmKey:
					if algorithm == "" {
						algorithm = val
					}
				}
				if len(candidates) > maxSignatureEntries {
					return candidates, timestamp
				}
			}
			if v.AlgorithmKey != "" {
				// The algorithm a header value names is its signatures'.
				for i := first; i < len(candidates); i++ {
					candidates[i].algorithm = algorithm
				}
			}
		}
	}
	return candidates, timestamp
}

func (v *HMAC) decode(sig string) ([]byte, error) {
	if v.Prefix != "" && v.mode() != ModeSecretHash {
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
	case "rfc3339":
		return checkRFC3339(value, now(), v.MaxSkew)
	case "milliseconds":
		_, err := checkUnixTimestamp(value, time.Millisecond, now(), v.MaxSkew)
		return err
	default:
		_, err := checkUnixTimestamp(value, time.Second, now(), v.MaxSkew)
		return err
	}
}

// checkRFC3339 checks an RFC 3339 timestamp ("2026-12-07T10:00:00.000Z")
// against the window.
func checkRFC3339(value string, now time.Time, maxSkew time.Duration) error {
	if value == "" {
		return ErrNoDate
	}
	if len(value) > 64 {
		return fmt.Errorf("%w: not an RFC 3339 time", ErrMalformedDate)
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return fmt.Errorf("%w: not an RFC 3339 time", ErrMalformedDate)
	}
	skew := now.Sub(t)
	if skew > maxSkew || skew < -maxSkew {
		return fmt.Errorf("%w: %s off, %s allowed", ErrDateOutsideWindow, skew.Round(time.Second), maxSkew)
	}
	return nil
}

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

// Sign makes the signature header's value as the scheme's sender would,
// for content values (Secret is set here in ModeHash) and timestamp:
// `caddy payhook send` and the tests use it.
func (v *HMAC) Sign(secret []byte, values TemplateValues) (string, error) {
	var sig string
	algorithm := v.Algorithm
	switch v.mode() {
	case ModeSecret:
		sig = string(secret)
	case ModeSecretHash:
		h := HashFor(algorithm)()
		h.Write(secret)
		sig = v.encode(h.Sum(nil))
	default:
		if v.mode() == ModeHash {
			values.Secret = secret
		}
		content, err := v.Content.Append(nil, values)
		if err != nil {
			return "", err
		}
		sig = v.encode(v.sum(algorithm, secret, content))
	}
	var value string
	switch {
	case len(v.Fields) > 0:
		fields := make([]string, len(v.Fields))
		for i, name := range v.Fields {
			switch name {
			case "signature":
				fields[i] = sig
			case "timestamp":
				fields[i] = values.Timestamp
			case "algorithm":
				fields[i] = strings.ToUpper(algorithmName(algorithm))
			default:
				fields[i] = "1"
			}
		}
		value = strings.Join(fields, v.FieldSeparator)
	case v.SignatureKey != "":
		pairs := []string{}
		if v.TimestampKey != "" {
			pairs = append(pairs, v.TimestampKey+"="+values.Timestamp)
		}
		pairs = append(pairs, v.SignatureKey+"="+sig)
		if v.AlgorithmKey != "" {
			pairs = append(pairs, v.AlgorithmKey+"="+strings.ToUpper(algorithmName(algorithm)))
		}
		value = strings.Join(pairs, cmp.Or(v.PairSeparator, ","))
	default:
		value = sig
	}
	if v.HeaderEncoding == "base64" {
		value = base64.StdEncoding.EncodeToString([]byte(value))
	}
	return value, nil
}

// encode writes a digest in the signature's encoding, with its prefix.
func (v *HMAC) encode(sum []byte) string {
	switch v.Encoding {
	case "hex":
		return v.Prefix + hex.EncodeToString(sum)
	case "base64url":
		return v.Prefix + base64.URLEncoding.EncodeToString(sum)
	default:
		return v.Prefix + base64.StdEncoding.EncodeToString(sum)
	}
}

// SignHMAC signs content as the scheme's sender would, in ModeHMAC: the
// signature's encoding with its prefix.
func (v *HMAC) SignHMAC(secret, content []byte) string {
	return v.encode(v.sum(v.Algorithm, secret, content))
}
