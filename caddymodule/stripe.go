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
	"github.com/tidwall/gjson"

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

	// APIKey is a restricted key (rk_…, read access to the objects the
	// events name) or a secret key (sk_…), for thin events (API v2 event
	// destinations), which name the object they are about instead of
	// carrying it: payhook fetches it from Stripe's API once the event's
	// signature verified. Use a placeholder. Without it, a thin event is
	// answered 503 (Stripe retries for three days) and logged.
	APIKey string `json:"api_key,omitempty"`

	// APIBase, APITimeout and APIRate bound the thin events' fetches as
	// for the fetch-back providers. Default: https://api.stripe.com, 5s,
	// 50 requests a second.
	APIBase    string         `json:"api_base,omitempty"`
	APITimeout caddy.Duration `json:"api_timeout,omitempty"`
	APIRate    int            `json:"api_rate,omitempty"`

	verifier *verify.HMAC
	api      API // not embedded: Stripe's dedupe scope is not its API's
	thin     *verify.StripeThin

	sampleThin bool // `caddy payhook send stripe --thin`
}

// stripeAPI is Stripe's API.
const stripeAPI = "https://api.stripe.com"

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
//	    api_key      <value>     # rk_… or sk_…: thin events' objects are fetched with it
//	    api_base     <url>       # default https://api.stripe.com
//	    api_timeout  <duration>  # per API request; default 5s
//	    api_rate     <n>         # API requests per second; default 50
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
		case "api_key":
			err = singleArg(d, &p.APIKey)
		case "api_base":
			err = singleArg(d, &p.APIBase)
		case "api_timeout":
			p.APITimeout, err = durationArg(d, "api_timeout")
		case "api_rate":
			p.APIRate, err = positiveIntArg(d, "api_rate")
		default:
			return UnrecognizedOption(d, "stripe", "secret", "max_skew", "metadata_key", "api_key", "api_base", "api_timeout", "api_rate")
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
	if p.APIKey != "" && !strings.Contains(p.APIKey, "{") {
		if _, err := stripeAPIKey(p.APIKey); err != nil {
			return err
		}
	}
	return p.stripeAPIConfig().validateAPI()
}

// stripeAPIConfig is the API configuration the options give.
func (p *Stripe) stripeAPIConfig() *API {
	p.api.APIBase, p.api.APITimeout, p.api.APIRate = p.APIBase, p.APITimeout, p.APIRate
	return &p.api
}

// stripeAPIKey accepts a key that can read objects: a restricted key
// (rk_…) or a secret key (sk_…). A publishable key (pk_…) or a signing
// secret pasted by mistake could never fetch anything.
func stripeAPIKey(key string) ([]byte, error) {
	if !strings.HasPrefix(key, "rk_") && !strings.HasPrefix(key, "sk_") {
		return nil, errors.New("api_key: not a Stripe restricted or secret key: want rk_… (a restricted key with read access to the objects your events name) or sk_…")
	}
	return []byte(key), nil
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
	if p.verifier.Secrets, err = DecodedSecrets(ctx.Logger(), "secret", p.Secrets, stripeSigningSecret); err != nil {
		return err
	}
	if p.APIKey == "" {
		return nil
	}
	keys, err := DecodedSecrets(ctx.Logger(), "api_key", []string{p.APIKey}, stripeAPIKey)
	if err != nil {
		return err
	}
	api := p.stripeAPIConfig()
	if err := api.provisionAPI(stripeAPI); err != nil {
		return err
	}
	p.thin = &verify.StripeThin{APIBase: api.base, APIKey: keys[0], Fetcher: api.fetcher}
	return nil
}

// Cleanup closes the API client's idle connections.
func (p *Stripe) Cleanup() error { return p.api.Cleanup() }

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

// errStripeThinWithoutKey means a genuine thin event came to a route that
// has no api_key to fetch its object with: answered 503, so that Stripe
// retries (for three days) until the operator configures one.
var errStripeThinWithoutKey = errors.New("a Stripe thin event, and no api_key to fetch its object with")

// Verify checks Stripe-Signature over the raw bytes before anything is
// parsed; a thin event's object is then fetched from Stripe's API.
func (p *Stripe) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	res, err := p.verifier.Verify(ctx, cb)
	if err != nil || !normalize.StripeThinEvent(cb.Body) {
		return res, err
	}
	if p.thin == nil {
		return verify.Result{}, errStripeThinWithoutKey
	}
	eventID := gjson.GetBytes(cb.Body, "id").Str
	id, path, stripeContext, err := normalize.StripeThinObject(cb.Body)
	if err != nil {
		return verify.Result{}, err
	}
	cb.Claim = verify.Claim{Kind: "stripe object", ID: path}
	fetched, err := p.api.fetcher.Lookup(ctx, stripeContext+" "+path, func(ctx context.Context) (verify.Result, error) {
		doc, err := p.thin.Fetch(ctx, eventID, id, path, stripeContext)
		return verify.Result{Fetched: doc}, err
	})
	if err != nil {
		return verify.Result{}, err
	}
	res.Also, res.Resource, res.Fetched = append(res.Also, "api-fetch"), path, fetched.Fetched
	return res, nil
}

// Normalize reads the event (a thin event with the object fetched for it).
func (p *Stripe) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	opts := normalize.StripeOptions{MetadataKey: p.MetadataKey}
	if res.Fetched != nil {
		in.Fetched = res.Fetched
		ev, err := normalize.StripeThin(in, opts)
		return appendEvent(events, ev, err)
	}
	ev, err := normalize.Stripe(in, opts)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK": Stripe takes any 2xx.
func (*Stripe) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// configureSend takes --thin: send a thin event.
func (p *Stripe) configureSend(opts sendOptions) error {
	p.sampleThin = opts.thin
	return nil
}

// Sample fabricates a payment_intent event, or with --thin the thin event
// naming its payment intent.
func (p *Stripe) Sample(s normalize.Sample) ([]byte, string, error) {
	if p.sampleThin {
		return normalize.StripeThinSample(s)
	}
	return normalize.StripeSample(s)
}

// SampleAPIDocument is the payment intent a stand-in of Stripe's API (the
// demo's) serves for a thin sample; a snapshot event names nothing to
// fetch.
func (p *Stripe) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	if !p.sampleThin {
		return "", nil, errors.New("--api: a Stripe snapshot event carries its object; send a thin event (--thin) to have it fetched")
	}
	return normalize.StripeSampleObject(s)
}

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
	_ SampleAPIStandIn      = (*Stripe)(nil)
	_ caddy.Provisioner     = (*Stripe)(nil)
	_ caddy.Validator       = (*Stripe)(nil)
	_ caddy.CleanerUpper    = (*Stripe)(nil)
	_ caddyfile.Unmarshaler = (*Stripe)(nil)
)
