package caddymodule

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// A console action is refused unless it comes from the console's own
// page: same origin, with the CSRF token of the browser's session. On the
// admin endpoint (not strict), a client that is no browser is the admin
// API's own caller.
func TestConsolePostChecks(t *testing.T) {
	session := strings.Repeat("A", 43) // 32 bytes, base64url
	token := csrfToken(session)
	cookie := consoleCookie + "=" + session
	for _, tt := range []struct {
		name    string
		strict  bool
		header  map[string]string
		refusal string // empty: allowed
	}{
		{"the page's own POST", true, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://shop.example", "Cookie": cookie, csrfHeader: token}, ""},
		{"without Sec-Fetch-Site, by Origin", true, map[string]string{"Origin": "http://shop.example", "Cookie": cookie, csrfHeader: token}, ""},
		{"another site", true, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example", "Cookie": cookie, csrfHeader: token}, "Sec-Fetch-Site: cross-site"},
		{"a sibling site", true, map[string]string{"Sec-Fetch-Site": "same-site", "Cookie": cookie, csrfHeader: token}, "Sec-Fetch-Site: same-site"},
		{"another origin, no Sec-Fetch-Site", true, map[string]string{"Origin": "http://evil.example", "Cookie": cookie, csrfHeader: token}, "own origin"},
		{"Origin null", true, map[string]string{"Origin": "null", "Cookie": cookie, csrfHeader: token}, "own origin"},
		{"no origin at all", true, map[string]string{"Cookie": cookie, csrfHeader: token}, "no Origin header"},
		{"no session", true, map[string]string{"Sec-Fetch-Site": "same-origin", csrfHeader: token}, "no console session"},
		{"no token", true, map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": cookie}, "CSRF token"},
		{"another session's token", true, map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": cookie, csrfHeader: csrfToken(strings.Repeat("B", 43))}, "CSRF token"},
		{"the admin API's own caller (caddy payhook replay)", false, map[string]string{"Origin": "http://shop.example"}, ""},
		{"a browser on the admin endpoint, no token", false, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://shop.example"}, "no console session"},
		{"a cookie marks a browser", false, map[string]string{"Origin": "http://shop.example", "Cookie": cookie}, "CSRF token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://shop.example/console/inbox/retry-failed", nil)
			for name, value := range tt.header {
				r.Header.Set(name, value)
			}
			err := checkConsolePost(r, tt.strict)
			switch {
			case tt.refusal == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refusal != "" && (err == nil || !strings.Contains(err.Error(), tt.refusal)):
				t.Errorf("got %v, want a refusal saying %q", err, tt.refusal)
			}
		})
	}
}

// The page carries its session's token, starts a session once, and may
// load nothing from another site, nor be framed.
func TestConsolePage(t *testing.T) {
	w := httptest.NewRecorder()
	if err := serveConsolePage(w, httptest.NewRequest(http.MethodGet, "http://shop.example/console/", nil), nil); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != consoleCookie || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("the session's cookie: %+v", cookies)
	}
	body := w.Body.String()
	if !strings.Contains(body, `content="`+csrfToken(cookies[0].Value)+`"`) || strings.Contains(body, csrfPlaceholder) {
		t.Error("the page does not carry its session's token")
	}
	// Its style and script inlined, and allowed by their hashes only.
	if strings.Contains(body, "{{") || !strings.Contains(body, "payhookTimings") || !strings.Contains(body, "--delivered") {
		t.Error("the page does not inline its script and style")
	}
	if policy := w.Header().Get("Content-Security-Policy"); !strings.Contains(policy, "script-src 'sha256-") ||
		!strings.Contains(policy, "style-src 'sha256-") || strings.Contains(policy, "unsafe-inline") {
		t.Errorf("the page's policy: %s", policy)
	}
	for name, want := range map[string]string{"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if !strings.Contains(w.Header().Get(name), want) {
			t.Errorf("%s: %q", name, w.Header().Get(name))
		}
	}
	// Nothing from another site: no address but the SVG namespace, no
	// stylesheet import, no protocol-relative link.
	for _, file := range []string{"index.html", "console.js", "console.css"} {
		content, _ := consoleFiles.ReadFile("console/" + file)
		text := strings.ReplaceAll(string(content), "http://www.w3.org/2000/svg", "")
		for _, external := range []string{"http://", "https://", "@import", "url(", `src="//`, `href="//`} {
			if strings.Contains(text, external) {
				t.Errorf("%s names another site (%s)", file, external)
			}
		}
	}
	// Again with the session: the same session, no new cookie.
	r := httptest.NewRequest(http.MethodGet, "http://shop.example/console/", nil)
	r.AddCookie(cookies[0])
	w = httptest.NewRecorder()
	if err := serveConsolePage(w, r, nil); err != nil {
		t.Fatal(err)
	}
	if len(w.Result().Cookies()) != 0 || !strings.Contains(w.Body.String(), csrfToken(cookies[0].Value)) {
		t.Error("a second visit started another session")
	}
}

// The console on a route that does not strip its path: the handler takes
// its prefix, sends /ops to /ops/, answers the API under it, and every
// refusal as the admin endpoint does, in JSON.
func TestConsoleHandlerUnderAPrefix(t *testing.T) {
	e := startCaddy(t, defaultSite+`
	route /ops* {
		payhook_console {
			prefix /ops
		}
	}`)
	noRedirect := &http.Client{Transport: testClient.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := e.doWith(noRedirect, mustRequest(t, http.MethodGet, e.base+"/ops", nil))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ops/" {
		t.Errorf("GET /ops: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tt := range []struct {
		method, path string
		header       http.Header
		status       int
		body         string
	}{
		{http.MethodGet, "/ops/", nil, http.StatusOK, `<meta name="payhook-csrf"`},
		{http.MethodGet, "/ops/", nil, http.StatusOK, `<script type="application/json" id="payhook-first">{"events":[]}</script>`},
		{http.MethodGet, "/ops/console.js", nil, http.StatusNotFound, "no such page"},
		{http.MethodGet, "/ops/events?limit=5", nil, http.StatusOK, `"events"`},
		{http.MethodGet, "/ops/stats", nil, http.StatusOK, `"hours"`},
		{http.MethodGet, "/ops/inbox/routes", nil, http.StatusOK, `"inboxes"`},
		{http.MethodGet, "/ops/events?limit=0", nil, http.StatusBadRequest, `{"error":"limit: want 1 to 1000`},
		{http.MethodGet, "/ops/stats?since=30d", nil, http.StatusBadRequest, "at most 7 days"},
		{http.MethodGet, "/ops/nothing", nil, http.StatusNotFound, `{"error":"no such page"}`},
		{http.MethodGet, "/ops/events", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden, "own page"},
		{http.MethodPost, "/ops/inbox/retry-failed", http.Header{"Origin": {e.base}}, http.StatusForbidden, "no console session"},
		{http.MethodPost, "/ops/inbox/retry-failed", nil, http.StatusForbidden, "no Origin header"},
	} {
		resp, body := e.do(mustRequest(t, tt.method, e.base+tt.path, tt.header))
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s: %d %.200s, want %d with %q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}
}

func TestConsoleCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		input, prefix, err string
	}{
		{"payhook_console", "", ""},
		{"payhook_console {\n\tprefix /ops\n}", "/ops", ""},
		{"payhook_console /ops", "", "no argument"},
		{"payhook_console {\n\tpassword x\n}", "", `unrecognized payhook_console option "password"`},
		{"payhook_console {\n\tprefix\n}", "", "wrong argument count"},
	} {
		var c Console
		err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if tt.err == "" && (err != nil || c.Prefix != tt.prefix) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q: prefix %q, error %v", tt.input, c.Prefix, err)
		}
	}
}

// caddy payhook console's door answers only its own address (a page
// rebound to 127.0.0.1 by DNS is refused), lets only its own page call the
// API, and passes a POST on only from its own origin.
func TestConsoleDoorChecks(t *testing.T) {
	door, err := newConsoleDoor("localhost:1", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2020})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, method, host string
		header             map[string]string
		status             int
		body               string
	}{
		{"another host (DNS rebinding)", http.MethodGet, "evil.example:2020", nil, http.StatusForbidden, "host not allowed"},
		{"another site's page", http.MethodGet, "127.0.0.1:2020", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "own page"},
		{"a POST from another origin", http.MethodPost, "localhost:2020", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, "own origin"},
		{"a POST without an origin", http.MethodPost, "localhost:2020", nil, http.StatusForbidden, "no Origin header"},
		{"its own page, the admin endpoint down", http.MethodGet, "localhost:2020", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadGateway, "the admin endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://"+tt.host+"/inbox/retry-failed", nil)
			for name, value := range tt.header {
				r.Header.Set(name, value)
			}
			w := httptest.NewRecorder()
			door.ServeHTTP(w, r)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("%d %s, want %d with %q", w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
}
