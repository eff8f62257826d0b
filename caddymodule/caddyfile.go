package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("payhook", parseCaddyfile)
	// payhook must see the provider's request before reverse_proxy sends the
	// envelope on, also outside a route block.
	httpcaddyfile.RegisterDirectiveOrder("payhook", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	payhook <provider> {
//	    secret     <value>       # ixopay, repeatable: every secret is accepted
//	    max_skew   <duration>    # default 5m
//	    max_body   <size>        # default 1MiB
//	    legacy_md5               # ixopay: also accept the MD5 body hash
//	    instance   <name>        # payrexx, shopandpay: the instance name
//	    api_key    <value>       # payrexx, shopandpay: the API secret
//	    api_base   <url>         # the provider's API; default: its own
//	    api_timeout <duration>   # per API request; default 5s
//	    signature_secret <value> # payrexx: also require X-Webhook-Signature
//	    token      <value>       # swedbankpay: the API bearer token
//	    url_token  <value>       # repeatable; required for pyxis, any provider may add it
//	    allow_ips  <cidr...>     # any provider: only these client addresses
//	    currency   <code>        # pyxis: the currency of amounts (default GBP)
//	    dedupe     <duration>|off # remember delivered events; default 8d
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if !d.NextArg() {
		return d.Errf("payhook needs a provider name, one of: %s", joinNames(providerNames()))
	}
	h.Provider = d.Val()
	if _, ok := providers[h.Provider]; !ok {
		return d.Errf("unknown provider %q (known: %s)", h.Provider, joinNames(providerNames()))
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch option := d.Val(); option {
		case "secret":
			var secret string
			if !d.AllArgs(&secret) {
				return d.ArgErr()
			}
			h.Secrets = append(h.Secrets, secret)
		case "max_skew":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(value)
			if err != nil {
				return d.Errf("max_skew: %v", err)
			}
			if dur <= 0 {
				return d.Errf("max_skew must be positive")
			}
			h.MaxSkew = caddy.Duration(dur)
		case "max_body":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(value)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_body: invalid size %q", value)
			}
			h.MaxBody = int64(size)
		case "instance", "api_key", "api_base", "signature_secret", "token", "currency":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			*map[string]*string{
				"instance": &h.Instance, "api_key": &h.APIKey, "api_base": &h.APIBase,
				"signature_secret": &h.SignatureSecret, "token": &h.Token, "currency": &h.Currency,
			}[option] = value
		case "dedupe":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			if _, err := dedupeWindow(value); err != nil {
				return d.Err(err.Error())
			}
			h.Dedupe = value
		case "url_token":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			h.URLTokens = append(h.URLTokens, value)
		case "allow_ips":
			ips := d.RemainingArgs()
			if len(ips) == 0 {
				return d.ArgErr()
			}
			h.AllowIPs = append(h.AllowIPs, ips...)
		case "api_timeout":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(value)
			if err != nil || dur <= 0 {
				return d.Errf("api_timeout: invalid duration %q", value)
			}
			h.APITimeout = caddy.Duration(dur)
		case "legacy_md5":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.LegacyMD5 = true
		default:
			return d.Errf("unrecognized payhook option %q", option)
		}
	}
	return nil
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(n)
	}
	return out
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
