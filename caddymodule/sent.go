package caddymodule

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/payhook/payhook/verify"
)

// What is verified is what the provider sent. Routes rewrite requests
// before payhook sees them (handle_path, uri strip_prefix, rewrite), but a
// provider signs the URI it called: payhook reads it from the copy of the
// request that Caddy keeps as it arrived.

// sentRequest is the request as it arrived at the server: its method and
// URI before any rewrite. Outside a Caddy server (tests calling the handler
// directly) it is r itself.
func sentRequest(r *http.Request) (method, requestURI string, u *url.URL) {
	if sent, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && sent.URL != nil && sent.RequestURI != "" {
		return sent.Method, sent.RequestURI, sent.URL
	}
	return r.Method, r.RequestURI, r.URL
}

// sentURI is the request URI the provider called, without the url_token
// parameter: what the inbox stores to deliver the event again the way the
// callback came (the route's rewrites run again on the way), with no
// secret in it.
func sentURI(r *http.Request) string {
	_, uri, _ := sentRequest(r)
	return withoutURLToken(uri)
}

// withoutURLToken removes the token parameter from a request URI.
func withoutURLToken(uri string) string {
	p, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	if query = verify.StripURLToken(query); query != "" {
		return p + "?" + query
	}
	return p
}

// sentPlaceholders resolves the placeholders of a signature template: the
// request's method and URI as the provider sent them, everything else
// from Caddy's replacer. A URI placeholder that it cannot tell for the
// sent request is unknown (the template then fails to verify), never the
// rewritten request's.
type sentPlaceholders struct {
	repl *caddy.Replacer
	r    *http.Request
}

var _ verify.Placeholders = (*sentPlaceholders)(nil)

func (p *sentPlaceholders) Get(name string) (any, bool) {
	switch {
	case name == "http.request.method":
		method, _, _ := sentRequest(p.r)
		return method, true
	case strings.HasPrefix(name, "http.request.uri"):
		_, uri, u := sentRequest(p.r)
		return uriPlaceholder(strings.TrimPrefix(name, "http.request.uri"), uri, u)
	case p.repl == nil:
		return nil, false
	}
	return p.repl.Get(name)
}

// uriPlaceholder answers Caddy's http.request.uri placeholders (name is
// what follows "http.request.uri") for the URI uri, parsed as u.
func uriPlaceholder(name, uri string, u *url.URL) (any, bool) {
	switch name {
	case "":
		return uri, true
	case "_escaped":
		return url.QueryEscape(uri), true
	case ".path":
		return u.Path, true
	case ".path_escaped":
		return url.QueryEscape(u.Path), true
	case ".path.file":
		_, file := path.Split(u.Path)
		return file, true
	case ".path.dir":
		dir, _ := path.Split(u.Path)
		return dir, true
	case ".path.file.base":
		_, file := path.Split(u.Path)
		return strings.TrimSuffix(file, path.Ext(file)), true
	case ".path.file.ext":
		return path.Ext(u.Path), true
	case ".query":
		return u.RawQuery, true
	case ".query_escaped":
		return url.QueryEscape(u.RawQuery), true
	case ".prefixed_query":
		if u.RawQuery == "" {
			return "", true
		}
		return "?" + u.RawQuery, true
	}
	if key, ok := strings.CutPrefix(name, ".query."); ok {
		return u.Query().Get(key), true
	}
	return nil, false
}
