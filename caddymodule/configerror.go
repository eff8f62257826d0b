package caddymodule

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// provisionError completes err, the error a payhook route's provisioning
// failed with, for the operator who reads it in `caddy validate` or the
// log: it names the provider and the route (by its matchers, as the
// Caddyfile writes them: the site's host, the route's path) and, since
// Caddy stops provisioning at the first error, lists every unset {env.*}
// and {file.*} placeholder of every payhook route of the configuration, so
// that one run reports them all.
func provisionError(ctx caddy.Context, h *Handler, err error) error {
	if err == nil {
		return nil
	}
	head := "payhook " + providerOf(h)
	if route := provisioningRoute(ctx); route != "" {
		head += ", " + route
	}
	var tail string
	unset := configUnset(ctx)
	if len(unset) > 1 || len(unset) == 1 && !strings.Contains(err.Error(), unset[0].placeholder) {
		described := make([]string, len(unset))
		for i, u := range unset {
			described[i] = u.String()
		}
		tail = fmt.Sprintf("; every placeholder of the configuration that is empty (%d; set the environment variables, make the files readable): %s",
			len(unset), strings.Join(described, "; "))
	}
	return fmt.Errorf("%s: %w%s", head, err, tail)
}

// providerOf names the handler's provider module, loaded or not.
func providerOf(h *Handler) string {
	if h.provider != nil {
		return caddy.GetModuleName(h.provider)
	}
	var named struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(h.ProviderRaw, &named) == nil && named.Name != "" {
		return named.Name
	}
	return "(no provider)"
}

// provisioningRoute describes the route whose handlers Caddy is
// provisioning in ctx: the route of the server, then of each subroute
// (a Caddyfile route block), whose handlers are still being loaded. Caddy
// clears a route's raw handlers once they are all loaded, so it is the
// first route of each list that still has them.
func provisioningRoute(ctx caddy.Context) string {
	server, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || server == nil {
		return ""
	}
	var matchers []string
	lists := []caddyhttp.RouteList{server.Routes}
	if server.Errors != nil {
		lists = append(lists, server.Errors.Routes)
	}
	matchers = append(matchers, provisioningIn(lists...)...)
	for _, m := range ctx.Modules() {
		if sr, ok := m.(*caddyhttp.Subroute); ok {
			lists := []caddyhttp.RouteList{sr.Routes}
			if sr.Errors != nil {
				lists = append(lists, sr.Errors.Routes)
			}
			matchers = append(matchers, provisioningIn(lists...)...)
		}
	}
	return routeName(matchers, server.Listen)
}

// provisioningIn describes the matchers of the first route of lists whose
// handlers are still being loaded.
func provisioningIn(lists ...caddyhttp.RouteList) []string {
	for _, routes := range lists {
		for i := range routes {
			if len(routes[i].HandlersRaw) > 0 {
				return routeMatchers(&routes[i])
			}
		}
	}
	return nil
}

// routeName names a route by the matchers of the routes it lies in, and
// the addresses its server listens on.
func routeName(matchers []string, listen []string) string {
	name := strings.Join(matchers, " ")
	if name == "" {
		name = "every request"
	}
	return fmt.Sprintf("route %s on %s", name, strings.Join(listen, " "))
}

// routeMatchers describes a route's matchers: the values of its host and
// path matchers, the names of the others; its matcher sets, any of which
// matches, joined by "or".
func routeMatchers(r *caddyhttp.Route) []string {
	var sets []string
	if len(r.MatcherSets) > 0 {
		for _, set := range r.MatcherSets {
			var described []string
			for _, m := range set {
				switch m := m.(type) {
				case *caddyhttp.MatchHost:
					described = append(described, strings.Join(*m, ","))
				case *caddyhttp.MatchPath:
					described = append(described, strings.Join(*m, ","))
				case caddy.Module:
					described = append(described, caddy.GetModuleName(m))
				default:
					described = append(described, fmt.Sprintf("%T", m))
				}
			}
			slices.Sort(described)
			sets = append(sets, strings.Join(described, " "))
		}
	} else {
		for _, set := range r.MatcherSetsRaw {
			sets = append(sets, rawMatcherSet(set))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	return []string{strings.Join(sets, " or ")}
}

// rawMatcherSet describes a matcher set of a route not yet provisioned.
func rawMatcherSet[V any](set map[string]V) string {
	var described []string
	for _, name := range slices.Sorted(maps.Keys(set)) {
		var values []string
		raw, _ := json.Marshal(set[name])
		if (name == "host" || name == "path") && json.Unmarshal(raw, &values) == nil {
			described = append(described, strings.Join(values, ","))
		} else {
			described = append(described, name)
		}
	}
	return strings.Join(described, " ")
}

// unsetPlaceholder is a placeholder of a payhook route's configuration
// that expands to nothing.
type unsetPlaceholder struct {
	placeholder string // {env.NAME}
	provider    string
	option      string // as the Caddyfile names it: secret #1, api_key
	route       string
}

func (u unsetPlaceholder) String() string {
	return fmt.Sprintf("%s (payhook %s %s, %s)", u.placeholder, u.provider, u.option, u.route)
}

// configUnset finds the unset placeholders of the payhook routes of the
// HTTP app being provisioned in ctx: those not provisioned yet, whose raw
// configuration Caddy still holds (the routes provisioned before had theirs
// set), in the order of the servers' names and of their routes.
func configUnset(ctx caddy.Context) []unsetPlaceholder {
	servers := map[string]*caddyhttp.Server{}
	for _, m := range ctx.Modules() {
		if app, ok := m.(*caddyhttp.App); ok {
			servers = app.Servers
		}
	}
	if server, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && len(servers) == 0 && server != nil {
		servers = map[string]*caddyhttp.Server{"": server}
	}
	return unsetInServers(servers)
}

// unsetInServers is configUnset for the servers of an HTTP app.
func unsetInServers(servers map[string]*caddyhttp.Server) []unsetPlaceholder {
	var unset []unsetPlaceholder
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		server := servers[name]
		routes := server.Routes
		if server.Errors != nil {
			routes = append(slices.Clip(routes), server.Errors.Routes...)
		}
		for i := range routes {
			for _, raw := range routes[i].HandlersRaw {
				var handler any
				if json.Unmarshal(raw, &handler) == nil {
					unset = findUnset(unset, handler, routeMatchers(&routes[i]), server.Listen)
				}
			}
		}
	}
	return unset
}

// findUnset walks a handler's raw configuration for payhook handlers, in
// the routes of subroutes too, and appends their unset placeholders.
func findUnset(unset []unsetPlaceholder, v any, matchers, listen []string) []unsetPlaceholder {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "payhook" {
			return unsetOfHandler(unset, v, routeName(matchers, listen))
		}
		if handle, ok := v["handle"]; ok { // a route
			if sets, ok := v["match"].([]any); ok && len(sets) > 0 {
				described := make([]string, 0, len(sets))
				for _, set := range sets {
					if set, ok := set.(map[string]any); ok {
						described = append(described, rawMatcherSet(set))
					}
				}
				matchers = append(slices.Clip(matchers), strings.Join(described, " or "))
			}
			return findUnset(unset, handle, matchers, listen)
		}
		for _, key := range slices.Sorted(maps.Keys(v)) {
			unset = findUnset(unset, v[key], matchers, listen)
		}
	case []any:
		for _, item := range v {
			unset = findUnset(unset, item, matchers, listen)
		}
	}
	return unset
}

// unsetOfHandler appends the unset placeholders of a payhook handler's
// options and its provider's.
func unsetOfHandler(unset []unsetPlaceholder, handler map[string]any, route string) []unsetPlaceholder {
	provider, _ := handler["provider"].(map[string]any)
	name, _ := provider["name"].(string)
	var walk func(v any, option string)
	walk = func(v any, option string) {
		switch v := v.(type) {
		case string:
			for _, placeholder := range unsetPlaceholders(v) {
				unset = append(unset, unsetPlaceholder{placeholder: placeholder, provider: name, option: option, route: route})
			}
		case []any:
			// A repeatable option: its JSON name is plural (secrets), its
			// Caddyfile name singular (secret), numbered as Secrets does.
			singular := strings.TrimSuffix(option, "s")
			for i, item := range v {
				walk(item, singular+" #"+strconv.Itoa(i+1))
			}
		case map[string]any:
			for _, key := range slices.Sorted(maps.Keys(v)) {
				walk(v[key], strings.TrimSpace(option+" "+key))
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(handler)) {
		switch key {
		case "handler":
		case "provider":
			for _, option := range slices.Sorted(maps.Keys(provider)) {
				if option != "name" {
					walk(provider[option], option)
				}
			}
		default:
			walk(handler[key], key)
		}
	}
	return unset
}
