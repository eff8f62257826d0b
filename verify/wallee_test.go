package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The official test vector: wallee-payment/python-sdk 5.0.0
// test/test_webhook_encryption_service.py (the same content, signature
// and key are in 6.x's tests/test_encryption_util.py). Content, header and
// public key exactly as published.
const (
	walleeVectorContent = `{"entityId":11,"eventId":35,"listenerEntityId":1472041829003,"listenerEntityTechnicalName":"Transaction",` +
		`"spaceId":1,"state":"PROCESSING","timestamp":"2023-12-19T13:43:35+0000","webhookListenerId":2}`
	walleeVectorHeader = "algorithm=SHA256withECDSA, keyId=ab3b774e-770e-4644-9b51-885d71f973e5, " +
		"signature=MEYCIQCTzbMrMsOAC6T57T9kQTb1iGZVg2R7n6pY9A4ML4P31gIhAIOoav8cG8x0jpRWQztqSJIC8gXWKq+4DuENEySvmMYf"
	walleeVectorKeyID     = "ab3b774e-770e-4644-9b51-885d71f973e5"
	walleeVectorPublicKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdWq7ZBGsjUzhBO3e6mzUBLpjpV3TQw1bL1rk3ocjn5C5qne7TY0OBBhiWgaPtWlvUcqASz903vtfeSTQma+SBA=="
)

func TestWalleeOfficialVector(t *testing.T) {
	sig, err := ParseWalleeSignature(walleeVectorHeader)
	if err != nil {
		t.Fatal(err)
	}
	if sig.KeyID != walleeVectorKeyID || sig.Algorithm != WalleeSignatureAlgorithm {
		t.Fatalf("parsed %+v", sig)
	}
	key, err := ParseWalleePublicKey(walleeVectorPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyWalleeBody(key, []byte(walleeVectorContent), sig.Signature); err != nil {
		t.Fatalf("the official vector does not verify: %v", err)
	}
	// The SDK's own negative cases: modified content; and one byte changed.
	for _, content := range []string{"ModifiedContent", strings.Replace(walleeVectorContent, "PROCESSING", "FULFILL", 1), walleeVectorContent + " "} {
		if err := VerifyWalleeBody(key, []byte(content), sig.Signature); !errors.Is(err, ErrBadSignature) {
			t.Errorf("content %.30q: err = %v, want ErrBadSignature", content, err)
		}
	}
}

func TestParseWalleeSignature(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   error
	}{
		{walleeVectorHeader, nil},
		{strings.Replace(walleeVectorHeader, ", ", ",\t", 2), nil},
		{"", ErrNotSigned},
		{"algorithm=SHA256withECDSA, keyId=ab3b774e-770e-4644-9b51-885d71f973e5", ErrMalformedSignature}, // the SDK's invalid header
		{strings.Replace(walleeVectorHeader, "SHA256withECDSA", "SHA256withRSA", 1), ErrMalformedSignature},
		{strings.Replace(walleeVectorHeader, ", keyId", ",keyId", 1), ErrMalformedSignature},
		{strings.Replace(walleeVectorHeader, ", keyId", ",  keyId", 1), ErrMalformedSignature},
		{strings.Replace(walleeVectorHeader, "ab3b774e", "AB3B774E", 1), ErrMalformedSignature},
		{strings.Replace(walleeVectorHeader, "ab3b774e", "../../x", 1), ErrMalformedSignature},
		{strings.Replace(walleeVectorHeader, "keyId=ab3b774e-770e-4644-9b51-885d71f973e5", "keyId=", 1), ErrMalformedSignature},
		{strings.TrimSuffix(walleeVectorHeader, "+4DuENEySvmMYf"), ErrMalformedSignature}, // the SDK's bad base64
		{walleeVectorHeader + ", extra=1", ErrMalformedSignature},
		{strings.Repeat("a", 600), ErrMalformedSignature},
	} {
		_, err := ParseWalleeSignature(tt.header)
		if !errors.Is(err, tt.want) {
			t.Errorf("%q: err = %v, want %v", tt.header, err, tt.want)
		}
	}
}

func TestParseWalleePublicKey(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for _, bad := range []string{"InvalidModifiedPublicKey", walleeVectorPublicKey[:len(walleeVectorPublicKey)-20], base64.StdEncoding.EncodeToString(der), ""} {
		if _, err := ParseWalleePublicKey(bad); err == nil {
			t.Errorf("%.30q: accepted", bad)
		}
	}
}

// The API's MAC, against Python's hmac with the python SDK 5.0.0's
// get_signature: "1|512|1700000000|GET|/api/transaction/read?spaceId=405&id=11",
// keyed with base64-decoding "cGF5aG9vay10ZXN0LWF1dGhlbnRpY2F0aW9uLWtleS0zMmI=".
func TestWalleeMAC(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString("cGF5aG9vay10ZXN0LWF1dGhlbnRpY2F0aW9uLWtleS0zMmI=")
	got := WalleeMAC("512", key, 1700000000, "GET", "/api/transaction/read?spaceId=405&id=11")
	if want := "aKYmXRAWOCpYG1yWg76doitO0scaVT4IcuOgkR8ji5yp25N9aK1HVXZMTiggltiqpL94WnT3K8E9Wmim1rZESQ=="; got != want {
		t.Errorf("MAC = %s, want %s", got, want)
	}
}

// walleeAPI is a stand-in of the platform's API: it checks the MAC of
// every request and serves the key and the entities it holds.
type walleeAPI struct {
	*httptest.Server
	userID   string
	key      []byte
	keys     map[string]string // key id → base64 DER
	entities map[string]string // "/transaction/read?spaceId=1&id=11" → JSON
	requests atomic.Int64
	badMAC   atomic.Int64
}

func newWalleeAPI(t *testing.T) *walleeAPI {
	a := &walleeAPI{userID: "512", key: []byte("authentication-key"), keys: map[string]string{}, entities: map[string]string{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		var ts int64
		fmt.Sscan(r.Header.Get("X-Mac-Timestamp"), &ts)
		if r.Header.Get("X-Mac-Version") != "1" || r.Header.Get("X-Mac-Userid") != a.userID ||
			r.Header.Get("X-Mac-Value") != WalleeMAC(a.userID, a.key, ts, r.Method, r.URL.RequestURI()) {
			a.badMAC.Add(1)
			http.Error(w, `{"message":"authentication failed"}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/api/webhook-encryption/read" {
			if pub, ok := a.keys[r.URL.Query().Get("id")]; ok {
				fmt.Fprintf(w, `{"id":%q,"publicKey":%q}`, r.URL.Query().Get("id"), pub)
				return
			}
		} else if doc, ok := a.entities[strings.TrimPrefix(r.URL.RequestURI(), "/api")]; ok {
			fmt.Fprint(w, doc)
			return
		}
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *walleeAPI) verifier() *Wallee {
	return &Wallee{APIBase: a.URL + "/api", UserID: a.userID, AuthenticationKey: a.key, Fetcher: NewFetcher(FetchLimits{})}
}

func TestWalleeVerifySignatureFetchesAndCachesTheKey(t *testing.T) {
	api := newWalleeAPI(t)
	api.keys[walleeVectorKeyID] = walleeVectorPublicKey
	v := api.verifier()
	for i := 0; i < 3; i++ {
		if _, err := v.VerifySignature(context.Background(), walleeVectorHeader, []byte(walleeVectorContent)); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
	}
	if n := api.requests.Load(); n != 1 {
		t.Errorf("%d requests to the API for one key, want 1", n)
	}
	if _, err := v.VerifySignature(context.Background(), walleeVectorHeader, []byte("ModifiedContent")); !errors.Is(err, ErrBadSignature) {
		t.Errorf("modified content: err = %v", err)
	}
	if api.badMAC.Load() != 0 {
		t.Error("the stand-in refused payhook's MAC")
	}
}

// A forger who sends fresh key ids gets a bounded number of key requests,
// then ErrAPIThrottled; a key id the API does not know is ErrBadSignature
// and is not asked for again.
func TestWalleeForgedKeyIDsAreRationed(t *testing.T) {
	api := newWalleeAPI(t)
	v := api.verifier()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	throttled := 0
	for i := 0; i < 50; i++ {
		header := strings.Replace(walleeVectorHeader, walleeVectorKeyID, fmt.Sprintf("forged-%d", i), 1)
		_, err := v.VerifySignature(context.Background(), header, []byte(walleeVectorContent))
		switch {
		case errors.Is(err, ErrAPIThrottled):
			throttled++
		case !errors.Is(err, ErrBadSignature):
			t.Fatalf("#%d: err = %v", i, err)
		}
	}
	if n := api.requests.Load(); n != walleeKeyFetchBurst {
		t.Errorf("%d key requests for 50 forged key ids, want %d", n, walleeKeyFetchBurst)
	}
	if throttled != 50-walleeKeyFetchBurst {
		t.Errorf("%d throttled", throttled)
	}
	// The first forged id is known to be unknown: no request, 401.
	now = now.Add(time.Minute)
	before := api.requests.Load()
	header := strings.Replace(walleeVectorHeader, walleeVectorKeyID, "forged-0", 1)
	if _, err := v.VerifySignature(context.Background(), header, []byte(walleeVectorContent)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("known-unknown key: err = %v", err)
	}
	if api.requests.Load() != before {
		t.Error("a key id the API called unknown was asked for again")
	}
	// The ration refills: a genuine new key is read.
	api.keys[walleeVectorKeyID] = walleeVectorPublicKey
	if _, err := v.VerifySignature(context.Background(), walleeVectorHeader, []byte(walleeVectorContent)); err != nil {
		t.Errorf("genuine key after the flood: %v", err)
	}
}

func TestWalleeKeyCacheIsBounded(t *testing.T) {
	api := newWalleeAPI(t)
	v := api.verifier()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	for i := 0; i < 3*walleeMaxKeys; i++ {
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		id := fmt.Sprintf("key-%d", i)
		api.keys[id] = base64.StdEncoding.EncodeToString(der)
		body := []byte(`{"entityId":1}`)
		header, _ := SignWallee(priv, id, body)
		now = now.Add(walleeKeyFetchEvery)
		if _, err := v.VerifySignature(context.Background(), header, body); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if len(v.keys) > walleeMaxKeys {
			t.Fatalf("%d keys cached", len(v.keys))
		}
	}
}

func TestWalleeEntity(t *testing.T) {
	api := newWalleeAPI(t)
	api.entities["/transaction/read?spaceId=405&id=11"] = `{"id":11,"linkedSpaceId":405,"state":"FULFILL"}`
	api.entities["/transaction/read?spaceId=405&id=12"] = `{"id":13,"linkedSpaceId":405,"state":"FULFILL"}`
	api.entities["/refund/read?spaceId=405&id=14"] = `{"id":14,"linkedSpaceId":406}`
	v := api.verifier()
	for _, tt := range []struct {
		kind, space, id string
		want            error
	}{
		{"Transaction", "405", "11", nil},
		{"Transaction", "405", "12", ErrAPIResponse},
		{"Refund", "405", "14", ErrAPIResponse},
		{"Transaction", "405", "99", ErrUnknownResource},
		{"Transaction", "405", "11&id=12", ErrBadResource},
		{"Transaction", "405", "-1", ErrBadResource},
		{"Transaction", "405", "0", ErrBadResource},
		{"Transaction", "405", "12345678901234567890", ErrBadResource},
		{"Transaction", "4/../5", "11", ErrBadResource},
		{"Token", "405", "11", ErrBadResource},
	} {
		_, err := v.Entity(context.Background(), tt.kind, tt.space, tt.id)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s %s/%s: err = %v, want %v", tt.kind, tt.space, tt.id, err, tt.want)
		}
	}
	if api.badMAC.Load() != 0 {
		t.Error("the stand-in refused payhook's MAC")
	}
}

func FuzzParseWalleeSignature(f *testing.F) {
	f.Add(walleeVectorHeader)
	f.Add("algorithm=SHA256withECDSA, keyId=a, signature=")
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := ParseWalleeSignature(header)
		if err != nil {
			return
		}
		if CheckWalleeKeyID(sig.KeyID) != nil || sig.Algorithm != WalleeSignatureAlgorithm || len(sig.Signature) == 0 {
			t.Fatalf("accepted %q as %+v", header, sig)
		}
	})
}
