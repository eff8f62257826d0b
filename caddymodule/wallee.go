package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Wallee{})
	caddy.RegisterModule(PostFinance{})
}

// Wallee receives wallee's webhook notifications.
type Wallee struct{ walleePlatform }

// PostFinance receives PostFinance Checkout's webhook notifications:
// PostFinance Checkout is wallee's platform under PostFinance's name and
// host, with the same notifications, signatures and API.
type PostFinance struct{ walleePlatform }

// CaddyModule returns the Caddy module information.
func (Wallee) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".wallee", New: func() caddy.Module { return new(Wallee) }}
}

// CaddyModule returns the Caddy module information.
func (PostFinance) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".postfinance", New: func() caddy.Module { return new(PostFinance) }}
}

// The platforms' APIs (the SDKs' default hosts, /api and all; the
// PostFinance PHP SDK 4.x points at app-wallee.com, its documentation at
// checkout.postfinance.ch: both serve the same platform).
const (
	walleeAPI      = "https://app-wallee.com/api"
	postFinanceAPI = "https://checkout.postfinance.ch/api"
)

// Name is "wallee".
func (*Wallee) Name() string { return "wallee" }

// Name is "postfinance".
func (*PostFinance) Name() string { return "postfinance" }

// Provision expands the credentials and creates the API client.
func (p *Wallee) Provision(ctx caddy.Context) error { return p.provision(ctx, walleeAPI) }

// Provision expands the credentials and creates the API client.
func (p *PostFinance) Provision(ctx caddy.Context) error { return p.provision(ctx, postFinanceAPI) }

// walleePlatform is what wallee and PostFinance Checkout share: all of it.
// A notification signed by the platform (X-Signature, from listeners with
// "payload signature and state" enabled) is checked against the
// platform's public key, read from the API by key id and cached; an
// unsigned one is verified by reading the entity it names. Either way the
// entity (a Transaction or a Refund) is read from the API: the
// notification carries no amount.
type walleePlatform struct {
	// UserID is the id of the application user payhook reads the API as
	// (Account > Users > Application users). Required.
	UserID string `json:"user_id,omitempty"`
	// AuthenticationKey is that user's authentication key, base64 as the
	// platform shows it once. Use a placeholder. Required.
	AuthenticationKey string `json:"authentication_key,omitempty"`
	// SpaceID, when set, is the only space whose notifications are
	// accepted (400 for any other).
	SpaceID string `json:"space_id,omitempty"`
	// RequireSignature refuses unsigned notifications (401): for
	// listeners that all have "payload signature and state" enabled, so
	// that nobody can make payhook read an entity without a signature.
	RequireSignature bool `json:"require_signature,omitempty"`

	API

	verifier *verify.Wallee
}

// walleeSignedMethod is data.verification.method of a signed notification.
const walleeSignedMethod = "ecdsa-p256-sha256"

var walleeOptions = []string{"user_id", "authentication_key", "space_id", "require_signature"}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook wallee|postfinance {
//	    user_id            <id>       # the application user's id
//	    authentication_key <value>    # its authentication key (base64)
//	    space_id           <id>       # optional: only this space's notifications
//	    require_signature             # optional: refuse unsigned notifications
//	    api_base           <url>      # default https://app-wallee.com/api or https://checkout.postfinance.ch/api
//	    api_timeout        <duration> # per API request; default 5s
//	    api_rate           <n>        # API requests per second; default 50
//	}
func (p *walleePlatform) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	provider := d.Val()
	for d.NextBlock(0) {
		if ok, err := p.unmarshalAPIOption(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		var err error
		switch d.Val() {
		case "user_id":
			err = singleArg(d, &p.UserID)
		case "authentication_key":
			err = singleArg(d, &p.AuthenticationKey)
		case "space_id":
			err = singleArg(d, &p.SpaceID)
		case "require_signature":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.RequireSignature = true
		default:
			return UnrecognizedOption(d, provider, append(walleeOptions, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *walleePlatform) Validate() error {
	switch {
	case p.UserID == "":
		return errors.New("user_id is required: the application user's id (user_id {env.WALLEE_USER_ID})")
	case p.AuthenticationKey == "":
		return errors.New("authentication_key is required (authentication_key {env.WALLEE_AUTHENTICATION_KEY})")
	}
	return p.validateAPI()
}

func (p *walleePlatform) provision(ctx caddy.Context, defaultBase string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	userID, err := Setting("user_id", p.UserID)
	if err != nil {
		return err
	}
	if verify.CheckWalleeID(userID) != nil {
		return errors.New("user_id: the application user's id is a number")
	}
	key, err := DecodedSecrets(ctx.Logger(), "authentication_key", []string{p.AuthenticationKey}, func(s string) ([]byte, error) {
		decoded, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(decoded) == 0 {
			return nil, errors.New("not base64: use the authentication key exactly as the platform shows it")
		}
		return decoded, nil
	})
	if err != nil {
		return err
	}
	if p.SpaceID != "" {
		space, err := Setting("space_id", p.SpaceID)
		if err != nil {
			return err
		}
		if verify.CheckWalleeID(space) != nil {
			return fmt.Errorf("space_id: a space's id is a number, got %q", space)
		}
		p.SpaceID = space
	}
	if err := p.provisionAPI(defaultBase); err != nil {
		return err
	}
	p.verifier = &verify.Wallee{APIBase: p.base, UserID: userID, AuthenticationKey: key[0], Fetcher: p.fetcher}
	return nil
}

// ContentTypes: the platform posts JSON.
func (*walleePlatform) ContentTypes() []string { return jsonOnly }

// Verify checks the signature when there is one (no parsing before it),
// then reads the notification (bounded) and the entity it names from the
// API, within the API's rate; an unsigned notification is verified by that
// read alone.
func (p *walleePlatform) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	signatures := cb.Header.Values("X-Signature")
	if len(signatures) > 1 {
		return verify.Result{}, fmt.Errorf("%w: %d X-Signature headers", verify.ErrMalformedSignature, len(signatures))
	}
	signed := len(signatures) == 1
	switch {
	case signed:
		if _, err := p.verifier.VerifySignature(ctx, signatures[0], cb.Body); err != nil {
			return verify.Result{}, err
		}
	case p.RequireSignature:
		return verify.Result{}, fmt.Errorf("%w: no X-Signature, and require_signature is on", verify.ErrNotSigned)
	}
	n, err := normalize.ReadWalleeNotification(in)
	if err != nil {
		return verify.Result{}, err
	}
	if p.SpaceID != "" && n.SpaceID != p.SpaceID {
		return verify.Result{}, fmt.Errorf("%w: a notification of space %s, not of space %s", verify.ErrBadResource, n.SpaceID, p.SpaceID)
	}
	if !verify.WalleeEntityKnown(n.Kind) {
		return verify.Result{}, fmt.Errorf("%w: payhook reads Transaction and Refund notifications, not %.32q (configure the webhook listener for those)", verify.ErrBadResource, n.Kind)
	}
	cb.Claim = verify.Claim{Kind: n.Kind, ID: n.SpaceID + "/" + n.EntityID, Status: n.State}
	resource := fmt.Sprintf("%s %s in space %s", n.Kind, n.EntityID, n.SpaceID)
	res, err := p.fetcher.Lookup(ctx, resource, func(ctx context.Context) (verify.Result, error) {
		entity, err := p.verifier.Entity(ctx, n.Kind, n.SpaceID, n.EntityID)
		if err != nil {
			return verify.Result{}, err
		}
		return verify.Result{Method: "api-fetch", Resource: resource, Fetched: entity}, nil
	})
	if err != nil {
		return res, err
	}
	res.Status = gjson.GetBytes(res.Fetched, "state").String()
	if signed {
		res.Method, res.Also = walleeSignedMethod, []string{"api-fetch"}
	} else if n.State != "" && n.State != res.Status {
		res.ClaimedStatus = n.State
	}
	return res, nil
}

// Normalize builds the event from the fetched entity, and the notification
// when it was signed.
func (p *walleePlatform) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched = res.Fetched
	ev, err := normalize.Wallee(in, res.Method == walleeSignedMethod)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK": the platform retries a notification
// answered with anything but a 2xx.
func (*walleePlatform) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a notification naming a Transaction; the reference
// is "<spaceId>/<transactionId>", and payhook reads that transaction from
// the API.
func (*walleePlatform) Sample(s normalize.Sample) ([]byte, string, error) {
	return normalize.WalleeSample(s)
}

// SampleAPIDocument is the transaction a stand-in of the platform's API
// (the demo's) serves for the sample.
func (*walleePlatform) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	space, id, doc, err := normalize.WalleeSampleTransaction(s)
	return "/api/transaction/read?spaceId=" + space + "&id=" + id, doc, err
}

// SignSample signs the notification as the platform does when secret is a
// P-256 private key (base64 of its PKCS #8 DER, as `openssl pkcs8 -topk8
// -nocrypt -outform DER | base64` prints it), under the key id
// walleeSampleKeyID names: only the platform holds its signing key, so
// this signs for a stand-in of its API that serves the key's public half
// (the demo's). Without a secret the notification goes unsigned, and
// payhook verifies it by reading the transaction it names.
func (*walleePlatform) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return nil
	}
	der, err := base64.StdEncoding.DecodeString(string(secret))
	if err != nil {
		return errors.New("--secret: want a P-256 private key, base64 of its PKCS #8 DER")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	key, ok := parsed.(*ecdsa.PrivateKey)
	if err != nil || !ok || key.Curve != elliptic.P256() {
		return errors.New("--secret: want a P-256 private key, base64 of its PKCS #8 DER")
	}
	keyID, err := walleeSampleKeyID(&key.PublicKey)
	if err != nil {
		return err
	}
	signature, err := verify.SignWallee(key, keyID, body)
	if err != nil {
		return err
	}
	r.Header.Set("X-Signature", signature)
	return nil
}

// walleeSampleKeyID is the key id a sample signed with the public key's
// private half names: a UUID made of the key's SHA-256, so that a stand-in
// of the API serving the key knows it by the same id.
func walleeSampleKeyID(public *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(public)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// Interface guards.
var (
	_ Provider              = (*Wallee)(nil)
	_ Provider              = (*PostFinance)(nil)
	_ SampleSender          = (*Wallee)(nil)
	_ SampleSender          = (*PostFinance)(nil)
	_ SampleAPIStandIn      = (*Wallee)(nil)
	_ SampleAPIStandIn      = (*PostFinance)(nil)
	_ DedupeScoper          = (*Wallee)(nil)
	_ caddy.Provisioner     = (*Wallee)(nil)
	_ caddy.Provisioner     = (*PostFinance)(nil)
	_ caddy.Validator       = (*Wallee)(nil)
	_ caddy.CleanerUpper    = (*Wallee)(nil)
	_ caddyfile.Unmarshaler = (*Wallee)(nil)
	_ caddyfile.Unmarshaler = (*PostFinance)(nil)
)
