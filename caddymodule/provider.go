package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// ProvidersNamespace is the Caddy module namespace of payment providers:
// http.payhook.providers.<name>. The handler loads one from its "provider"
// field, whose "name" is the module's name.
const ProvidersNamespace = "http.payhook.providers"

// Provider is a payment provider's Caddy module. It owns its configuration
// (its struct's fields are its JSON config, its UnmarshalCaddyfile reads
// its options of the payhook block) and everything payhook needs to serve
// the provider's callbacks; the handler runs the pipeline around it: allow
// → read → Verify → Normalize → encode → forward → Acknowledge.
//
// A provider is added by registering its module (caddy.RegisterModule in an
// init function, module ID ProvidersNamespace + "." + name), in this
// package or in a plugin of its own.
type Provider interface {
	caddy.Module

	// Name is the provider's name in the envelope (source, data.provider),
	// the log lines and the metrics: lower-case letters, digits, '_' and '-'.
	Name() string

	// ContentTypes lists the media types the provider posts (lower case,
	// without parameters); a callback with any other is refused with 415.
	// "" admits a callback without a Content-Type (Klarna's bodiless push).
	ContentTypes() []string

	// Verify establishes the callback's authenticity and says how. It runs
	// every check that needs no parsing (signatures, dates) before it parses
	// anything, bounds every parse, and fails with an error wrapping a
	// sentinel of package verify or normalize, which decides the answer.
	// in holds the body for parsing; what Verify decodes into it (Decode)
	// is decoded once.
	Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error)

	// Normalize turns the verified callback into its events, in the order
	// the callback lists them (usually one, several for a batch), and
	// appends them to events.
	Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error)

	// Acknowledge writes the provider's success answer and returns its status.
	Acknowledge(w http.ResponseWriter) int
}

// SampleSender is implemented by providers that `caddy payhook send` can
// fabricate a callback for. It is called on a new, unprovisioned module.
type SampleSender interface {
	// Sample fabricates a callback body for s and returns it with its
	// Content-Type.
	Sample(s normalize.Sample) (body []byte, contentType string, err error)
	// SignSample makes r (whose body is body) authentic with secret the way
	// the provider does; secret is empty when none was given.
	SignSample(r *http.Request, body []byte, secret []byte) error
}

// URLTokenVerified is implemented by providers that sign nothing and rely on
// the route's url_token for their authenticity (Pyxis): the handler then
// requires url_token, and names it as the verification method.
type URLTokenVerified interface {
	VerifiedByURLToken()
}

// SampleAPIStandIn is implemented by providers verified by fetching whose
// samples name a resource the API must know: `caddy payhook send --api
// <url>` first stores the document at that stand-in of the provider's API
// (the demo's), at path.
type SampleAPIStandIn interface {
	SampleAPIDocument(s normalize.Sample) (path string, doc []byte, err error)
}

// DedupeScoper is implemented by providers whose ids are unique only within
// an account (Payrexx transaction ids, per instance): the account takes part
// in the route's dedupe scope, so two accounts never share records.
type DedupeScoper interface {
	DedupeScope() string
}

// WeaklySigned is implemented by providers whose signature binds the body
// only weakly (PayPal's covers the body's CRC32, which anyone can match
// with a body of their own). The handler binds each transmission to the
// first body it receives under it, once Transmission's checks pass and
// before Verify asks the provider's API anything (or waits for its rate
// limit): no other body is ever delivered under that transmission,
// whatever became of the first one's verification or delivery. Such a
// route needs dedupe, for at least TransmissionWindow: the binding lives
// in the dedupe records.
type WeaklySigned interface {
	// Transmission runs the checks that need no network (the headers, the
	// time window) and returns the id of the callback's transmission; ""
	// when this route's signature covers the body (a generic scheme that
	// does so), and there is nothing to bind.
	Transmission(cb *verify.Callback) (string, error)
	// TransmissionWindow is how long after it was sent a transmission is
	// accepted.
	TransmissionWindow() time.Duration
}

// SourceRanger is implemented by providers that publish the addresses
// their callbacks come from (PAYONE): a route of theirs without allow_ips
// allows only these; allow_ips replaces them (allow_ips 0.0.0.0/0 ::/0
// allows any).
type SourceRanger interface {
	SourceRanges() []string
}

// Retrier is implemented by providers that retry a callback for longer
// than DefaultDedupeWindow (Adyen: 30 days). Without a dedupe option, the
// route's window then covers the retries and a day more: an event
// delivered early in a long retry, such as the first item of a batch
// whose second the shop keeps refusing, is still remembered when the last
// retry brings it again.
type Retrier interface {
	RetryPeriod() time.Duration
}

// Challenger is implemented by providers that check a callback URL with a
// request of their own before they send callbacks to it (Braintree's GET
// with bt_challenge). The handler hands it every request that is not a
// POST, after allow_ips and the url_token, before anything else: the
// answer goes to the provider, nothing is forwarded.
type Challenger interface {
	// Challenge returns the text answering the check that the request
	// (its method and URL as the provider sent them) makes, errNoChallenge
	// when it makes none (it is then refused as another method), or an
	// error wrapping a sentinel for a check that is malformed.
	Challenge(method string, u *url.URL) (answer string, err error)
}

// Confirmer is implemented by providers that learn that the shop took an
// event from a call of payhook's to their API rather than from the answer
// to their callback (Klarna's acknowledge): they send the callback again
// until that call is made. The handler calls Confirm once every event of
// the callback was delivered to the shop (or had been: a retry whose
// events are duplicates), or, with the inbox on, stored durably, and
// before it answers the provider; never when the shop did not take an
// event. An error answers the callback 503 (the provider sends it again,
// its events are then duplicates, and Confirm runs again); the events
// stay delivered.
type Confirmer interface {
	Confirm(ctx context.Context, res verify.Result) error
}

// QueryNotified is implemented by providers that also notify with a GET
// whose URL's query names what changed (MultiSafepay's notification URL):
// the handler reads such a GET as a callback with no body and no content
// type, which Verify must establish by fetching what the query names. Its
// events reach the shop as a POST of the envelope, like every other.
type QueryNotified interface {
	NotifiesByQuery()
}

// errNoChallenge means a request is no provider's check of the URL.
var errNoChallenge = errors.New("not a check of the callback URL")

// NewProvider returns a new, unprovisioned provider module by name.
func NewProvider(name string) (Provider, error) {
	info, err := caddy.GetModule(ProvidersNamespace + "." + name)
	if err != nil {
		return nil, fmt.Errorf("unknown provider %q (known: %s)", name, joinNames(ProviderNames()))
	}
	p, ok := info.New().(Provider)
	if !ok {
		return nil, fmt.Errorf("module %s is not a payhook provider", info.ID)
	}
	return p, nil
}

// ProviderNames lists the registered providers' names, sorted.
func ProviderNames() []string {
	var names []string
	for _, info := range caddy.GetModules(ProvidersNamespace) {
		names = append(names, info.ID.Name())
	}
	slices.Sort(names)
	return names
}

func joinNames(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return strings.Join(quoted, ", ")
}

// UnrecognizedOption is the error for an option of a payhook block that
// neither the handler nor the provider knows. Provider modules return it
// from UnmarshalCaddyfile for an option they do not take.
func UnrecognizedOption(d *caddyfile.Dispenser, provider string, takes ...string) error {
	return d.Errf("unrecognized payhook option %q: %s does not apply to provider %s (it takes: %s; every provider: %s)",
		d.Val(), d.Val(), provider, strings.Join(takes, ", "), strings.Join(genericOptions, ", "))
}

// Secret expands the {env.*} and {file.*} placeholders of a configuration
// value that holds a secret, once, at provisioning. A placeholder that is
// unknown or expands to nothing is an error naming the placeholder (each
// one of the value that expands to nothing), never the value: an unset variable must not turn into an empty secret that
// anyone can sign with. A secret written literally is accepted with a
// warning, since it then shows in config files and the admin API.
func Secret(logger *zap.Logger, option, value string) ([]byte, error) {
	expanded, err := expand(option, value)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(value, "{") {
		logger.Warn("a secret is written literally in the configuration; use {env.*} or {file.*} so that it stays out of config files and the admin API",
			zap.String("option", option))
	}
	return []byte(expanded), nil
}

// Secrets is Secret for a repeatable option.
func Secrets(logger *zap.Logger, option string, values []string) ([][]byte, error) {
	out := make([][]byte, 0, len(values))
	for i, v := range values {
		secret, err := Secret(logger, fmt.Sprintf("%s #%d", option, i+1), v)
		if err != nil {
			return nil, err
		}
		out = append(out, secret)
	}
	return out, nil
}

// DecodedSecrets is Secrets with each value decoded by decode (a hex key,
// a whsec_ secret, …); a value that does not decode is an error naming the
// option and its place.
func DecodedSecrets(logger *zap.Logger, option string, values []string, decode func(string) ([]byte, error)) ([][]byte, error) {
	secrets, err := Secrets(logger, option, values)
	if err != nil {
		return nil, err
	}
	for i, s := range secrets {
		if secrets[i], err = decode(string(s)); err != nil {
			return nil, fmt.Errorf("%s #%d: %w", option, i+1, err)
		}
	}
	return secrets, nil
}

// Setting expands the placeholders of a configuration value that is not a
// secret (an instance name, an API base), with the same errors as Secret.
func Setting(option, value string) (string, error) {
	return expand(option, value)
}

func expand(option, value string) (string, error) {
	if unset := unsetPlaceholders(value); len(unset) > 0 {
		for i, placeholder := range unset {
			unset[i] = placeholder + " is empty: " + unsetHint(placeholder)
		}
		return "", fmt.Errorf("%s: %s", option, strings.Join(unset, "; "))
	}
	expanded, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("%s: %w", option, err)
	}
	if expanded == "" {
		return "", fmt.Errorf("%s is empty", option)
	}
	return expanded, nil
}

// configPlaceholder finds the {env.*} and {file.*} placeholders of a
// configuration value.
var configPlaceholder = regexp.MustCompile(`\{(?:env|file)\.[^{}]+\}`)

// unsetPlaceholders returns the {env.*} and {file.*} placeholders of value
// that expand to nothing, in order.
func unsetPlaceholders(value string) []string {
	var unset []string
	for _, placeholder := range configPlaceholder.FindAllString(value, -1) {
		if expanded, err := caddy.NewReplacer().ReplaceOrErr(placeholder, true, true); err != nil || expanded == "" {
			unset = append(unset, placeholder)
		}
	}
	return unset
}

// unsetHint says what to check of a placeholder that expands to nothing.
func unsetHint(placeholder string) string {
	if strings.HasPrefix(placeholder, "{env.") {
		return "is the environment variable set?"
	}
	return "is the file there, readable and not empty?"
}

// ackText returns an Acknowledge that answers 200 with a text/plain body,
// as IXOPAY expects ("OK").
func ackText(body string) func(w http.ResponseWriter) int {
	length, raw := []string{strconv.Itoa(len(body))}, []byte(body)
	return func(w http.ResponseWriter) int {
		header := w.Header()
		header["Content-Type"] = textPlain
		header["Content-Length"] = length
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
		return http.StatusOK
	}
}

var ackOK = ackText("OK")

// API is the configuration of a provider's API that payhook asks to verify
// callbacks (fetch-back). Provider modules embed it.
type API struct {
	// APIBase is the origin of the provider's API (https; plain http only
	// on loopback, for tests). Default: the provider's own.
	APIBase string `json:"api_base,omitempty"`

	// APITimeout bounds each request to the provider's API. Default: 5s.
	APITimeout caddy.Duration `json:"api_timeout,omitempty"`

	// APIRate bounds the API requests that callbacks may cause per second
	// (bursts of twice as many), so that a flood of forged callbacks cannot
	// turn into a flood of API requests; callbacks past it are answered 503
	// and retried by the provider. Default: 50.
	APIRate int `json:"api_rate,omitempty"`

	base    string
	fetcher *verify.Fetcher
}

// unmarshalAPIOption reads api_base, api_timeout or api_rate; ok is false
// for any other option.
func (a *API) unmarshalAPIOption(d *caddyfile.Dispenser) (ok bool, err error) {
	switch d.Val() {
	case "api_base":
		return true, singleArg(d, &a.APIBase)
	case "api_timeout":
		a.APITimeout, err = durationArg(d, "api_timeout")
		return true, err
	case "api_rate":
		a.APIRate, err = positiveIntArg(d, "api_rate")
		return true, err
	}
	return false, nil
}

var apiOptions = []string{"api_base", "api_timeout", "api_rate"}

// validateAPI checks what needs no provisioning.
func (a *API) validateAPI() error {
	if a.APITimeout < 0 {
		return fmt.Errorf("api_timeout must be positive, got %s", time.Duration(a.APITimeout))
	}
	if a.APIRate < 0 {
		return fmt.Errorf("api_rate must be positive, got %d", a.APIRate)
	}
	return nil
}

// provisionAPI expands and checks the API base (defaultBase when unset) and
// creates the API's client.
func (a *API) provisionAPI(defaultBase string) error {
	if err := a.validateAPI(); err != nil {
		return err
	}
	base := a.APIBase
	if base == "" {
		base = defaultBase
	}
	base, err := Setting("api_base", base)
	if err != nil {
		return err
	}
	if a.base, err = checkAPIBase(base); err != nil {
		return err
	}
	a.fetcher = verify.NewFetcher(verify.FetchLimits{Timeout: time.Duration(a.APITimeout), Rate: a.APIRate})
	return nil
}

// Cleanup closes the API client's idle connections: a provider that
// embeds API is a caddy.CleanerUpper without writing one.
func (a *API) Cleanup() error {
	if a.fetcher != nil {
		a.fetcher.Close()
	}
	return nil
}

// DedupeScope is the API's origin: a test and a live environment (or key)
// never share delivery records. A provider whose ids are unique only
// within an account says more (Payrexx: the instance too).
func (a *API) DedupeScope() string { return a.base }

// checkAPIBase accepts an https origin (with an optional path prefix), or
// http on a loopback host for tests: payhook sends credentials there.
func checkAPIBase(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("api_base %q: want an https origin such as https://api.payrexx.com", base)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip, err := netip.ParseAddr(u.Hostname()); !(u.Hostname() == "localhost" || (err == nil && ip.IsLoopback())) {
			return "", fmt.Errorf("api_base %q: credentials go there, so it must be https (http only on loopback)", base)
		}
	default:
		return "", fmt.Errorf("api_base %q: want an https origin", base)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// apiEnvironment tells whether apiBase (checked by checkAPIBase) is one of
// the provider's known test or live hosts; nil for any other host.
func apiEnvironment(testHosts map[string]bool, apiBase string) *bool {
	u, err := url.Parse(apiBase)
	if err != nil {
		return nil
	}
	if test, ok := testHosts[strings.ToLower(u.Hostname())]; ok {
		return &test
	}
	return nil
}

// appendArg reads the one argument of a repeatable option onto list.
func appendArg(d *caddyfile.Dispenser, list *[]string) error {
	var value string
	if err := singleArg(d, &value); err != nil {
		return err
	}
	*list = append(*list, value)
	return nil
}

// singleArg reads the one argument of the current option into target.
// The error counts the arguments without showing them: they may be
// secrets.
func singleArg(d *caddyfile.Dispenser, target *string) error {
	option := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("%s takes one value; got %s", option, argumentCount(args))
	}
	*target = args[0]
	return nil
}

// oneArg reads the one argument of the current option, which takes what
// ("one duration such as 5m"), and shows what it got instead.
func oneArg(d *caddyfile.Dispenser, option, what string) (string, error) {
	args := d.RemainingArgs()
	if len(args) != 1 {
		got := argumentCount(args)
		if len(args) > 1 {
			got += ": " + strings.Join(args, " ")
		}
		return "", d.Errf("%s takes %s; got %s", option, what, got)
	}
	return args[0], nil
}

// argumentCount says how many arguments an option got.
func argumentCount(args []string) string {
	switch len(args) {
	case 0:
		return "none"
	case 1:
		return "1 argument"
	}
	return strconv.Itoa(len(args)) + " arguments"
}

// durationArg reads the one duration argument of the current option.
func durationArg(d *caddyfile.Dispenser, option string) (caddy.Duration, error) {
	value, err := oneArg(d, option, "one duration such as 5m")
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(value)
	if err != nil {
		return 0, d.Errf("%s takes one duration such as 5m, 90s or 1d; got %q", option, value)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive", option)
	}
	return caddy.Duration(dur), nil
}

// positiveIntArg reads the one argument of the current option as a
// positive whole number.
func positiveIntArg(d *caddyfile.Dispenser, option string) (int, error) {
	value, err := oneArg(d, option, "one positive whole number")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(value)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive whole number, got %q", option, value)
	}
	return n, nil
}

// appendEvent appends the event of a one-event normalizer.
func appendEvent(events []*normalize.Event, ev *normalize.Event, err error) ([]*normalize.Event, error) {
	if err != nil {
		return events, err
	}
	return append(events, ev), nil
}
