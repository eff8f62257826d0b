package caddymodule

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The operator's console: one page that shows every callback's fate from
// the journal, the inbox, and replays. It is served in two places, from
// the same files and the same JSON API:
//
//   - on Caddy's admin endpoint, at /payhook/, beside the admin API's
//     /payhook/events, /payhook/stats and /payhook/inbox it calls, under
//     Caddy's own host and origin checks;
//   - by the payhook_console handler, on a site route an operator puts
//     behind Caddy's authentication (basic_auth, forward_auth). The
//     handler answers the same API paths under its own path, with the
//     admin API's handlers.
//
// The page calls the API with paths relative to itself (events, inbox/…),
// so it works in both places unchanged. It comes in one answer: its style
// and script inlined (the policy names their hashes), and the newest
// callbacks' first page as JSON, so that the rows are drawn without
// waiting for another request. Its actions (replay, retry the
// failed) are POSTs that carry a CSRF token bound to the browser's console
// session, and are refused when they come from another origin.

func init() {
	caddy.RegisterModule(consoleAdmin{})
	caddy.RegisterModule(Console{})
	httpcaddyfile.RegisterHandlerDirective("payhook_console", parseConsoleCaddyfile)
	// The console ends its route, as file_server does: after basic_auth
	// and forward_auth, also outside a route block.
	httpcaddyfile.RegisterDirectiveOrder("payhook_console", httpcaddyfile.Before, "file_server")
}

// consoleFiles are the page, its script and its style: no build step, no
// request leaves the page for another site.
//
//go:embed console
var consoleFiles embed.FS

// consolePage is index.html with console.css and console.js inlined, and
// consolePolicy the page's Content-Security-Policy, which lets only those
// run (by their hashes), talks only to the page's own origin, and lets no
// other site frame it.
var consolePage, consolePolicy = func() (string, string) {
	read := func(name string) string {
		content, err := consoleFiles.ReadFile("console/" + name)
		if err != nil {
			panic(err)
		}
		return string(content)
	}
	hash := func(content string) string {
		sum := sha256.Sum256([]byte(content))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	style, script := read("console.css"), read("console.js")
	page := strings.NewReplacer("{{style}}", style, "{{script}}", script).Replace(read("index.html"))
	policy := "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) + "; img-src 'self' data:; connect-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return page, policy
}()

// consoleKey signs the CSRF tokens of this process's console sessions: a
// restart ends them (the page says to reload).
var consoleKey = func() []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return key
}()

const (
	// consoleCookie holds the browser's console session: a random value
	// the CSRF token is bound to.
	consoleCookie = "payhook_console"
	// csrfHeader carries the page's CSRF token on its POSTs.
	csrfHeader = "X-Payhook-Csrf"
	// csrfPlaceholder is where the page's HTML takes its token.
	csrfPlaceholder = "{{csrf}}"
	// firstPlaceholder is where it takes its first page of callbacks.
	firstPlaceholder = "{{first}}"
	// consolePageSize is the rows of a page of callbacks (console.js's
	// pageSize).
	consolePageSize = 50
)

// csrfToken is the token of a session: an HMAC, so that nothing needs
// remembering and only this process can make one.
func csrfToken(session string) string {
	mac := hmac.New(sha256.New, consoleKey)
	mac.Write([]byte("payhook console csrf\x00"))
	mac.Write([]byte(session))
	return hex.EncodeToString(mac.Sum(nil))
}

// consoleSession returns the browser's console session, starting one (a
// cookie) when it has none.
func consoleSession(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(consoleCookie); err == nil && validSession(c.Value) {
		return c.Value
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err)
	}
	session := base64.RawURLEncoding.EncodeToString(raw)
	// No Path: the cookie belongs to the page's directory, where its API is.
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: session, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	return session
}

func validSession(s string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(raw) == 32
}

// checkConsolePost refuses a state-changing request that does not come
// from the console's own page: from another origin, or without the CSRF
// token of the browser's session. strict is the payhook_console handler,
// where every POST comes from a browser. On the admin endpoint, a client
// that is no browser (caddy payhook inbox replay, curl: no Sec-Fetch-Site,
// no cookie) is the admin API's own caller, which Caddy's admin rules
// govern.
func checkConsolePost(r *http.Request, strict bool) error {
	fetchSite := r.Header.Get("Sec-Fetch-Site")
	_, cookieErr := r.Cookie(consoleCookie)
	browser := fetchSite != "" || len(r.Cookies()) > 0
	if !strict && !browser {
		return nil
	}
	if fetchSite != "" && fetchSite != "same-origin" {
		return apiError(http.StatusForbidden, "refused: a console action must come from the console's own page (Sec-Fetch-Site: %s)", fetchSite)
	}
	origin := r.Header.Get("Origin")
	switch {
	case origin == "" && fetchSite == "":
		return apiError(http.StatusForbidden, "refused: a console action must say its origin (no Origin header)")
	case origin != "":
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return apiError(http.StatusForbidden, "refused: a console action must come from the console's own origin, not %q", origin)
		}
	}
	if cookieErr != nil {
		return apiError(http.StatusForbidden, "refused: no console session (reload the page)")
	}
	session, _ := r.Cookie(consoleCookie)
	if token := r.Header.Get(csrfHeader); token == "" || !hmac.Equal([]byte(token), []byte(csrfToken(session.Value))) {
		return apiError(http.StatusForbidden, "refused: the page's CSRF token is not its session's (reload the page)")
	}
	return nil
}

// serveConsolePage answers the page, with its session's token and, from
// events (nil: none, the page asks), the first page of the callbacks it
// opens with: the newest, or those of its ?ref=.
func serveConsolePage(w http.ResponseWriter, r *http.Request, events *eventsAdmin) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiError(http.StatusMethodNotAllowed, "GET only")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", consolePolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	token := csrfToken(consoleSession(w, r))
	if r.Method == http.MethodHead {
		return nil
	}
	var first []byte
	if events != nil {
		query := url.Values{"limit": {strconv.Itoa(consolePageSize)}}
		if ref := r.URL.Query().Get("ref"); ref != "" {
			query.Set("ref", ref)
		}
		// The page asks for them itself when they cannot be read here.
		if page, err := events.page(r.Context(), query); err == nil {
			// json.Marshal escapes <, > and &: a reference cannot end the
			// script element that holds it.
			first, _ = json.Marshal(page)
		}
	}
	// One pass: a placeholder inside a reference is not replaced.
	_, err := strings.NewReplacer(csrfPlaceholder, token, firstPlaceholder, string(first)).WriteString(w, consolePage)
	return err
}

// consoleAdmin serves the console's page on Caddy's admin endpoint, at
// /payhook/. Its API is the admin API's: /payhook/events, /payhook/stats
// (eventsAdmin) and /payhook/inbox… (inboxAdmin).
type consoleAdmin struct{ events *eventsAdmin }

// CaddyModule returns the Caddy module information.
func (consoleAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.payhook_console", New: func() caddy.Module { return new(consoleAdmin) }}
}

// Provision keeps the configuration's context, whose journal the page's
// first rows come from.
func (a *consoleAdmin) Provision(ctx caddy.Context) error {
	a.events = &eventsAdmin{ctx: ctx}
	return nil
}

// Routes is the console's page.
func (a *consoleAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/payhook/", Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if page := strings.TrimPrefix(r.URL.Path, "/payhook/"); page != "" && page != "index.html" {
			return apiError(http.StatusNotFound, "no such page")
		}
		return serveConsolePage(w, r, a.events)
	})}}
}

// Console is the operator's console on a site route: the page and its
// API, for an operator who reaches it through the site rather than the
// admin endpoint. It shows what the journal and the inbox hold (references,
// amounts, and on request an event's envelope, with its personal data) and
// replays events: put it behind Caddy's authentication (basic_auth,
// forward_auth), never on a route anyone can reach.
type Console struct {
	// Prefix is the path the console is served under, when the route
	// does not strip it (handle_path does): /payhook for
	// `handle /payhook/* { payhook_console { prefix /payhook } }`.
	// Default: none.
	Prefix string `json:"prefix,omitempty"`

	events *eventsAdmin
	inbox  *inboxAdmin
}

// CaddyModule returns the Caddy module information.
func (Console) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.payhook_console", New: func() caddy.Module { return new(Console) }}
}

// Provision loads the payhook app, whose journal and inbox the console
// shows, and the admin API's handlers that answer its API.
func (c *Console) Provision(ctx caddy.Context) error {
	if c.Prefix != "" && (!strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/")) {
		return fmt.Errorf("payhook_console: the prefix is a path such as /payhook (a leading slash, no trailing one), not %q", c.Prefix)
	}
	if _, err := ctx.App("payhook"); err != nil {
		return fmt.Errorf("loading the payhook app: %w", err)
	}
	c.events, c.inbox = &eventsAdmin{ctx: ctx}, &inboxAdmin{ctx: ctx}
	return nil
}

// ServeHTTP answers the console's page and API; it is the end of its
// route: nothing after it runs.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, c.Prefix)
	if !ok {
		return writeAPIError(w, apiError(http.StatusNotFound, "not under the console's prefix %s", c.Prefix))
	}
	if rest == "" && c.Prefix != "" {
		// The page's relative links need the trailing slash.
		http.Redirect(w, r, c.Prefix+"/", http.StatusFound)
		return nil
	}
	return writeAPIError(w, c.serve(w, r, strings.TrimPrefix(rest, "/")))
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request, rest string) error {
	if rest == "" || rest == "index.html" {
		return serveConsolePage(w, r, c.events)
	}
	// The API answers the page only: another site's page may not even
	// read from it.
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return apiError(http.StatusForbidden, "refused: the console's API answers the console's own page (Sec-Fetch-Site: %s)", site)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := checkConsolePost(r, true); err != nil {
			return err
		}
	}
	switch {
	case rest == "events":
		return c.events.handleEvents(w, r)
	case rest == "stats":
		return c.events.handleStats(w, r)
	case rest == "inbox":
		return c.inbox.handleList(w, r)
	case strings.HasPrefix(rest, "inbox/"):
		// The admin API's handler reads its path as the admin endpoint has it.
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = "/payhook/"+rest, ""
		return c.inbox.handleEvent(w, r)
	}
	return apiError(http.StatusNotFound, "no such page")
}

// writeAPIError answers err as the admin endpoint does: its status and
// {"error": "…"}.
func writeAPIError(w http.ResponseWriter, err error) error {
	if err == nil {
		return nil
	}
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) {
		apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	if apiErr.Message == "" && apiErr.Err != nil {
		apiErr.Message = apiErr.Err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apiErr.HTTPStatus)
	return json.NewEncoder(w).Encode(map[string]string{"error": apiErr.Message})
}

// parseConsoleCaddyfile reads the payhook_console directive:
//
//	payhook_console [<matcher>] {
//	    prefix <path>   # on a route that keeps its path: the console's path
//	}
func parseConsoleCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Console)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the console from Caddyfile tokens.
func (c *Console) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.Errf("payhook_console takes no argument but a matcher; its path goes in its block: prefix <path>")
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			c.Prefix = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized payhook_console option %q (it takes: prefix)", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.AdminRouter           = (*consoleAdmin)(nil)
	_ caddy.Provisioner           = (*consoleAdmin)(nil)
	_ caddy.Provisioner           = (*Console)(nil)
	_ caddyhttp.MiddlewareHandler = (*Console)(nil)
	_ caddyfile.Unmarshaler       = (*Console)(nil)
)
