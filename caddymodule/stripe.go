package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Stripe{})
}

// Stripe receives Stripe's webhook events, verified by their
// Stripe-Signature header exactly as Stripe's libraries do: t=<unix
// seconds> and one or more v1=<hex HMAC-SHA256 of "<t>.<raw body>">, keyed
// with the endpoint's signing secret as written (whsec_… included), any
// one of the secrets and any one v1 matching, v0 and unknown keys ignored,
// and t within max_skew in the past and, unlike Stripe's libraries, in the
// future too.
type Stripe struct {
	// Secrets are the endpoint's signing secrets (whsec_…); several during
	// a rolling of the secret. Use placeholders. At least one is required.
	Secrets []string `json:"secrets,omitempty"`

	// MaxSkew is how far t may lie in the past or the future. Default: 5m,
	// Stripe's own tolerance.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// MetadataKey is the metadata key of the merchant's reference, read
	// when the object has no client_reference_id. Default: order_id.
	MetadataKey string `json:"metadata_key,omitempty"`

	verifier *verify.HMAC
}

// CaddyModule returns the Caddy module information.
func (Stripe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".stripe", New: func() caddy.Module { return new(Stripe) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook stripe {
//	    secret       <value>     # repeatable: whsec_…, for rolling
//	    max_skew     <duration>  # default 5m
//	    metadata_key <key>       # the merchant's reference in metadata; default order_id
//	}
func (p *Stripe) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "secret":
			err = appendArg(d, &p.Secrets)
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		case "metadata_key":
			err = singleArg(d, &p.MetadataKey)
		default:
			return UnrecognizedOption(d, "stripe", "secret", "max_skew", "metadata_key")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stripeScheme is Stripe's signature scheme in the generic HMAC verifier's
// terms.
func stripeScheme(maxSkew time.Duration) *verify.HMAC {
	content, err := verify.ParseTemplate("{timestamp}.{body}")
	if err != nil {
		panic(err) // a constant
	}
	return &verify.HMAC{Algorithm: "sha256", Header: "Stripe-Signature", SignatureKey: "v1", Encoding: "hex",
		Content: content, TimestampKey: "t", TimestampFormat: "seconds", MaxSkew: maxSkew}
}

// Validate checks the configuration.
func (p *Stripe) Validate() error {
	if len(p.Secrets) == 0 {
		return errors.New("at least one secret is required (secret {env.STRIPE_WEBHOOK_SECRET})")
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	for i, secret := range p.Secrets {
		if strings.Contains(secret, "{") {
			continue // a placeholder, checked once expanded
		}
		if _, err := stripeSigningSecret(secret); err != nil {
			return fmt.Errorf("secret #%d: %w", i+1, err)
		}
	}
	return nil
}

// Provision expands the secrets and builds the verifier.
func (p *Stripe) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	skew := time.Duration(p.MaxSkew)
	if skew == 0 {
		skew = DefaultMaxSkew
	}
	p.verifier = stripeScheme(skew)
	var err error
	p.verifier.Secrets, err = DecodedSecrets(ctx.Logger(), "secret", p.Secrets, stripeSigningSecret)
	return err
}

// stripeSigningSecret accepts an endpoint's signing secret, keyed as
// written: Stripe shows it as whsec_… A value of another form (an API key
// pasted by mistake) could never verify a signature, so every callback
// would be refused.
func stripeSigningSecret(secret string) ([]byte, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, errors.New("not a Stripe webhook signing secret: want the endpoint's signing secret, whsec_… (Dashboard: Developers, Webhooks, the endpoint, Signing secret)")
	}
	return []byte(secret), nil
}

// Name is "stripe".
func (*Stripe) Name() string { return "stripe" }

// ContentTypes: Stripe posts JSON.
func (*Stripe) ContentTypes() []string { return jsonOnly }

// Verify checks Stripe-Signature over the raw bytes before anything is parsed.
func (p *Stripe) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	return p.verifier.Verify(ctx, cb)
}

// Normalize reads the event.
func (p *Stripe) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	ev, err := normalize.Stripe(in, normalize.StripeOptions{MetadataKey: p.MetadataKey})
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK": Stripe takes any 2xx.
func (*Stripe) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a payment_intent event.
func (*Stripe) Sample(s normalize.Sample) ([]byte, string, error) { return normalize.StripeSample(s) }

// SignSample signs r as Stripe does, with the verifier's own code.
func (*Stripe) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: the endpoint's signing secret (whsec_…)")
	}
	signStripe(r, body, secret, time.Now())
	return nil
}

func signStripe(r *http.Request, body, secret []byte, at time.Time) {
	ts := strconv.FormatInt(at.Unix(), 10)
	scheme := stripeScheme(DefaultMaxSkew)
	content, _ := scheme.Content.Append(nil, verify.TemplateValues{Body: body, Timestamp: ts})
	r.Header.Set("Stripe-Signature", "t="+ts+",v1="+scheme.SignHMAC(secret, content))
}

// Interface guards.
var (
	_ Provider              = (*Stripe)(nil)
	_ SampleSender          = (*Stripe)(nil)
	_ caddy.Provisioner     = (*Stripe)(nil)
	_ caddy.Validator       = (*Stripe)(nil)
	_ caddyfile.Unmarshaler = (*Stripe)(nil)
)
