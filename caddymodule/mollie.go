package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Mollie{})
}

// Mollie receives Mollie's webhooks. A classic webhook (a form post of
// id=tr_…) is signed by nobody: payhook fetches the payment, with its
// refunds and chargebacks, from Mollie's API with the merchant's API key,
// and the events come from the answer. With signing secrets configured,
// next-gen webhooks (signed JSON events) are accepted too, and a classic
// webhook that carries X-Mollie-Signature must match as well.
type Mollie struct {
	// APIKey is the merchant's API key, live_… or test_…: the payments it
	// can fetch are those of its mode. Use a placeholder. Required.
	APIKey string `json:"api_key,omitempty"`

	// SignatureSecrets are the next-gen webhooks' signing secrets (several
	// during a rotation). Use placeholders. Optional.
	SignatureSecrets []string `json:"signature_secrets,omitempty"`

	// MetadataKey is the payment's metadata key that holds the shop's
	// reference. Default: order_id.
	MetadataKey string `json:"metadata_key,omitempty"`

	API

	verifier     *verify.Mollie
	secrets      [][]byte
	contentTypes []string
}

// CaddyModule returns the Caddy module information.
func (Mollie) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".mollie", New: func() caddy.Module { return new(Mollie) }}
}

// mollieAPI is Mollie's API; the mode (test or live) is the key's.
const mollieAPI = "https://api.mollie.com"

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook mollie {
//	    api_key          <value>    # live_… or test_…
//	    signature_secret <value>    # optional, repeatable: next-gen webhooks
//	    metadata_key     <key>      # the shop's reference in metadata; default order_id
//	    api_base         <url>      # default https://api.mollie.com
//	    api_timeout      <duration> # per API request; default 5s
//	    api_rate         <n>        # API requests per second; default 50
//	}
func (p *Mollie) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		case "api_key":
			err = singleArg(d, &p.APIKey)
		case "signature_secret":
			err = appendArg(d, &p.SignatureSecrets)
		case "metadata_key":
			err = singleArg(d, &p.MetadataKey)
		default:
			return UnrecognizedOption(d, "mollie", append([]string{"api_key", "signature_secret", "metadata_key"}, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Mollie) Validate() error {
	if p.APIKey == "" {
		return errors.New("api_key is required (api_key {env.MOLLIE_API_KEY})")
	}
	return p.validateAPI()
}

// Provision expands the key and secrets and creates the API client.
func (p *Mollie) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	key, err := Secret(ctx.Logger(), "api_key", p.APIKey)
	if err != nil {
		return err
	}
	if p.secrets, err = Secrets(ctx.Logger(), "signature_secret", p.SignatureSecrets); err != nil {
		return err
	}
	if err := p.provisionAPI(mollieAPI); err != nil {
		return err
	}
	p.verifier = &verify.Mollie{APIBase: p.base, APIKey: key, Fetcher: p.fetcher}
	p.contentTypes = []string{formContentType}
	if len(p.secrets) > 0 {
		p.contentTypes = append(p.contentTypes, "application/json")
	}
	return nil
}

const formContentType = "application/x-www-form-urlencoded"

// Name is "mollie".
func (*Mollie) Name() string { return "mollie" }

// ContentTypes: classic webhooks are forms; next-gen ones JSON, accepted
// only with a signing secret to check them.
func (p *Mollie) ContentTypes() []string { return p.contentTypes }

// Verify checks a next-gen webhook's signature, or a classic webhook's
// optional signature and then the payment it names, fetched back.
func (p *Mollie) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	signatures := cb.Header.Values("X-Mollie-Signature")
	if in.ContentType == "application/json" {
		if err := verify.CheckMollieSignature(p.secrets, signatures, cb.Body); err != nil {
			return verify.Result{}, err
		}
		return verify.Result{Method: "hmac-sha256"}, nil
	}
	signed := false
	if len(p.secrets) > 0 && len(signatures) > 0 {
		if err := verify.CheckMollieSignature(p.secrets, signatures, cb.Body); err != nil {
			return verify.Result{}, err
		}
		signed = true
	}
	id, err := normalize.MollieClaim(in)
	if err != nil {
		return verify.Result{}, err
	}
	cb.Claim = verify.Claim{Kind: "payment", ID: id}
	res, err := p.fetcher.Lookup(ctx, id, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Fetch(ctx, id)
	})
	if err == nil && signed {
		res.Also = append(res.Also, "hmac-sha256")
	}
	return res, err
}

// Normalize builds the payment's events from the fetched payment, or the
// event of a next-gen webhook.
func (p *Mollie) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	opts := normalize.MollieOptions{MetadataKey: p.MetadataKey}
	if len(res.Fetched) == 0 {
		ev, err := normalize.MollieEvent(in, opts)
		return appendEvent(events, ev, err)
	}
	in.Fetched = res.Fetched
	list, err := normalize.MolliePayment(in, opts)
	if err != nil {
		return events, err
	}
	return append(events, list...), nil
}

// Acknowledge answers 200 "OK": Mollie needs a 2xx.
func (*Mollie) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a classic webhook naming the sample's payment, which
// must exist where payhook fetches it: a test payment of the merchant's
// test key (--id tr_…), or a payment stored first in the demo's stand-in
// of the API (SampleAPIDocument, `caddy payhook send mollie --api …`).
func (*Mollie) Sample(s normalize.Sample) ([]byte, string, error) {
	id, err := mollieSampleID(s)
	if err != nil {
		return nil, "", err
	}
	return []byte("id=" + url.QueryEscape(id)), formContentType, nil
}

// SampleAPIDocument is the payment a stand-in of Mollie's API serves for
// the sample.
func (*Mollie) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	id, err := mollieSampleID(s)
	if err != nil {
		return "", nil, err
	}
	s.ProviderReference = id
	doc, err := normalize.MollieSamplePayment(s)
	return "/v2/payments/" + id, doc, err
}

// mollieSampleID is the sample's payment id: --id as given, or tr_ and
// the random default.
func mollieSampleID(s normalize.Sample) (string, error) {
	id := s.ProviderReference
	if !strings.HasPrefix(id, "tr_") {
		id = "tr_" + id
	}
	if err := verify.CheckMolliePaymentID(id); err != nil {
		return "", errors.New("--id: a Mollie payment id is tr_ and letters or digits")
	}
	return id, nil
}

// SignSample adds X-Mollie-Signature when a signing secret is given.
func (*Mollie) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) > 0 {
		r.Header.Set("X-Mollie-Signature", verify.SignMollie(secret, body))
	}
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Mollie)(nil)
	_ SampleSender          = (*Mollie)(nil)
	_ SampleAPIStandIn      = (*Mollie)(nil)
	_ DedupeScoper          = (*Mollie)(nil)
	_ caddy.Provisioner     = (*Mollie)(nil)
	_ caddy.Validator       = (*Mollie)(nil)
	_ caddy.CleanerUpper    = (*Mollie)(nil)
	_ caddyfile.Unmarshaler = (*Mollie)(nil)
)
