package caddymodule

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// presetFiles are the built-in providers defined by data: one file per
// provider, presets/<name>.caddyfile, registered as the provider module
// http.payhook.providers.<name>.
//
//go:embed presets/*.caddyfile
var presetFiles embed.FS

func init() {
	files, err := fs.Glob(presetFiles, "presets/*.caddyfile")
	if err != nil {
		panic(err)
	}
	for _, file := range files {
		source, err := presetFiles.ReadFile(file)
		if err != nil {
			panic(err)
		}
		def, err := parsePreset(strings.TrimSuffix(path.Base(file), ".caddyfile"), file, source)
		if err != nil {
			panic(fmt.Sprintf("preset %s: %v", file, err))
		}
		caddy.RegisterModule(Preset{preset: def})
	}
}

// Preset is a provider defined by data: the signature scheme of a generic
// module (hmac or standard_webhooks) with its options set, its mapping, its
// answer and a sample for `caddy payhook send`, from one embedded file
// (presets/<name>.caddyfile). A route gives only the secrets, and may
// override the preset's URL, skew or mapping fields.
type Preset struct {
	// Secrets are the signing secrets (or keys), in the encoding the
	// provider shows them in; any one verifies, for a rotation. Use
	// placeholders.
	Secrets []string `json:"secret,omitempty"`

	// URL is the signed content's {url} where the scheme signs it (Square):
	// the URL as registered with the provider, when a proxy in front of
	// Caddy changes it. Default: the URL the provider called.
	URL string `json:"url,omitempty"`

	// MaxSkew is how far a signed timestamp may lie in the past or the
	// future, for schemes that sign one. Default: 5m.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// Mapping overrides the preset's mapping field by field: each field
	// given replaces the preset's (Caddyfile: map).
	Mapping *normalize.Mapping `json:"map,omitempty"`

	preset *presetDefinition
	scheme presetScheme
	// sampled is the last Sample's, whose headers and query SignSample
	// sets (send makes one request at a time).
	sampled *renderedSample
}

// presetScheme is a generic module a preset configures.
type presetScheme interface {
	Provider
	caddy.Provisioner
	// configure sets what the route gives: the name, the secrets, the URL
	// and skew where they apply, the mapping.
	configure(name string, secrets []string, url string, maxSkew caddy.Duration, m *normalize.Mapping) error
	// signRequest makes r authentic as the provider does (send, tests).
	signRequest(r *http.Request, body []byte, secret string, now time.Time) error
}

// presetDefinition is a preset's file, parsed.
type presetDefinition struct {
	module     string // the module's name: payhook <module>
	name       string // the name in the envelope; default module
	schemeName string // hmac or standard_webhooks
	scheme     []byte // the scheme's JSON configuration, copied into each route
	answer     func(http.ResponseWriter) int
	sample     presetSample
}

// presetSample is the template `caddy payhook send` fills in: a payload with
// placeholders, and for each canonical status it can send the values of the
// placeholders that make the provider's words for it.
type presetSample struct {
	body     string
	headers  [][2]string       // name, value template: set on the request before it is signed
	query    [][2]string       // name, value template: added to the URL's query
	defaults map[string]string // placeholder values for statuses that give none
	statuses map[normalize.Status]map[string]string
	order    []normalize.Status
}

var samplePlaceholder = regexp.MustCompile(`\{([a-z][a-z0-9_.]*)\}`)

// samplePlaceholders are the placeholders every sample may use.
var samplePlaceholders = []string{"id", "time", "time.unix", "amount", "amount.decimal", "currency", "reference", "provider_reference"}

// parsePreset reads a preset's file:
//
//	name    <provider>          # the name in the envelope; default the file's
//	hmac { … }                  # or standard_webhooks { … }: the scheme's options and map, no secret
//	answer  <text>              # the 200 answer's body; default OK
//	sample {
//	    body    `<payload with {placeholders}>`
//	    default <placeholder> <value>      # for the statuses that do not give it
//	    status  <canonical status> [<placeholder>=<value>]...
//	}
func parsePreset(module, file string, source []byte) (*presetDefinition, error) {
	tokens, err := caddyfile.Tokenize(source, file)
	if err != nil && !errors.Is(err, io.EOF) { // an empty file has no tokens
		return nil, err
	}
	def := &presetDefinition{module: module, name: module, answer: ackOK}
	d := caddyfile.NewDispenser(tokens)
	var scheme Provider
	for d.Next() {
		switch option := d.Val(); option {
		case "name":
			if err := singleArg(d, &def.name); err != nil {
				return nil, err
			}
		case "answer":
			var text string
			if err := singleArg(d, &text); err != nil {
				return nil, err
			}
			def.answer = ackText(text)
		case "hmac", "standard_webhooks":
			if scheme != nil {
				return nil, d.Err("one scheme per preset")
			}
			if scheme, err = NewProvider(option); err != nil {
				return nil, err
			}
			if err := scheme.(caddyfile.Unmarshaler).UnmarshalCaddyfile(caddyfile.NewDispenser(d.NextSegment())); err != nil {
				return nil, err
			}
			def.schemeName = option
		case "sample":
			if def.sample, err = parseSample(d); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unrecognized preset option %q (known: name, hmac, standard_webhooks, answer, sample)", option)
		}
	}
	if scheme == nil {
		return nil, errors.New("no scheme: hmac { … } or standard_webhooks { … }")
	}
	if !providerName.MatchString(def.name) {
		return nil, fmt.Errorf("name %q: lower-case letters, digits, '_' and '-'", def.name)
	}
	if def.scheme, err = json.Marshal(scheme); err != nil {
		return nil, err
	}
	if len(def.sample.order) == 0 {
		return nil, errors.New("no sample: every provider can be tried with caddy payhook send")
	}
	// The scheme must load once secrets are given.
	s, err := def.newScheme()
	if err != nil {
		return nil, err
	}
	if err := s.configure(def.name, []string{"secret"}, "", 0, nil); err != nil {
		return nil, err
	}
	if v, ok := s.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return def, nil
}

// parseSample reads the sample block.
func parseSample(d *caddyfile.Dispenser) (presetSample, error) {
	s := presetSample{defaults: map[string]string{}, statuses: map[normalize.Status]map[string]string{}}
	defined := map[string]bool{}
	for _, name := range samplePlaceholders {
		defined[name] = true
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "body":
			if err := singleArg(d, &s.body); err != nil {
				return s, err
			}
			if !json.Valid([]byte(samplePlaceholder.ReplaceAllString(s.body, "0"))) {
				return s, d.Err("sample body: not JSON once its placeholders are filled")
			}
		case "header", "query":
			option := d.Val()
			var name, value string
			if !d.Args(&name, &value) || d.NextArg() {
				return s, d.Errf("%s <name> <value>", option)
			}
			if option == "header" {
				s.headers = append(s.headers, [2]string{name, value})
			} else {
				s.query = append(s.query, [2]string{name, value})
			}
		case "default":
			var name, value string
			if !d.Args(&name, &value) || d.NextArg() {
				return s, d.Err("default <placeholder> <value>")
			}
			if slices.Contains(samplePlaceholders, name) || !samplePlaceholder.MatchString("{"+name+"}") {
				return s, d.Errf("default %s: not a placeholder of the sample's own", name)
			}
			s.defaults[name], defined[name] = value, true
		case "status":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return s, d.Err("status <canonical status> [<placeholder>=<value>]...")
			}
			status := normalize.Status(args[0])
			if _, dup := s.statuses[status]; dup {
				return s, d.Errf("sample status %s given twice", status)
			}
			values := map[string]string{}
			for _, arg := range args[1:] {
				name, value, ok := strings.Cut(arg, "=")
				if !ok || !samplePlaceholder.MatchString("{"+name+"}") || slices.Contains(samplePlaceholders, name) {
					return s, d.Errf("sample status %s: %q: want <placeholder>=<value>, a placeholder of its own", status, arg)
				}
				values[name] = value
				defined[name] = true
			}
			s.statuses[status] = values
			s.order = append(s.order, status)
		default:
			return s, d.Errf("unrecognized sample option %q (known: body, header, query, default, status)", d.Val())
		}
	}
	if s.body == "" {
		return s, d.Err("sample needs a body")
	}
	templates := []string{s.body}
	for _, h := range append(slices.Clone(s.headers), s.query...) {
		templates = append(templates, h[1])
	}
	for _, t := range templates {
		for _, m := range samplePlaceholder.FindAllStringSubmatch(t, -1) {
			if !defined[m[1]] {
				return s, d.Errf("sample: placeholder {%s} is neither one of %s nor given by a status", m[1], strings.Join(samplePlaceholders, ", "))
			}
		}
	}
	return s, nil
}

// newScheme is a new module of the preset's scheme, configured as its file
// says.
func (def *presetDefinition) newScheme() (presetScheme, error) {
	p, err := NewProvider(def.schemeName)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def.scheme, p); err != nil {
		return nil, err
	}
	return p.(presetScheme), nil
}

// values are the placeholders' values of the sample for s, at now.
func (sample presetSample) values(s normalize.Sample, id string, now time.Time) (map[string]string, error) {
	own, ok := sample.statuses[s.Status]
	if !ok {
		known := make([]string, len(sample.order))
		for i, st := range sample.order {
			known[i] = string(st)
		}
		return nil, fmt.Errorf("no sample for status %q (known: %s)", s.Status, strings.Join(known, ", "))
	}
	decimal, err := s.Amount.Decimal()
	if err != nil {
		return nil, err
	}
	values := maps.Clone(sample.defaults)
	maps.Copy(values, own)
	maps.Copy(values, map[string]string{
		"id": id, "time": now.UTC().Format(time.RFC3339), "time.unix": strconv.FormatInt(now.Unix(), 10),
		"amount": strconv.FormatInt(s.Amount.MinorUnits, 10), "amount.decimal": decimal, "currency": s.Amount.Currency,
		"reference": s.MerchantReference, "provider_reference": s.ProviderReference,
	})
	return values, nil
}

// fillSample replaces the placeholders of template with values, JSON-escaped
// for a body (inside the template's quotes).
func fillSample(template string, values map[string]string, escape bool) string {
	return samplePlaceholder.ReplaceAllStringFunc(template, func(placeholder string) string {
		value := values[placeholder[1:len(placeholder)-1]]
		if !escape {
			return value
		}
		quoted, _ := json.Marshal(value)
		return string(quoted[1 : len(quoted)-1])
	})
}

// render fills the sample in for s, at now.
func (sample presetSample) render(s normalize.Sample, id string, now time.Time) ([]byte, map[string]string, error) {
	values, err := sample.values(s, id, now)
	if err != nil {
		return nil, nil, err
	}
	body := fillSample(sample.body, values, true)
	if !json.Valid([]byte(body)) {
		return nil, nil, fmt.Errorf("the sample for %s is not JSON", s.Status)
	}
	return []byte(body), values, nil
}

// prepare sets the sample's headers and query parameters on r, with the
// values body was rendered with (or, for another body, the first status's
// with random references).
func (sample presetSample) prepare(r *http.Request, rendered *renderedSample, body []byte) error {
	if len(sample.headers) == 0 && len(sample.query) == 0 {
		return nil
	}
	var values map[string]string
	if rendered != nil && rendered.body == string(body) {
		values = rendered.values
	} else {
		var err error
		ref := randomID()
		values, err = sample.values(normalize.Sample{Status: sample.order[0], Amount: normalize.Amount{MinorUnits: 100, Currency: "EUR"},
			MerchantReference: "order-" + ref, ProviderReference: ref}, randomID(), time.Now())
		if err != nil {
			return err
		}
	}
	for _, h := range sample.headers {
		r.Header.Set(h[0], fillSample(h[1], values, false))
	}
	if len(sample.query) > 0 {
		q := r.URL.Query()
		for _, kv := range sample.query {
			q.Set(kv[0], fillSample(kv[1], values, false))
		}
		r.URL.RawQuery = q.Encode()
		r.RequestURI = ""
	}
	return nil
}

// renderedSample is the last sample a Preset made, for SignSample.
type renderedSample struct {
	body   string
	values map[string]string
}

// CaddyModule returns the Caddy module information.
func (p Preset) CaddyModule() caddy.ModuleInfo {
	def := p.preset
	if def == nil { // the zero value, which no registry holds
		return caddy.ModuleInfo{ID: ProvidersNamespace + ".preset", New: func() caddy.Module { return new(Preset) }}
	}
	return caddy.ModuleInfo{ID: caddy.ModuleID(ProvidersNamespace + "." + def.module), New: func() caddy.Module { return &Preset{preset: def} }}
}

var presetOptions = []string{"secret", "url", "max_skew", "map"}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook <preset> {
//	    secret   <value>      # repeatable, for a rotation
//	    url      <value>      # the signed {url}, where the provider signs it
//	    max_skew <duration>   # where the provider signs a timestamp; default 5m
//	    map { … }             # fields that replace the preset's
//	}
func (p *Preset) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "secret":
			err = appendArg(d, &p.Secrets)
		case "url":
			err = singleArg(d, &p.URL)
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		case "map":
			p.Mapping, err = unmarshalMappingFields(d)
		default:
			return UnrecognizedOption(d, p.preset.module, presetOptions...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (p *Preset) Validate() error {
	if len(p.Secrets) == 0 {
		return errors.New("at least one secret is required")
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	_, err := p.configured()
	return err
}

// configured is the preset's scheme with the route's options.
func (p *Preset) configured() (presetScheme, error) {
	s, err := p.preset.newScheme()
	if err != nil {
		return nil, err
	}
	if err := s.configure(p.preset.name, p.Secrets, p.URL, p.MaxSkew, p.Mapping); err != nil {
		return nil, err
	}
	if v, ok := s.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Provision builds the scheme, which expands and decodes the secrets.
func (p *Preset) Provision(ctx caddy.Context) error {
	s, err := p.configured()
	if err != nil {
		return err
	}
	if err := s.Provision(ctx); err != nil {
		return err
	}
	p.scheme = s
	return nil
}

// Name is the provider's name in the envelope.
func (p *Preset) Name() string { return p.preset.name }

// ContentTypes are the scheme's.
func (p *Preset) ContentTypes() []string { return p.scheme.ContentTypes() }

// Verify checks the signature as the scheme does.
func (p *Preset) Verify(ctx context.Context, cb *verify.Callback, in *normalize.Input) (verify.Result, error) {
	return p.scheme.Verify(ctx, cb, in)
}

// Normalize maps the payload with the preset's mapping.
func (p *Preset) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	return p.scheme.Normalize(in, res, events)
}

// Acknowledge gives the preset's answer.
func (p *Preset) Acknowledge(w http.ResponseWriter) int { return p.preset.answer(w) }

// Sample fills the preset's sample in for s.
func (p *Preset) Sample(s normalize.Sample) ([]byte, string, error) {
	body, values, err := p.preset.sample.render(s, randomID(), time.Now())
	if err != nil {
		return nil, "", err
	}
	p.sampled = &renderedSample{body: string(body), values: values}
	return body, "application/json", nil
}

// SignSample signs as the provider does, with the scheme's own code.
func (p *Preset) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: " + p.preset.module + " callbacks are signed")
	}
	s, err := p.preset.newScheme()
	if err != nil {
		return err
	}
	if err := p.preset.sample.prepare(r, p.sampled, body); err != nil {
		return err
	}
	return s.signRequest(r, body, string(secret), time.Now())
}

// Transmission is the scheme's, for one whose signature leaves the body
// out (unsigned_body); "" for any other.
func (p *Preset) Transmission(cb *verify.Callback) (string, error) {
	if weak, ok := p.scheme.(WeaklySigned); ok {
		return weak.Transmission(cb)
	}
	return "", nil
}

// TransmissionWindow is the scheme's.
func (p *Preset) TransmissionWindow() time.Duration {
	if weak, ok := p.scheme.(WeaklySigned); ok {
		return weak.TransmissionWindow()
	}
	return 0
}

// OnlyCurrency is the preset's currency_default where its map reads no
// currency (Authorize.Net's and Affirm's callbacks name none): the only
// currency its callbacks can arrive in, unless a route overrides it.
func (p *Preset) OnlyCurrency() string {
	s, err := p.preset.newScheme()
	if err != nil {
		return ""
	}
	var m *normalize.Mapping
	switch s := s.(type) {
	case *HMAC:
		m = s.Mapping
	case *StandardWebhooks:
		m = s.Mapping
	}
	if m == nil || len(m.Currency) > 0 {
		return ""
	}
	return m.CurrencyDefault
}

// SampleStatuses lists the statuses the preset's sample can send.
func (p *Preset) SampleStatuses() []normalize.Status { return p.preset.sample.order }

// configure sets the route's options on the preset's hmac scheme.
func (p *HMAC) configure(name string, secrets []string, url string, maxSkew caddy.Duration, m *normalize.Mapping) error {
	p.ProviderName, p.Secrets = name, secrets
	if url != "" {
		p.URL = url
	}
	if maxSkew != 0 {
		p.MaxSkew = maxSkew
	}
	p.Mapping = overrideMapping(p.Mapping, m)
	return nil
}

// configure sets the route's options on the preset's standard_webhooks
// scheme.
func (p *StandardWebhooks) configure(name string, secrets []string, url string, maxSkew caddy.Duration, m *normalize.Mapping) error {
	if url != "" {
		return errors.New("url: Standard Webhooks sign no URL")
	}
	p.ProviderName, p.Secrets = name, secrets
	if maxSkew != 0 {
		p.MaxSkew = maxSkew
	}
	p.Mapping = overrideMapping(p.Mapping, m)
	return nil
}

// overrideMapping is base with every field that override gives replaced.
func overrideMapping(base, override *normalize.Mapping) *normalize.Mapping {
	if override == nil {
		return base
	}
	if base == nil {
		return override
	}
	merged := *base
	from, to := reflect.ValueOf(override).Elem(), reflect.ValueOf(&merged).Elem()
	for i := range from.NumField() {
		if !from.Field(i).IsZero() {
			to.Field(i).Set(from.Field(i))
		}
	}
	return &merged
}

// Interface guards.
var (
	_ Provider              = (*Preset)(nil)
	_ SampleSender          = (*Preset)(nil)
	_ WeaklySigned          = (*Preset)(nil)
	_ caddy.Provisioner     = (*Preset)(nil)
	_ caddy.Validator       = (*Preset)(nil)
	_ caddyfile.Unmarshaler = (*Preset)(nil)
	_ presetScheme          = (*HMAC)(nil)
	_ presetScheme          = (*StandardWebhooks)(nil)
)
