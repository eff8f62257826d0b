package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/time/rate"
)

// wallee and PostFinance Checkout (one platform, two hosts) sign a
// webhook notification, when its listener has "payload signature and
// state" enabled, with ECDSA P-256 over SHA-256 of the raw body:
//
//	X-Signature: algorithm=SHA256withECDSA, keyId=<uuid>, signature=<base64 DER>
//
// The public key is read by its id from the platform's API
// (GET /api/webhook-encryption/read?id=<keyId>, answering
// {"id": …, "publicKey": "<base64 DER SubjectPublicKeyInfo>"}), as the
// official SDKs' WebhookEncryptionService.isContentValid does. The API
// authenticates its callers with a MAC (see WalleeMAC).

// WalleeSignatureAlgorithm is the only algorithm the platform's SDKs know.
const WalleeSignatureAlgorithm = "SHA256withECDSA"

// maxWalleeKeyIDLen bounds a key id; the platform's are 36-byte UUIDs.
const maxWalleeKeyIDLen = 64

// WalleeSignature is an X-Signature header, decoded.
type WalleeSignature struct {
	Algorithm string
	KeyID     string
	Signature []byte // ASN.1 DER
}

// ParseWalleeSignature reads an X-Signature header in the shape the SDKs
// accept (^algorithm=…,\skeyId=[a-z0-9-]+,\ssignature=<base64>$). An empty
// header is ErrNotSigned; any other shape, an algorithm other than
// SHA256withECDSA or a signature that is not base64 is
// ErrMalformedSignature.
func ParseWalleeSignature(header string) (WalleeSignature, error) {
	if header == "" {
		return WalleeSignature{}, ErrNotSigned
	}
	if len(header) > 512 {
		return WalleeSignature{}, fmt.Errorf("%w: header over 512 bytes", ErrMalformedSignature)
	}
	var sig WalleeSignature
	rest := header
	for i, name := range [...]string{"algorithm=", "keyId=", "signature="} {
		if i > 0 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, ", "); !ok {
				if rest, ok = strings.CutPrefix(rest, ",\t"); !ok {
					return WalleeSignature{}, fmt.Errorf("%w: want algorithm=…, keyId=…, signature=…", ErrMalformedSignature)
				}
			}
		}
		value, ok := strings.CutPrefix(rest, name)
		if !ok {
			return WalleeSignature{}, fmt.Errorf("%w: want algorithm=…, keyId=…, signature=…", ErrMalformedSignature)
		}
		end := strings.IndexByte(value, ',')
		if end < 0 || i == 2 {
			end = len(value)
		}
		value, rest = value[:end], value[end:]
		switch i {
		case 0:
			sig.Algorithm = value
		case 1:
			sig.KeyID = value
		case 2:
			sig.Signature = []byte(value)
		}
	}
	if sig.Algorithm != WalleeSignatureAlgorithm {
		return WalleeSignature{}, fmt.Errorf("%w: algorithm %q, want %s", ErrMalformedSignature, truncate(sig.Algorithm, 24), WalleeSignatureAlgorithm)
	}
	if err := CheckWalleeKeyID(sig.KeyID); err != nil {
		return WalleeSignature{}, err
	}
	decoded, err := base64.StdEncoding.DecodeString(string(sig.Signature))
	if err != nil || len(decoded) == 0 {
		return WalleeSignature{}, fmt.Errorf("%w: signature is not base64", ErrMalformedSignature)
	}
	sig.Signature = decoded
	return sig, nil
}

// CheckWalleeKeyID accepts a key id as the SDKs do: lower-case letters,
// digits and '-'. It goes into the API's URL, so nothing else may.
func CheckWalleeKeyID(keyID string) error {
	if keyID == "" || len(keyID) > maxWalleeKeyIDLen {
		return fmt.Errorf("%w: keyId of %d bytes", ErrMalformedSignature, len(keyID))
	}
	for i := 0; i < len(keyID); i++ {
		if c := keyID[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: character %q in keyId", ErrMalformedSignature, c)
		}
	}
	return nil
}

// ParseWalleePublicKey reads a public key as the API answers it: base64 of
// a DER SubjectPublicKeyInfo. Only P-256 keys are accepted.
func ParseWalleePublicKey(encoded string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("public key is not base64: %w", err)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("public key is not an ECDSA P-256 key")
	}
	return ec, nil
}

// VerifyWalleeBody checks sig (ASN.1 DER) over SHA-256 of body with key;
// ErrBadSignature when it does not match.
func VerifyWalleeBody(key *ecdsa.PublicKey, body, sig []byte) error {
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// SignWallee signs body as the platform does and returns the X-Signature
// header's value: for tests and stand-ins of the API, whose key pair it
// is.
func SignWallee(key *ecdsa.PrivateKey, keyID string, body []byte) (string, error) {
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return "", err
	}
	return "algorithm=" + WalleeSignatureAlgorithm + ", keyId=" + keyID + ", signature=" + base64.StdEncoding.EncodeToString(sig), nil
}

// WalleeMAC is the platform's API authentication, version 1, as the SDKs
// compute it: base64 of HMAC-SHA512, keyed with the base64-decoded
// authentication key, over "1|<user id>|<unix seconds>|<METHOD>|<path and
// query of the request>" (the path from the host on, /api/… included).
func WalleeMAC(userID string, key []byte, unixSeconds int64, method, pathAndQuery string) string {
	mac := hmac.New(sha512.New, key)
	mac.Write([]byte("1|" + userID + "|" + strconv.FormatInt(unixSeconds, 10) + "|" + method + "|" + pathAndQuery))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// WalleeMACHeaders are the x-mac-* headers of a request to pathAndQuery.
func WalleeMACHeaders(userID string, key []byte, now time.Time, method, pathAndQuery string) http.Header {
	ts := now.Unix()
	return http.Header{
		"X-Mac-Version":   {"1"},
		"X-Mac-Userid":    {userID},
		"X-Mac-Timestamp": {strconv.FormatInt(ts, 10)},
		"X-Mac-Value":     {WalleeMAC(userID, key, ts, method, pathAndQuery)},
	}
}

// Bounds of the public-key cache. The platform signs with a handful of
// keys at a time; a key id not in the cache costs a request to the API,
// and such requests are rationed: a forger who sends fresh key ids gets
// ErrAPIThrottled (503) past the ration, never an API request each.
const (
	walleeMaxKeys        = 32
	walleeKeyFetchEvery  = 10 * time.Second // one key request per this, on average
	walleeKeyFetchBurst  = 3
	walleeUnknownKeysFor = time.Hour // a key id the API does not know stays unknown this long
)

// Wallee verifies wallee and PostFinance Checkout notifications: the
// signature against the platform's public key (read from the API once per
// key id and cached), and it reads the entity a notification names (a
// Transaction, a Refund) from the API, which is how an unsigned
// notification is verified.
type Wallee struct {
	// APIBase is the API's origin and path, such as
	// https://app-wallee.com/api or https://checkout.postfinance.ch/api.
	APIBase string
	// UserID and AuthenticationKey are an application user's credentials;
	// AuthenticationKey is the key as the platform shows it, decoded from
	// base64.
	UserID            string
	AuthenticationKey []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher

	once      sync.Once
	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	unknown   map[string]time.Time // key ids the API does not know, until when
	keyBudget *rate.Limiter
	now       func() time.Time
}

func (v *Wallee) init() {
	v.once.Do(func() {
		v.keys = make(map[string]*ecdsa.PublicKey)
		v.unknown = make(map[string]time.Time)
		v.keyBudget = rate.NewLimiter(rate.Every(walleeKeyFetchEvery), walleeKeyFetchBurst)
		if v.now == nil {
			v.now = time.Now
		}
	})
}

// VerifySignature checks the X-Signature header over body. A key id the
// cache does not hold is read from the API, within a ration of key
// requests; a key id the API does not know is ErrBadSignature, and stays
// unknown for an hour without asking again.
func (v *Wallee) VerifySignature(ctx context.Context, header string, body []byte) (WalleeSignature, error) {
	sig, err := ParseWalleeSignature(header)
	if err != nil {
		return sig, err
	}
	key, err := v.PublicKey(ctx, sig.KeyID)
	if err != nil {
		return sig, err
	}
	return sig, VerifyWalleeBody(key, body, sig.Signature)
}

// PublicKey returns the public key of keyID, from the cache or the API.
func (v *Wallee) PublicKey(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	if err := CheckWalleeKeyID(keyID); err != nil {
		return nil, err
	}
	v.init()
	now := v.now()
	v.mu.Lock()
	key, known := v.keys[keyID]
	until, unknown := v.unknown[keyID]
	if unknown && now.After(until) {
		delete(v.unknown, keyID)
		unknown = false
	}
	v.mu.Unlock()
	switch {
	case known:
		return key, nil
	case unknown:
		return nil, fmt.Errorf("%w: key id unknown to the API", ErrBadSignature)
	case !v.keyBudget.AllowN(now, 1):
		return nil, fmt.Errorf("%w: key requests rationed", ErrAPIThrottled)
	}
	key, err := v.readKey(ctx, keyID)
	if errors.Is(err, ErrUnknownResource) {
		v.rememberUnknown(keyID, now.Add(walleeUnknownKeysFor))
		return nil, fmt.Errorf("%w: key id unknown to the API", ErrBadSignature)
	}
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.keys) >= walleeMaxKeys {
		clear(v.keys) // the platform's keys are few: a full cache means churn, and each key is read again once
	}
	v.keys[keyID] = key
	v.mu.Unlock()
	return key, nil
}

// rememberUnknown records a key id the API does not know until then, in
// bounded room.
func (v *Wallee) rememberUnknown(keyID string, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.unknown) >= unknownCacheSize {
		clear(v.unknown)
	}
	v.unknown[keyID] = until
}

// readKey GETs /webhook-encryption/read?id=keyID.
func (v *Wallee) readKey(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	doc, err := v.get(ctx, "/webhook-encryption/read", "id="+keyID)
	if err != nil {
		return nil, err
	}
	encoded := gjson.GetBytes(doc, "publicKey")
	if encoded.Type == gjson.Null || (encoded.Type == gjson.String && encoded.Str == "") {
		// The SDKs: "Could not find public key with id …".
		return nil, fmt.Errorf("%w: no publicKey in the answer", ErrUnknownResource)
	}
	if encoded.Type != gjson.String {
		return nil, fmt.Errorf("%w: publicKey is not a string", ErrAPIResponse)
	}
	key, err := ParseWalleePublicKey(encoded.Str)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIResponse, err)
	}
	return key, nil
}

// walleeEntityPaths are the read services of the entities payhook
// normalizes, by listenerEntityTechnicalName.
var walleeEntityPaths = map[string]string{
	"Transaction": "/transaction/read",
	"Refund":      "/refund/read",
}

// WalleeEntityKnown tells whether payhook reads entities of kind.
func WalleeEntityKnown(kind string) bool {
	_, ok := walleeEntityPaths[kind]
	return ok
}

// maxWalleeIDLen bounds a space or entity id: a positive 64-bit integer.
const maxWalleeIDLen = 19

// CheckWalleeID accepts a space or entity id: 1 to 19 digits, not all zero.
func CheckWalleeID(id string) error {
	if id == "" || len(id) > maxWalleeIDLen || strings.Trim(id, "0") == "" {
		return fmt.Errorf("%w: id of %d bytes", ErrBadResource, len(id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return fmt.Errorf("%w: character %q in id", ErrBadResource, id[i])
		}
	}
	return nil
}

// Entity reads the entity of kind (a listenerEntityTechnicalName) with
// entityID in spaceID, and checks that the answer is that entity.
func (v *Wallee) Entity(ctx context.Context, kind, spaceID, entityID string) ([]byte, error) {
	path, ok := walleeEntityPaths[kind]
	if !ok {
		return nil, fmt.Errorf("%w: entity %q", ErrBadResource, truncate(kind, 32))
	}
	if err := CheckWalleeID(spaceID); err != nil {
		return nil, err
	}
	if err := CheckWalleeID(entityID); err != nil {
		return nil, err
	}
	doc, err := v.get(ctx, path, "spaceId="+spaceID+"&id="+entityID)
	if err != nil {
		return nil, err
	}
	if id := gjson.GetBytes(doc, "id"); id.Raw != entityID && id.Str != entityID {
		return nil, fmt.Errorf("%w: asked for %s %s, got %s", ErrAPIResponse, kind, entityID, truncate(id.Raw, 24))
	}
	if space := gjson.GetBytes(doc, "linkedSpaceId"); space.Exists() && space.Raw != spaceID && space.Str != spaceID {
		return nil, fmt.Errorf("%w: asked for space %s, got %s", ErrAPIResponse, spaceID, truncate(space.Raw, 24))
	}
	return doc, nil
}

// get sends GET <base><path>?<query> with the MAC headers; path and query
// are built from constants and checked ids only.
func (v *Wallee) get(ctx context.Context, path, query string) ([]byte, error) {
	base := strings.TrimRight(v.APIBase, "/")
	u, err := url.Parse(base + path + "?" + query)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResource, err)
	}
	v.init()
	header := WalleeMACHeaders(v.UserID, v.AuthenticationKey, v.now(), http.MethodGet, u.EscapedPath()+"?"+u.RawQuery)
	// The platform answers an id it does not know with 404 or a 4xx
	// ClientError document: unknown.
	doc, err := v.Fetcher.getDocument(ctx, u.String(), header)
	if err != nil {
		return nil, err
	}
	if !gjson.ParseBytes(doc).IsObject() {
		return nil, fmt.Errorf("%w: not a JSON object", ErrAPIResponse)
	}
	return doc, nil
}
