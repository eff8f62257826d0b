package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(IXOPAY{})
}

// DefaultMaxSkew is how far a signed date may lie in the past or the future
// by default.
const DefaultMaxSkew = 5 * time.Minute

// IXOPAY receives callbacks of IXOPAY (gateway.ixopay.com, API v3) and its
// white labels, signed with the X-Signature scheme: HMAC-SHA512 over the
// method, the body's hash, the content type, the Date and the request URI.
type IXOPAY struct {
	// Secrets are the connector's shared secrets; any one verifies a
	// callback, so a rotation can keep the previous one for a while. Use
	// {env.*} or {file.*} placeholders. At least one is required.
	Secrets []string `json:"secrets,omitempty"`

	// MaxSkew is how far the signed Date (X-Date, else Date) may lie in the
	// past or the future. Default: 5m.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// LegacyMD5 also accepts the legacy signature variant that hashes the
	// body with MD5 instead of SHA-512. Off by default.
	LegacyMD5 bool `json:"legacy_md5,omitempty"`

	verifier *verify.IXOPAY
}

// CaddyModule returns the Caddy module information.
func (IXOPAY) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".ixopay", New: func() caddy.Module { return new(IXOPAY) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook ixopay {
//	    secret     <value>    # repeatable: every secret is accepted
//	    max_skew   <duration> # default 5m
//	    legacy_md5            # also accept the MD5 body hash
//	}
func (p *IXOPAY) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		switch d.Val() {
		case "secret":
			if err := appendArg(d, &p.Secrets); err != nil {
				return err
			}
		case "max_skew":
			dur, err := durationArg(d, "max_skew")
			if err != nil {
				return err
			}
			p.MaxSkew = dur
		case "legacy_md5":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.LegacyMD5 = true
		default:
			return UnrecognizedOption(d, "ixopay", "secret", "max_skew", "legacy_md5")
		}
	}
	return nil
}

// Provision expands the secrets and builds the verifier.
func (p *IXOPAY) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	secrets, err := Secrets(ctx.Logger(), "secret", p.Secrets)
	if err != nil {
		return err
	}
	skew := time.Duration(p.MaxSkew)
	if skew == 0 {
		skew = DefaultMaxSkew
	}
	p.verifier = &verify.IXOPAY{Secrets: secrets, MaxSkew: skew, LegacyMD5: p.LegacyMD5}
	return nil
}

// Validate checks the configuration.
func (p *IXOPAY) Validate() error {
	if len(p.Secrets) == 0 {
		return errors.New("at least one secret is required (secret {env.IXOPAY_SHARED_SECRET})")
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	return nil
}

// Name is "ixopay".
func (*IXOPAY) Name() string { return "ixopay" }

// ContentTypes: IXOPAY posts JSON.
func (*IXOPAY) ContentTypes() []string { return jsonOnly }

var jsonOnly = []string{"application/json"}

// Verify checks the signature and the Date over the raw bytes; nothing is
// parsed before.
func (p *IXOPAY) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	return p.verifier.Verify(ctx, cb)
}

// Normalize reads the status-change callback.
func (p *IXOPAY) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	ev, err := normalize.IXOPAY(in)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK", text/plain: anything else is retried.
func (*IXOPAY) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a status-change callback.
func (*IXOPAY) Sample(s normalize.Sample) ([]byte, string, error) { return normalize.IXOPAYSample(s) }

// SignSample signs r as IXOPAY does, with the verifier's own code.
func (*IXOPAY) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: ixopay callbacks are signed")
	}
	signIXOPAYAt(r, body, secret, time.Now().UTC().Format(http.TimeFormat))
	return nil
}

func signIXOPAYAt(r *http.Request, body []byte, secret []byte, date string) {
	r.Header.Set("Date", date)
	r.Header.Set("X-Signature", verify.SignIXOPAY(secret, verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method:      r.Method,
		ContentType: r.Header.Get("Content-Type"),
		Date:        date,
		RequestURI:  r.URL.RequestURI(),
		Body:        body,
	}))
}

// Interface guards.
var (
	_ Provider              = (*IXOPAY)(nil)
	_ SampleSender          = (*IXOPAY)(nil)
	_ caddy.Provisioner     = (*IXOPAY)(nil)
	_ caddy.Validator       = (*IXOPAY)(nil)
	_ caddyfile.Unmarshaler = (*IXOPAY)(nil)
)
