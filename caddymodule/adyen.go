package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Adyen{})
}

// Adyen receives Adyen's standard webhooks: a batch of
// NotificationRequestItems, each signed on its own by its hmacSignature.
// Every item must verify, or the whole callback is refused with nothing
// forwarded; each becomes its own envelope, delivered in order. Adyen
// expects "[accepted]".
type Adyen struct {
	// HMACKeys are the webhook's HMAC keys, hex as the Customer Area shows
	// them; several during a rotation. Use placeholders. Required.
	HMACKeys []string `json:"hmac_keys,omitempty"`

	// Username and Password, when set, are also required as the callback's
	// HTTP basic authentication (the webhook's optional credentials).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	keys      [][]byte
	basicAuth *verify.BasicAuth
}

// CaddyModule returns the Caddy module information.
func (Adyen) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".adyen", New: func() caddy.Module { return new(Adyen) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook adyen {
//	    hmac_key <hex>    # repeatable, for a rotation
//	    username <value>  # optional basic authentication, with password
//	    password <value>
//	}
func (p *Adyen) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "hmac_key":
			err = appendArg(d, &p.HMACKeys)
		case "username":
			err = singleArg(d, &p.Username)
		case "password":
			err = singleArg(d, &p.Password)
		default:
			return UnrecognizedOption(d, "adyen", "hmac_key", "username", "password")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Adyen) Validate() error {
	if len(p.HMACKeys) == 0 {
		return errors.New("at least one hmac_key is required (hmac_key {env.ADYEN_HMAC_KEY})")
	}
	if (p.Username == "") != (p.Password == "") {
		return errors.New("username and password go together")
	}
	return nil
}

// Provision expands and decodes the keys and credentials.
func (p *Adyen) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	var err error
	if p.keys, err = DecodedSecrets(ctx.Logger(), "hmac_key", p.HMACKeys, verify.DecodeAdyenHMACKey); err != nil {
		return err
	}
	if p.Username != "" {
		user, err := Setting("username", p.Username)
		if err != nil {
			return err
		}
		pass, err := Secret(ctx.Logger(), "password", p.Password)
		if err != nil {
			return err
		}
		p.basicAuth = &verify.BasicAuth{Username: []byte(user), Password: pass}
	}
	return nil
}

// Name is "adyen".
func (*Adyen) Name() string { return "adyen" }

// RetryPeriod: Adyen retries a notification it was not answered 2xx for
// up to 30 days (docs.adyen.com, "Troubleshoot webhooks", retry queue), so
// the default dedupe window is 31 days on Adyen's routes.
func (*Adyen) RetryPeriod() time.Duration { return 30 * 24 * time.Hour }

// ContentTypes: Adyen posts JSON.
func (*Adyen) ContentTypes() []string { return jsonOnly }

// Verify checks the basic authentication (cheap, first), then reads the
// items (bounded) and checks every item's signature.
func (p *Adyen) Verify(_ context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	res := verify.Result{Method: "hmac-sha256"}
	if p.basicAuth != nil {
		if err := p.basicAuth.Check(cb); err != nil {
			return verify.Result{}, err
		}
		res.Also = append(res.Also, p.basicAuth.Name())
	}
	items, _, err := normalize.AdyenItems(in)
	if err != nil {
		return verify.Result{}, err
	}
	for i := range items {
		if err := verify.CheckAdyenItem(p.keys, items[i].SignedData(), items[i].HMACSignature); err != nil {
			return verify.Result{}, fmt.Errorf("item %d of %d: %w", i+1, len(items), err)
		}
	}
	return res, nil
}

// Normalize makes one event per item, in the order Adyen lists them.
func (p *Adyen) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	items, err := normalize.Adyen(in)
	if err != nil {
		return events, err
	}
	return append(events, items...), nil
}

var ackAccepted = ackText("[accepted]")

// Acknowledge answers 200 "[accepted]", which Adyen's tools still expect.
func (*Adyen) Acknowledge(w http.ResponseWriter) int { return ackAccepted(w) }

// Sample fabricates a notification of one item, to be signed by SignSample.
func (*Adyen) Sample(s normalize.Sample) ([]byte, string, error) {
	item, err := normalize.AdyenSampleItem(s)
	if err != nil {
		return nil, "", err
	}
	body, err := normalize.AdyenNotification(item)
	return body, "application/json", err
}

// SignSample signs every item of r's notification with the hex HMAC key
// secret, replacing r's body.
func (*Adyen) SignSample(r *http.Request, body []byte, secret []byte) error {
	key, err := verify.DecodeAdyenHMACKey(string(secret))
	if err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	signed, err := signAdyenNotification(body, key)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(signed))
	r.ContentLength = int64(len(signed))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(signed)), nil }
	return nil
}

// signAdyenNotification sets every item's hmacSignature, with the
// verifier's own code, over the items as they are sent: their signed
// fields are read back from the notification re-encoded without the
// signatures, which do not change them.
func signAdyenNotification(body, key []byte) ([]byte, error) {
	var doc struct {
		Items []struct {
			Item map[string]any `json:"NotificationRequestItem"`
		} `json:"notificationItems"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	items := make([]map[string]any, len(doc.Items))
	for i, wrapper := range doc.Items {
		items[i] = wrapper.Item
	}
	unsigned, err := normalize.AdyenNotification(items...)
	if err != nil {
		return nil, err
	}
	parsed, _, err := normalize.AdyenItems(&normalize.Input{Body: unsigned})
	if err != nil {
		return nil, err
	}
	for i, item := range items {
		additional, _ := item["additionalData"].(map[string]any)
		if additional == nil {
			additional = map[string]any{}
		}
		additional["hmacSignature"] = verify.SignAdyen(key, parsed[i].SignedData())
		item["additionalData"] = additional
	}
	return normalize.AdyenNotification(items...)
}

// Interface guards.
var (
	_ Provider              = (*Adyen)(nil)
	_ SampleSender          = (*Adyen)(nil)
	_ Retrier               = (*Adyen)(nil)
	_ caddy.Provisioner     = (*Adyen)(nil)
	_ caddy.Validator       = (*Adyen)(nil)
	_ caddyfile.Unmarshaler = (*Adyen)(nil)
)
