// Package verify establishes the authenticity of payment-provider callbacks.
//
// Each scheme lives in its own file (ixopay.go, date.go, …) and reports a
// failure as one of the sentinel errors below, so a caller can map every way
// to fail to an HTTP status and a log reason without matching strings. The
// package has no Caddy import: it is usable from any Go HTTP server.
package verify

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
)

// Sentinel errors, one per way a callback fails verification. Errors returned
// by verifiers wrap one of these (test with errors.Is); their messages never
// contain a secret or payload content.
var (
	// ErrNotSigned means the callback carries no signature at all.
	ErrNotSigned = errors.New("signature missing")
	// ErrBadSignature means a signature is present but matches no configured secret.
	ErrBadSignature = errors.New("signature mismatch")
	// ErrMalformedSignature means the signature header cannot be decoded.
	ErrMalformedSignature = errors.New("signature malformed")
	// ErrNoDate means the callback carries no Date (or X-Date) header.
	ErrNoDate = errors.New("date missing")
	// ErrMalformedDate means the Date header is not an RFC 7231 date.
	ErrMalformedDate = errors.New("date malformed")
	// ErrDateOutsideWindow means the Date is further in the past or the future than allowed.
	ErrDateOutsideWindow = errors.New("date outside window")
)

// Callback is what a verifier sees of an incoming callback. Body is the raw
// body exactly as received; verifiers must not modify it.
type Callback struct {
	Method string
	// RequestURI is the path plus query string exactly as sent on the request line.
	RequestURI string
	// Scheme and Host are how the callback reached the server ("https",
	// "shop.example.com"), for schemes that sign the URL.
	Scheme string
	Host   string
	// Placeholders resolves the server's placeholders ("http.request.
	// header.X-Date") for schemes whose signed content names one; nil when
	// the server has none. Caddy's *caddy.Replacer is one.
	Placeholders Placeholders
	Header       http.Header
	Body         []byte
	// ClientIP is the client's address as the server determined it (after any
	// trusted proxies); the zero value when unknown.
	ClientIP netip.Addr
	// Claim is what the callback says it is about, for verifiers that fetch
	// it back from the provider's API; read from the body before verifying.
	Claim Claim
}

// Placeholders resolves a server's placeholders by name.
type Placeholders interface {
	Get(name string) (any, bool)
}

// Claim is what an unsigned callback says it is about: the resource that a
// fetch-back verifier asks the provider's API for. Nothing in it is trusted.
type Claim struct {
	// Kind is the provider's kind of resource ("Transaction", "Subscription", …).
	Kind string
	// ID identifies the resource: an id, or a path under the API's base.
	ID string
	// Status is the status the callback claims, kept for the record.
	Status string
}

// Result describes how authenticity was established. It goes into the
// envelope's data.verification and must never hold a secret.
type Result struct {
	// Method names the scheme: "hmac-sha512", "api-fetch", "url-token", ….
	Method string `json:"method"`
	// Date is the signed Date header exactly as received, for schemes that check one.
	Date string `json:"date,omitempty"`
	// Variant names a scheme's older variant when that is what matched.
	Variant string `json:"variant,omitempty"`
	// Also names the checks passed in addition to Method: "hmac-sha256" (an
	// extra signature), "url-token", "ip-allowlist".
	Also []string `json:"also,omitempty"`
	// Resource is what was fetched back, relative to the provider's API
	// (never a host or a credential).
	Resource string `json:"resource,omitempty"`
	// Status is the status the provider's API returned.
	Status string `json:"status,omitempty"`
	// ClaimedStatus is the status the callback claimed, when it differs from
	// the one the API returned (the API wins).
	ClaimedStatus string `json:"claimed_status,omitempty"`
	// Fetched is the document fetched from the provider's API, the truth
	// the envelope is built from.
	Fetched []byte `json:"-"`
	// NotificationID is the notification's own id when the verification
	// authenticated it with the rest (a Standard Webhooks webhook-id).
	NotificationID string `json:"-"`
}

// Verifier establishes the authenticity of one provider's callbacks.
type Verifier interface {
	// Verify returns how the callback was verified, or an error wrapping one
	// of the package's sentinel errors.
	Verify(ctx context.Context, cb *Callback) (Result, error)
}
