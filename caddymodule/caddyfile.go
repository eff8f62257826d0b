package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
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

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. The
// provider's options and the generic ones share one block:
//
//	payhook <provider> {
//	    <the provider's options>          # see its module
//	    max_body        <size>            # default 1MiB
//	    url_token       <value>           # repeatable; required for pyxis
//	    allow_ips       <cidr...>         # only these client addresses
//	    dedupe          <duration>|off    # remember delivered events; default 8d
//	    dedupe_scope    <name>            # share delivery records on purpose
//	    route_name      <name>            # the route's label in the metrics; default: its hosts and paths
//	    forward_headers <name...>         # provider headers the shop may see
//	    sign_upstream   <whsec_…>         # repeatable: Standard Webhooks headers for the shop
//	    inbox {                           # store, acknowledge, deliver with retries
//	        retry_for  <duration>         # default 7d
//	        max_events <n>                # default 100000
//	    }
//	}
//
// The generic options are read here; every other option is handed to the
// provider's module (its UnmarshalCaddyfile sees "<provider> { <its
// options> }"), which refuses any it does not take.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if !d.NextArg() {
		return d.Errf("payhook needs a provider name, one of: %s", joinNames(ProviderNames()))
	}
	name := d.Token()
	provider, err := NewProvider(name.Text)
	if err != nil {
		return d.Err(err.Error())
	}
	if extra := d.RemainingArgs(); len(extra) > 0 {
		return d.Errf("payhook takes one provider name, then its options in a block; got %s after %s", argumentCount(extra), name.Text)
	}
	var providerTokens []caddyfile.Token
	for d.NextBlock(0) {
		switch option := d.Val(); option {
		case "max_body":
			var value string
			if err := singleArg(d, &value); err != nil {
				return err
			}
			size, err := humanize.ParseBytes(value)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_body: invalid size %q", value)
			}
			h.MaxBody = int64(size)
		case "dedupe":
			var value string
			if err := singleArg(d, &value); err != nil {
				return err
			}
			if _, err := dedupeWindow(value); err != nil {
				return d.Err(err.Error())
			}
			h.Dedupe = value
		case "dedupe_scope":
			if err := singleArg(d, &h.DedupeScope); err != nil {
				return err
			}
		case "route_name":
			if err := singleArg(d, &h.RouteName); err != nil {
				return err
			}
		case "url_token":
			if err := appendArg(d, &h.URLTokens); err != nil {
				return err
			}
		case "allow_ips":
			ips := d.RemainingArgs()
			if len(ips) == 0 {
				return d.ArgErr()
			}
			h.AllowIPs = append(h.AllowIPs, ips...)
		case "forward_headers":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.ArgErr()
			}
			for _, name := range names {
				if err := checkForwardHeader(name); err != nil {
					return d.Err(err.Error())
				}
			}
			h.ForwardHeaders = append(h.ForwardHeaders, names...)
		case "inbox":
			if extra := d.RemainingArgs(); len(extra) > 0 {
				return d.Errf("inbox takes no arguments, only a block of options; got %s", argumentCount(extra))
			}
			h.Inbox = new(Inbox)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				var err error
				switch d.Val() {
				case "retry_for":
					h.Inbox.RetryFor, err = durationArg(d, "inbox retry_for")
				case "max_events":
					h.Inbox.MaxEvents, err = positiveIntArg(d, "inbox max_events")
				case "parallel":
					h.Inbox.Parallel, err = positiveIntArg(d, "inbox parallel")
				default:
					return d.Errf("unrecognized inbox option %q (known: retry_for, max_events, parallel)", d.Val())
				}
				if err != nil {
					return err
				}
			}
		case "sign_upstream":
			if err := appendArg(d, &h.SignUpstream); err != nil {
				return err
			}
		default:
			providerTokens = append(providerTokens, d.NextSegment()...)
		}
	}

	unmarshaler, ok := provider.(caddyfile.Unmarshaler)
	if !ok {
		if len(providerTokens) > 0 {
			return caddyfile.NewDispenser(providerTokens).Errf("unrecognized payhook option %q: provider %s takes no options of its own", providerTokens[0].Text, name.Text)
		}
	} else if err := unmarshaler.UnmarshalCaddyfile(providerBlock(name, providerTokens)); err != nil {
		return err
	}
	// What the provider can check without provisioning (a required option
	// missing) is reported here, at the directive's line.
	if v, ok := provider.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			at := caddyfile.NewDispenser([]caddyfile.Token{name})
			at.Next()
			return at.Errf("payhook %s: %v", name.Text, err)
		}
	}
	h.ProviderRaw = caddyconfig.JSONModuleObject(provider, "name", name.Text, nil)
	return nil
}

// providerBlock is the dispenser a provider's UnmarshalCaddyfile reads:
// "<provider> { <its options> }", each option on the line it was written
// on, so that errors point at the Caddyfile's own lines.
func providerBlock(name caddyfile.Token, options []caddyfile.Token) *caddyfile.Dispenser {
	last := name.Line
	if len(options) > 0 {
		final := options[len(options)-1]
		last = final.Line + strings.Count(final.Text, "\n")
	}
	tokens := make([]caddyfile.Token, 0, len(options)+3)
	tokens = append(tokens, caddyfile.Token{File: name.File, Line: name.Line, Text: name.Text})
	tokens = append(tokens, caddyfile.Token{File: name.File, Line: name.Line, Text: "{"})
	tokens = append(tokens, options...)
	tokens = append(tokens, caddyfile.Token{File: name.File, Line: last + 1, Text: "}"})
	return caddyfile.NewDispenser(tokens)
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
