package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Payone{})
}

// Payone receives PAYONE's TransactionStatus notifications: form posts in
// ISO-8859-1 that sign nothing but carry the MD5 of the payment portal's
// key ("key"), the portal's id ("portalid") and the sub-account's ("aid").
// payhook checks all three, and, unless the route says otherwise
// (allow_ips), that they come from PAYONE's published addresses. PAYONE
// expects exactly "TSOK": without it, it retries (for up to 48 hours) and
// sends no further status of the transaction.
type Payone struct {
	// PortalKeys are the payment portal's key ("Key" of the portal's
	// configuration in the PMI), several during a change of key. Use
	// placeholders. Required.
	PortalKeys []string `json:"portal_keys,omitempty"`

	// PortalID is the payment portal's id; a notification of another is
	// refused. Required.
	PortalID string `json:"portal_id,omitempty"`

	// AccountID is the sub-account's id (aid); a notification of another
	// is refused. Required.
	AccountID string `json:"account_id,omitempty"`

	verifier *verify.Payone
	portalID string // expanded
	aid      string // expanded

	// sendPortalID and sendAccountID are the ids `caddy payhook send`
	// puts in its sample (--portal-id, --account-id).
	sendPortalID, sendAccountID string
}

// CaddyModule returns the Caddy module information.
func (Payone) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".payone", New: func() caddy.Module { return new(Payone) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook payone {
//	    portal_key <value>  # repeatable, for a change of key
//	    portal_id  <id>     # the payment portal's id (portalid)
//	    account_id <id>     # the sub-account's id (aid)
//	}
func (p *Payone) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "portal_key":
			err = appendArg(d, &p.PortalKeys)
		case "portal_id":
			err = singleArg(d, &p.PortalID)
		case "account_id":
			err = singleArg(d, &p.AccountID)
		default:
			return UnrecognizedOption(d, "payone", "portal_key", "portal_id", "account_id")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Payone) Validate() error {
	if len(p.PortalKeys) == 0 {
		return errors.New("at least one portal_key is required (portal_key {env.PAYONE_PORTAL_KEY})")
	}
	if p.PortalID == "" || p.AccountID == "" {
		return errors.New("portal_id and account_id are required: PAYONE asks that a notification's portalid and aid be checked")
	}
	return nil
}

// Provision expands the keys and ids.
func (p *Payone) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	keys, err := Secrets(ctx.Logger(), "portal_key", p.PortalKeys)
	if err != nil {
		return err
	}
	if p.portalID, err = Setting("portal_id", p.PortalID); err != nil {
		return err
	}
	if p.aid, err = Setting("account_id", p.AccountID); err != nil {
		return err
	}
	p.verifier = verify.NewPayone(keys, p.portalID, p.aid)
	return nil
}

// Name is "payone".
func (*Payone) Name() string { return "payone" }

// ContentTypes: PAYONE posts forms.
func (*Payone) ContentTypes() []string { return payoneContentTypes }

var payoneContentTypes = []string{"application/x-www-form-urlencoded"}

// SourceRanges are the addresses PAYONE publishes for its notifications;
// allow_ips replaces them.
func (*Payone) SourceRanges() []string { return verify.PayoneSourceRanges }

// DedupeScope: txids are PAYONE's, but two sub-accounts' routes keep
// their records apart.
func (p *Payone) DedupeScope() string { return p.portalID + "/" + p.aid }

// Verify decodes the form (bounded: PayoneMaxFields, the body limit), then
// checks its key in constant time, its portalid and its aid. The key is
// inside the body: nothing about the callback is cheaper to check (the
// address was, by allow_ips).
func (p *Payone) Verify(_ context.Context, _ *verify.Callback, in *normalize.Input) (verify.Result, error) {
	creds, err := normalize.PayoneDecode(in)
	if err != nil {
		return verify.Result{}, err
	}
	if err := p.verifier.Check(creds.Key, creds.PortalID, creds.AccountID); err != nil {
		return verify.Result{}, err
	}
	return verify.Result{Method: "portal-key-md5"}, nil
}

// Normalize makes the notification's event.
func (*Payone) Normalize(in *normalize.Input, _ verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	ev, err := normalize.Payone(in)
	return appendEvent(events, ev, err)
}

var ackTSOK = ackText("TSOK")

// Acknowledge answers 200 "TSOK", the four characters and nothing else,
// as PAYONE requires.
func (*Payone) Acknowledge(w http.ResponseWriter) int { return ackTSOK(w) }

// configureSend takes the portal's ids from --portal-id and --account-id.
func (p *Payone) configureSend(opts sendOptions) error {
	if opts.payonePortalID == "" || opts.payoneAccountID == "" {
		return errors.New("--portal-id and --account-id are required: the route's portal_id and account_id")
	}
	p.sendPortalID, p.sendAccountID = opts.payonePortalID, opts.payoneAccountID
	return nil
}

// Sample fabricates a notification of PAYONE's example portal (portalid
// 1234567, aid 12345), or of the ids given to configureSend.
func (p *Payone) Sample(s normalize.Sample) ([]byte, string, error) {
	portalID, aid := "1234567", "12345"
	if p.sendPortalID != "" {
		portalID, aid = p.sendPortalID, p.sendAccountID
	}
	return normalize.PayoneSample(s, portalID, aid)
}

// SignSample puts key, the MD5 of the portal key secret, first in r's
// body.
func (*Payone) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: the payment portal's key")
	}
	signed := append([]byte("key="+verify.PayoneKey(secret)+"&"), body...)
	r.Body = io.NopCloser(bytes.NewReader(signed))
	r.ContentLength = int64(len(signed))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(signed)), nil }
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Payone)(nil)
	_ SampleSender          = (*Payone)(nil)
	_ SourceRanger          = (*Payone)(nil)
	_ DedupeScoper          = (*Payone)(nil)
	_ sendConfigurable      = (*Payone)(nil)
	_ caddy.Provisioner     = (*Payone)(nil)
	_ caddy.Validator       = (*Payone)(nil)
	_ caddyfile.Unmarshaler = (*Payone)(nil)
)
