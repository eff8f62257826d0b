package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/url"
	"strings"
)

// Sentinel errors of the URL token check.
var (
	// ErrTokenMissing means the callback URL carries no token parameter.
	ErrTokenMissing = errors.New("token missing")
	// ErrBadToken means the token matches no configured one.
	ErrBadToken = errors.New("token wrong")
)

// URLTokenParam is the query parameter that carries the token: the merchant
// registers callback URLs such as https://shop.example.com/callbacks/pyxis?token=….
const URLTokenParam = "token"

// URLToken verifies callbacks by a secret the merchant put into the
// callback URL, for providers that sign nothing (Pyxis). Any provider's
// configuration can add it to its own verification (see WithChecks).
type URLToken struct {
	// Tokens are the accepted tokens; several during a rotation.
	Tokens [][]byte
}

// Name is the check's name in data.verification.
func (v *URLToken) Name() string { return "url-token" }

// Verify checks the token; it is the whole verification.
func (v *URLToken) Verify(_ context.Context, cb *Callback) (Result, error) {
	if err := v.Check(cb); err != nil {
		return Result{}, err
	}
	return Result{Method: v.Name()}, nil
}

// Check compares the URL's token parameter with every configured token in
// constant time (over their SHA-256, so that not even the length leaks). A
// repeated token parameter is refused: which one counts would be ambiguous.
func (v *URLToken) Check(cb *Callback) error {
	var found []string
	_, rawQuery, _ := strings.Cut(cb.RequestURI, "?")
	for part := range strings.SplitSeq(rawQuery, "&") {
		key, value, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err != nil || k != URLTokenParam {
			continue
		}
		decoded, err := url.QueryUnescape(value)
		if err != nil {
			return ErrBadToken
		}
		found = append(found, decoded)
	}
	switch {
	case len(found) == 0 || found[0] == "":
		return ErrTokenMissing
	case len(found) > 1:
		return ErrBadToken
	}
	got := sha256.Sum256([]byte(found[0]))
	ok := false
	for _, token := range v.Tokens {
		want := sha256.Sum256(token)
		ok = hmac.Equal(got[:], want[:]) || ok // no early exit
	}
	if !ok {
		return ErrBadToken
	}
	return nil
}

// StripURLToken returns rawQuery without the token parameter; the other
// parameters stay exactly as sent, in order.
func StripURLToken(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	kept := make([]string, 0, 4)
	for part := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == URLTokenParam {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}
