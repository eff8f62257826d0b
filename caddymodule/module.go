// Package caddymodule is payhook's Caddy glue: the http.handlers.payhook
// module, its Caddyfile directive, metrics, and the `caddy payhook`
// commands. Authenticity lives in package verify and the envelope in
// package normalize; this package wires them into Caddy's request pipeline.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
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

	// Instance is the merchant's Payrexx instance name (payrexx, shopandpay).
	Instance string `json:"instance,omitempty"`

	// APIKey is the credential payhook sends to the provider's API when it
	// fetches a callback's resource back (payrexx, shopandpay: the API
	// secret, sent as X-API-KEY). Use a placeholder.
	APIKey string `json:"api_key,omitempty"`

	// APIBase is the origin of the provider's API. Default: the provider's
	// own (https://api.payrexx.com, https://api.shop-and-pay.com); a white
	// label's API host goes here. Must be https (http only for loopback).
	APIBase string `json:"api_base,omitempty"`

	// APITimeout bounds each request to the provider's API. Default: 5s.
	APITimeout caddy.Duration `json:"api_timeout,omitempty"`

	// SignatureSecret, when set, also requires a valid X-Webhook-Signature
	// (hex HMAC-SHA256 of the body) on Payrexx webhooks. It adds to the
	// fetch-back, never replaces it.
	SignatureSecret string `json:"signature_secret,omitempty"`

	// Token is the merchant's API bearer token (swedbankpay), sent when
	// payhook fetches a callback's resource back. Use a placeholder.
	Token string `json:"token,omitempty"`

	// URLTokens are secrets the provider must send as the callback URL's
	// "token" query parameter (…/callbacks/pyxis?token=…). Required for
	// pyxis; any provider can add it. Several are accepted, for a rotation.
	// The parameter is removed before the request is forwarded.
	URLTokens []string `json:"url_tokens,omitempty"`

	// AllowIPs restricts callbacks to these client addresses or CIDRs, as
	// Caddy determines the client address (honouring the server's
	// trusted_proxies). Checked before anything else; others get 403.
	AllowIPs []string `json:"allow_ips,omitempty"`

	// Currency is the ISO 4217 currency of amounts for providers whose
	// payloads name none (pyxis; default GBP).
	Currency string `json:"currency,omitempty"`

	// Dedupe is how long a delivered event is remembered, so that a later
	// copy of it (a provider retry, a replay) is acknowledged without being
	// forwarded again: a duration ("8d", "36h") or "off". Default: 8d. The
	// record lives in Caddy's configured storage.
	Dedupe string `json:"dedupe,omitempty"`

	provider *provider
	resolved resolvedConfig
	verifier verify.Verifier
	dedupe   *deduper
	// unknown remembers resources the provider's API just called unknown,
	// so that a forger repeating one costs no further API request.
	unknown   *expiringSet
	logger    *zap.Logger
	metrics   *metrics
	forwarded forwardedSeries // the forwarded outcome's metrics, looked up once
}

// resolvedConfig is the configuration with its placeholders expanded, kept
// out of the JSON config.
type resolvedConfig struct {
	secrets          [][]byte
	apiKey           []byte
	signatureSecrets [][]byte
	token            []byte
	urlTokens        [][]byte
	allowList        *verify.AllowList
	instance         string
	apiBase          string
	test             *bool // api_base is the provider's test (or live) environment
	fetcher          *verify.Fetcher
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
	if err := h.validateFields(); err != nil {
		return err
	}
	if h.MaxSkew == 0 {
		h.MaxSkew = caddy.Duration(DefaultMaxSkew)
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if err := h.resolve(); err != nil {
		return err
	}
	var err error
	h.verifier, err = p.newVerifier(h)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Provider, err)
	}
	if p.claim != nil {
		h.unknown = newExpiringSet(unknownCacheSize)
	}
	if len(h.resolved.urlTokens) > 0 && !p.verifiedByURLToken {
		h.verifier = verify.WithChecks(h.verifier, &verify.URLToken{Tokens: h.resolved.urlTokens})
	}
	if h.metrics, err = registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.forwarded = h.metrics.forwardedSeries(h.Provider)
	window, err := dedupeWindow(h.Dedupe)
	if err != nil {
		return err
	}
	if window > 0 {
		h.dedupe = newDeduper(ctx.Storage(), window, h.logger)
		go h.dedupe.janitor()
	}
	return nil
}

// dedupeWindow reads the dedupe option: 0 means off.
func dedupeWindow(value string) (time.Duration, error) {
	switch value {
	case "":
		return DefaultDedupeWindow, nil
	case "off":
		return 0, nil
	}
	window, err := caddy.ParseDuration(value)
	if err != nil || window <= 0 {
		return 0, fmt.Errorf("dedupe: want a duration such as 8d, or off; got %q", value)
	}
	return window, nil
}

// Cleanup releases the delivery claims still held and the connections to
// the provider's API.
func (h *Handler) Cleanup() error {
	if h.dedupe != nil {
		h.dedupe.close()
	}
	if h.resolved.fetcher != nil {
		h.resolved.fetcher.Close()
	}
	return nil
}

// validateFields checks what can be checked before the secrets are expanded.
func (h *Handler) validateFields() error {
	if h.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(h.MaxSkew))
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body must be positive, got %d", h.MaxBody)
	}
	if h.APITimeout < 0 {
		return fmt.Errorf("api_timeout must be positive, got %s", time.Duration(h.APITimeout))
	}
	for _, option := range h.setOptions() {
		if !slices.Contains(h.provider.options, option) && !slices.Contains(genericOptions, option) {
			return fmt.Errorf("%s does not apply to provider %s", option, h.Provider)
		}
	}
	return nil
}

// genericOptions apply to every provider.
var genericOptions = []string{"max_body", "url_token", "allow_ips", "dedupe"}

// setOptions lists the provider-specific options this configuration sets,
// by their Caddyfile names.
func (h *Handler) setOptions() []string {
	var set []string
	if len(h.Secrets) > 0 {
		set = append(set, "secret")
	}
	if h.MaxSkew != 0 {
		set = append(set, "max_skew")
	}
	if h.LegacyMD5 {
		set = append(set, "legacy_md5")
	}
	for option, value := range map[string]string{
		"instance": h.Instance, "api_key": h.APIKey, "api_base": h.APIBase, "signature_secret": h.SignatureSecret,
		"token": h.Token, "currency": h.Currency,
	} {
		if value != "" {
			set = append(set, option)
		}
	}
	if h.APITimeout != 0 {
		set = append(set, "api_timeout")
	}
	return set
}

// resolve expands the {env.*} and {file.*} placeholders of the secrets and
// settings into h.resolved, checks the API base, and creates the provider
// API's client when the provider fetches.
func (h *Handler) resolve() error {
	r := &h.resolved
	for i, s := range h.Secrets {
		secret, err := h.expand(fmt.Sprintf("secret #%d", i+1), s, true)
		if err != nil {
			return err
		}
		r.secrets = append(r.secrets, []byte(secret))
	}
	if h.APIKey != "" {
		key, err := h.expand("api_key", h.APIKey, true)
		if err != nil {
			return err
		}
		r.apiKey = []byte(key)
	}
	if h.SignatureSecret != "" {
		secret, err := h.expand("signature_secret", h.SignatureSecret, true)
		if err != nil {
			return err
		}
		r.signatureSecrets = [][]byte{[]byte(secret)}
	}
	if h.Token != "" {
		token, err := h.expand("token", h.Token, true)
		if err != nil {
			return err
		}
		r.token = []byte(token)
	}
	for i, t := range h.URLTokens {
		token, err := h.expand(fmt.Sprintf("url_token #%d", i+1), t, true)
		if err != nil {
			return err
		}
		r.urlTokens = append(r.urlTokens, []byte(token))
	}
	if len(h.AllowIPs) > 0 {
		var err error
		if r.allowList, err = verify.ParseAllowList(h.AllowIPs); err != nil {
			return err
		}
	}
	if h.Currency != "" {
		if _, ok := normalize.MinorUnitExponent(h.Currency); !ok {
			return fmt.Errorf("currency %q is not an ISO 4217 code with a minor unit", h.Currency)
		}
	}
	if h.Instance != "" {
		instance, err := h.expand("instance", h.Instance, false)
		if err != nil {
			return err
		}
		r.instance = instance
	}
	if h.provider.defaultAPIBase != "" {
		base := h.APIBase
		if base == "" {
			base = h.provider.defaultAPIBase
		}
		base, err := h.expand("api_base", base, false)
		if err != nil {
			return err
		}
		if r.apiBase, err = checkAPIBase(base); err != nil {
			return err
		}
		r.test = apiEnvironment(h.provider.testHosts, r.apiBase)
		r.fetcher = verify.NewFetcher(time.Duration(h.APITimeout), 0)
	}
	return nil
}

// expand replaces the placeholders in a configuration value. A placeholder
// that is unknown or expands to nothing is an error naming the placeholder,
// never the value: an unset variable must not turn into an empty secret
// that anyone can sign with.
func (h *Handler) expand(name, value string, secret bool) (string, error) {
	expanded, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("%s: %w (is the environment variable set, or the file readable?)", name, err)
	}
	if expanded == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	if secret && !strings.Contains(value, "{") {
		h.logger.Warn("a secret is written literally in the configuration; use {env.*} or {file.*} so that it stays out of config files and the admin API",
			zap.String("option", name))
	}
	return expanded, nil
}

// checkAPIBase accepts an https origin (with an optional path prefix), or
// http on a loopback host for tests: payhook sends credentials there.
func checkAPIBase(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("api_base %q: want an https origin such as https://api.payrexx.com", base)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip, err := netip.ParseAddr(u.Hostname()); !(u.Hostname() == "localhost" || (err == nil && ip.IsLoopback())) {
			return "", fmt.Errorf("api_base %q: credentials go there, so it must be https (http only on loopback)", base)
		}
	default:
		return "", fmt.Errorf("api_base %q: want an https origin", base)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// apiEnvironment tells whether apiBase (checked by checkAPIBase) is one of
// the provider's known test or live hosts; nil for any other host.
func apiEnvironment(testHosts map[string]bool, apiBase string) *bool {
	u, err := url.Parse(apiBase)
	if err != nil {
		return nil
	}
	if test, ok := testHosts[strings.ToLower(u.Hostname())]; ok {
		return &test
	}
	return nil
}

// Validate is a no-op: every check needs the provisioned provider and is
// done in Provision, which `caddy validate` runs too.
func (h *Handler) Validate() error { return nil }

// ServeHTTP runs the pipeline: read (bounded) → verify → normalize → encode
// → forward → answer. Each step is one method; a failing step ends the
// request with the provider's answer for that failure.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rec := &record{provider: h.Provider, start: time.Now(), clientIP: clientIP(r)}
	// Deferred first, so it runs last: the body goes back to its pool only
	// after the log line, whose strings may share its memory.
	var pooledBody *[]byte
	defer func() { releaseBody(pooledBody) }()
	defer h.finish(rec)
	caddyhttp.SetVar(r.Context(), "payhook.provider", h.Provider)

	if err := h.allow(rec.clientIP); err != nil {
		h.reject(w, rec, err)
		return nil
	}
	cb, mediaType, pooledBody, err := h.read(w, r)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	in := &normalize.Input{Provider: h.Provider, ContentType: mediaType, Body: cb.Body, DefaultCurrency: h.Currency, Test: h.resolved.test}
	if err := h.claim(in, cb); err != nil {
		h.reject(w, rec, err)
		return nil
	}
	result, err := h.verify(r.Context(), cb)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	if h.resolved.allowList != nil {
		result.Also = append(result.Also, h.resolved.allowList.Name())
	}
	in.Fetched = result.Fetched
	event, err := h.provider.normalize(in)
	if err != nil {
		h.reject(w, rec, err)
		return nil
	}
	rec.event = event
	rec.eventID = event.ID()
	caddyhttp.SetVar(r.Context(), "payhook.event_id", rec.eventID)
	caddyhttp.SetVar(r.Context(), "payhook.status", string(event.Status))

	// The envelope is encoded only for a callback that is forwarded: a
	// duplicate (a provider's retry, a replay) is acknowledged without one.
	if h.dedupe == nil {
		h.answer(w, rec, h.forward(r, next, normalize.Encode(event, result, rec.start)))
		return nil
	}
	duplicate, release, err := h.dedupe.claim(r.Context(), rec.eventID)
	switch {
	case err != nil:
		h.reject(w, rec, err)
	case duplicate:
		rec.outcome = outcomeDuplicate
		rec.answered = h.provider.ack(w)
	default:
		h.answer(w, rec, h.forwardClaimed(r, next, normalize.Encode(event, result, rec.start), release))
	}
	return nil
}

// forwardClaimed forwards an event this request has claimed and releases
// the claim on every path, a panic of the next handler included (which
// then goes on), saying whether the shop took the event.
func (h *Handler) forwardClaimed(r *http.Request, next caddyhttp.Handler, envelope []byte, release func(delivered bool)) (up upstreamResult) {
	delivered := false
	defer func() { release(delivered) }()
	up = h.forward(r, next, envelope)
	delivered = up.delivered()
	return up
}

// unknownCacheSize and unknownFor bound the memory of resources the API
// called unknown: a minute is short against providers' retry schedules
// (Payrexx retries after 15 minutes) and long against a forger's loop.
const (
	unknownCacheSize = 4096
	unknownFor       = time.Minute
)

// verify runs the provider's verification. For fetch-verified providers a
// resource the API called unknown within the last minute is refused again
// without asking the API.
func (h *Handler) verify(ctx context.Context, cb *verify.Callback) (verify.Result, error) {
	if h.unknown == nil {
		return h.verifier.Verify(ctx, cb)
	}
	key := cb.Claim.Kind + "/" + cb.Claim.ID
	if h.unknown.contains(key, time.Now()) {
		return verify.Result{}, fmt.Errorf("%w (the API called it unknown less than %s ago)", verify.ErrUnknownResource, unknownFor)
	}
	result, err := h.verifier.Verify(ctx, cb)
	if errors.Is(err, verify.ErrUnknownResource) {
		h.unknown.add(key, time.Now().Add(unknownFor))
	}
	return result, err
}

// allow checks the client address against allow_ips, before anything of
// the request is read.
func (h *Handler) allow(clientIP string) error {
	if h.resolved.allowList == nil {
		return nil
	}
	return h.resolved.allowList.Allow(clientIP)
}

// claim reads what an unsigned callback says it is about, for a verifier
// that fetches it back. Signed callbacks are verified before being parsed.
func (h *Handler) claim(in *normalize.Input, cb *verify.Callback) error {
	if h.provider.claim == nil {
		return nil
	}
	claim, err := h.provider.claim(in)
	cb.Claim = claim
	return err
}

// forward hands the envelope to the next handler in place of the provider's
// body and reports what it answered.
//
// reverse_proxy panics with http.ErrAbortHandler when the shop's answer
// breaks after its status line (the connection closes mid-body). The
// answer it aborts is the one to payhook's recorder, not to the provider,
// so payhook takes the panic as the shop's answer: the status line is the
// shop's decision, and payhook discards the body anyway. Any other panic
// goes on up to Caddy.
func (h *Handler) forward(r *http.Request, next caddyhttp.Handler, envelope []byte) (up upstreamResult) {
	prepareForward(r, envelope)
	if len(h.resolved.urlTokens) > 0 {
		stripURLToken(r)
	}
	rw := new(upstreamRecorder)
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			up = upstreamResult{status: rw.status, aborted: true}
		}
	}()
	err := next.ServeHTTP(rw, r)
	return upstreamResult{status: rw.status, err: err}
}

// answer tells the provider the outcome: its success acknowledgement only
// when the upstream took the event, otherwise a 502 so the provider retries.
func (h *Handler) answer(w http.ResponseWriter, rec *record, up upstreamResult) {
	rec.upstreamStatus = up.status
	if up.delivered() {
		if up.aborted {
			rec.detail = fmt.Sprintf("the shop answered %d, then its answer broke; payhook counts its status line as the answer", up.status)
		}
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
	if rej.hint != "" {
		rec.detail += "; " + rej.hint
	}
	rec.answered = rej.status
	if rej.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writePlain(w, rej.status, rej.message())
}

// upstreamResult is what the next handler did with the envelope.
type upstreamResult struct {
	status  int // 0 when nothing was written
	err     error
	aborted bool // the shop's answer broke after its status line
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
	case u.aborted && u.status == 0:
		return "upstream answer broken"
	case u.aborted:
		return fmt.Sprintf("upstream answered %d, then its answer broke", u.status)
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

// Header values of payhook's own answers, shared: net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
	noSniff   = []string{"nosniff"}
)

// writePlain writes a short text/plain answer.
func writePlain(w http.ResponseWriter, status int, body string) {
	header := w.Header()
	header["Content-Type"] = textPlain
	header["Cache-Control"] = noStore
	header["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
