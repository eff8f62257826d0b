package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(Klarna{})
}

// Klarna receives Klarna Checkout's push: a POST with an empty body to the
// merchant's push URI, which names the order. Nobody signs it: payhook
// fetches the order from Klarna's Order Management API with the merchant's
// API credentials, builds the event from the order fetched, and, once the
// shop took the event (or the inbox stored it), acknowledges the order to
// Klarna, which pushes again until then.
type Klarna struct {
	// Username is the merchant's API username (Klarna's merchant portal,
	// "API credentials"). Required.
	Username string `json:"username,omitempty"`

	// Password is the API password that goes with Username. Use a
	// placeholder. Required.
	Password string `json:"password,omitempty"`

	// OrderIDParams are the query parameters of the push URI that may hold
	// the order id (the merchant's push URI has {checkout.order.id} in one
	// of them); the first present is read. Default: klarna_order_id, then
	// order_id.
	OrderIDParams []string `json:"order_id_params,omitempty"`

	// OrderIDInPath reads the order id from the push URI's last path
	// segment instead (a push URI such as https://shop.example/push/{checkout.order.id}).
	OrderIDInPath bool `json:"order_id_in_path,omitempty"`

	// API's APIBase also takes a region's name: eu (https://api.klarna.com,
	// the default), na, oc, playground-eu, playground-na, playground-oc.
	API

	verifier *verify.Klarna
	test     *bool

	sendOrderID string // the order `caddy payhook send` names
}

// CaddyModule returns the Caddy module information.
func (Klarna) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".klarna", New: func() caddy.Module { return new(Klarna) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook klarna {
//	    username         <value>    # the API username
//	    password         <value>    # the API password
//	    api_base         <region or url> # eu (default), na, oc, playground-eu, playground-na, playground-oc
//	    order_id_param   <name>     # repeatable; default klarna_order_id, order_id
//	    order_id_in_path            # the order id is the push URI's last path segment
//	    api_timeout      <duration> # per API request; default 5s
//	    api_rate         <n>        # API requests per second; default 50
//	}
func (p *Klarna) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		case "username":
			err = singleArg(d, &p.Username)
		case "password":
			err = singleArg(d, &p.Password)
		case "order_id_param":
			err = appendArg(d, &p.OrderIDParams)
		case "order_id_in_path":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.OrderIDInPath = true
		default:
			return UnrecognizedOption(d, "klarna", append([]string{"username", "password", "order_id_param", "order_id_in_path"}, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Klarna) Validate() error {
	if p.Username == "" || p.Password == "" {
		return errors.New("username and password are required (username {env.KLARNA_API_USERNAME}; password {env.KLARNA_API_PASSWORD})")
	}
	if p.OrderIDInPath && len(p.OrderIDParams) > 0 {
		return errors.New("order_id_param and order_id_in_path exclude each other: the order id is in the query or in the path")
	}
	for _, name := range p.OrderIDParams {
		if name == "" || strings.ContainsAny(name, "&=?# ") {
			return fmt.Errorf("order_id_param %q: want a query parameter's name", name)
		}
	}
	return p.validateAPI()
}

// klarnaTestHosts tell the playground hosts from the live ones.
var klarnaTestHosts = func() map[string]bool {
	m := make(map[string]bool)
	for region, base := range verify.KlarnaAPIs {
		u, _ := url.Parse(base)
		m[u.Hostname()] = strings.HasPrefix(region, "playground-")
	}
	return m
}()

// Provision expands the credentials, resolves the region and creates the
// API client.
func (p *Klarna) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	username, err := Setting("username", p.Username)
	if err != nil {
		return err
	}
	password, err := Secret(ctx.Logger(), "password", p.Password)
	if err != nil {
		return err
	}
	if base, ok := verify.KlarnaAPIs[p.APIBase]; ok {
		p.APIBase = base
	}
	if err := p.provisionAPI(verify.KlarnaAPIs["eu"]); err != nil {
		return err
	}
	if len(p.OrderIDParams) == 0 && !p.OrderIDInPath {
		p.OrderIDParams = verify.KlarnaOrderParams
	}
	p.test = apiEnvironment(klarnaTestHosts, p.base)
	p.verifier = &verify.Klarna{APIBase: p.base, Username: []byte(username), Password: password, Fetcher: p.fetcher}
	return nil
}

// Name is "klarna".
func (*Klarna) Name() string { return "klarna" }

// ContentTypes: Klarna's push has an empty body; it is accepted with no
// Content-Type or any of the usual ones, and never read.
func (*Klarna) ContentTypes() []string { return klarnaContentTypes }

var klarnaContentTypes = []string{"", "application/json", "application/x-www-form-urlencoded", "text/plain"}

// Verify reads the order id the push URI names (checked to be a UUID),
// then fetches the order.
func (p *Klarna) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	id, err := verify.KlarnaPushOrderID(cb.RequestURI, p.OrderIDParams, p.OrderIDInPath)
	if err != nil {
		return verify.Result{}, err
	}
	id = strings.ToLower(id)
	cb.Claim = verify.Claim{Kind: "order", ID: id}
	return p.fetcher.Lookup(ctx, id, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Fetch(ctx, id)
	})
}

// Normalize builds the event from the fetched order.
func (p *Klarna) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched, in.Test = res.Fetched, p.test
	ev, err := normalize.Klarna(in)
	return appendEvent(events, ev, err)
}

// Confirm acknowledges the order to Klarna, once the shop took its event
// (or the inbox stored it): Klarna pushes again until it is acknowledged.
func (p *Klarna) Confirm(ctx context.Context, res verify.Result) error {
	id, ok := strings.CutPrefix(res.Resource, "orders/")
	if !ok {
		return fmt.Errorf("%w: no order to acknowledge", verify.ErrAPIResponse)
	}
	return p.verifier.Acknowledge(ctx, id)
}

// Acknowledge answers 200 "OK": the push's answer matters less to Klarna
// than the acknowledge call Confirm made.
func (*Klarna) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates a push: an empty body; SignSample puts the sample's
// order id in the URL's query, as Klarna fills its push URI.
func (p *Klarna) Sample(s normalize.Sample) ([]byte, string, error) {
	if err := checkKlarnaSampleID(s); err != nil {
		return nil, "", err
	}
	if _, err := normalize.KlarnaSampleOrder(s); err != nil {
		return nil, "", err
	}
	p.sendOrderID = normalize.KlarnaSampleOrderID(s)
	return []byte{}, "", nil
}

// SampleAPIDocument is the order a stand-in of the Order Management API
// serves for the sample.
func (*Klarna) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	if err := checkKlarnaSampleID(s); err != nil {
		return "", nil, err
	}
	doc, err := normalize.KlarnaSampleOrder(s)
	return verify.KlarnaOrderPath(normalize.KlarnaSampleOrderID(s)), doc, err
}

// checkKlarnaSampleID accepts --id when it is a Klarna order id (a UUID),
// or digits only (send's random default, which becomes a UUID of them).
func checkKlarnaSampleID(s normalize.Sample) error {
	id := s.ProviderReference
	if verify.CheckKlarnaOrderID(id) == nil {
		return nil
	}
	if len(id) == 0 || len(id) > 32 || strings.Trim(id, "0123456789") != "" {
		return errors.New("--id: a Klarna order id is a UUID, such as 903e3d51-3b68-4993-be73-2c2f95e83d97")
	}
	return nil
}

// SignSample signs nothing (Klarna signs nothing): it sends the push
// without a Content-Type and with klarna_order_id in the query; a secret
// is refused.
func (p *Klarna) SignSample(r *http.Request, _ []byte, secret []byte) error {
	if len(secret) > 0 {
		return errors.New("--secret: Klarna's push carries no secret; the route fetches the order with its own credentials")
	}
	r.Header.Del("Content-Type")
	query := r.URL.Query()
	query.Set(verify.KlarnaOrderParams[0], p.sendOrderID)
	r.URL.RawQuery = query.Encode()
	return nil
}

// Interface guards.
var (
	_ Provider              = (*Klarna)(nil)
	_ Confirmer             = (*Klarna)(nil)
	_ SampleSender          = (*Klarna)(nil)
	_ SampleAPIStandIn      = (*Klarna)(nil)
	_ DedupeScoper          = (*Klarna)(nil)
	_ caddy.Provisioner     = (*Klarna)(nil)
	_ caddy.Validator       = (*Klarna)(nil)
	_ caddy.CleanerUpper    = (*Klarna)(nil)
	_ caddyfile.Unmarshaler = (*Klarna)(nil)
)
