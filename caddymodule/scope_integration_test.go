package caddymodule

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Events of one route stay with that route: two routes that differ in site
// (host or port), path or account never suppress each other's events and
// never deliver each other's; routes that name one dedupe_scope share
// their records on purpose.

// otherPort is a second HTTP port of the test's own, for a second site.
func otherPort(t *testing.T) int {
	httpPorts.Lock()
	defer httpPorts.Unlock()
	key := t.Name() + "#2"
	if port, ok := httpPorts.byTest[key]; ok {
		return port
	}
	port := 9100 + httpPorts.next%60
	httpPorts.next++
	httpPorts.byTest[key] = port
	return port
}

// routeOf is the route a request reached, as its route's reverse_proxy
// tagged it.
func routeOf(r received) string { return r.Header.Get("X-Test-Route") }

// routesOf lists the routes that took the requests, in order.
func routesOf(requests []received) []string {
	var routes []string
	for _, r := range requests {
		if r.Status >= 200 && r.Status < 300 {
			routes = append(routes, routeOf(r))
		}
	}
	return routes
}

const stripeEndpoints = `http://localhost:{port} {
	route /hooks/orders {
		payhook stripe {
			secret {env.PAYHOOK_TEST_STRIPE_ORDERS}
		}
		reverse_proxy {upstream} {
			header_up X-Test-Route orders
		}
	}
	route /hooks/billing {
		payhook stripe {
			secret {env.PAYHOOK_TEST_STRIPE_BILLING}
		}
		reverse_proxy {upstream} {
			header_up X-Test-Route billing
		}
	}
}
`

const stripeEvent = `{"id":"evt_1Scope0000000000000","object":"event","type":"payment_intent.succeeded","livemode":false,"created":1795320000,"data":{"object":{"id":"pi_1Scope000000000000","object":"payment_intent","amount":2000,"currency":"eur","status":"succeeded","metadata":{"order_id":"order-77"}}}}`

// Stripe sends each event to every endpoint of the account: an account
// with two endpoints on one host (/hooks/orders, /hooks/billing), each with
// its own secret, must see the event reach both shops.
func TestTwoStripeEndpointsOnOneHostEachReceiveTheEvent(t *testing.T) {
	const orders, billing = "whsec_scope_orders_0123456789", "whsec_scope_billing_9876543210"
	t.Setenv("PAYHOOK_TEST_STRIPE_ORDERS", orders)
	t.Setenv("PAYHOOK_TEST_STRIPE_BILLING", billing)
	e := startCaddySites(t, t.TempDir(), "", stripeEndpoints, newUpstream(t))
	send := func(path, secret string) {
		t.Helper()
		req := e.postRequest(path, "application/json", stripeEvent, nil)
		signStripe(req, []byte(stripeEvent), []byte(secret), time.Now())
		resp, body := e.do(req)
		expectAnswer(t, resp, body, http.StatusOK, "")
	}
	send("/hooks/orders", orders)
	send("/hooks/billing", billing)
	// A retry to each endpoint is a duplicate of that endpoint's delivery.
	send("/hooks/orders", orders)
	send("/hooks/billing", billing)
	if got := routesOf(e.upstream.received()); strings.Join(got, " ") != "orders billing" {
		t.Errorf("the shops took the event through %v, want once through orders and once through billing", got)
	}
}

// Two Payrexx routes of one instance (/prod and /staging, both registered
// as webhooks of the instance): each shop receives the transaction.
func TestTwoPayrexxRoutesOfOneInstanceEachReceiveTheTransaction(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PAYREXX_KEY", payrexxAPIKey)
	api := newFakeAPI(t)
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	route := func(path string) string {
		return fmt.Sprintf(`route %s {
		payhook payrexx {
			instance myshop
			api_key {env.PAYHOOK_TEST_PAYREXX_KEY}
			api_base %s
		}
		reverse_proxy {upstream} {
			header_up X-Test-Route %s
		}
	}`, path, api.URL, strings.TrimPrefix(path, "/"))
	}
	e := startCaddySites(t, t.TempDir(), "", "http://localhost:{port} {\n"+route("/prod")+"\n"+route("/staging")+"\n}\n", newUpstream(t))
	for _, path := range []string{"/prod", "/staging", "/prod"} {
		resp, body := e.post(path, formType, payrexxForm, nil)
		expectAnswer(t, resp, body, http.StatusOK, "OK")
	}
	if got := routesOf(e.upstream.received()); strings.Join(got, " ") != "prod staging" {
		t.Errorf("the shops took the transaction through %v, want once through prod and once through staging", got)
	}
}

// ixopaySites is two sites that differ only by port, each an IXOPAY route
// to the upstream tagged with its port, with options.
func ixopaySites(t *testing.T, options string) string {
	site := func(port, secret string) string {
		return fmt.Sprintf(`http://localhost:%s {
	route /callbacks/ixopay* {
		payhook ixopay {
			secret %s
			%s
		}
		reverse_proxy {upstream} {
			header_up X-Test-Route %s
		}
	}
}
`, port, secret, options, port)
	}
	return site("{port}", "{env.PAYHOOK_TEST_SECRET}") + site(fmt.Sprint(otherPort(t)), "{env.PAYHOOK_TEST_PREVIOUS_SECRET}")
}

// sendTo sends an IXOPAY callback signed with secret to the site on port.
func (e *env) sendTo(port int, c *callback) (*http.Response, string) {
	e.t.Helper()
	req := e.callbackRequest(c)
	req.URL.Host = fmt.Sprintf("localhost:%d", port)
	req.Host = req.URL.Host
	return e.do(req)
}

// Two sites that differ only by port each receive the same notification.
func TestTwoSitesThatDifferOnlyByPortEachReceiveTheEvent(t *testing.T) {
	e := startCaddySites(t, t.TempDir(), "", ixopaySites(t, ""), newUpstream(t))
	first, second := httpPortFor(t), otherPort(t)
	c := ixopayCallback(debitOK)
	resp, body := e.sendTo(first, c)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	c2 := ixopayCallback(debitOK)
	c2.secret = testPreviousSecret
	resp, body = e.sendTo(second, c2)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	want := fmt.Sprintf("%d %d", first, second)
	if got := routesOf(e.upstream.received()); strings.Join(got, " ") != want {
		t.Errorf("the shops took the event through %v, want %s", got, want)
	}
}

// Two sites on two ports, both IXOPAY with the inbox and their own
// secrets and shops; the second site's shop is briefly down. The first
// site's shop never receives the second site's payment, which reaches its
// own shop once that is back.
func TestInboxOfOneSiteNeverDeliversAnotherSitesEvent(t *testing.T) {
	firstShop, secondShop := newUpstream(t), newUpstream(t)
	secondShop.setStatus(http.StatusServiceUnavailable)
	sites := ixopaySites(t, "inbox")
	// The second site proxies to its own shop.
	at := strings.LastIndex(sites, "{upstream}")
	sites = sites[:at] + strings.TrimPrefix(secondShop.URL, "http://") + sites[at+len("{upstream}"):]
	e := startCaddySites(t, t.TempDir(), "", sites, firstShop)
	first, second := httpPortFor(t), otherPort(t)

	theirs := ixopayCallback(payment("scope-second", "DEBIT", "OK"))
	theirs.secret = testPreviousSecret
	resp, body := e.sendTo(second, theirs)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	ours := ixopayCallback(payment("scope-first", "DEBIT", "OK"))
	resp, body = e.sendTo(first, ours)
	expectAnswer(t, resp, body, http.StatusOK, "OK")

	e.waitTaken(1, 30*time.Second)
	time.Sleep(time.Second) // the second site's event is retried meanwhile
	for _, r := range firstShop.received() {
		if isPayment(r.Body, "scope-second") {
			t.Fatalf("the first site's shop received the second site's payment")
		}
	}
	secondShop.setStatus(http.StatusOK)
	e2 := &env{t: t, upstream: secondShop}
	got := e2.waitTaken(1, 30*time.Second)
	if !isPayment(got[0].Body, "scope-second") || routeOf(got[0]) != fmt.Sprint(second) {
		t.Errorf("the second shop took %s through route %s, want its payment through its route", got[0].Body, routeOf(got[0]))
	}
	if got := routesOf(firstShop.received()); strings.Join(got, " ") != fmt.Sprint(first) {
		t.Errorf("the first shop took events through %v, want its own one", got)
	}
}

// The scope derives from the configuration: a reload that adds a secret
// for a rotation and changes options that do not say where events come
// from keeps the route's records, so a retry after it is a duplicate.
func TestScopeStaysWhenASecretIsAddedOrAnOptionChanges(t *testing.T) {
	storage := t.TempDir()
	site := `route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			max_body 8KiB
		}
		reverse_proxy {upstream}
	}`
	e := startCaddyOn(t, storage, "", site)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e.onlyDelivery()

	rotated := strings.Replace(site, "max_body 8KiB", "secret {env.PAYHOOK_TEST_PREVIOUS_SECRET}\n\t\t\tmax_body 16KiB\n\t\t\tdedupe 9d\n\t\t\tforward_headers X-Request-Id", 1)
	e2 := startCaddyOn(t, storage, "", rotated)
	resp, body = e2.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	e2.expectNothingForwarded()
	if entries := e2.logEntries(1); entries[len(entries)-1]["outcome"] != "duplicate" {
		t.Errorf("after the reload the retry was %v, want a duplicate", entries[len(entries)-1]["outcome"])
	}
}

// Two site blocks each receive an event; one site block under two host
// names is one route, and a copy sent to its other name is a duplicate;
// two site blocks that name one dedupe_scope share their records.
func TestDedupeScopeKeepsSitesApart(t *testing.T) {
	for _, tt := range []struct {
		name        string
		twoBlocks   bool
		scope       string
		wantForward int
	}{
		{"two sites", true, "", 2},
		{"one site, two host names", false, "", 1},
		{"two sites, one dedupe_scope", true, "dedupe_scope shop-payments", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PAYHOOK_TEST_PAYREXX_KEY", payrexxAPIKey)
			api := newFakeAPI(t)
			api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
			sites := "http://localhost:{port}, http://127.0.0.1:{port} {\n" + payrexxSite("payrexx", api, tt.scope) + "\n}\n"
			if tt.twoBlocks {
				sites = "http://localhost:{port} {\n" + payrexxSite("payrexx", api, tt.scope) + "\n}\n" +
					"http://127.0.0.1:{port} {\n" + payrexxSite("payrexx", api, tt.scope) + "\n}\n"
			}
			e := startCaddySites(t, t.TempDir(), "", sites, newUpstream(t))
			for _, host := range []string{"localhost", "127.0.0.1"} {
				req := e.postRequest("/callbacks/payrexx", formType, payrexxForm, nil)
				req.Host = host
				resp, body := e.do(req)
				expectAnswer(t, resp, body, http.StatusOK, "OK")
			}
			if got := len(e.upstream.received()); got != tt.wantForward {
				t.Errorf("the shop received %d envelopes, want %d", got, tt.wantForward)
			}
		})
	}
}

// An inbox that an earlier version kept under the provider's name alone
// is adopted by its route when it is the only route of that provider, and
// its waiting event reaches the shop; when two routes shared it, neither
// adopts it.
func TestInboxOfAnEarlierVersionIsAdopted(t *testing.T) {
	legacy := shortHash("provider\x00ixopay")
	record := func(storage string) {
		t.Helper()
		envelope := `{"specversion":"1.0","id":"evt-legacy-1","source":"payhook/ixopay","type":"payment.captured","data":{}}`
		raw := fmt.Sprintf(`{"id":"evt-legacy-1","provider":"ixopay","type":"payment.captured","queue":"q1","received_at":%q,"method":"POST","host":"localhost","uri":"/callbacks/ixopay","envelope":%s,"state":"pending"}`,
			time.Now().UTC().Format(time.RFC3339Nano), envelope)
		dir := filepath.Join(storage, "payhook", "inbox", legacy, "pending", "q1")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, seqOf(time.Now(), 0, "evt-legacy-1")), []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("one route", func(t *testing.T) {
		storage := t.TempDir()
		record(storage)
		e := startCaddyOn(t, storage, "", inboxSite(""))
		got := e.waitTaken(1, 30*time.Second)
		if id := got[0].Header.Get("Payhook-Event-Id"); id != "evt-legacy-1" {
			t.Errorf("the shop took %q, want the earlier version's event", id)
		}
		if _, err := os.Stat(filepath.Join(storage, "payhook", "inbox", legacy, "pending", "q1")); err == nil {
			entries, _ := os.ReadDir(filepath.Join(storage, "payhook", "inbox", legacy, "pending", "q1"))
			if len(entries) > 0 {
				t.Errorf("the event stays in the earlier version's inbox too")
			}
		}
		// Caddy's storage holds no payhook state any more.
		var left []string
		for _, dir := range []string{filepath.Join(storage, "payhook"), filepath.Join(storage, "locks")} {
			_ = filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.Contains(name, "payhook") {
					left = append(left, name)
				}
				return nil
			})
		}
		if len(left) > 0 {
			t.Errorf("payhook's files left in Caddy's storage: %v", left)
		}
	})

	t.Run("two routes shared it", func(t *testing.T) {
		storage := t.TempDir()
		record(storage)
		e := startCaddySites(t, storage, "", ixopaySites(t, "inbox"), newUpstream(t))
		time.Sleep(time.Second)
		e.expectNothingForwarded()
		if !strings.Contains(e.rawLog(), "several routes shared") {
			t.Errorf("the log does not say why the earlier version's events wait")
		}
	})
}

// The place of a route is the same for two loads of one configuration
// (every instance of a cluster), whatever order Caddy loads a matcher
// set's matchers in.
func TestRoutePlaceIsTheSameForTheSameConfiguration(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_SECRET", testSecret)
	port := httpPortFor(t)
	config := fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	skip_install_trust
	storage file_system %s
}
http://localhost:%d {
	@hook {
		path /callbacks/ixopay*
		method POST
		header Content-Type application/json*
		remote_ip 127.0.0.0/8 ::1
	}
	handle @hook {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
		}
		respond 200
	}
}
`, port, t.TempDir(), port)
	var places []string
	for range 4 {
		caddytest.NewTester(t).InitServer(config, "caddyfile")
		places = append(places, activePayhookPlaces(t)...)
	}
	stopCaddy(t)
	if len(places) != 4 {
		t.Fatalf("found %d payhook routes in 4 loads, want 4", len(places))
	}
	for _, p := range places[1:] {
		if p != places[0] {
			t.Errorf("the place differs between loads of one configuration:\n%s\n%s", places[0], p)
		}
	}
	for _, want := range []string{"path", "/callbacks/ixopay*", "method", "header", "remote_ip", fmt.Sprintf(":%d", port), "localhost"} {
		if !strings.Contains(places[0], want) {
			t.Errorf("the place %q does not name %q", places[0], want)
		}
	}
}

// activePayhookPlaces lists the places of the running configuration's
// payhook handlers.
func activePayhookPlaces(t *testing.T) []string {
	t.Helper()
	var places []string
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(routes caddyhttp.RouteList)
	walk = func(routes caddyhttp.RouteList) {
		for _, route := range routes {
			for _, handler := range route.Handlers {
				switch h := handler.(type) {
				case *Handler:
					places = append(places, h.scope().place)
				case *caddyhttp.Subroute:
					walk(h.Routes)
				}
			}
		}
	}
	for _, server := range app.(*caddyhttp.App).Servers {
		walk(server.Routes)
	}
	return places
}

// provisionSite adapts a Caddyfile with one site of siteBody and
// provisions it the way `caddy validate` does, without running it.
func provisionSite(t *testing.T, siteBody string) error {
	t.Helper()
	raw := fmt.Sprintf("{\n\tadmin off\n\tstorage file_system %s\n}\nhttp://localhost:%d {\n\t%s\n}\n", t.TempDir(), httpPortFor(t), strings.ReplaceAll(siteBody, "{upstream}", "localhost:1"))
	config, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(raw), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return err
	}
	return caddy.Validate(mustUnmarshalConfig(t, config))
}
