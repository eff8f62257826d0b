package caddymodule

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(StandardWebhooks{})
}

// StandardWebhooks receives webhooks signed with the Standard Webhooks
// scheme (standardwebhooks.com): v1 (HMAC-SHA256 with whsec_ secrets) and
// v1a (ed25519 with whpk_ public keys), the headers webhook-id,
// webhook-timestamp and webhook-signature, or a vendor's copy under its own
// prefix (svix-id, …). Without a map the envelope is forwarded with the
// body as data.original and status unknown; its id is the webhook-id's.
type StandardWebhooks struct {
	// ProviderName is the provider's name in the envelope and the logs
	// (Caddyfile: name). Default: standard_webhooks.
	ProviderName string `json:"provider_name,omitempty"`

	// Secrets are v1 secrets, whsec_<base64>; any one verifies. Use
	// placeholders.
	Secrets []string `json:"secrets,omitempty"`

	// PublicKeys are v1a public keys, whpk_<base64>; any one verifies.
	PublicKeys []string `json:"public_keys,omitempty"`

	// MaxSkew is how far webhook-timestamp may lie in the past or the
	// future. Default: 5m.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// HeaderPrefix is the headers' prefix: webhook (default) or a
	// vendor's, such as svix.
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// Mapping maps the payload into the envelope (Caddyfile: map).
	Mapping *normalize.Mapping `json:"map,omitempty"`

	verifier   *verify.StandardWebhooks
	sampleBody string // send --body
}

// CaddyModule returns the Caddy module information.
func (StandardWebhooks) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".standard_webhooks", New: func() caddy.Module { return new(StandardWebhooks) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook standard_webhooks {
//	    name          <provider>   # the name in the envelope; default standard_webhooks
//	    secret        whsec_…      # v1, repeatable
//	    public_key    whpk_…       # v1a, repeatable
//	    max_skew      <duration>   # default 5m
//	    header_prefix svix         # default webhook
//	    map { … }                  # see unmarshalMapping
//	}
func (p *StandardWebhooks) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "name":
			err = singleArg(d, &p.ProviderName)
		case "secret":
			err = appendArg(d, &p.Secrets)
		case "public_key":
			err = appendArg(d, &p.PublicKeys)
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		case "header_prefix":
			err = singleArg(d, &p.HeaderPrefix)
		case "map":
			p.Mapping, err = unmarshalMapping(d)
		default:
			return UnrecognizedOption(d, "standard_webhooks", "name", "secret", "public_key", "max_skew", "header_prefix", "map")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// providerName checks a configured provider name.
var providerName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Validate checks the configuration.
func (p *StandardWebhooks) Validate() error {
	if len(p.Secrets) == 0 && len(p.PublicKeys) == 0 {
		return errors.New("at least one secret (whsec_…) or public_key (whpk_…) is required")
	}
	if p.ProviderName != "" && !providerName.MatchString(p.ProviderName) {
		return fmt.Errorf("name %q: lower-case letters, digits, '_' and '-'", p.ProviderName)
	}
	if p.HeaderPrefix != "" && !providerName.MatchString(p.HeaderPrefix) {
		return fmt.Errorf("header_prefix %q: lower-case letters, digits, '_' and '-'", p.HeaderPrefix)
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	if p.Mapping != nil {
		if err := p.Mapping.Check(); err != nil {
			return fmt.Errorf("map: %w", err)
		}
	}
	return nil
}

// Provision expands and decodes the keys.
func (p *StandardWebhooks) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	v := &verify.StandardWebhooks{HeaderPrefix: p.HeaderPrefix, MaxSkew: time.Duration(p.MaxSkew)}
	if v.MaxSkew == 0 {
		v.MaxSkew = DefaultMaxSkew
	}
	var err error
	if v.Secrets, err = DecodedSecrets(ctx.Logger(), "secret", p.Secrets, verify.DecodeStandardWebhooksSecret); err != nil {
		return err
	}
	for i, s := range p.PublicKeys {
		value, err := Setting("public_key", s)
		if err != nil {
			return err
		}
		key, err := verify.DecodeStandardWebhooksPublicKey(value)
		if err != nil {
			return fmt.Errorf("public_key #%d: %w", i+1, err)
		}
		v.PublicKeys = append(v.PublicKeys, key)
	}
	p.verifier = v
	return nil
}

// Name is the configured name, else "standard_webhooks".
func (p *StandardWebhooks) Name() string {
	if p.ProviderName != "" {
		return p.ProviderName
	}
	return "standard_webhooks"
}

// ContentTypes: Standard Webhooks payloads are JSON.
func (*StandardWebhooks) ContentTypes() []string { return jsonOnly }

// Verify checks the id, the timestamp and the signatures, over the raw
// bytes, before anything is parsed.
func (p *StandardWebhooks) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	return p.verifier.Verify(ctx, cb)
}

// Normalize maps the payload; the event's id is the webhook-id's.
func (p *StandardWebhooks) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	return mapEvents(p.Mapping, in, res.NotificationID, events)
}

// Acknowledge answers 200 "OK": Standard Webhooks senders take any 2xx.
func (*StandardWebhooks) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// signRequest makes r, whose body is body, authentic with secret at now,
// as a Standard Webhooks sender does.
func (p *StandardWebhooks) signRequest(r *http.Request, body []byte, secret string, now time.Time) error {
	return signStandardWebhooks(r, body, secret, p.HeaderPrefix, "msg_"+randomID(), now)
}

// signStandardWebhooks signs r's body as a Standard Webhooks sender does,
// with secret (whsec_…) or, for v1a, a whsk_ secret key.
func signStandardWebhooks(r *http.Request, body []byte, secret, prefix, id string, at time.Time) error {
	if prefix == "" {
		prefix = "webhook"
	}
	timestamp := strconv.FormatInt(at.Unix(), 10)
	var signature string
	if private, err := verify.DecodeStandardWebhooksPrivateKey(secret); err == nil && len(secret) > 5 && secret[:5] == "whsk_" {
		signature = verify.SignStandardWebhooksV1a(ed25519.PrivateKey(private), id, timestamp, body)
	} else {
		key, err := verify.DecodeStandardWebhooksSecret(secret)
		if err != nil {
			return err
		}
		signature = verify.SignStandardWebhooks(key, id, timestamp, body)
	}
	r.Header.Set(prefix+"-id", id)
	r.Header.Set(prefix+"-timestamp", timestamp)
	r.Header.Set(prefix+"-signature", signature)
	return nil
}

// Interface guards.
var (
	_ Provider              = (*StandardWebhooks)(nil)
	_ caddy.Provisioner     = (*StandardWebhooks)(nil)
	_ caddy.Validator       = (*StandardWebhooks)(nil)
	_ caddyfile.Unmarshaler = (*StandardWebhooks)(nil)
)
