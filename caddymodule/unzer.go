package caddymodule

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Unzer{})
}

// Unzer receives Unzer's webhooks, which nobody signs: payhook checks that
// a webhook is for the merchant's key, fetches the payment it names from
// Unzer's API (never from the host its retrieveUrl names) with the
// merchant's private key, and builds the event from the payment fetched.
type Unzer struct {
	// PrivateKey is the merchant's private key, s-priv-… (sandbox) or
	// p-priv-… (production): payhook fetches payments with it, from the
	// API of its environment. Use a placeholder. Required.
	PrivateKey string `json:"private_key,omitempty"`

	// PublicKey is the merchant's public key (s-pub-… or p-pub-…): a
	// webhook naming any other is refused before anything is fetched.
	// Without it, a webhook's key must only be of the private key's
	// environment. Recommended.
	PublicKey string `json:"public_key,omitempty"`

	API

	verifier    *verify.Unzer
	environment string // "s" or "p"
	publicKey   string
}

// CaddyModule returns the Caddy module information.
func (Unzer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".unzer", New: func() caddy.Module { return new(Unzer) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook unzer {
//	    private_key <value>    # s-priv-… or p-priv-…
//	    public_key  <value>    # s-pub-… or p-pub-…; recommended
//	    api_base    <url>      # default: https://api.unzer.com, https://sbx-api.unzer.com for s-priv keys
//	    api_timeout <duration> # per API request; default 5s
//	    api_rate    <n>        # API requests per second; default 50
//	}
func (p *Unzer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		if ok, err := p.unmarshalAPIOption(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		var err error
		switch d.Val() {
		case "private_key":
			err = singleArg(d, &p.PrivateKey)
		case "public_key":
			err = singleArg(d, &p.PublicKey)
		default:
			return UnrecognizedOption(d, "unzer", append([]string{"private_key", "public_key"}, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Unzer) Validate() error {
	if p.PrivateKey == "" {
		return errors.New("private_key is required (private_key {env.UNZER_PRIVATE_KEY})")
	}
	return p.validateAPI()
}

// Provision expands the keys, checks that they are of one environment,
// and creates the API client.
func (p *Unzer) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	key, err := Secret(ctx.Logger(), "private_key", p.PrivateKey)
	if err != nil {
		return err
	}
	// The key is never shown: only whether it has the documented form.
	p.environment = verify.UnzerEnvironment(string(key))
	if p.environment == "" || !bytes.HasPrefix(key[1:], []byte("-priv-")) {
		return errors.New("private_key: want an Unzer private key, s-priv-… or p-priv-…")
	}
	if p.PublicKey != "" {
		if p.publicKey, err = Setting("public_key", p.PublicKey); err != nil {
			return err
		}
		if verify.UnzerEnvironment(p.publicKey) != p.environment || !strings.HasPrefix(p.publicKey[1:], "-pub-") {
			return fmt.Errorf("public_key: want the public key of the private key's environment, %s-pub-…", p.environment)
		}
	}
	defaultBase := verify.UnzerAPI
	if p.environment == "s" {
		defaultBase = verify.UnzerSandboxAPI
	}
	if err := p.provisionAPI(defaultBase); err != nil {
		return err
	}
	p.verifier = &verify.Unzer{APIBase: p.base, PrivateKey: key, Fetcher: p.fetcher}
	return nil
}

// Name is "unzer".
func (*Unzer) Name() string { return "unzer" }

// ContentTypes: Unzer's documentation asks endpoints to accept text/plain;
// its body is JSON.
func (*Unzer) ContentTypes() []string { return unzerContentTypes }

var unzerContentTypes = []string{"application/json", "text/plain"}

// DedupeScope is the API's origin and the key's environment: a sandbox and
// a production route never share records.
func (p *Unzer) DedupeScope() string { return p.environment + "@" + p.base }

// Verify reads the webhook's claim (bounded), checks that it is for this
// merchant's key, then fetches the payment it names.
func (p *Unzer) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	claim, err := normalize.UnzerClaim(in)
	if err != nil {
		return verify.Result{}, err
	}
	if err := p.checkKey(claim.PublicKey); err != nil {
		return verify.Result{}, err
	}
	if err := verify.CheckUnzerPaymentID(claim.PaymentID); err != nil {
		return verify.Result{}, err
	}
	if verify.UnzerEnvironment(claim.PaymentID) != p.environment {
		// A sandbox payment on a production key or the reverse: no request
		// could find it.
		return verify.Result{}, fmt.Errorf("%w: a payment of the other environment", verify.ErrForeignKey)
	}
	cb.Claim = verify.Claim{Kind: "payment", ID: claim.PaymentID, Status: claim.Event}
	res, err := p.fetcher.Lookup(ctx, claim.PaymentID, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Fetch(ctx, claim.PaymentID)
	})
	if err == nil {
		res.ClaimedStatus = claim.Event
	}
	return res, err
}

// checkKey checks the webhook's publicKey: the configured one, or else one
// of the private key's environment.
func (p *Unzer) checkKey(publicKey string) error {
	if p.publicKey != "" {
		if subtle.ConstantTimeCompare([]byte(publicKey), []byte(p.publicKey)) != 1 {
			return fmt.Errorf("%w: publicKey is not the configured public_key", verify.ErrForeignKey)
		}
		return nil
	}
	if verify.UnzerEnvironment(publicKey) != p.environment {
		return fmt.Errorf("%w: publicKey is not of the private key's environment", verify.ErrForeignKey)
	}
	return nil
}

// Normalize builds the event from the fetched payment.
func (p *Unzer) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched = res.Fetched
	ev, err := normalize.Unzer(in)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK"; Unzer needs only the status.
func (*Unzer) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a webhook naming the sample's payment (s-pay- and
// --id), with the sample public key; SignSample puts the route's in its
// place when --secret gives it.
func (*Unzer) Sample(s normalize.Sample) ([]byte, string, error) {
	return normalize.UnzerSample(s, normalize.UnzerSamplePublicKey)
}

// SampleAPIDocument is the payment a stand-in of Unzer's API serves for
// the sample.
func (*Unzer) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	doc, err := normalize.UnzerSamplePayment(s)
	return "/v1/payments/" + normalize.UnzerSamplePaymentID(s), doc, err
}

// SignSample signs nothing (Unzer signs nothing): a secret, if given, is
// the route's public key, which replaces the sample's.
func (*Unzer) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return nil
	}
	var webhook map[string]string
	if err := json.Unmarshal(body, &webhook); err != nil {
		return err
	}
	webhook["publicKey"] = string(secret)
	signed, err := json.Marshal(webhook)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(signed))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(signed)), nil }
	r.ContentLength = int64(len(signed))
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Unzer)(nil)
	_ SampleSender          = (*Unzer)(nil)
	_ SampleAPIStandIn      = (*Unzer)(nil)
	_ DedupeScoper          = (*Unzer)(nil)
	_ caddy.Provisioner     = (*Unzer)(nil)
	_ caddy.Validator       = (*Unzer)(nil)
	_ caddy.CleanerUpper    = (*Unzer)(nil)
	_ caddyfile.Unmarshaler = (*Unzer)(nil)
)
