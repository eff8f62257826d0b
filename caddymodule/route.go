package caddymodule

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// routeScope is where a route's events belong: the records that tell a
// delivered event from a new one, and the inbox that holds the route's
// waiting events.
type routeScope struct {
	// dedupe is the scope of the route's delivery records: dedupe_scope
	// when it is set (routes that name the same one share their records
	// on purpose), the route's place otherwise.
	dedupe string
	// inbox names the route's inbox in the storage. It is always the
	// route's place, never dedupe_scope: an inbox delivers an event only
	// through the route that stored it.
	inbox string
	// place is the route's place in the configuration, in words, for the
	// log: its server's addresses and the matchers that lead to it.
	place string
	// label names the route in the metrics: route_name when it is set,
	// else the hosts and paths its matchers name (routeLabel).
	label string
}

// maxRouteLabel bounds the route label of a route whose matchers name
// many hosts or paths.
const maxRouteLabel = 100

// routeLabel is the route's label in the metrics when route_name does not
// name it: the hosts and the paths of the host and path matchers on the
// way to the handler ("shop.example/callbacks/ixopay*"), else its
// server's ports (":8880"). One per route of the configuration: the
// label's values are as many as the payhook routes.
func routeLabel(server *caddyhttp.Server, h caddyhttp.MiddlewareHandler) string {
	if server == nil {
		return ""
	}
	var hosts, paths []string
	if chain, ok := matcherChain(server.Routes, h); ok {
		for _, sets := range chain {
			for _, set := range sets {
				for _, m := range set {
					switch m := m.(type) {
					case *caddyhttp.MatchHost:
						hosts = append(hosts, *m...)
					case caddyhttp.MatchHost:
						hosts = append(hosts, m...)
					case *caddyhttp.MatchPath:
						paths = append(paths, *m...)
					case caddyhttp.MatchPath:
						paths = append(paths, m...)
					}
				}
			}
		}
	}
	label := strings.Join(slices.Compact(hosts), ",") + strings.Join(slices.Compact(paths), ",")
	if label == "" {
		ports := listenPorts(server.Listen)
		for i, port := range ports {
			if _, after, ok := strings.Cut(port, "/"); ok {
				ports[i] = after // tcp/:8880: the port
			}
		}
		label = strings.Join(ports, " ")
	}
	if len(label) > maxRouteLabel {
		// Cut at a character's start: a label must be valid UTF-8, and
		// host matchers may name internationalized hosts.
		cut := maxRouteLabel - len("…")
		for cut > 0 && !utf8.RuneStart(label[cut]) {
			cut--
		}
		label = label[:cut] + "…"
	}
	return label
}

// matcherChain is the matcher sets of the routes on the way to h, in
// routes and their subroutes, outermost first.
func matcherChain(routes caddyhttp.RouteList, h caddyhttp.MiddlewareHandler) ([]caddyhttp.MatcherSets, bool) {
	for _, route := range routes {
		for _, handler := range route.Handlers {
			if handler == h {
				return []caddyhttp.MatcherSets{route.MatcherSets}, true
			}
			if sub, ok := handler.(*caddyhttp.Subroute); ok {
				if chain, ok := matcherChain(sub.Routes, h); ok {
					return append([]caddyhttp.MatcherSets{route.MatcherSets}, chain...), true
				}
			}
		}
	}
	return nil, false
}

// routePlace is the route's place in the configuration, from which its
// default scope derives: the addresses its server listens on, and the
// matchers of the route that holds the handler and of every route around
// it (a site's host matcher, handle_path's path matcher, a header
// matcher, …), in the order Caddy evaluates them. Every instance of a
// cluster derives the same place from the same configuration; a secret
// added for a rotation, or an option that does not say where events come
// from, leaves it as it is. found is false when the handler is not in its
// server's routes (a route kind payhook does not know, or no server).
func routePlace(server *caddyhttp.Server, h caddyhttp.MiddlewareHandler) (place string, found bool) {
	if server == nil {
		return "", false
	}
	prefix := "listen " + strings.Join(listenPorts(server.Listen), " ")
	if path, ok := findHandler(server.Routes, h); ok {
		return prefix + "; routes" + path, true
	}
	if server.Errors != nil {
		if path, ok := findHandler(server.Errors.Routes, h); ok {
			return prefix + "; errors" + path, true
		}
	}
	names := make([]string, 0, len(server.NamedRoutes))
	for name := range server.NamedRoutes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if path, ok := findHandler(caddyhttp.RouteList{*server.NamedRoutes[name]}, h); ok {
			return prefix + "; named route " + name + path, true
		}
	}
	return prefix, false
}

// listenPorts is what a server's listen addresses say of where events come
// from: their networks and ports (or socket paths), sorted. The interface
// they bind takes no part: the instances of a cluster may each bind an
// address of their own ({env.NODE_IP}) and still share their routes.
func listenPorts(listen []string) []string {
	ports := make([]string, 0, len(listen))
	for _, l := range listen {
		addr, err := caddy.ParseNetworkAddress(l)
		switch {
		case err != nil:
			ports = append(ports, l)
		case addr.IsUnixNetwork() || addr.IsFdNetwork():
			ports = append(ports, addr.String())
		default:
			port := strconv.FormatUint(uint64(addr.StartPort), 10)
			if addr.EndPort != addr.StartPort {
				port += "-" + strconv.FormatUint(uint64(addr.EndPort), 10)
			}
			ports = append(ports, addr.Network+"/:"+port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// findHandler looks for h in routes and in the subroutes of their
// handlers (handle, handle_path, route, …), and describes the matchers
// on the way to it.
func findHandler(routes caddyhttp.RouteList, h caddyhttp.MiddlewareHandler) (string, bool) {
	for _, route := range routes {
		for _, handler := range route.Handlers {
			if handler == h {
				return " > " + describeMatchers(route.MatcherSets), true
			}
			switch sub := handler.(type) {
			case *caddyhttp.Subroute:
				if path, ok := findHandler(sub.Routes, h); ok {
					return " > " + describeMatchers(route.MatcherSets) + path, true
				}
				if sub.Errors != nil {
					if path, ok := findHandler(sub.Errors.Routes, h); ok {
						return " > " + describeMatchers(route.MatcherSets) + " errors" + path, true
					}
				}
			}
		}
	}
	return "", false
}

// describeMatchers writes a route's matcher sets as their modules' names
// and JSON configuration: within a set in a fixed order (Caddy loads a
// set from a map), the sets in the configuration's order.
func describeMatchers(sets caddyhttp.MatcherSets) string {
	if len(sets) == 0 {
		return "*"
	}
	described := make([]string, 0, len(sets))
	for _, set := range sets {
		matchers := make([]string, 0, len(set))
		for _, m := range set {
			matchers = append(matchers, describeMatcher(m))
		}
		slices.Sort(matchers)
		described = append(described, "{"+strings.Join(matchers, " ")+"}")
	}
	return strings.Join(described, " or ")
}

func describeMatcher(m any) string {
	name := fmt.Sprintf("%T", m)
	if mod, ok := m.(caddy.Module); ok {
		name = caddy.GetModuleName(mod)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return name
	}
	return name + " " + string(raw)
}

// newRouteScope derives the route's scope from its place, its provider
// and the provider's account.
func (h *Handler) newRouteScope(place, label string) *routeScope {
	route := "route\x00" + h.name
	if s, ok := h.provider.(DedupeScoper); ok {
		route += "\x00" + s.DedupeScope()
	}
	route += "\x00" + place
	s := &routeScope{dedupe: route, inbox: shortHash("inbox\x00" + route), place: place, label: cmp.Or(h.RouteName, label)}
	if h.DedupeScope != "" {
		s.dedupe = h.DedupeScope
	}
	return s
}

// scope returns the route's scope, derived once its server's routes are
// all provisioned: when the first callback arrives, or when the inbox
// starts. Until the handler is found in them, and while its server is not
// yet running, it is derived again at each call, never remembered.
func (h *Handler) scope() *routeScope {
	if s := h.routePlace.Load(); s != nil {
		return s
	}
	place, found := routePlace(h.server, h)
	s := h.newRouteScope(place, routeLabel(h.server, h))
	if !found && h.server != nil && !serverRunning(h.server) {
		return s
	}
	if !found && h.server != nil {
		h.logger.Warn("payhook's route is not where payhook looks for it; its events are scoped by its server and provider only: set dedupe_scope if another payhook route of this provider shares the server",
			zap.String("server_listen", place))
	}
	h.routePlace.CompareAndSwap(nil, s)
	return h.routePlace.Load()
}

// legacyInbox is the inbox directory that versions before route scopes
// used for this route: named after dedupe_scope, or after the provider
// and its account alone (so two routes of one provider shared it).
func (h *Handler) legacyInbox() string {
	scope := h.DedupeScope
	if scope == "" {
		scope = "provider\x00" + h.name
		if s, ok := h.provider.(DedupeScoper); ok {
			scope += "\x00" + s.DedupeScope()
		}
	}
	return shortHash(scope)
}

// shortHash is the lowercase hex of the first 8 bytes of SHA-256 over s.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// serverRunning tells whether server belongs to the running configuration
// (Caddy makes it active once every app has started; one being validated,
// or replaced, never is).
func serverRunning(server *caddyhttp.Server) bool {
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return false
	}
	http, ok := app.(*caddyhttp.App)
	if !ok {
		return false
	}
	for _, s := range http.Servers {
		if s == server {
			return true
		}
	}
	return false
}
