// Package caddymodule is payhook's Caddy glue: the http.handlers.payhook
// module, its Caddyfile directive, metrics, and the `caddy payhook`
// commands. Authenticity lives in package verify and the envelope in
// package normalize; this package wires them into Caddy's request pipeline.
package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults for the configuration fields.
const (
	DefaultMaxSkew = 5 * time.Minute
	DefaultMaxBody = 1 << 20 // 1 MiB
)

// Handler receives payment-provider callbacks: it verifies each one, turns
// it into the canonical envelope, hands the envelope to the next handler
// (normally reverse_proxy to the shop) and answers the provider the way the
// provider expects, with its success acknowledgement only when the next
// handler answered 2xx.
//
// Secrets should be given as {env.*} or {file.*} placeholders: they are
// expanded once at provisioning, so the configuration (and the admin API's
// view of it) holds only the placeholder.
type Handler struct {
	// Provider names the payment provider whose callbacks this handler
	// receives: "ixopay". It is also the provider name in the envelope.
	Provider string `json:"provider"`

	// Secrets are the shared secrets that may have signed a callback. The
	// first is the current one; others are accepted too, for a rotation.
	// Required for providers that sign (ixopay).
	Secrets []string `json:"secrets,omitempty"`

	// MaxSkew is how far the signed Date header may lie in the past or the
	// future. Default: 5m.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// MaxBody is the largest body accepted, in bytes; a larger one is
	// answered 413 without being read further. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// LegacyMD5 also accepts IXOPAY's legacy signature variant that hashes
	// the body with MD5 instead of SHA-512. Off by default.
	LegacyMD5 bool `json:"legacy_md5,omitempty"`

	provider *provider
	verifier verify.Verifier
	logger   *zap.Logger
	metrics  *metrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.payhook",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision looks up the provider, expands the secrets' placeholders and
// builds the verifier.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	p, ok := providers[h.Provider]
	if !ok {
		return fmt.Errorf("unknown provider %q (known: %s)", h.Provider, strings.Join(providerNames(), ", "))
	}
	h.provider = p
	if h.MaxSkew == 0 {
		h.MaxSkew = caddy.Duration(DefaultMaxSkew)
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if err := h.validateFields(); err != nil {
		return err
	}
	secrets, err := h.expandSecrets()
	if err != nil {
		return err
	}
	h.verifier, err = p.newVerifier(h, secrets)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Provider, err)
	}
	h.metrics, err = registerMetrics(ctx.GetMetricsRegistry())
	return err
}

// validateFields checks what can be checked before the secrets are expanded.
func (h *Handler) validateFields() error {
	if h.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(h.MaxSkew))
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body must be positive, got %d", h.MaxBody)
	}
	for _, option := range h.setOptions() {
		if !slices.Contains(h.provider.options, option) {
			return fmt.Errorf("%s does not apply to provider %s", option, h.Provider)
		}
	}
	return nil
}

// setOptions lists the provider-specific options this configuration sets,
// by their Caddyfile names.
func (h *Handler) setOptions() []string {
	var set []string
	if len(h.Secrets) > 0 {
		set = append(set, "secret")
	}
	if h.LegacyMD5 {
		set = append(set, "legacy_md5")
	}
	return set
}

// expandSecrets replaces the {env.*} and {file.*} placeholders in the
// secrets. A placeholder that is unknown or expands to nothing is an error
// naming the placeholder, never the value: an unset variable must not turn
// into an empty secret that anyone can sign with.
func (h *Handler) expandSecrets() ([][]byte, error) {
	repl := caddy.NewReplacer()
	secrets := make([][]byte, 0, len(h.Secrets))
	for i, s := range h.Secrets {
		value, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			return nil, fmt.Errorf("secret #%d: %w (is the environment variable set, or the file readable?)", i+1, err)
		}
		if value == "" {
			return nil, fmt.Errorf("secret #%d is empty", i+1)
		}
		if value == s && !strings.Contains(s, "{") {
			h.logger.Warn("a secret is written literally in the configuration; use {env.*} or {file.*} so that it stays out of config files and the admin API",
				zap.Int("secret", i+1))
		}
		secrets = append(secrets, []byte(value))
	}
	return secrets, nil
}

// Validate is a no-op: every check needs the provisioned provider and is
// done in Provision, which `caddy validate` runs too.
func (h *Handler) Validate() error { return nil }

// ServeHTTP runs the pipeline: read (bounded) → verify → normalize → encode
// → forward → answer. Each step is one method; a failing step ends the
// request with the provider's answer for that failure.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rec := &record{provider: h.Provider, start: time.Now(), clientIP: clientIP(r)}
	defer h.finish(rec)
	caddyhttp.SetVar(r.Context(), "payhook.provider", h.Provider)

	cb, err := h.read(w, r)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	result, err := h.verifier.Verify(r.Context(), cb)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	event, err := h.normalize(cb)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	rec.event = event
	envelope, err := normalize.Encode(event, result, rec.start)
	if err != nil {
		h.reject(w, rec, fmt.Errorf("%w: %v", errEncode, err))
		return nil
	}
	rec.eventID = event.ID()
	caddyhttp.SetVar(r.Context(), "payhook.event_id", rec.eventID)
	caddyhttp.SetVar(r.Context(), "payhook.status", string(event.Status))

	h.answer(w, rec, h.forward(r, next, envelope))
	return nil
}

// normalize turns the verified callback into the canonical event.
func (h *Handler) normalize(cb *verify.Callback) (*normalize.Event, error) {
	mediaType, _ := mediaType(cb.Header.Get("Content-Type"))
	return h.provider.normalize(&normalize.Input{Provider: h.Provider, ContentType: mediaType, Body: cb.Body})
}

// forward hands the envelope to the next handler in place of the provider's
// body and reports what it answered.
func (h *Handler) forward(r *http.Request, next caddyhttp.Handler, envelope []byte) upstreamResult {
	prepareForward(r, envelope)
	rw := new(upstreamRecorder)
	err := next.ServeHTTP(rw, r)
	return upstreamResult{status: rw.status, err: err}
}

// answer tells the provider the outcome: its success acknowledgement only
// when the upstream took the event, otherwise a 502 so the provider retries.
func (h *Handler) answer(w http.ResponseWriter, rec *record, up upstreamResult) {
	rec.upstreamStatus = up.status
	if up.delivered() {
		rec.outcome = outcomeForwarded
		rec.answered = h.provider.ack(w)
		return
	}
	rec.outcome, rec.reason = outcomeUpstreamFailed, up.reason()
	rec.answered = http.StatusBadGateway
	writePlain(w, http.StatusBadGateway, "upstream did not take the event; retry later")
}

// reject answers a callback that failed a step with the status its error maps to.
func (h *Handler) reject(w http.ResponseWriter, rec *record, err error) {
	rej := classify(err)
	rec.outcome, rec.reason, rec.detail = outcomeRejected, rej.code, err.Error()
	rec.answered = rej.status
	if rej.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writePlain(w, rej.status, rej.message())
}

// upstreamResult is what the next handler did with the envelope.
type upstreamResult struct {
	status int // 0 when nothing was written
	err    error
}

func (u upstreamResult) delivered() bool {
	return u.err == nil && u.status >= 200 && u.status < 300
}

// reason explains a failed delivery for the log.
func (u upstreamResult) reason() string {
	switch {
	case u.err != nil:
		var he caddyhttp.HandlerError
		if errors.As(u.err, &he) && he.StatusCode != 0 {
			return fmt.Sprintf("upstream unreachable (%d)", he.StatusCode)
		}
		return "upstream unreachable"
	case u.status == 0:
		return "no handler after payhook answered; add reverse_proxy after payhook"
	default:
		return fmt.Sprintf("upstream answered %d", u.status)
	}
}

func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}

// writePlain writes a short text/plain answer.
func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
