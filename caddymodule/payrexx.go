package caddymodule

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Payrexx{})
	caddy.RegisterModule(ShopAndPay{})
}

// Payrexx receives Payrexx webhooks (JSON or PHP-style form posts), which
// are not signed: payhook fetches the transaction or subscription they
// name back from the Payrexx API, and the envelope is built from what the
// API answers. Other white labels of the platform (VRpay, Paylink, …) use
// it with their own api_base.
type Payrexx struct {
	payrexxPlatform
}

// ShopAndPay is Payrexx's white label Shop & Pay: the same platform, with
// https://api.shop-and-pay.com as its API and "shopandpay" as its name.
type ShopAndPay struct {
	payrexxPlatform
}

// CaddyModule returns the Caddy module information.
func (Payrexx) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".payrexx", New: func() caddy.Module {
		return &Payrexx{payrexxPlatform{name: "payrexx", defaultAPIBase: "https://api.payrexx.com"}}
	}}
}

// CaddyModule returns the Caddy module information.
func (ShopAndPay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".shopandpay", New: func() caddy.Module {
		return &ShopAndPay{payrexxPlatform{name: "shopandpay", defaultAPIBase: "https://api.shop-and-pay.com"}}
	}}
}

// payrexxPlatform is the configuration and the work shared by Payrexx and
// its white labels.
type payrexxPlatform struct {
	// Instance is the merchant's Payrexx instance name. Required.
	Instance string `json:"instance,omitempty"`

	// APIKey is the instance's API secret, sent as X-API-KEY when payhook
	// fetches a webhook's transaction back. Use a placeholder. Required.
	APIKey string `json:"api_key,omitempty"`

	// SignatureSecret, when set, also requires a valid X-Webhook-Signature
	// (hex HMAC-SHA256 of the body), checked before the body is parsed. It
	// adds to the fetch-back, never replaces it.
	SignatureSecret string `json:"signature_secret,omitempty"`

	API

	name           string
	defaultAPIBase string
	verifier       *verify.Payrexx
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook payrexx {
//	    instance         <name>     # the Payrexx instance name
//	    api_key          <value>    # the instance's API secret
//	    signature_secret <value>    # also require X-Webhook-Signature
//	    api_base         <url>      # default: the platform's own API
//	    api_timeout      <duration> # per API request; default 5s
//	    api_rate         <n>        # API requests per second; default 50
//	}
func (p *payrexxPlatform) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		if ok, err := p.unmarshalAPIOption(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch d.Val() {
		case "instance":
			if err := singleArg(d, &p.Instance); err != nil {
				return err
			}
		case "api_key":
			if err := singleArg(d, &p.APIKey); err != nil {
				return err
			}
		case "signature_secret":
			if err := singleArg(d, &p.SignatureSecret); err != nil {
				return err
			}
		default:
			return UnrecognizedOption(d, p.name, append([]string{"instance", "api_key", "signature_secret"}, apiOptions...)...)
		}
	}
	return nil
}

// Provision expands the credentials and creates the API client.
func (p *payrexxPlatform) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	instance, err := Setting("instance", p.Instance)
	if err != nil {
		return err
	}
	apiKey, err := Secret(ctx.Logger(), "api_key", p.APIKey)
	if err != nil {
		return err
	}
	var signatureSecrets [][]byte
	if p.SignatureSecret != "" {
		secret, err := Secret(ctx.Logger(), "signature_secret", p.SignatureSecret)
		if err != nil {
			return err
		}
		signatureSecrets = [][]byte{secret}
	}
	if err := p.provisionAPI(p.defaultAPIBase); err != nil {
		return err
	}
	p.verifier = &verify.Payrexx{
		APIBase:          p.base,
		Instance:         instance,
		APIKey:           apiKey,
		SignatureSecrets: signatureSecrets,
		Fetcher:          p.fetcher,
	}
	return nil
}

// Validate checks the configuration.
func (p *payrexxPlatform) Validate() error {
	if p.Instance == "" {
		return errors.New("instance is required (the Payrexx instance name)")
	}
	if p.APIKey == "" {
		return errors.New("api_key is required (api_key {env.PAYREXX_API_KEY})")
	}
	return p.validateAPI()
}

// Name is the platform's name: "payrexx", "shopandpay".
func (p *payrexxPlatform) Name() string { return p.name }

// ContentTypes: the merchant chooses "Normal (PHP-Post)" or JSON.
func (*payrexxPlatform) ContentTypes() []string { return payrexxContentTypes }

var payrexxContentTypes = []string{"application/x-www-form-urlencoded", "application/json"}

// DedupeScope: transaction ids are only unique within an instance.
func (p *payrexxPlatform) DedupeScope() string {
	return p.verifier.Instance + "@" + p.base
}

// Verify checks the optional signature over the raw bytes first, then
// reads the webhook's claim (bounded) and fetches it back.
func (p *payrexxPlatform) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	if err := p.verifier.CheckSignature(cb); err != nil {
		return verify.Result{}, err
	}
	kind, id, status, err := normalize.PayrexxClaim(in)
	if err != nil {
		return verify.Result{}, err
	}
	cb.Claim = verify.Claim{Kind: kind, ID: id, Status: status}
	res, err := p.fetcher.Lookup(ctx, kind+"/"+id, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Fetch(ctx, cb)
	})
	if err == nil && p.SignatureSecret != "" {
		res.Also = append(res.Also, "hmac-sha256")
	}
	return res, err
}

// Normalize builds the event from the fetched document. A webhook whose
// signature was checked is authentic itself and kept as data.original.
func (p *payrexxPlatform) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched = res.Fetched
	ev, err := normalize.Payrexx(in)
	if err == nil && p.SignatureSecret != "" {
		ev.Original, ev.Unverified = ev.Unverified, nil
	}
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK".
func (*payrexxPlatform) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a JSON webhook; its transaction id must exist where it
// is fetched back (a test instance, a stand-in of the API).
func (*payrexxPlatform) Sample(s normalize.Sample) ([]byte, string, error) {
	return normalize.PayrexxSample(s)
}

// SampleAPIDocument is the transaction a stand-in of the API (the demo's)
// serves for the sample.
func (*payrexxPlatform) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	doc, err := normalize.PayrexxSampleAnswer(s)
	return "/" + verify.PayrexxAPIVersion + "/Transaction/" + s.ProviderReference + "/", doc, err
}

// SignSample adds the optional X-Webhook-Signature when a secret is given.
func (*payrexxPlatform) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) > 0 {
		r.Header.Set("X-Webhook-Signature", verify.SignHexHMACSHA256(secret, body))
	}
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Payrexx)(nil)
	_ Provider              = (*ShopAndPay)(nil)
	_ SampleSender          = (*Payrexx)(nil)
	_ SampleAPIStandIn      = (*Payrexx)(nil)
	_ SampleAPIStandIn      = (*ShopAndPay)(nil)
	_ DedupeScoper          = (*Payrexx)(nil)
	_ caddy.Provisioner     = (*Payrexx)(nil)
	_ caddy.Validator       = (*Payrexx)(nil)
	_ caddy.CleanerUpper    = (*Payrexx)(nil)
	_ caddyfile.Unmarshaler = (*Payrexx)(nil)
)
