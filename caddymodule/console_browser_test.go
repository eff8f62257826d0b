package caddymodule

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/tidwall/gjson"
	"golang.org/x/crypto/bcrypt"

	"github.com/payhook/payhook/caddymodule/internal/store"
	"github.com/payhook/payhook/verify"
)

// The operator's console in a real browser (headless Chromium, Debian's
// chromium package, which .ci/run installs) against a real Caddy, on both
// stores: callbacks of two providers (accepted, forged, a duplicate, the
// shop down), then the page: search an order, its row and timeline, the
// envelope on request, replay a failed event and retry all failed of a
// route and see the shop receive them, and cross-site POSTs refused.

// consoleRows fills the journal with as many more rows, older than the
// test's, before the page opens: the timings the test reports are then
// those of a journal that size.
//
//	go test ./caddymodule -run TestConsoleInABrowser -v -console.rows 1000000
var consoleRows = flag.Int("console.rows", 0, "journal rows the console's browser test adds before it opens the page")

// consoleScreenshots writes the README's screenshots into docs/; without
// it they go to the test's temporary directory, so that a test run leaves
// the tree as it was.
var consoleScreenshots = flag.Bool("console.screenshots", false, "write the README's screenshots of the console to docs/")

const (
	consoleUser     = "operator"
	consolePassword = "it-console-password"
	consoleStripe   = "whsec_it_console_0123456789"
)

// consoleSites is the shop's site: IXOPAY with the inbox (retry_for 2s,
// so that an event the shop refuses fails soon), Stripe without it, and
// the console behind basic_auth.
func consoleSites(t *testing.T) string {
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`http://localhost:{port} {
	route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			max_body 8KiB
			inbox {
				retry_for 2s
			}
		}
		reverse_proxy {upstream}
	}
	route /hooks/stripe* {
		payhook stripe {
			secret {env.PAYHOOK_TEST_STRIPE_SECRET}
		}
		reverse_proxy {upstream}
	}
	handle_path /console/* {
		basic_auth {
			%s %s
		}
		payhook_console
	}
}
`, consoleUser, hash)
}

// lookChromium finds Chromium; CI installs it (.ci/run), elsewhere the
// test is skipped without it.
func lookChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is needed for the console's browser tests")
	}
	t.Skip("chromium is not installed")
	return ""
}

// newBrowser starts headless Chromium for the test, with a window the size
// of a laptop's.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(lookChromium(t)),
		chromedp.NoSandbox, chromedp.WindowSize(1280, 900), chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout
		t.Fatal(err)
	}
	return ctx
}

// browse runs steps with a timeout, failing the test with what step
// says.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// evaluate runs JavaScript in the page and returns its value (awaited).
func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// clickNow clicks the element sel names once it is on the page, finding
// and clicking it in one step of the page's own: the page redraws its
// list and inbox when it refreshes itself, and a node found by one step
// and clicked by the next may be gone by then.
func clickNow(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	js := fmt.Sprintf("document.querySelector(%q)", sel)
	waitFor(t, ctx, what, js+" !== null")
	if !evaluate[bool](t, ctx, "(() => { const el = "+js+"; if (!el) return false; el.click(); return true })()") {
		t.Fatalf("%s: %s left the page", what, sel)
	}
}

// waitFor waits until the JavaScript predicate is true in the page.
func waitFor(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		page, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("waiting for %s: %v\nthe page says:\n%s", what, err, page)
	}
}

// extraHeaders makes the browser send header with every request, as it
// sends the credentials of basic_auth once given.
func extraHeaders(header network.Headers) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: header})
		return chromedp.Void{}, err
	}
}

// sendStripe sends a Stripe event about order, signed with secret.
func sendStripe(t *testing.T, e *env, id, order, secret string) (*http.Response, string) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"object":"event","type":"payment_intent.succeeded","livemode":false,"created":%d,`+
		`"data":{"object":{"id":"pi_%s","object":"payment_intent","amount":2500,"amount_received":2500,"currency":"eur","metadata":{"order_id":%q}}}}`,
		id, time.Now().Unix(), id, order)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	signature := "t=" + ts + ",v1=" + verify.SignHexHMACSHA256([]byte(secret), []byte(ts+"."+body))
	return e.post("/hooks/stripe", "application/json", body, http.Header{"Stripe-Signature": {signature}})
}

// journalCount waits until the journal holds n entries, and returns them.
func journalCount(t *testing.T, n int) []gjson.Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := adminCall(t, http.MethodGet, "/payhook/events?limit=1000")
		events := gjson.GetBytes(body, "events").Array()
		if len(events) >= n {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal holds %d entries, want %d: %s", len(events), n, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failedID waits until the inbox holds the event about uuid as failed,
// and returns its id.
func failedID(t *testing.T, uuid string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := adminCall(t, http.MethodGet, "/payhook/events?ref="+uuid)
		id := gjson.GetBytes(body, "events.0.event_id").String()
		if id != "" {
			_, one := adminCall(t, http.MethodGet, "/payhook/inbox/"+id+"?envelope=no")
			if gjson.GetBytes(one, "summary.state").String() == "failed" {
				if gjson.GetBytes(one, "envelope").Exists() {
					t.Errorf("envelope=no shows the envelope: %s", one)
				}
				return id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed event about %s: %s", uuid, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConsoleInABrowser(t *testing.T) {
	lookChromium(t)
	forEngines(t, func(t *testing.T, engine engineCase) {
		t.Setenv("PAYHOOK_TEST_STRIPE_SECRET", consoleStripe)
		e := startCaddyStore(t, t.TempDir(), engine.storeLine, "", consoleSites(t), newUpstream(t))
		if *consoleRows > 0 {
			fillJournal(t, engine.open(t, e), *consoleRows)
		}
		// The shop refuses the payments of order-down1 and order-down2
		// until it is back.
		shopBack := make(chan struct{})
		e.upstream.setStatusByBody(func(body []byte) int {
			select {
			case <-shopBack:
			default:
				if strings.Contains(string(body), "order-down") {
					return http.StatusBadGateway
				}
			}
			return http.StatusOK
		})

		// The callbacks: accepted, its duplicate, a forgery, two the shop
		// refuses (IXOPAY); accepted and forged (Stripe).
		sendOK(t, e, payment("paid1", "DEBIT", "OK"))
		sendOK(t, e, payment("paid1", "DEBIT", "OK"))
		forged := ixopayCallback(payment("forged1", "DEBIT", "OK"))
		forged.secret = "not-the-secret"
		resp, answer := e.send(forged)
		expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
		sendOK(t, e, payment("down1", "DEBIT", "OK"))
		sendOK(t, e, payment("down2", "DEBIT", "OK"))
		resp, answer = sendStripe(t, e, "evt_console_1", "order-77", consoleStripe)
		expectAnswer(t, resp, answer, http.StatusOK, "")
		resp, answer = sendStripe(t, e, "evt_console_2", "order-78", "whsec_forger")
		expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
		journalCount(t, 7)
		down1, down2 := failedID(t, "down1"), failedID(t, "down2")
		_, paid := adminCall(t, http.MethodGet, "/payhook/events?ref=paid1")
		waitState(t, gjson.GetBytes(paid, "events.0.event_id").String(), "delivered")

		// No secret on the page or in its API, whatever it shows.
		for _, path := range []string{"/console/", "/console/events?limit=1000", "/console/stats",
			"/console/inbox/routes", "/console/inbox?limit=1000", "/console/inbox/" + down1} {
			req := mustRequest(t, http.MethodGet, e.base+path, nil)
			req.SetBasicAuth(consoleUser, consolePassword)
			resp, body := e.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
			}
			for _, secret := range []string{testSecret, consoleStripe, consolePassword} {
				if strings.Contains(body, secret) {
					t.Errorf("GET %s shows a secret", path)
				}
			}
		}

		// Without credentials, the console is not shown.
		resp, _ = e.do(mustRequest(t, http.MethodGet, e.base+"/console/", nil))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the console without credentials: %d", resp.StatusCode)
		}

		ctx := newBrowser(t)
		browse(t, ctx, "sending the credentials", extraHeaders(network.Headers{
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(consoleUser+":"+consolePassword))}))

		// The page: every callback, newest first.
		browse(t, ctx, "opening the console", chromedp.Navigate(e.base+"/console/"))
		waitFor(t, ctx, "the callbacks' rows", `document.querySelectorAll("#events tbody tr[data-seq]").length >= 7`)
		loaded := evaluate[float64](t, ctx, `window.payhookTimings.firstRows`)
		// The rows came with the page: no request for them.
		firstQuery := evaluate[float64](t, ctx, `(n => n.responseEnd - n.requestStart)(performance.getEntriesByType("navigation")[0])`)
		if evaluate[bool](t, ctx, `performance.getEntriesByType("resource").some(e => e.name.includes("/events?"))`) {
			t.Error("the page asked for the rows it came with")
		}
		pageAt := evaluate[float64](t, ctx, `performance.getEntriesByType("navigation")[0].responseEnd`)
		// Where the first load's time went: the navigation's steps, then
		// each request the page made (ms since the navigation began).
		requests := evaluate[string](t, ctx, `(() => {
			const n = performance.getEntriesByType("navigation")[0], f = (x) => Math.round(x);
			const paint = performance.getEntriesByType("paint").map(p => p.name + " " + f(p.startTime)).join(", ");
			return "request " + f(n.requestStart) + ", first byte " + f(n.responseStart) + ", HTML " + f(n.responseEnd) + " (" + n.transferSize + " bytes)" +
				", DOM interactive " + f(n.domInteractive) + ", DOMContentLoaded " + f(n.domContentLoadedEventStart) + (paint ? ", " + paint : "") + "; " +
				performance.getEntriesByType("resource").map(r => r.name.replace(/^.*\//, "") + " " + f(r.startTime) + "–" + f(r.responseEnd)).join(", ")
		})()`)
		firstPaint := evaluate[float64](t, ctx, `(performance.getEntriesByType("paint").find(p => p.name === "first-contentful-paint") || {startTime: 0}).startTime`)
		// Again, in the tab that has the page's origin open already (the
		// browser's own start of a renderer is then out of the figure).
		browse(t, ctx, "reloading the console", chromedp.Reload())
		waitFor(t, ctx, "the callbacks' rows again", `document.querySelectorAll("#events tbody tr[data-seq]").length >= 7`)
		reloaded := evaluate[string](t, ctx, `(() => { const f = (x) => Math.round(x), n = performance.getEntriesByType("navigation")[0];
			return "HTML " + f(n.responseEnd) + " ms, rows " + f(window.payhookTimings.firstRows) + " ms" })()`)
		rows := evaluate[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr[data-seq]")].map(r => r.innerText.replace(/\s+/g, " "))`)
		for i, want := range []string{"stripe refused signature_mismatch", "stripe delivered captured 25.00 EUR order-77",
			"ixopay queued → failed captured 9.99 EUR order-down2", "ixopay queued → failed", "ixopay refused signature_mismatch",
			"ixopay duplicate captured 9.99 EUR order-paid1 paid1", "ixopay queued → delivered captured 9.99 EUR order-paid1 paid1"} {
			if !strings.Contains(rows[i], want) {
				t.Errorf("row %d: %q, want %q in it", i, rows[i], want)
			}
		}
		// The chart: one per provider, the refusals drawn.
		waitFor(t, ctx, "the charts", `document.querySelectorAll("#charts .chart").length === 2`)
		if n := evaluate[int](t, ctx, `document.querySelectorAll('#charts .chart[data-provider="stripe"] rect[data-outcome="rejected"]').length`); n != 1 {
			t.Errorf("stripe's chart draws %d bars of refusals, want 1", n)
		}
		// The inbox: IXOPAY's route, two failed.
		waitFor(t, ctx, "the inbox", `document.querySelector("#inbox tbody tr button.retry-failed") !== null`)
		if text := evaluate[string](t, ctx, `document.querySelector("#inbox tbody tr").innerText`); !strings.Contains(text, "ixopay") ||
			!strings.Contains(text, "2") {
			t.Errorf("the inbox's row: %q", text)
		}

		// Search an order: its two rows, then its timeline.
		browse(t, ctx, "searching order-paid1", chromedp.SendKeys(chromedp.ID("ref"), "order-paid1"), chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)))
		waitFor(t, ctx, "order-paid1's rows", `(() => { const rows = [...document.querySelectorAll("#events tbody tr[data-seq]")];
			return rows.length === 2 && rows.every(r => r.innerText.includes("order-paid1")) })()`)
		searched := evaluate[float64](t, ctx, `window.payhookTimings.lastSearch`)
		clickNow(t, ctx, "opening its timeline", "#events tbody tr[data-seq]:last-child")
		waitFor(t, ctx, "the timeline", `document.getElementById("timeline").innerText.includes("Delivered")`)
		timeline := evaluate[string](t, ctx, `document.getElementById("timeline").innerText`)
		for _, want := range []string{"Received from", "Verified by hmac-sha512", "Stored in the inbox", "A duplicate",
			"Delivery attempt: the shop answered 200", "Delivered (1 attempt)"} {
			if !strings.Contains(timeline, want) {
				t.Errorf("the timeline lacks %q:\n%s", want, timeline)
			}
		}
		// The envelope only on request.
		if shown := evaluate[string](t, ctx, `document.body.innerText`); strings.Contains(shown, `"specversion"`) {
			t.Error("the page shows an envelope before it is asked")
		}
		browse(t, ctx, "showing the envelope", chromedp.Click(chromedp.ID("show-envelope")))
		waitFor(t, ctx, "the envelope", `!document.getElementById("envelope").hidden`)
		if envelope := evaluate[string](t, ctx, `document.getElementById("envelope").textContent`); !strings.Contains(envelope, `"specversion"`) ||
			!strings.Contains(envelope, "order-paid1") {
			t.Errorf("the envelope shown: %s", envelope)
		}
		browse(t, ctx, "closing the timeline", chromedp.Click(chromedp.ID("detail-close")))

		// Replay a failed event: the shop, back, receives it.
		browse(t, ctx, "searching order-down1", chromedp.SetValue(chromedp.ID("ref"), "order-down1"),
			chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)))
		waitFor(t, ctx, "order-down1's row", `(() => { const rows = [...document.querySelectorAll("#events tbody tr[data-seq]")];
			return rows.length === 1 && rows[0].innerText.includes("order-down1") })()`)
		clickNow(t, ctx, "opening its timeline", "#events tbody tr[data-seq]")
		waitFor(t, ctx, "its replay button", `document.getElementById("replay") !== null`)
		if timeline := evaluate[string](t, ctx, `document.getElementById("timeline").innerText`); !strings.Contains(timeline, "Failed after") ||
			!strings.Contains(timeline, "the shop answered 502") {
			t.Errorf("the failed event's timeline:\n%s", timeline)
		}
		close(shopBack)
		browse(t, ctx, "replaying", chromedp.Click(chromedp.ID("replay")))
		waitFor(t, ctx, "the confirmation", `!document.getElementById("confirm").hidden`)
		if len(deliveriesOf(e, down1)) != 0 {
			t.Fatal("replayed before the confirmation")
		}
		browse(t, ctx, "confirming", chromedp.Click(chromedp.ID("confirm-yes")))
		waitFor(t, ctx, "the replay's notice", `document.getElementById("notice").innerText.includes("being delivered")`)
		waitDelivered(t, e, down1)
		browse(t, ctx, "closing the timeline", chromedp.Click(chromedp.ID("detail-close")))

		// Retry all failed of the route: the other one.
		clickNow(t, ctx, "retrying all failed", "#inbox button.retry-failed")
		waitFor(t, ctx, "the confirmation", `!document.getElementById("confirm").hidden`)
		browse(t, ctx, "confirming", chromedp.Click(chromedp.ID("confirm-yes")))
		waitDelivered(t, e, down2)
		waitState(t, down1, "delivered")
		waitState(t, down2, "delivered")

		// From the page itself, a POST without the session's token is
		// refused, and says why.
		refused := evaluate[string](t, ctx, `fetch("inbox/`+down1+`/replay", {method: "POST", headers: {"X-Payhook-Csrf": "0000"}})
			.then(r => r.status + " " + r.statusText).then(s => s)`)
		if !strings.HasPrefix(refused, "403") {
			t.Errorf("a POST with a wrong token: %s", refused)
		}
		waitState(t, down1, "delivered")

		// A screenshot for the README, then the page on a phone: it fits
		// the screen's width.
		browse(t, ctx, "clearing the search", chromedp.Click(chromedp.CSS(`#filters button[type="reset"]`)))
		waitFor(t, ctx, "every row again", `document.querySelectorAll("#events tbody tr[data-seq]").length >= 7`)
		if engine.name == "sqlite" && *consoleRows == 0 {
			screenshot(t, ctx, filepath.Join("docs", "console.png"))
		}
		browse(t, ctx, "a phone's screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		waitFor(t, ctx, "the page to fit a phone", `document.documentElement.scrollWidth <= window.innerWidth`)
		if engine.name == "sqlite" && *consoleRows == 0 {
			screenshot(t, ctx, filepath.Join("docs", "console-phone.png"))
		}
		browse(t, ctx, "a laptop's screen", chromedp.EmulateReset())

		// Cross-site POSTs, from another site's page the operator visits
		// (its browser holding the credentials): refused by the console,
		// and by Caddy's admin endpoint.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<form method="POST" action="%s"></form><script>document.forms[0].submit()</script>`, r.URL.Query().Get("target"))
		}))
		defer evil.Close()
		for _, target := range []struct{ url, refusal string }{
			{e.base + "/console/inbox/" + down1 + "/replay", "Sec-Fetch-Site: cross-site"},
			{"http://localhost:2999/payhook/inbox/" + down1 + "/replay", "not allowed to access from origin"},
		} {
			browse(t, ctx, "visiting another site", chromedp.Navigate(evil.URL+"/?target="+target.url))
			waitFor(t, ctx, "the refusal", `location.href.startsWith("`+target.url+`") && document.body.innerText.length > 0`)
			if body := evaluate[string](t, ctx, `document.body.innerText`); !strings.Contains(body, target.refusal) {
				t.Errorf("a cross-site POST to %s: %s, want %q", target.url, body, target.refusal)
			}
			waitState(t, down1, "delivered") // not replayed: a replay makes it pending at once
		}

		// The console of Caddy's admin endpoint: a browser cannot open it
		// there (Caddy refuses a navigation, which names no origin), but
		// through caddy payhook console's door.
		browse(t, ctx, "opening the admin endpoint", chromedp.Navigate("http://localhost:2999/payhook/"))
		if body := evaluate[string](t, ctx, `document.body.innerText`); !strings.Contains(body, "not allowed to access from origin") {
			t.Errorf("Caddy's admin endpoint opened to a browser's navigation: %.200s", body)
		}
		door := startConsoleDoor(t)
		browse(t, ctx, "opening the console's door", chromedp.Navigate(door+"/?ref=order-77"))
		waitFor(t, ctx, "order-77's row", `(() => { const rows = [...document.querySelectorAll("#events tbody tr[data-seq]")];
			return rows.length === 1 && rows[0].innerText.includes("order-77") })()`)
		waitFor(t, ctx, "the inbox", `document.querySelector("#inbox tbody tr") !== null`)
		// Through the door, the admin endpoint asks for the session's token.
		if refused := evaluate[string](t, ctx, `fetch("inbox/`+down1+`/replay", {method: "POST", headers: {"X-Payhook-Csrf": "0000"}})
			.then(r => r.text())`); !strings.Contains(refused, "CSRF token") {
			t.Errorf("a POST through the door with a wrong token: %s", refused)
		}
		waitState(t, down1, "delivered")
		replayed := evaluate[string](t, ctx, `fetch("inbox/`+down1+`/replay", {method: "POST",
			headers: {"X-Payhook-Csrf": document.querySelector('meta[name="payhook-csrf"]').content}}).then(r => r.status + " " + r.statusText)`)
		if !strings.HasPrefix(replayed, "200") {
			t.Errorf("a replay through the door: %s", replayed)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(deliveriesOf(e, down1)) < 2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(deliveriesOf(e, down1)); n != 2 {
			t.Errorf("the shop received %s %d times, want 2 (the replay through the door)", down1, n)
		}

		// The failed events, 20 at a time: with 21 failed (stored as an
		// import would: the shop's refusals would take the route's probes
		// minutes to fail), "More" lists the 21st.
		_, routes := adminCall(t, http.MethodGet, "/payhook/inbox/routes")
		addFailed(t, engine.open(t, e), gjson.GetBytes(routes, "inboxes.0.inbox").String(), 21)
		browse(t, ctx, "opening the console", chromedp.Navigate(e.base+"/console/"))
		waitFor(t, ctx, "20 failed events and More", `document.querySelectorAll("#inbox .failed-list li").length === 20 &&
			!document.getElementById("more-failed").hidden`)
		clickNow(t, ctx, "listing more failed events", "#more-failed")
		waitFor(t, ctx, "the 21st failed event, and no More", `document.querySelectorAll("#inbox .failed-list li").length === 21 &&
			document.getElementById("more-failed").hidden`)

		// The page refreshes itself: a callback sent after it opened shows.
		// It is one the shop refuses, of a route (retry_for 1h) that a
		// reload then replaces by changing its matchers: its event is
		// orphaned, and moved from the page, opened before both reloads
		// (its session's token holds across them), to the route that took
		// its place, which delivers it.
		if !evaluate[bool](t, ctx, `document.getElementById("auto-refresh").checked`) {
			t.Error("auto-refresh is off")
		}
		orphanBack := make(chan struct{})
		e.upstream.setStatusByBody(func(body []byte) int {
			select {
			case <-orphanBack:
			default:
				if strings.Contains(string(body), "order-orphan1") {
					return http.StatusBadGateway
				}
			}
			return http.StatusOK
		})
		patient := strings.Replace(consoleSites(t), "retry_for 2s", "retry_for 1h", 1)
		e.reload("", patient)
		sendOK(t, e, payment("orphan1", "DEBIT", "OK"))
		waitFor(t, ctx, "the new callback's row, without a reload", `[...document.querySelectorAll("#events tbody tr[data-seq]")]
			.some(r => r.innerText.includes("order-orphan1"))`)
		e.reload("", strings.Replace(patient, "route /callbacks/ixopay*", "route /callbacks/*", 1))
		waitFor(t, ctx, "the orphaned inbox's Move", `document.querySelector("#inbox button.move") !== null`)
		_, list := adminCall(t, http.MethodGet, "/payhook/events?ref=order-orphan1")
		orphan := gjson.GetBytes(list, "events.0.event_id").String()
		close(orphanBack)
		clickNow(t, ctx, "moving", "#inbox button.move")
		waitFor(t, ctx, "the confirmation", `!document.getElementById("confirm").hidden`)
		if to := evaluate[string](t, ctx, `document.getElementById("move-to").selectedOptions[0].textContent`); !strings.Contains(to, "/callbacks/*") {
			t.Errorf("the move's route: %q, want the running /callbacks/*", to)
		}
		if len(deliveriesOf(e, orphan)) != 0 {
			t.Fatal("delivered before the move")
		}
		browse(t, ctx, "confirming", chromedp.Click(chromedp.ID("confirm-yes")))
		waitFor(t, ctx, "the move's notice", `document.getElementById("notice").innerText.includes("1 event(s) moved")`)
		waitDelivered(t, e, orphan)

		t.Logf("%s, %d more journal rows: the page arrived %.0f ms after the navigation began and showed its rows at %.0f ms, painted at %.0f ms "+
			"(the page's request, its rows in it: %.0f ms); a search took %.0f ms (request and drawing)\nthe first load: %s\nreloaded: %s", engine.name, *consoleRows, pageAt, loaded, firstPaint, firstQuery, searched, requests, reloaded)
	})
}

// addFailed stores n failed events in inbox.
func addFailed(t *testing.T, s *store.Store, inbox string, n int) {
	t.Helper()
	now := time.Now()
	events := make([]*store.InboxEvent, n)
	for i := range events {
		events[i] = &store.InboxEvent{Route: inbox, Queue: fmt.Sprintf("ixopay:many%d", i), EventID: fmt.Sprintf("ixopay_many%d", i),
			Provider: "ixopay", Type: "payment", State: store.Failed, ReceivedAt: now, DoneAt: now, LastAt: now, Attempts: 3,
			LastError: "the shop answered 502", Record: []byte(`{}`)}
	}
	if stored, err := s.ImportInbox(t.Context(), events); err != nil || stored != n {
		t.Fatalf("storing %d failed events: %d, %v", n, stored, err)
	}
}

// startConsoleDoor runs caddy payhook console's door to the test's admin
// endpoint, and returns its address.
func startConsoleDoor(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	door, err := newConsoleDoor("localhost:2999", ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: door}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// fillJournal adds n journal rows to s, spread over the last 30 days, of
// orders other than the test's.
func fillJournal(t *testing.T, s *store.Store, n int) {
	t.Helper()
	start, span := time.Now().Add(-30*24*time.Hour), 30*24*time.Hour
	batch := make([]store.Entry, 0, 5000)
	for i := range n {
		amount := int64(100 + i%50000)
		uuid := fmt.Sprintf("fill%08d", i)
		batch = append(batch, store.Entry{At: start.Add(span * time.Duration(i) / time.Duration(n)), Route: "srv0/route0", Provider: "ixopay",
			Outcome: outcomeForwarded, EventID: "ixopay_" + uuid, EventType: "payment", Status: "captured", Amount: &amount, Currency: "EUR",
			Merchant: "order-" + uuid, Reference: uuid, VerifiedBy: "hmac-sha512", ClientIP: "203.0.113.7"})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.Record(t.Context(), batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func mustRequest(t *testing.T, method, url string, header http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	return req
}

// deliveriesOf lists the shop's 2xx answers to event id.
func deliveriesOf(e *env, id string) []received {
	var out []received
	for _, r := range e.upstream.received() {
		if r.Header.Get("Payhook-Event-Id") == id && r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// waitDelivered waits until the shop took event id.
func waitDelivered(t *testing.T, e *env, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(deliveriesOf(e, id)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the shop did not receive %s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot writes the page as a PNG to path, under the package's
// directory (caddymodule/docs/…, which the README shows) with
// -console.screenshots, else under the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	if !*consoleScreenshots {
		path = filepath.Join(t.TempDir(), path)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
