package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// PayPal's webhooks are signed with PayPal's RSA key over
// "<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body>";
// the five PAYPAL-* headers carry what a verifier needs. payhook asks
// PayPal's own API to check them (POST /v1/notifications/verify-webhook-
// signature, with an OAuth2 token from /v1/oauth2/token), handing it the
// webhook's body byte for byte.

// PayPalTransmission is what a webhook's PAYPAL-* headers say, checked for
// form (the limits of PayPal's verify-webhook-signature API) before
// anything is asked.
type PayPalTransmission struct {
	ID, Time, Sig, CertURL, AuthAlgo string
}

// ReadPayPalTransmission reads and checks the five headers: none at all is
// ErrNotSigned; a missing one, or one out of form (a certificate URL that
// is not https on a PayPal host, an algorithm other than SHA256withRSA), is
// ErrMalformedSignature; a transmission time that does not parse is
// ErrMalformedDate.
func ReadPayPalTransmission(h http.Header) (PayPalTransmission, error) {
	t := PayPalTransmission{
		ID: h.Get("Paypal-Transmission-Id"), Time: h.Get("Paypal-Transmission-Time"), Sig: h.Get("Paypal-Transmission-Sig"),
		CertURL: h.Get("Paypal-Cert-Url"), AuthAlgo: h.Get("Paypal-Auth-Algo"),
	}
	if t == (PayPalTransmission{}) {
		return t, ErrNotSigned
	}
	switch {
	case t.ID == "" || len(t.ID) > 50 || !printableASCII(t.ID):
		return t, fmt.Errorf("%w: PAYPAL-TRANSMISSION-ID", ErrMalformedSignature)
	case t.Sig == "" || len(t.Sig) > 500 || !isBase64(t.Sig):
		return t, fmt.Errorf("%w: PAYPAL-TRANSMISSION-SIG", ErrMalformedSignature)
	case t.AuthAlgo != "SHA256withRSA":
		return t, fmt.Errorf("%w: PAYPAL-AUTH-ALGO is not SHA256withRSA", ErrMalformedSignature)
	case !PayPalCertURL(t.CertURL):
		return t, fmt.Errorf("%w: PAYPAL-CERT-URL is not a PayPal certificate", ErrMalformedSignature)
	}
	if len(t.Time) > 100 {
		return t, ErrMalformedDate
	}
	if _, err := time.Parse(time.RFC3339Nano, t.Time); err != nil {
		return t, ErrMalformedDate
	}
	return t, nil
}

// PayPalCertURL accepts only https://<host>.paypal.com/v1/notifications/
// certs/…: no other host, port, user, query or fragment.
func PayPalCertURL(raw string) bool {
	if len(raw) > 500 {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return strings.HasSuffix(host, ".paypal.com") && strings.HasPrefix(u.EscapedPath(), "/v1/notifications/certs/") && !strings.Contains(u.Path, "..")
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// PayPal verifies PayPal webhooks with PayPal's API.
type PayPal struct {
	// APIBase is the API's origin: https://api-m.paypal.com, or
	// https://api-m.sandbox.paypal.com.
	APIBase string
	// ClientID and ClientSecret are the REST app's credentials.
	ClientID, ClientSecret []byte
	// WebhookID is the webhook's id in the app (letters and digits).
	WebhookID string
	// MaxSkew, when positive, bounds how far the transmission time may lie
	// from now, either way.
	MaxSkew time.Duration
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher

	mu         sync.Mutex
	token      string
	tokenUntil time.Time
	pending    *tokenRequest // the token request under way, shared
}

type tokenRequest struct {
	done  chan struct{}
	token string
	err   error
}

// CheckTime checks the transmission time against MaxSkew.
func (v *PayPal) CheckTime(t PayPalTransmission, now time.Time) error {
	if v.MaxSkew <= 0 {
		return nil
	}
	at, err := time.Parse(time.RFC3339Nano, t.Time)
	if err != nil {
		return ErrMalformedDate
	}
	if d := now.Sub(at); d > v.MaxSkew || d < -v.MaxSkew {
		return ErrDateOutsideWindow
	}
	return nil
}

// Verify asks PayPal whether the transmission signs body, which must be
// the webhook's raw body, already checked to be a JSON object: it is sent
// as webhook_event byte for byte, because PayPal's signature covers the
// CRC32 of exactly those bytes. SUCCESS verifies; FAILURE is
// ErrBadSignature.
func (v *PayPal) Verify(ctx context.Context, t PayPalTransmission, body []byte) (Result, error) {
	request := make([]byte, 0, len(body)+len(t.Sig)+len(t.CertURL)+256)
	request = append(request, `{"auth_algo":`...)
	request = appendJSONString(request, t.AuthAlgo)
	request = append(request, `,"cert_url":`...)
	request = appendJSONString(request, t.CertURL)
	request = append(request, `,"transmission_id":`...)
	request = appendJSONString(request, t.ID)
	request = append(request, `,"transmission_sig":`...)
	request = appendJSONString(request, t.Sig)
	request = append(request, `,"transmission_time":`...)
	request = appendJSONString(request, t.Time)
	request = append(request, `,"webhook_id":`...)
	request = appendJSONString(request, v.WebhookID)
	request = append(request, `,"webhook_event":`...)
	request = append(request, body...)
	request = append(request, '}')

	for attempt := 0; ; attempt++ {
		token, err := v.accessToken(ctx)
		if err != nil {
			return Result{}, err
		}
		resp, err := v.Fetcher.Do(ctx, http.MethodPost, strings.TrimRight(v.APIBase, "/")+"/v1/notifications/verify-webhook-signature",
			http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, request)
		if errors.Is(err, ErrAPIRefused) && attempt == 0 {
			v.forgetToken(token) // expired or revoked early: one fresh token
			continue
		}
		if err != nil {
			return Result{}, err
		}
		status := gjson.GetBytes(resp.Body, "verification_status").String()
		switch {
		case resp.Status == http.StatusOK && status == "SUCCESS":
			return Result{Method: "paypal-verify-api", Date: t.Time}, nil
		case resp.Status == http.StatusOK && status == "FAILURE":
			return Result{}, ErrBadSignature
		case resp.Status >= 400 && resp.Status < 500:
			// PayPal refuses a request whose fields are out of form: the
			// transmission it was handed cannot be PayPal's.
			return Result{}, fmt.Errorf("%w (the verification API answered HTTP %d)", ErrBadSignature, resp.Status)
		}
		return Result{}, fmt.Errorf("%w: HTTP %d, verification_status %q", ErrAPIResponse, resp.Status, truncate(status, 24))
	}
}

// accessToken returns a cached OAuth2 token, or requests one: concurrent
// callers share one request, so a burst of webhooks costs one token.
func (v *PayPal) accessToken(ctx context.Context) (string, error) {
	v.mu.Lock()
	if v.token != "" && time.Now().Before(v.tokenUntil) {
		token := v.token
		v.mu.Unlock()
		return token, nil
	}
	call := v.pending
	if call == nil {
		call = &tokenRequest{done: make(chan struct{})}
		v.pending = call
		go v.requestToken(call)
	}
	v.mu.Unlock()
	select {
	case <-call.done:
		return call.token, call.err
	case <-ctx.Done():
		return "", fmt.Errorf("%w: waiting for an access token: %v", ErrAPIUnavailable, ctx.Err())
	}
}

// requestToken asks for a token, independently of any one callback's
// context (others may be waiting for it), within the Fetcher's timeout.
func (v *PayPal) requestToken(call *tokenRequest) {
	token, lifetime, err := v.fetchToken(context.Background())
	v.mu.Lock()
	if err == nil {
		v.token, v.tokenUntil = token, time.Now().Add(lifetime)
	}
	v.pending = nil
	v.mu.Unlock()
	call.token, call.err = token, err
	close(call.done)
}

func (v *PayPal) fetchToken(ctx context.Context) (string, time.Duration, error) {
	credentials := base64.StdEncoding.EncodeToString([]byte(string(v.ClientID) + ":" + string(v.ClientSecret)))
	resp, err := v.Fetcher.Do(ctx, http.MethodPost, strings.TrimRight(v.APIBase, "/")+"/v1/oauth2/token",
		http.Header{"Authorization": {"Basic " + credentials}, "Content-Type": {"application/x-www-form-urlencoded"}},
		[]byte("grant_type=client_credentials"))
	if err != nil {
		return "", 0, err
	}
	if resp.Status == http.StatusBadRequest {
		// invalid_client is a 401 at PayPal, but an unknown app may be a 400.
		return "", 0, fmt.Errorf("%w (the token endpoint answered HTTP 400)", ErrAPIRefused)
	}
	var answer struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil || answer.AccessToken == "" || resp.Status != http.StatusOK {
		return "", 0, fmt.Errorf("%w: no access token (HTTP %d)", ErrAPIResponse, resp.Status)
	}
	// Used until a minute before it expires (PayPal's last about nine hours).
	lifetime := time.Duration(answer.ExpiresIn)*time.Second - time.Minute
	if lifetime < 0 {
		lifetime = 0
	}
	return answer.AccessToken, lifetime, nil
}

// forgetToken drops token if it is still the cached one.
func (v *PayPal) forgetToken(token string) {
	v.mu.Lock()
	if v.token == token {
		v.token = ""
	}
	v.mu.Unlock()
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	quoted, _ := json.Marshal(s)
	return append(b, quoted...)
}

// SignBase64HMACSHA256 returns the standard base64 of the HMAC-SHA256 of
// content under key.
func SignBase64HMACSHA256(key, content []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(content)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
