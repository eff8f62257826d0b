package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(PayPal{})
}

// PayPal receives PayPal's webhooks, verified by PayPal's own API
// (verify-webhook-signature, with an OAuth2 token cached until it expires)
// after cheap checks of the PAYPAL-* headers and the body.
type PayPal struct {
	// ClientID and ClientSecret are the REST app's credentials. Use
	// placeholders. Required.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// WebhookID is the webhook's id, as the app's settings show it.
	// Required.
	WebhookID string `json:"webhook_id,omitempty"`

	// MaxSkew bounds how far PAYPAL-TRANSMISSION-TIME may lie from now,
	// either way. Default: 4 days, a day more than PayPal retries for: an
	// older transmission is refused, since its signature (over the body's
	// CRC32) would verify a body of anyone's making (see docs/paypal.md).
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	API

	verifier *verify.PayPal
	test     *bool
}

// CaddyModule returns the Caddy module information.
func (PayPal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".paypal", New: func() caddy.Module { return new(PayPal) }}
}

// payPalAPI is PayPal's live API; its sandbox is
// https://api-m.sandbox.paypal.com.
const payPalAPI = "https://api-m.paypal.com"

// payPalHosts tells the API hosts' environments.
var payPalHosts = map[string]bool{
	"api-m.paypal.com": false, "api.paypal.com": false, "api-m.sandbox.paypal.com": true, "api.sandbox.paypal.com": true,
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook paypal {
//	    client_id     <value>
//	    client_secret <value>
//	    webhook_id    <value>
//	    max_skew      <duration> # default 4 days
//	    api_base      <url>      # default https://api-m.paypal.com
//	    api_timeout   <duration> # per API request; default 5s
//	    api_rate      <n>        # API requests per second; default 50
//	}
func (p *PayPal) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		case "client_id":
			err = singleArg(d, &p.ClientID)
		case "client_secret":
			err = singleArg(d, &p.ClientSecret)
		case "webhook_id":
			err = singleArg(d, &p.WebhookID)
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		default:
			return UnrecognizedOption(d, "paypal", append([]string{"client_id", "client_secret", "webhook_id", "max_skew"}, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *PayPal) Validate() error {
	switch {
	case p.ClientID == "":
		return errors.New("client_id is required (client_id {env.PAYPAL_CLIENT_ID})")
	case p.ClientSecret == "":
		return errors.New("client_secret is required (client_secret {env.PAYPAL_CLIENT_SECRET})")
	case p.WebhookID == "":
		return errors.New("webhook_id is required (webhook_id {env.PAYPAL_WEBHOOK_ID})")
	case p.MaxSkew < 0:
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	return p.validateAPI()
}

// Provision expands the credentials and creates the API client.
func (p *PayPal) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	clientID, err := Setting("client_id", p.ClientID)
	if err != nil {
		return err
	}
	secret, err := Secret(ctx.Logger(), "client_secret", p.ClientSecret)
	if err != nil {
		return err
	}
	webhookID, err := Setting("webhook_id", p.WebhookID)
	if err != nil {
		return err
	}
	for _, c := range webhookID {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') || len(webhookID) > 50 {
			return errors.New("webhook_id: PayPal's webhook ids are letters and digits (the id of the webhook, not of the app)")
		}
	}
	if err := p.provisionAPI(payPalAPI); err != nil {
		return err
	}
	p.test = apiEnvironment(payPalHosts, p.base)
	maxSkew := time.Duration(p.MaxSkew)
	if maxSkew == 0 {
		maxSkew = DefaultPayPalMaxSkew
	}
	p.verifier = &verify.PayPal{APIBase: p.base, ClientID: []byte(clientID), ClientSecret: secret, WebhookID: webhookID,
		MaxSkew: maxSkew, Fetcher: p.fetcher}
	return nil
}

// DefaultPayPalMaxSkew is PayPal's max_skew when none is set: PayPal
// retries a webhook for 3 days, and a day more leaves room for any clock.
// It is shorter than the default dedupe window (8 days), so a transmission
// is remembered for as long as it is accepted.
const DefaultPayPalMaxSkew = 4 * 24 * time.Hour

// Name is "paypal".
func (*PayPal) Name() string { return "paypal" }

// ContentTypes: PayPal posts JSON.
func (*PayPal) ContentTypes() []string { return jsonOnly }

// Transmission checks the headers and the transmission time (cheap, no
// network) and returns the transmission's id. PayPal signs the body's
// CRC32, not a digest: whoever holds a genuine transmission can build
// another body that PayPal's API verifies under it, so the handler binds
// each transmission to the first body it receives under it, before Verify
// asks the API anything.
func (p *PayPal) Transmission(cb *verify.Callback) (string, error) {
	t, err := verify.ReadPayPalTransmission(cb.Header)
	if err != nil {
		return "", err
	}
	if err := p.verifier.CheckTime(t, time.Now()); err != nil {
		return "", err
	}
	return t.ID, nil
}

// TransmissionWindow is max_skew: how long after it was sent PayPal's
// transmission is accepted.
func (p *PayPal) TransmissionWindow() time.Duration { return p.verifier.MaxSkew }

// Verify checks the headers and the transmission time (cheap), reads the
// body (bounded), then asks PayPal's API.
func (p *PayPal) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	t, err := verify.ReadPayPalTransmission(cb.Header)
	if err != nil {
		return verify.Result{}, err
	}
	if err := p.verifier.CheckTime(t, time.Now()); err != nil {
		return verify.Result{}, err
	}
	if _, err := normalize.PayPalEvent(in); err != nil {
		return verify.Result{}, err
	}
	return p.fetcher.Lookup(ctx, t.ID, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Verify(ctx, t, cb.Body)
	})
}

// Normalize builds the event from the verified body.
func (p *PayPal) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Test = p.test
	ev, err := normalize.PayPal(in)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK": PayPal needs a 2xx.
func (*PayPal) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a webhook event; only the demo's stand-in of PayPal's
// API (caddy payhook demo) verifies what SignSample signs.
func (*PayPal) Sample(s normalize.Sample) ([]byte, string, error) {
	body, err := normalize.PayPalSample(s)
	return body, "application/json", err
}

// SignSample sets the PAYPAL-* headers the way the demo's stand-in of
// PayPal's API checks them: secret is the webhook id, and the signature
// is an HMAC where PayPal's is RSA (payhook cannot sign as PayPal).
func (*PayPal) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: the webhook id the demo's route is configured with")
	}
	id := "payhook-" + randomID()
	at := time.Now().UTC().Format(time.RFC3339)
	r.Header.Set("Paypal-Transmission-Id", id)
	r.Header.Set("Paypal-Transmission-Time", at)
	r.Header.Set("Paypal-Auth-Algo", "SHA256withRSA")
	r.Header.Set("Paypal-Cert-Url", "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-payhook-demo")
	r.Header.Set("Paypal-Transmission-Sig", demoPayPalSignature(id, at, string(secret), body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// demoPayPalSignature is the demo stand-in's signature over what PayPal
// signs: transmission id, time, webhook id and the body's CRC32.
func demoPayPalSignature(id, at, webhookID string, body []byte) string {
	return verify.SignBase64HMACSHA256([]byte(webhookID), []byte(fmt.Sprintf("%s|%s|%s|%d", id, at, webhookID, crc32.ChecksumIEEE(body))))
}

// Interface guards.
var (
	_ Provider              = (*PayPal)(nil)
	_ WeaklySigned          = (*PayPal)(nil)
	_ SampleSender          = (*PayPal)(nil)
	_ DedupeScoper          = (*PayPal)(nil)
	_ caddy.Provisioner     = (*PayPal)(nil)
	_ caddy.Validator       = (*PayPal)(nil)
	_ caddy.CleanerUpper    = (*PayPal)(nil)
	_ caddyfile.Unmarshaler = (*PayPal)(nil)
)
