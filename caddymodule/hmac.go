package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddy.RegisterModule(HMAC{})
}

// HMAC receives webhooks of any provider that signs with an HMAC, described
// by configuration alone: the hash, the header (and, for headers of
// key=value pairs, which key holds the signature and which the
// timestamp), the encodings, what is signed, and the timestamp that bounds
// a replay. A map turns the payload into the envelope; without one, the
// body is data.original and the status unknown.
type HMAC struct {
	// ProviderName is the provider's name in the envelope and the logs
	// (Caddyfile: name). Required.
	ProviderName string `json:"provider_name,omitempty"`

	// Secrets are the keys, in SecretEncoding; any one verifies. Use
	// placeholders.
	Secrets []string `json:"secrets,omitempty"`

	// SecretEncoding is how the secrets are written: raw (their bytes as
	// they are, the default), base64 or hex.
	SecretEncoding string `json:"secret_encoding,omitempty"`

	// Mode is how a signature is made from a secret: hmac (the default,
	// an HMAC of the content keyed with the secret), hash (the digest of
	// the content, which holds {secret}: PayU), secret (the header carries
	// the secret itself: Flutterwave's verif-hash) or secret_hash (the
	// header carries the secret's digest: PhonePe). With secret and
	// secret_hash, the body is not signed.
	Mode string `json:"mode,omitempty"`

	// Algorithm is md5, sha1, sha256 (default) or sha512.
	Algorithm string `json:"algorithm,omitempty"`

	// Algorithms are the hashes accepted when the header names each
	// signature's algorithm (AlgorithmKey, or an algorithm field);
	// default: Algorithm alone (Caddyfile: algorithm <first> <other>...).
	Algorithms []string `json:"algorithms,omitempty"`

	// Header carries the signature. Required.
	Header string `json:"header,omitempty"`

	// HeaderEncoding base64: the header's value is base64 of what is read
	// (MultiSafepay's Auth).
	HeaderEncoding string `json:"header_encoding,omitempty"`

	// SignatureKey, when set, makes Header a list of key=value pairs
	// (Stripe's "t=…,v1=…", Paddle's "ts=…;h1=…"): the signature is the
	// value of this key (several are candidates). AlgorithmKey is the key
	// that names their algorithm (PayU's algorithm=MD5).
	SignatureKey string `json:"signature_key,omitempty"`
	AlgorithmKey string `json:"algorithm_key,omitempty"`

	// PairSeparator joins the key=value pairs of the header `caddy payhook
	// send` signs: , (default), ; (Paddle, PayU) or &. Any of them is read.
	PairSeparator string `json:"pair_separator,omitempty"`

	// Fields, when set, makes Header a list of comma-separated entries,
	// each made of these fields in order, separated by FieldSeparator:
	// signature, timestamp, algorithm, key_id or _ (Worldpay's
	// "1/SHA256/<hex>": separator "/", fields key_id algorithm signature).
	Fields         []string `json:"fields,omitempty"`
	FieldSeparator string   `json:"field_separator,omitempty"`

	// UnsignedBody accepts a content that leaves the body out, for the
	// providers whose signature does (Mercado Pago). The route then binds
	// each signature to the first body it arrives with, for the dedupe
	// window, which must be at least max_skew; a timestamp is required.
	UnsignedBody bool `json:"unsigned_body,omitempty"`

	// SignatureEncoding is hex (default), base64 or base64url.
	SignatureEncoding string `json:"signature_encoding,omitempty"`

	// Prefix starts every signature ("sha256="); it is removed before
	// decoding. PrefixOptional also accepts signatures without it
	// (Caddyfile: prefix <text> optional).
	Prefix         string `json:"prefix,omitempty"`
	PrefixOptional bool   `json:"prefix_optional,omitempty"`

	// Content is what is signed; default {body}. See verify.Template.
	Content string `json:"content,omitempty"`

	// URL is the template's {url}; default: the URL the provider called.
	URL string `json:"url,omitempty"`

	// TimestampHeader carries the timestamp; TimestampKey takes it from
	// Header's key=value pairs instead. TimestampFormat is seconds
	// (default), milliseconds, http-date or rfc3339.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	TimestampKey    string `json:"timestamp_key,omitempty"`
	TimestampFormat string `json:"timestamp_format,omitempty"`

	// MaxSkew is how far the timestamp may lie in the past or the future.
	// Default: 5m.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// IDHeader carries the {id} of the template.
	IDHeader string `json:"id_header,omitempty"`

	// ContentTypes are the media types accepted; default application/json
	// and application/x-www-form-urlencoded.
	AcceptedTypes []string `json:"content_types,omitempty"`

	// Mapping maps the payload into the envelope (Caddyfile: map).
	Mapping *normalize.Mapping `json:"map,omitempty"`

	verifier   *verify.HMAC
	sampleBody string // send --body
}

// CaddyModule returns the Caddy module information.
func (HMAC) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: ProvidersNamespace + ".hmac", New: func() caddy.Module { return new(HMAC) }}
}

var hmacOptions = []string{"name", "secret", "secret_encoding", "mode", "algorithm", "algorithm_key", "header", "header_encoding", "pair_separator",
	"fields", "signature_encoding", "prefix", "content", "unsigned_body", "url", "timestamp_header", "timestamp_key", "max_skew",
	"id_header", "content_types", "map"}

// UnmarshalCaddyfile reads the provider's options of a payhook block:
//
//	payhook hmac {
//	    name               <provider>            # required: the name in the envelope
//	    secret             <value>               # repeatable
//	    secret_encoding    raw|base64|hex        # default raw
//	    mode               hmac|hash|secret|secret_hash   # default hmac
//	    algorithm          md5|sha1|sha256|sha512...      # default sha256; several when the header names it
//	    algorithm_key      <key>                 # the key=… that names a signature's algorithm
//	    header             <name> [<key>]        # the signature; with <key>, the value of key=… in it
//	    header_encoding    base64                # the header's value is base64
//	    pair_separator     ,|;|&                 # joins the pairs send signs; default ,
//	    fields             <separator> <field>...         # entries of signature|timestamp|algorithm|key_id|_
//	    signature_encoding hex|base64|base64url  # default hex
//	    prefix             <text> [optional]     # e.g. sha256=; optional: bare signatures too
//	    content            <template>            # default {body}
//	    unsigned_body                            # the content leaves the body out (Mercado Pago)
//	    url                <value>               # the template's {url}
//	    timestamp_header   <name> [seconds|milliseconds|http-date|rfc3339]
//	    timestamp_key      <key> [seconds|milliseconds]   # in the signature header
//	    max_skew           <duration>            # default 5m
//	    id_header          <name>                # the template's {id}
//	    content_types      <type>...             # default JSON and form
//	    map { … }                                # see unmarshalMapping
//	}
func (p *HMAC) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "name":
			err = singleArg(d, &p.ProviderName)
		case "secret":
			err = appendArg(d, &p.Secrets)
		case "secret_encoding":
			err = singleArg(d, &p.SecretEncoding)
		case "mode":
			err = singleArg(d, &p.Mode)
		case "algorithm":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("algorithm <name>... (md5, sha1, sha256, sha512)")
			}
			p.Algorithm = args[0]
			if len(args) > 1 {
				p.Algorithms = args
			}
		case "algorithm_key":
			err = singleArg(d, &p.AlgorithmKey)
		case "pair_separator":
			err = singleArg(d, &p.PairSeparator)
		case "header_encoding":
			err = singleArg(d, &p.HeaderEncoding)
		case "fields":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Err("fields <separator> <field>... (signature, timestamp, algorithm, key_id, _)")
			}
			p.FieldSeparator, p.Fields = args[0], args[1:]
		case "unsigned_body":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.UnsignedBody = true
		case "header":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("header <name> [<signature key>]")
			}
			p.Header = args[0]
			if len(args) == 2 {
				p.SignatureKey = args[1]
			}
		case "signature_encoding":
			err = singleArg(d, &p.SignatureEncoding)
		case "prefix":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "optional") {
				return d.Err("prefix <text> [optional]")
			}
			p.Prefix, p.PrefixOptional = args[0], len(args) == 2
		case "content":
			err = singleArg(d, &p.Content)
		case "url":
			err = singleArg(d, &p.URL)
		case "timestamp_header", "timestamp_key":
			option := d.Val()
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("%s <name> [seconds|milliseconds|http-date|rfc3339]", option)
			}
			if option == "timestamp_header" {
				p.TimestampHeader = args[0]
			} else {
				p.TimestampKey = args[0]
			}
			if len(args) == 2 {
				p.TimestampFormat = args[1]
			}
		case "max_skew":
			p.MaxSkew, err = durationArg(d, "max_skew")
		case "id_header":
			err = singleArg(d, &p.IDHeader)
		case "content_types":
			p.AcceptedTypes = d.RemainingArgs()
			if len(p.AcceptedTypes) == 0 {
				err = d.ArgErr()
			}
		case "map":
			p.Mapping, err = unmarshalMapping(d)
		default:
			return UnrecognizedOption(d, "hmac", hmacOptions...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// scheme is the verifier the configuration describes, less its secrets.
func (p *HMAC) scheme() (*verify.HMAC, error) {
	v := &verify.HMAC{
		Mode:            p.Mode,
		Algorithm:       p.Algorithm,
		Algorithms:      p.Algorithms,
		Header:          p.Header,
		HeaderEncoding:  p.HeaderEncoding,
		SignatureKey:    p.SignatureKey,
		AlgorithmKey:    p.AlgorithmKey,
		PairSeparator:   p.PairSeparator,
		Fields:          p.Fields,
		FieldSeparator:  p.FieldSeparator,
		UnsignedBody:    p.UnsignedBody,
		Encoding:        p.SignatureEncoding,
		Prefix:          p.Prefix,
		PrefixOptional:  p.PrefixOptional,
		TimestampKey:    p.TimestampKey,
		TimestampHeader: p.TimestampHeader,
		TimestampFormat: p.TimestampFormat,
		MaxSkew:         time.Duration(p.MaxSkew),
		IDHeader:        p.IDHeader,
		URL:             p.URL,
	}
	if v.Algorithm == "" {
		v.Algorithm = "sha256"
	}
	if v.Encoding == "" {
		v.Encoding = "hex"
	}
	if v.MaxSkew == 0 {
		v.MaxSkew = DefaultMaxSkew
	}
	if p.Mode == verify.ModeSecret || p.Mode == verify.ModeSecretHash {
		if p.Content != "" {
			return nil, fmt.Errorf("mode %s: the header carries the secret itself, so no content is signed", p.Mode)
		}
		return v, v.Check()
	}
	content := p.Content
	if content == "" {
		content = "{body}"
	}
	var err error
	if v.Content, err = verify.ParseTemplateWithoutBody(content); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return v, v.Check()
}

// Validate checks the configuration.
func (p *HMAC) Validate() error {
	if p.ProviderName == "" {
		return errors.New("name is required: the provider's name in the envelope (name gocardless)")
	}
	if !providerName.MatchString(p.ProviderName) {
		return fmt.Errorf("name %q: lower-case letters, digits, '_' and '-'", p.ProviderName)
	}
	if len(p.Secrets) == 0 {
		return errors.New("at least one secret is required")
	}
	switch p.SecretEncoding {
	case "", "raw", "base64", "hex":
	default:
		return fmt.Errorf("secret_encoding %q: want raw, base64 or hex", p.SecretEncoding)
	}
	if p.MaxSkew < 0 {
		return fmt.Errorf("max_skew must be positive, got %s", time.Duration(p.MaxSkew))
	}
	if _, err := p.scheme(); err != nil {
		return err
	}
	if p.Mapping != nil {
		if err := p.Mapping.Check(); err != nil {
			return fmt.Errorf("map: %w", err)
		}
	}
	return nil
}

// Provision expands and decodes the secrets and builds the verifier.
func (p *HMAC) Provision(ctx caddy.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	v, err := p.scheme()
	if err != nil {
		return err
	}
	v.Secrets, err = DecodedSecrets(ctx.Logger(), "secret", p.Secrets, func(s string) ([]byte, error) {
		key, err := verify.DecodeSecret(s, p.SecretEncoding)
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("not %s", p.SecretEncoding)
		}
		return key, nil
	})
	if err != nil {
		return err
	}
	p.verifier = v
	return nil
}

// Name is the configured name.
func (p *HMAC) Name() string { return p.ProviderName }

var defaultHMACContentTypes = []string{"application/json", "application/x-www-form-urlencoded"}

// ContentTypes are the configured ones, else JSON and PHP-style forms.
func (p *HMAC) ContentTypes() []string {
	if len(p.AcceptedTypes) == 0 {
		return defaultHMACContentTypes
	}
	types := make([]string, len(p.AcceptedTypes))
	for i, t := range p.AcceptedTypes {
		types[i] = strings.ToLower(t)
	}
	return slices.Compact(types)
}

// Verify checks the signature (and the timestamp) over the raw bytes,
// before anything is parsed.
func (p *HMAC) Verify(ctx context.Context, cb *verify.Callback, _ *normalize.Input) (verify.Result, error) {
	return p.verifier.Verify(ctx, cb)
}

// Normalize maps the payload.
func (p *HMAC) Normalize(in *normalize.Input, res verify.Result, events []*normalize.Event) ([]*normalize.Event, error) {
	return mapEvents(p.Mapping, in, res.NotificationID, events)
}

// signRequest makes r, whose body is body, authentic under the scheme with
// secret (written in SecretEncoding) at now, as a sender does, with the
// verifier's own code: for `caddy payhook send` and the tests. The
// template's {url} is r's URL unless URL is set.
func (p *HMAC) signRequest(r *http.Request, body []byte, secret string, now time.Time) error {
	scheme, err := p.scheme()
	if err != nil {
		return err
	}
	key, err := verify.DecodeSecret(secret, p.SecretEncoding)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	var timestamp string
	switch p.TimestampFormat {
	case "milliseconds":
		timestamp = strconv.FormatInt(now.UnixMilli(), 10)
	case "http-date":
		timestamp = now.UTC().Format(http.TimeFormat)
	case "rfc3339":
		timestamp = now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	default:
		timestamp = strconv.FormatInt(now.Unix(), 10)
	}
	if p.TimestampHeader != "" {
		r.Header.Set(p.TimestampHeader, timestamp)
	}
	id := "msg_" + randomID()
	if p.IDHeader != "" {
		r.Header.Set(p.IDHeader, id)
	}
	if scheme.URL == "" {
		scheme.URL = r.URL.String()
	}
	signature, err := scheme.Sign(key, verify.TemplateValues{
		Body: body, Timestamp: timestamp, ID: id, URL: scheme.URL, Placeholders: requestPlaceholders{r},
	})
	if err != nil {
		return err
	}
	r.Header.Set(p.Header, signature)
	return nil
}

// Transmission is, for a scheme whose signature leaves the body out
// (unsigned_body), the signature header once it verifies: the handler
// binds it to the first body it arrives with. Verifying here, before the
// binding, keeps a forger from binding anything. For any other scheme it
// is "": the signature covers the body, nothing to bind.
func (p *HMAC) Transmission(cb *verify.Callback) (string, error) {
	if !p.UnsignedBody {
		return "", nil
	}
	if _, err := p.verifier.Verify(context.Background(), cb); err != nil {
		return "", err
	}
	return strings.Join(cb.Header.Values(p.Header), "\n"), nil
}

// TransmissionWindow is max_skew for a scheme whose signature leaves the
// body out, the time a signature is accepted; 0 for any other.
func (p *HMAC) TransmissionWindow() time.Duration {
	if !p.UnsignedBody {
		return 0
	}
	if p.MaxSkew == 0 {
		return DefaultMaxSkew
	}
	return time.Duration(p.MaxSkew)
}

var _ WeaklySigned = (*HMAC)(nil)

// Acknowledge answers 200 "OK".
func (*HMAC) Acknowledge(w http.ResponseWriter) int { return ackOK(w) }

// Interface guards.
var (
	_ Provider              = (*HMAC)(nil)
	_ caddy.Provisioner     = (*HMAC)(nil)
	_ caddy.Validator       = (*HMAC)(nil)
	_ caddyfile.Unmarshaler = (*HMAC)(nil)
)
