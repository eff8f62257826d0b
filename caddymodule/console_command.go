package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
)

// Caddy's admin endpoint refuses what a browser sends when the operator
// types its address: a navigation carries Sec-Fetch-Mode and neither
// Origin nor Referer, and the endpoint's origin check then has no origin
// to allow (admin.go, checkOrigin). So the page the admin endpoint serves
// at /payhook/ reaches a browser through `caddy payhook console`: a door on
// a loopback port that hands the browser's requests to the admin endpoint
// as the caddy command does (with the endpoint's own origin), after the
// checks a browser's requests need: the Host is the door's (DNS
// rebinding), the API answers only the page's own origin, and a POST
// goes on marked as a browser's, so the admin endpoint asks for the
// session's CSRF token (checkConsolePost).

// consoleDoor is the local door to the admin endpoint's console.
type consoleDoor struct {
	base   string // the admin endpoint, as the requests name it
	origin string // the Origin the admin endpoint allows; empty on a unix socket
	client *http.Client
	hosts  []string // the Host values the door answers: its own address
}

// newConsoleDoor makes the door to the admin endpoint at admin, for a
// listener at listen.
func newConsoleDoor(admin string, listen net.Addr) (*consoleDoor, error) {
	addr, err := caddy.ParseNetworkAddress(admin)
	if err != nil || addr.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", admin, err)
	}
	d := &consoleDoor{base: "http://" + addr.JoinHostPort(0)}
	d.origin = d.base
	if addr.IsUnixNetwork() || addr.IsFdNetwork() {
		d.base, d.origin = "http://127.0.0.1", ""
	}
	network, dial := addr.Network, addr.JoinHostPort(0)
	d.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, dial)
		},
	}}
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return nil, err
	}
	d.hosts = []string{net.JoinHostPort(host, port)}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		d.hosts = append(d.hosts, net.JoinHostPort("localhost", port))
	}
	return d, nil
}

// consoleResponseHeaders are the admin endpoint's answer headers the
// door hands on.
var consoleResponseHeaders = []string{"Content-Type", "Set-Cookie", "Cache-Control", "Content-Security-Policy",
	"X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Location"}

func (d *consoleDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(d.hosts, strings.ToLower(r.Host)) {
		_ = writeAPIError(w, apiError(http.StatusForbidden, "host not allowed: %s (open %s)", r.Host, "http://"+d.hosts[0]+"/"))
		return
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	page := rest == "" || strings.HasPrefix(rest, "console.")
	if !page {
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			_ = writeAPIError(w, apiError(http.StatusForbidden, "refused: the console's API answers the console's own page (Sec-Fetch-Site: %s)", site))
			return
		}
	}
	post := r.Method != http.MethodGet && r.Method != http.MethodHead
	if post {
		if err := sameOrigin(r); err != nil {
			_ = writeAPIError(w, err)
			return
		}
	}
	uri := d.base + "/payhook/" + rest
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, uri, nil)
	if err != nil {
		_ = writeAPIError(w, apiError(http.StatusBadRequest, "%v", err))
		return
	}
	for _, name := range []string{"Accept", "Cookie", csrfHeader} {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Header[name] = v
		}
	}
	if d.origin != "" {
		req.Header.Set("Origin", d.origin)
	}
	if post {
		// A browser's action: the admin endpoint checks its session's token.
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		_ = writeAPIError(w, apiError(http.StatusBadGateway, "the admin endpoint: %v", err))
		return
	}
	defer resp.Body.Close()
	for _, name := range consoleResponseHeaders {
		if v := resp.Header.Values(name); len(v) > 0 {
			w.Header()[name] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// sameOrigin refuses a request that says it comes from another origin, or
// does not say where it comes from.
func sameOrigin(r *http.Request) error {
	site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
	if site != "" && site != "same-origin" {
		return apiError(http.StatusForbidden, "refused: a console action must come from the console's own page (Sec-Fetch-Site: %s)", site)
	}
	if origin == "" {
		if site == "" {
			return apiError(http.StatusForbidden, "refused: a console action must say its origin (no Origin header)")
		}
		return nil
	}
	if !strings.EqualFold(strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://"), r.Host) {
		return apiError(http.StatusForbidden, "refused: a console action must come from the console's own origin, not %q", origin)
	}
	return nil
}

// consoleCommand is `caddy payhook console`.
func consoleCommand() *cobra.Command {
	var admin adminFlags
	var listen string
	cmd := &cobra.Command{
		Use:   "console [--listen 127.0.0.1:2020]",
		Short: "Opens payhook's console: every callback's fate, the inbox, replays, in the browser",
		Long: `
Serves the operator's console of the running Caddy on a local port, for a
browser: the page and its API come from the admin endpoint (/payhook/),
which a browser cannot open itself (Caddy's admin endpoint refuses a
navigation, which names no origin). The door listens on the loopback
interface unless told otherwise: anyone who reaches it can replay events.
For a console on a site, behind basic_auth, see the payhook_console handler.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			door, err := newConsoleDoor(addr, ln.Addr())
			if err != nil {
				ln.Close()
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "payhook's console: http://%s/ (the admin endpoint %s; Ctrl-C ends it)\n", door.hosts[0], addr)
			srv := &http.Server{Handler: door, ReadHeaderTimeout: 10 * time.Second}
			return srv.Serve(ln)
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:2020", "the door's address (keep it on the loopback interface)")
	return cmd
}
