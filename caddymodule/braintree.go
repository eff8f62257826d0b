package caddymodule

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Braintree{})
}

// Braintree receives Braintree's webhooks: a form of bt_signature and
// bt_payload, the base64 of an XML notification, signed with the
// merchant's API keys (HMAC-SHA1 keyed with the SHA-1 of the private key).
// It also answers Braintree's check of a destination URL (a GET with
// bt_challenge) the way the official SDKs do.
type Braintree struct {
	// PublicKey is the public key of the API key pair Braintree signs with,
	// as the Control Panel shows it (placeholders are expanded). Required.
	PublicKey string `json:"public_key,omitempty"`

	// PrivateKey is that pair's private key. Use a placeholder. Required.
	PrivateKey string `json:"private_key,omitempty"`

	// RotationKeys are more API key pairs accepted, during a rotation:
	// Braintree signs with every active key of the account, each in a
	// pair of bt_signature. The URL check is answered with PublicKey.
	RotationKeys []BraintreeKeyPair `json:"rotation_keys,omitempty"`

	// MaxAge is how old a notification (its signed timestamp) may be:
	// Braintree retries for 24 hours; an older one is refused (401), so
	// that a notification replayed once its dedupe record is gone is not
	// delivered again. The route's default dedupe window covers it.
	// Default: 7d.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	keys   []verify.BraintreeKey
	maxAge time.Duration
}

// defaultBraintreeMaxAge is MaxAge's default: Braintree's 24 hours of
// retries and days to spare, within the default dedupe window.
const defaultBraintreeMaxAge = 7 * 24 * time.Hour

// BraintreeKeyPair is one more API key pair of a Braintree account.
type BraintreeKeyPair struct {
	// PublicKey names the pair in bt_signature.
	PublicKey string `json:"public_key"`
	// PrivateKey signs. Use a placeholder.
	PrivateKey string `json:"private_key"`
}

// CaddyModule returns the Caddy module information.
func (Braintree) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".braintree", New: func() caddy.Module { return new(Braintree) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook braintree {
//	    public_key   <public key>
//	    private_key  <value>                      # use a placeholder
//	    rotation_key <public key> <private key>   # optional, repeatable
//	    max_age      <duration>                   # default 7d
//	}
func (p *Braintree) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "public_key":
			err = singleArg(d, &p.PublicKey)
		case "private_key":
			err = singleArg(d, &p.PrivateKey)
		case "max_age":
			p.MaxAge, err = durationArg(d, "max_age")
		case "rotation_key":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("rotation_key takes a public key and a private key; got %s", argumentCount(args))
			}
			p.RotationKeys = append(p.RotationKeys, BraintreeKeyPair{PublicKey: args[0], PrivateKey: args[1]})
		default:
			return UnrecognizedOption(d, "braintree", "public_key", "private_key", "rotation_key", "max_age")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Braintree) Validate() error {
	if p.PublicKey == "" || p.PrivateKey == "" {
		return errors.New("public_key and private_key are required (public_key … and private_key {env.BRAINTREE_PRIVATE_KEY})")
	}
	if p.MaxAge < 0 {
		return fmt.Errorf("max_age must be positive, got %s", time.Duration(p.MaxAge))
	}
	for i, pair := range p.RotationKeys {
		if pair.PublicKey == "" || pair.PrivateKey == "" {
			return fmt.Errorf("rotation_key #%d: a public key and a private key are required", i+1)
		}
	}
	return nil
}

// Provision expands the private keys.
func (p *Braintree) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p.maxAge = cmp.Or(time.Duration(p.MaxAge), defaultBraintreeMaxAge)
	p.keys = nil
	for i, pair := range append([]BraintreeKeyPair{{p.PublicKey, p.PrivateKey}}, p.RotationKeys...) {
		publicOption, privateOption := "public_key", "private_key"
		if i > 0 {
			publicOption = fmt.Sprintf("rotation_key #%d: public key", i)
			privateOption = fmt.Sprintf("rotation_key #%d: private key", i)
		}
		public, err := Setting(publicOption, pair.PublicKey)
		if err != nil {
			return err
		}
		if err := verify.CheckBraintreePublicKey(public); err != nil {
			return fmt.Errorf("%s: %w", publicOption, err)
		}
		private, err := Secret(ctx.Logger(), privateOption, pair.PrivateKey)
		if err != nil {
			return err
		}
		p.keys = append(p.keys, verify.BraintreeKey{PublicKey: public, PrivateKey: private})
	}
	return nil
}

// Name is "braintree".
func (*Braintree) Name() string { return "braintree" }

// ContentTypes: Braintree posts a form.
func (*Braintree) ContentTypes() []string { return []string{formContentType} }

// Verify checks bt_signature over bt_payload before anything of the
// payload is decoded.
func (p *Braintree) Verify(_ context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	signature, payload, err := verify.ParseBraintreeForm(cb.Body)
	if err != nil {
		return verify.Result{}, err
	}
	if _, err := verify.CheckBraintreeSignature(p.keys, signature, payload); err != nil {
		return verify.Result{}, err
	}
	return verify.Result{Method: "hmac-sha1"}, nil
}

// Normalize builds the notification's event from the verified payload,
// whose timestamp must lie within max_age (and no more than
// DefaultMaxSkew ahead).
func (p *Braintree) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	ev, err := normalize.Braintree(in)
	if err != nil {
		return events, err
	}
	if err := verify.CheckBraintreeTimestamp(ev.Time, time.Now(), p.maxAge, DefaultMaxSkew); err != nil {
		return events, err
	}
	return append(events, ev), nil
}

// RetryPeriod is max_age: the dedupe window, unless set, covers every
// notification the route accepts, and a day more.
func (p *Braintree) RetryPeriod() time.Duration {
	return cmp.Or(time.Duration(p.MaxAge), defaultBraintreeMaxAge)
}

// Acknowledge answers 200 "OK": Braintree needs a 2xx within 30 seconds,
// else it retries every hour, for up to 24 hours (3 in the sandbox).
func (*Braintree) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Challenge answers Braintree's check of a destination URL: a GET whose
// bt_challenge holds 20 to 32 lower-case hex digits, answered
// "public_key|" and their signature, as the SDKs' verify does.
func (p *Braintree) Challenge(method string, u *url.URL) (string, error) {
	if method != http.MethodGet {
		return "", errNoChallenge
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", errNoChallenge
	}
	challenges := query[verify.BraintreeChallengeParam]
	switch {
	case len(challenges) == 0:
		return "", errNoChallenge
	case len(challenges) > 1:
		return "", fmt.Errorf("%w: %s given %d times", normalize.ErrMalformed, verify.BraintreeChallengeParam, len(challenges))
	}
	answer, err := verify.AnswerBraintreeChallenge(p.keys[0], challenges[0])
	if err != nil {
		return "", fmt.Errorf("%w: %v", normalize.ErrMalformed, err)
	}
	return answer, nil
}

// Sample fabricates a notification for s, in the shapes of Braintree's
// own samples: transaction_settled, transaction_settlement_declined,
// refund_failed, dispute_opened or dispute_won. Its payload is base64 in
// lines, as Braintree's gateway sends it; SignSample signs it.
func (*Braintree) Sample(s normalize.Sample) ([]byte, string, error) {
	doc, err := normalize.BraintreeSampleXML(s, time.Now())
	if err != nil {
		return nil, "", err
	}
	return []byte(url.Values{verify.BraintreePayloadField: {braintreeBase64Lines(doc)}}.Encode()), formContentType, nil
}

// SignSample adds bt_signature to the sample's form, signed with secret,
// given as "public_key|private_key" (the public key the route names, and
// its private key). r's body is replaced by the signed form.
func (*Braintree) SignSample(r *http.Request, body []byte, secret []byte) error {
	public, private, ok := strings.Cut(string(secret), "|")
	if !ok || public == "" || private == "" {
		return errors.New(`--secret: braintree signs with a key pair: give "public_key|private_key"`)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return err
	}
	key := verify.BraintreeKey{PublicKey: public, PrivateKey: []byte(private)}
	form.Set(verify.BraintreeSignatureField, verify.SignBraintree(key, form.Get(verify.BraintreePayloadField)))
	signed := []byte(form.Encode())
	r.Body = io.NopCloser(bytes.NewReader(signed))
	r.ContentLength = int64(len(signed))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(signed)), nil }
	return nil
}

// braintreeBase64Lines encodes doc as Braintree's gateway does (Ruby's
// Base64.encode64): lines of 60 characters, each ending in a newline.
func braintreeBase64Lines(doc []byte) string {
	encoded := base64.StdEncoding.EncodeToString(doc)
	var b strings.Builder
	for len(encoded) > 60 {
		b.WriteString(encoded[:60] + "\n")
		encoded = encoded[60:]
	}
	b.WriteString(encoded + "\n")
	return b.String()
}

// Interface guards.
var (
	_ Provider              = (*Braintree)(nil)
	_ Challenger            = (*Braintree)(nil)
	_ Retrier               = (*Braintree)(nil)
	_ SampleSender          = (*Braintree)(nil)
	_ caddy.Provisioner     = (*Braintree)(nil)
	_ caddy.Validator       = (*Braintree)(nil)
	_ caddyfile.Unmarshaler = (*Braintree)(nil)
)
