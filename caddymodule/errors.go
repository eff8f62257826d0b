package caddymodule

import (
	"errors"
	"net/http"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// rejection is how payhook answers a callback that fails a step, following
// the contract's "What the provider sees" table.
type rejection struct {
	err    error  // the sentinel
	status int    // the answer to the provider
	code   string // a stable reason for logs and metrics
	hint   string // what an operator should do, for the log
}

// rejections lists every sentinel a step can fail with. The first match wins.
var rejections = []rejection{
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed", ""},
	{errContentType, http.StatusUnsupportedMediaType, "content_type_not_accepted", ""},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large", ""},
	{errBodyUnreadable, http.StatusBadRequest, "body_unreadable", ""},
	{verify.ErrAddressNotAllowed, http.StatusForbidden, "address_not_allowed", ""},
	{verify.ErrTokenMissing, http.StatusUnauthorized, "token_missing", ""},
	{verify.ErrBadToken, http.StatusUnauthorized, "token_wrong", ""},
	{verify.ErrBadResource, http.StatusBadRequest, "resource_invalid", ""},
	{verify.ErrNotSigned, http.StatusUnauthorized, "signature_missing", ""},
	{verify.ErrMalformedSignature, http.StatusUnauthorized, "signature_malformed", ""},
	{verify.ErrBadSignature, http.StatusUnauthorized, "signature_mismatch", ""},
	{errTransmissionReused, http.StatusUnauthorized, "transmission_reused", ""},
	{verify.ErrNoDate, http.StatusUnauthorized, "date_missing", ""},
	{verify.ErrMalformedDate, http.StatusUnauthorized, "date_malformed", ""},
	{verify.ErrDateOutsideWindow, http.StatusUnauthorized, "date_outside_window", ""},
	{verify.ErrUnknownResource, http.StatusUnauthorized, "resource_unknown", ""},
	{verify.ErrForeignKey, http.StatusUnauthorized, "key_foreign", "check public_key: it must be the key Unzer's webhooks name"},
	{verify.ErrAPIUnavailable, http.StatusServiceUnavailable, "api_unavailable", ""},
	{errStripeThinWithoutKey, http.StatusServiceUnavailable, "thin_event_without_api_key",
		"give the stripe route an api_key (a restricted key, rk_…, that can read the objects the events name)"},
	{verify.ErrRecentlyUnknown, http.StatusServiceUnavailable, "resource_unknown_recently", ""},
	{verify.ErrAPIThrottled, http.StatusServiceUnavailable, "api_throttled", "raise api_rate if genuine callbacks arrive faster"},
	{verify.ErrAPIRefused, http.StatusServiceUnavailable, "api_refused",
		"payhook's credentials for the provider's API are wrong: check them (api_key and instance, token, client_id and client_secret)"},
	{verify.ErrAPIResponse, http.StatusServiceUnavailable, "api_response_unexpected", "check api_base"},
	{normalize.ErrMalformed, http.StatusBadRequest, "payload_malformed", ""},
	{normalize.ErrMissingField, http.StatusBadRequest, "field_missing", ""},
	{normalize.ErrInexactAmount, http.StatusBadRequest, "amount_inexact", ""},
	{normalize.ErrUnknownCurrency, http.StatusBadRequest, "currency_unknown", ""},
	{normalize.ErrOutcomeMismatch, http.StatusBadRequest, "outcome_mismatch", ""},
	{errClaimUnavailable, http.StatusServiceUnavailable, "dedupe_unavailable", ""},
	{errInboxFull, http.StatusServiceUnavailable, "inbox_full", "the shop has not taken events for a while: see payhook_inbox_pending; raise max_events only if the storage has room"},
	{errInboxUnavailable, http.StatusServiceUnavailable, "inbox_unavailable", "the storage did not take the event: check Caddy's storage"},
}

// internalError is the answer to an error that no rejection names: a 500,
// so the provider retries.
var internalError = rejection{status: http.StatusInternalServerError, code: "internal_error"}

// answers holds each rejection's answer, prepared once, by code.
var answers = func() map[string]plainAnswer {
	m := make(map[string]plainAnswer, len(rejections)+1)
	for _, r := range append(rejections, internalError) {
		m[r.code] = newPlainAnswer(r.message())
	}
	return m
}()

// answer is what the provider is sent: message() and a newline.
func (r rejection) answer() plainAnswer {
	if a, ok := answers[r.code]; ok {
		return a
	}
	return newPlainAnswer(r.message())
}

func classify(err error) rejection {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r
		}
	}
	return internalError
}

// message is the text the provider sees: the sentinel's words only, so that
// a caller learns which check failed but nothing of the configuration.
func (r rejection) message() string {
	if r.err == nil {
		return "internal error"
	}
	return r.err.Error()
}
