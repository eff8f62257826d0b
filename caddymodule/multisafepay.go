package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(MultiSafepay{})
}

// MultiSafepay receives MultiSafepay's notifications. A POST carrying an
// Auth header is the order, signed with the website's API key: payhook
// checks the signature and its timestamp. A notification without Auth (the
// GET MultiSafepay sends unless the order asked for POST, or a POST
// without the header) names the order in its query only
// (?transactionid=<order_id>&timestamp=…): payhook fetches the order from
// MultiSafepay's API with the API key, and the event comes from the order
// fetched.
type MultiSafepay struct {
	// APIKey is the website's API key (dashboard, Websites): it signs the
	// POST notifications and fetches the orders. Use a placeholder.
	// Required.
	APIKey string `json:"api_key,omitempty"`

	// Secrets are API keys as the former multisafepay preset took them
	// (several during a rotation): each verifies a POST's Auth, the first
	// fetches orders when api_key is unset. Use placeholders. Kept so
	// that a configuration written for the preset loads unchanged.
	Secrets []string `json:"secret,omitempty"`

	// MaxSkew bounds the Auth timestamp, in the past and in the future.
	// Default: 10m, as MultiSafepay's PHP SDK allows.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// API: api_base is "live" (https://api.multisafepay.com/v1/json, the
	// default) or "test" (https://testapi.multisafepay.com/v1/json); a URL
	// is accepted only on a loopback host, for a stand-in of the API in
	// tests: the API key goes nowhere else.
	API

	signature *verify.HMAC
	verifier  *verify.MultiSafepay
	test      *bool
}

// CaddyModule returns the Caddy module information.
func (MultiSafepay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".multisafepay", New: func() caddy.Module { return new(MultiSafepay) }}
}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook multisafepay {
//	    api_key     <value>     # the website's API key (or secret, as the former preset took it)
//	    api_base    live|test   # default live; a loopback URL for tests
//	    max_skew    <duration>  # the Auth timestamp's window; default 10m
//	    api_timeout <duration>  # per API request; default 5s
//	    api_rate    <n>         # API requests per second; default 50
//	}
func (p *MultiSafepay) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		case "secret": // the former preset's option
			err = appendArg(d, &p.Secrets)
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		default:
			return UnrecognizedOption(d, "multisafepay", append([]string{"api_key", "max_skew"}, apiOptions...)...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *MultiSafepay) Validate() error {
	if p.APIKey == "" && len(p.Secrets) == 0 {
		return errors.New("api_key is required (api_key {env.MULTISAFEPAY_API_KEY})")
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	return p.validateAPI()
}

// Provision expands the API key, picks the API and builds the verifiers.
func (p *MultiSafepay) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	keys, err := Secrets(ctx.Logger(), "secret", p.Secrets)
	if err != nil {
		return err
	}
	if p.APIKey != "" {
		key, err := Secret(ctx.Logger(), "api_key", p.APIKey)
		if err != nil {
			return err
		}
		keys = append([][]byte{key}, keys...)
	}
	for i := range keys {
		// MultiSafepay/php-sdk trims the API key before it signs with it.
		keys[i] = []byte(strings.TrimSpace(string(keys[i])))
	}
	key := keys[0] // fetches the orders
	if p.signature, err = verify.MultiSafepaySignature(keys, time.Duration(p.MaxSkew)); err != nil {
		return err
	}
	base, test, err := multisafepayAPIBase(p.APIBase)
	if err != nil {
		return err
	}
	p.test = test
	api := p.API
	api.APIBase = base
	if err := api.provisionAPI(base); err != nil {
		return err
	}
	p.API.base, p.API.fetcher = api.base, api.fetcher
	p.verifier = &verify.MultiSafepay{APIBase: p.base, APIKey: key, Fetcher: p.fetcher}
	return nil
}

// multisafepayAPIBase is the API that api_base names: live (the default),
// test, or a URL on a loopback host (a stand-in); test says which
// environment, nil for a stand-in.
func multisafepayAPIBase(option string) (base string, test *bool, err error) {
	switch option {
	case "", "live":
		return verify.MultiSafepayAPI, new(bool), nil
	case "test":
		t := true
		return verify.MultiSafepayTestAPI, &t, nil
	}
	expanded, err := Setting("api_base", option)
	if err != nil {
		return "", nil, err
	}
	u, err := url.Parse(expanded)
	if err == nil {
		host := u.Hostname()
		if ip, perr := netip.ParseAddr(host); host == "localhost" || (perr == nil && ip.IsLoopback()) {
			return expanded, nil, nil
		}
	}
	return "", nil, fmt.Errorf("api_base %q: want live or test (a URL only on a loopback host, for a stand-in in tests): the API key goes to MultiSafepay's API alone", option)
}

// Name is "multisafepay".
func (*MultiSafepay) Name() string { return "multisafepay" }

// ContentTypes: MultiSafepay posts the order as JSON.
func (*MultiSafepay) ContentTypes() []string { return multisafepayContentTypes }

var multisafepayContentTypes = []string{"application/json"}

// NotifiesByQuery: MultiSafepay's notification is a GET unless the order
// asked for POST.
func (*MultiSafepay) NotifiesByQuery() {}

// DedupeScope is the API's origin: a test and a live website never share
// records.
func (p *MultiSafepay) DedupeScope() string { return p.base }

// Verify checks the Auth signature of a POST that carries one; any other
// notification is established by fetching the order its query names.
func (p *MultiSafepay) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	if _, ok := cb.Header["Auth"]; ok {
		return p.signature.Verify(ctx, cb)
	}
	_, query, _ := strings.Cut(cb.RequestURI, "?")
	n, err := normalize.MultiSafepayQuery(query)
	if err != nil {
		return verify.Result{}, err
	}
	if n.Timestamp == "" {
		// docs.multisafepay.com: "When MultiSafepay calls the
		// notification_url without a timestamp, the call can safely be
		// ignored" (the customer's return carries transactionid alone).
		return verify.Result{}, fmt.Errorf("%w: a notification URL called without a timestamp", normalize.ErrNotAPayment)
	}
	if err := verify.CheckMultiSafepayOrderID(n.OrderID); err != nil {
		return verify.Result{}, err
	}
	cb.Claim = verify.Claim{Kind: "order", ID: n.OrderID}
	return p.fetcher.Lookup(ctx, n.OrderID, func(ctx context.Context) (verify.Result, error) {
		return p.verifier.Fetch(ctx, n.OrderID)
	})
}

// Normalize builds the event from the order: the one fetched, or the
// signed body.
func (p *MultiSafepay) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	in.Fetched, in.Test = res.Fetched, p.test
	ev, err := normalize.MultiSafepay(in)
	return appendEvent(events, ev, err)
}

// Acknowledge answers 200 "OK": MultiSafepay wants OK at the start or end
// of the body (or MULTISAFEPAY_OK anywhere), and sends the notification
// again otherwise.
func (*MultiSafepay) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Sample fabricates the order of a signed POST notification.
func (*MultiSafepay) Sample(s normalize.Sample) ([]byte, string, error) {
	body, err := normalize.MultiSafepaySample(s)
	return body, "application/json", err
}

// SampleAPIDocument is what a stand-in of the API answers for the
// sample's order.
func (*MultiSafepay) SampleAPIDocument(s normalize.Sample) (string, []byte, error) {
	doc, err := normalize.MultiSafepaySampleAnswer(s)
	return "/orders/" + url.PathEscape(s.MerchantReference), doc, err
}

// SignSample adds the query MultiSafepay adds (transactionid, timestamp)
// and, given the API key, signs the POST with Auth as MultiSafepay does;
// without one, it makes the notification the legacy GET, which names the
// order alone and makes payhook fetch it.
func (*MultiSafepay) SignSample(r *http.Request, body []byte, secret []byte) error {
	now := strconv.FormatInt(time.Now().Unix(), 10)
	q := r.URL.Query()
	q.Set("transactionid", gjson.GetBytes(body, "order_id").String())
	q.Set("timestamp", now)
	r.URL.RawQuery = q.Encode()
	if len(secret) == 0 {
		r.Method, r.Body, r.GetBody, r.ContentLength = http.MethodGet, http.NoBody, nil, 0
		r.Header.Del("Content-Type")
		return nil
	}
	scheme, err := verify.MultiSafepaySignature([][]byte{secret}, 0)
	if err != nil {
		return err
	}
	auth, err := scheme.Sign([]byte(strings.TrimSpace(string(secret))), verify.TemplateValues{Body: body, Timestamp: now})
	if err != nil {
		return err
	}
	r.Header.Set("Auth", auth)
	return nil
}

// Interface guards.
var (
	_ Provider              = (*MultiSafepay)(nil)
	_ QueryNotified         = (*MultiSafepay)(nil)
	_ SampleSender          = (*MultiSafepay)(nil)
	_ SampleAPIStandIn      = (*MultiSafepay)(nil)
	_ DedupeScoper          = (*MultiSafepay)(nil)
	_ caddy.Provisioner     = (*MultiSafepay)(nil)
	_ caddy.Validator       = (*MultiSafepay)(nil)
	_ caddy.CleanerUpper    = (*MultiSafepay)(nil)
	_ caddyfile.Unmarshaler = (*MultiSafepay)(nil)
)
