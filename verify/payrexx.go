package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// PayrexxAPIVersion is the Payrexx REST API version payhook fetches with.
const PayrexxAPIVersion = "v1.14"

// Payrexx verifies Payrexx webhooks (and those of its white labels: Shop &
// Pay, VRpay, …), which are not signed, by fetching the transaction or
// subscription they name back from the Payrexx API, as Payrexx's own shop
// plugins do. The fetched document, not the webhook, is the truth.
type Payrexx struct {
	// APIBase is the API's origin, e.g. https://api.payrexx.com.
	APIBase string
	// Instance is the merchant's Payrexx instance name.
	Instance string
	// APIKey is the instance's API secret, sent as X-API-KEY.
	APIKey []byte
	// SignatureSecrets, when set, also require an X-Webhook-Signature
	// header: lowercase hex HMAC-SHA256 of the raw body under one of them.
	SignatureSecrets [][]byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

// payrexxKinds are the resources a webhook can name.
var payrexxKinds = map[string]bool{"Transaction": true, "Subscription": true}

// Verify checks the optional signature, then fetches cb.Claim back.
func (v *Payrexx) Verify(ctx context.Context, cb *Callback) (Result, error) {
	if err := v.CheckSignature(cb); err != nil {
		return Result{}, err
	}
	res, err := v.Fetch(ctx, cb)
	if err == nil && len(v.SignatureSecrets) > 0 {
		res.Also = append(res.Also, "hmac-sha256")
	}
	return res, err
}

// CheckSignature checks the X-Webhook-Signature when SignatureSecrets are
// set: cheap, and done before the body is parsed for its claim.
func (v *Payrexx) CheckSignature(cb *Callback) error {
	if len(v.SignatureSecrets) == 0 {
		return nil
	}
	return checkHexHMACSHA256(cb.Header.Get("X-Webhook-Signature"), cb.Body, v.SignatureSecrets)
}

// Fetch fetches cb.Claim back from the API; the document it returns is the
// truth about the callback.
func (v *Payrexx) Fetch(ctx context.Context, cb *Callback) (Result, error) {
	res := Result{Method: "api-fetch"}
	claim := cb.Claim
	if !payrexxKinds[claim.Kind] || claim.ID == "" || !isDigits(claim.ID) {
		return Result{}, fmt.Errorf("%w: %s %q is not a Payrexx resource", ErrUnknownResource, claim.Kind, truncate(claim.ID, 24))
	}
	res.Resource = claim.Kind + "/" + claim.ID
	endpoint := strings.TrimRight(v.APIBase, "/") + "/" + PayrexxAPIVersion + "/" + res.Resource + "/?instance=" + url.QueryEscape(v.Instance)
	resp, err := v.Fetcher.Get(ctx, endpoint, http.Header{"X-Api-Key": {string(v.APIKey)}})
	if err != nil {
		return Result{}, err
	}
	// {"status": "success", "data": [ {…} ]} or {"status": "error", "message": "…"}
	doc, err := apiDocument(resp)
	if err != nil {
		return Result{}, err
	}
	answer := gjson.ParseBytes(doc)
	if !answer.IsObject() {
		return Result{}, fmt.Errorf("%w: not a JSON object (HTTP %d)", ErrAPIResponse, resp.Status)
	}
	switch answer.Get("status").String() {
	case "success":
		doc := answer.Get("data.0")
		if !doc.IsObject() {
			return Result{}, fmt.Errorf("%w: %s not found", ErrUnknownResource, res.Resource)
		}
		if got := doc.Get("id"); got.Exists() && got.String() != claim.ID {
			return Result{}, fmt.Errorf("%w: asked for %s, got id %s", ErrAPIResponse, res.Resource, truncate(got.String(), 24))
		}
		res.Fetched = []byte(doc.Raw)
		res.Status = doc.Get("status").String()
		if claim.Status != "" && claim.Status != res.Status {
			res.ClaimedStatus = claim.Status
		}
		return res, nil
	case "error":
		return Result{}, payrexxError(resp.Status, answer.Get("message").String())
	}
	return Result{}, fmt.Errorf("%w: status %q (HTTP %d)", ErrAPIResponse, truncate(answer.Get("status").String(), 24), resp.Status)
}

// payrexxError classifies an error answer by its message: Payrexx answers
// some errors with HTTP 200.
func payrexxError(status int, message string) error {
	m := strings.ToLower(message)
	switch {
	// Credentials first: "Instance not found" is a misconfiguration, not a forgery.
	case strings.Contains(m, "api key") || strings.Contains(m, "apikey") || strings.Contains(m, "api_key") ||
		strings.Contains(m, "signature") || strings.Contains(m, "instance") || strings.Contains(m, "permission") ||
		strings.Contains(m, "access") || strings.Contains(m, "auth"):
		return fmt.Errorf("%w: %q (HTTP %d)", ErrAPIRefused, truncate(message, 120), status)
	case strings.Contains(m, "not found") || strings.Contains(m, "no transaction") || strings.Contains(m, "no subscription") || strings.Contains(m, "does not exist"):
		return fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, status)
	case status >= 400:
		// Payrexx rejected the id the webhook gave: nothing real is behind it.
		return fmt.Errorf("%w: %q (HTTP %d)", ErrUnknownResource, truncate(message, 120), status)
	}
	return fmt.Errorf("%w: error %q (HTTP %d)", ErrAPIResponse, truncate(message, 120), status)
}

// checkHexHMACSHA256 checks a hex HMAC-SHA256 of body against secrets.
func checkHexHMACSHA256(header string, body []byte, secrets [][]byte) error {
	if header == "" {
		return ErrNotSigned
	}
	sig, err := hex.DecodeString(strings.TrimPrefix(header, "sha256="))
	if err != nil || len(sig) != sha256.Size {
		return ErrMalformedSignature
	}
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if hmac.Equal(sig, mac.Sum(nil)) {
			return nil
		}
	}
	return ErrBadSignature
}

// SignHexHMACSHA256 returns the lowercase hex HMAC-SHA256 of body: the
// X-Webhook-Signature some Payrexx accounts send.
func SignHexHMACSHA256(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
