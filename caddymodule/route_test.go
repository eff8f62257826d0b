package caddymodule

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The metrics' route label names the hosts and paths on the way to the
// handler, in subroutes too, and a long one is cut to a valid UTF-8 label
// (Prometheus refuses anything else) of at most maxRouteLabel bytes.
func TestRouteLabel(t *testing.T) {
	h := new(Handler)
	in := func(host string) *caddyhttp.Server {
		return &caddyhttp.Server{Listen: []string{":8880"}, Routes: caddyhttp.RouteList{{
			MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHost{host}}},
			Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{Routes: caddyhttp.RouteList{{
				MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/callbacks/ixopay*"}}},
				Handlers:    []caddyhttp.MiddlewareHandler{h},
			}}}},
		}}}
	}
	if got := routeLabel(in("shop.example"), h); got != "shop.example/callbacks/ixopay*" {
		t.Errorf("label %q", got)
	}
	if got := routeLabel(&caddyhttp.Server{Listen: []string{":8880"}, Routes: caddyhttp.RouteList{{
		Handlers: []caddyhttp.MiddlewareHandler{h}}}}, h); got != ":8880" {
		t.Errorf("label without matchers %q", got)
	}
	for n := range 8 {
		// Every offset of a three-byte character against the cut.
		long := strings.Repeat("a", n) + strings.Repeat("bücherstube-", 12) + ".example"
		got := routeLabel(in(long), h)
		if !utf8.ValidString(got) || len(got) > maxRouteLabel || !strings.HasSuffix(got, "…") {
			t.Errorf("label of %d bytes, valid UTF-8 %v: %q", len(got), utf8.ValidString(got), got)
		}
	}
}
