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
	caddy.RegisterModule(SwedbankPay{})
}

// SwedbankPay receives Swedbank Pay (PayEx) callbacks, which are not
// signed: as Swedbank Pay's documentation requires, payhook GETs the
// payment order (or legacy payment transaction) a callback names with the
// merchant's bearer token, and the envelope is built from the answer.
type SwedbankPay struct {
	// Token is the merchant's API bearer token. Use a placeholder. Required.
	Token string `json:"token,omitempty"`

	API

	verifier *verify.SwedbankPay
	test     *bool
}

// CaddyModule returns the Caddy module information.
func (SwedbankPay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".swedbankpay", New: func() caddy.Module { return new(SwedbankPay) }}
}

// swedbankPayAPI is Swedbank Pay's live API; its test environment is
// https://api.externalintegration.payex.com.
const swedbankPayAPI = "https://api.payex.com"

// swedbankPayHosts tells the API hosts' environments: the documents
// themselves do not say whether a payment is a test.
var swedbankPayHosts = map[string]bool{"api.payex.com": false, "api.externalintegration.payex.com": true}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook swedbankpay {
//	    token       <value>    # the merchant's API bearer token
//	    api_base    <url>      # default https://api.payex.com
//	    api_timeout <duration> # per API request; default 5s
//	    api_rate    <n>        # API requests per second; default 50
//	}
func (p *SwedbankPay) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		if ok, err := p.unmarshalAPIOption(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch d.Val() {
		case "token":
			if err := singleArg(d, &p.Token); err != nil {
				return err
			}
		default:
			return UnrecognizedOption(d, "swedbankpay", append([]string{"token"}, apiOptions...)...)
		}
	}
	return nil
}

// Provision expands the token and creates the API client.
func (p *SwedbankPay) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	token, err := Secret(ctx.Logger(), "token", p.Token)
	if err != nil {
		return err
	}
	if err := p.provisionAPI(swedbankPayAPI); err != nil {
		return err
	}
	p.test = apiEnvironment(swedbankPayHosts, p.base)
	p.verifier = &verify.SwedbankPay{APIBase: p.base, Token: token, Fetcher: p.fetcher}
	return nil
}

// Validate checks the configuration.
func (p *SwedbankPay) Validate() error {
	if p.Token == "" {
		return errors.New("token is required (token {env.SWEDBANK_PAY_TOKEN})")
	}
	return p.validateAPI()
}

// Name is "swedbankpay".
func (*SwedbankPay) Name() string { return "swedbankpay" }

// ContentTypes: Swedbank Pay posts JSON.
func (*SwedbankPay) ContentTypes() []string { return jsonOnly }

// Verify reads the resource the callback names (bounded) and fetches it.
func (p *SwedbankPay) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	kind, path, err := normalize.SwedbankPayClaim(in)
	if err != nil {
		return verify.Result{}, err
	}
	cb.Claim = verify.Claim{Kind: kind, ID: path}
	return p.fetcher.Lookup(ctx, kind+" "+path, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Verify(ctx, cb)
	})
}

// Normalize builds the event from the fetched document.
func (p *SwedbankPay) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched, in.Test = res.Fetched, p.test
	ev, err := normalize.SwedbankPay(in)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK"; Swedbank Pay needs only the status.
func (*SwedbankPay) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a Checkout v3.1 callback naming a payment order.
func (*SwedbankPay) Sample(s normalize.Sample) ([]byte, string, error) {
	return normalize.SwedbankPaySample(s)
}

// SampleAPIDocument is the payment order a stand-in of the API (the
// demo's) serves for the sample.
func (*SwedbankPay) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	return normalize.SwedbankPaySampleOrder(s)
}

// SignSample does nothing: Swedbank Pay signs nothing.
func (*SwedbankPay) SignSample(*http.Request, []byte, []byte) error { return nil }

// Interface guards.
var (
	_ Provider              = (*SwedbankPay)(nil)
	_ SampleSender          = (*SwedbankPay)(nil)
	_ SampleAPIStandIn      = (*SwedbankPay)(nil)
	_ DedupeScoper          = (*SwedbankPay)(nil)
	_ caddy.Provisioner     = (*SwedbankPay)(nil)
	_ caddy.Validator       = (*SwedbankPay)(nil)
	_ caddy.CleanerUpper    = (*SwedbankPay)(nil)
	_ caddyfile.Unmarshaler = (*SwedbankPay)(nil)
)
