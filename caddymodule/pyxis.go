package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Pyxis{})
}

// Pyxis receives the payment notifications of the Pyxis hosted payment
// system, which signs nothing: the route's url_token, a secret in the
// OnSuccess/OnFail URLs the merchant registers, is their authenticity.
type Pyxis struct {
	// Currency is the ISO 4217 currency of amounts: Pyxis payloads name
	// none. Default: GBP.
	Currency string `json:"currency,omitempty"`
	// Outcome is which of a payment request's URLs this route is:
	// "success" (its OnSuccess URL) or "fail" (its OnFail URL). Pyxis posts
	// a payment that succeeded only to the first and one that failed only
	// to the second: a failure on the OnSuccess URL or a success on the
	// OnFail URL is refused (400), nothing on the OnFail URL is ever
	// reported as paid, and a notification that names no status takes the
	// URL's. Empty: one URL for both, and the body must name the status.
	Outcome string `json:"outcome,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Pyxis) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".pyxis", New: func() caddy.Module { return new(Pyxis) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook pyxis {
//	    url_token <value>       # the handler's option, required for pyxis
//	    currency  <code>        # default GBP
//	    outcome   success|fail  # this route is the OnSuccess or the OnFail URL
//	}
func (p *Pyxis) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		switch d.Val() {
		case "currency":
			if err := singleArg(d, &p.Currency); err != nil {
				return err
			}
		case "outcome":
			if err := singleArg(d, &p.Outcome); err != nil {
				return err
			}
		default:
			return UnrecognizedOption(d, "pyxis", "currency", "outcome")
		}
	}
	return nil
}

// Validate checks the currency and the outcome.
func (p *Pyxis) Validate() error {
	switch p.Outcome {
	case "", normalize.PyxisOnSuccess, normalize.PyxisOnFail:
	default:
		return fmt.Errorf("outcome %q: want %s or %s", p.Outcome, normalize.PyxisOnSuccess, normalize.PyxisOnFail)
	}
	if p.Currency == "" {
		return nil
	}
	if _, ok := normalize.MinorUnitExponent(strings.ToUpper(p.Currency)); !ok {
		return fmt.Errorf("currency %q is not an ISO 4217 code with a minor unit", p.Currency)
	}
	return nil
}

// VerifiedByURLToken: the route's url_token is Pyxis's authenticity.
func (*Pyxis) VerifiedByURLToken() {}

// Name is "pyxis".
func (*Pyxis) Name() string { return "pyxis" }

// ContentTypes: Pyxis posts JSON.
func (*Pyxis) ContentTypes() []string { return jsonOnly }

// Verify has nothing left to check: the handler checked the URL token.
func (*Pyxis) Verify(context.Context, *verify.Callback, *normalize.Input) (verify.Result, error) {
	return verify.Result{Method: "url-token"}, nil
}

// Normalize reads the notification.
func (p *Pyxis) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.DefaultCurrency = strings.ToUpper(p.Currency)
	ev, err := normalize.PyxisAt(in, p.Outcome)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK".
func (*Pyxis) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a payment notification.
func (*Pyxis) Sample(s normalize.Sample) ([]byte, string, error) { return normalize.PyxisSample(s) }

// SignSample puts the token into the callback URL, as the merchant does
// when registering it with Pyxis.
func (*Pyxis) SignSample(r *http.Request, _ []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: the pyxis route's url_token")
	}
	q := r.URL.Query()
	q.Set(verify.URLTokenParam, string(secret))
	r.URL.RawQuery = q.Encode()
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Pyxis)(nil)
	_ SampleSender          = (*Pyxis)(nil)
	_ URLTokenVerified      = (*Pyxis)(nil)
	_ caddy.Validator       = (*Pyxis)(nil)
	_ caddyfile.Unmarshaler = (*Pyxis)(nil)
)
