package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
)

// BasicAuth checks the HTTP basic authentication a provider adds to its
// callbacks (Adyen's optional username and password), in constant time.
type BasicAuth struct {
	Username, Password []byte
}

// Name is the check's name in data.verification.
func (*BasicAuth) Name() string { return "basic-auth" }

// Check wants the configured username and password: none is ErrNotSigned,
// others ErrBadSignature.
func (b *BasicAuth) Check(cb *Callback) error {
	r := http.Request{Header: cb.Header}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return ErrNotSigned
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	wu, wp := sha256.Sum256(b.Username), sha256.Sum256(b.Password)
	okUser := hmac.Equal(u[:], wu[:])
	okPass := hmac.Equal(p[:], wp[:])
	if !okUser || !okPass {
		return ErrBadSignature
	}
	return nil
}
