package caddymodule

// The sample shops of docs/guide-shop.md, run as the guide tells a merchant
// to run them, behind a real Caddy with payhook: a change to payhook that
// breaks the shop side of the guide fails here.

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// guideShopSecret is the sign_upstream secret payhook and the sample shop
// share in these tests.
const guideShopSecret = "whsec_Zm9yLXRoZS1ndWlkZXMtc2FtcGxlLXNob3Bz"

// guideShopSite routes IXOPAY callbacks through payhook to the sample shop,
// signed for it. dedupe is off so that a retry of a callback reaches the
// shop, as it does in production when the shop's 2xx was lost on the way,
// and the shop's own idempotency is what the test sees.
func guideShopSite(shop string) string {
	return `http://localhost:{port} {
	route /callbacks/ixopay* {
		payhook ixopay {
			secret {env.PAYHOOK_TEST_SECRET}
			sign_upstream {env.PAYHOOK_TEST_SHOP_SECRET}
			dedupe off
		}
		reverse_proxy ` + shop + `
	}
}
`
}

// TestGuideShopPHP runs the guide's plain-PHP shop with php -S.
func TestGuideShopPHP(t *testing.T) {
	php := lookPHP(t, "to run the guide's PHP shop")
	data := t.TempDir()
	addr := freeLoopbackAddress(t)
	shop := exec.Command(php, "-S", addr, filepath.Join("docs", "examples", "shop-php", "webhook.php"))
	shop.Env = append(os.Environ(), "PAYHOOK_SHOP_SECRET="+guideShopSecret, "SHOP_DATA_DIR="+data)
	startSampleShop(t, shop, addr)
	exerciseGuideShop(t, addr, data)
}

// TestGuideShopNode runs the guide's Express shop with node, its packages
// (the versions its package.json pins) installed by the test.
func TestGuideShopNode(t *testing.T) {
	example := filepath.Join("docs", "examples", "shop-node")
	packages := pinnedNPMDependencies(t, filepath.Join(example, "package.json"))
	modules := filepath.Join(npmPackage(t, packages[0], packages[1:]...), "node_modules")
	data := t.TempDir()
	addr := freeLoopbackAddress(t)
	host, port, _ := net.SplitHostPort(addr)
	shop := exec.Command("node", filepath.Join(example, "server.js"))
	shop.Env = append(os.Environ(), "NODE_PATH="+modules, "PAYHOOK_SHOP_SECRET="+guideShopSecret,
		"SHOP_DATA_DIR="+data, "HOST="+host, "PORT="+port)
	startSampleShop(t, shop, addr)
	exerciseGuideShop(t, addr, data)
}

// exerciseGuideShop sends IXOPAY callbacks through payhook to the sample
// shop at shop, which keeps its data in data, and calls the shop directly
// as a forger would.
func exerciseGuideShop(t *testing.T, shop, data string) {
	t.Setenv("PAYHOOK_TEST_SHOP_SECRET", guideShopSecret)
	e := startCaddySites(t, t.TempDir(), "", guideShopSite(shop), newUpstream(t))

	// A capture: the shop stores it and acts on it once.
	resp, answer := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, answer, http.StatusOK, "OK") // IXOPAY's acknowledgement: the shop answered 2xx
	events := storedEvents(t, data)
	if len(events) != 1 {
		t.Fatalf("the shop stored %d events, want 1", len(events))
	}
	var capture struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(events[0], &capture); err != nil {
		t.Fatal(err)
	}
	envelopetest.Check(t, events[0])
	wantOrders := []string{"order-1042 captured 999 EUR ixopay " + capture.ID}
	expectOrderLog(t, data, wantOrders)

	// IXOPAY's retry of it (a fresh Date and signature, the same event id)
	// reaches the shop, which acknowledges it and stores nothing new.
	retry := ixopayCallback(debitOK)
	retry.date = time.Now().Add(time.Second).UTC().Format(http.TimeFormat)
	resp, answer = e.send(retry)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	if n := len(storedEvents(t, data)); n != 1 {
		t.Errorf("after a retry the shop holds %d events, want 1", n)
	}
	expectOrderLog(t, data, wantOrders)

	// A refund of that payment is another event: stored too.
	resp, answer = e.send(ixopayCallback(`{"result":"OK","uuid":"e7a1c2d3f4b5a6978812","referenceUuid":"d94c0d72f3a36e21f16e","merchantTransactionId":"order-1042","transactionType":"REFUND","amount":"9.99","currency":"EUR"}`))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	if n := len(storedEvents(t, data)); n != 2 {
		t.Fatalf("after a refund the shop holds %d events, want 2", n)
	}
	orders := readOrderLog(t, data)
	if len(orders) != 2 || !strings.HasPrefix(orders[1], "order-1042 refunded 999 EUR ixopay ") {
		t.Errorf("order log after the refund: %q", orders)
	}

	// Straight to the shop, past payhook: only payhook's signature, fresh,
	// over these very bytes, is taken.
	key, err := verify.DecodeStandardWebhooksSecret(guideShopSecret)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := verify.DecodeStandardWebhooksSecret("whsec_b3RoZXItc2VjcmV0LW5vdC1wYXlob29rcw==")
	forged := strings.Replace(string(events[0]), capture.ID, "0123456789abcdef0123456789abcdef", 1)
	forged = strings.Replace(forged, `"value":999`, `"value":1`, 1)
	const forgedID = "0123456789abcdef0123456789abcdef"
	now := time.Now()
	for _, tt := range []struct {
		name   string
		id     string
		at     time.Time
		key    []byte
		signed string // the body signed; the body sent is forged
		header func(http.Header)
	}{
		{"another secret", forgedID, now, otherKey, forged, nil},
		{"a signature of other bytes", forgedID, now, key, string(events[0]), nil},
		{"a signature for another id", capture.ID, now, key, forged, func(h http.Header) { h.Set("Webhook-Id", forgedID) }},
		{"stale", forgedID, now.Add(-10 * time.Minute), key, forged, nil},
		{"from the future", forgedID, now.Add(10 * time.Minute), key, forged, nil},
		{"no signature", forgedID, now, key, forged, func(h http.Header) { h.Del("Webhook-Signature") }},
		{"no timestamp", forgedID, now, key, forged, func(h http.Header) { h.Del("Webhook-Timestamp") }},
		{"an unknown version", forgedID, now, key, forged, func(h http.Header) {
			h.Set("Webhook-Signature", strings.Replace(h.Get("Webhook-Signature"), "v1,", "v2,", 1))
		}},
	} {
		header := signedForShop(tt.key, tt.id, tt.at, tt.signed)
		if tt.header != nil {
			tt.header(header)
		}
		if status := postToShop(t, shop, forged, header); status != http.StatusUnauthorized {
			t.Errorf("%s: the shop answered %d, want 401", tt.name, status)
		}
	}
	// The same request, rightly signed, is taken: the refusals above were
	// the signature's.
	if status := postToShop(t, shop, forged, signedForShop(key, forgedID, now, forged)); status != http.StatusOK {
		t.Errorf("a rightly signed envelope: the shop answered %d, want 200", status)
	}
	if n := len(storedEvents(t, data)); n != 3 {
		t.Errorf("the shop holds %d events, want the 2 payhook delivered and the 1 rightly signed", n)
	}
	if orders := readOrderLog(t, data); len(orders) != 3 || orders[2] != "order-1042 captured 1 EUR ixopay "+forgedID {
		t.Errorf("order log: %q", orders)
	}
}

// signedForShop returns the Standard Webhooks headers payhook's
// sign_upstream puts on body.
func signedForShop(key []byte, id string, at time.Time, body string) http.Header {
	timestamp := strconv.FormatInt(at.Unix(), 10)
	return http.Header{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {timestamp},
		"Webhook-Signature": {verify.SignStandardWebhooks(key, id, timestamp, []byte(body))},
	}
}

// postToShop posts an envelope straight to the shop and returns its status.
func postToShop(t *testing.T, shop, body string, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+shop+"/callbacks/ixopay", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("the shop: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// storedEvents returns the envelopes the sample shop stored, in no order.
func storedEvents(t *testing.T, data string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(data, "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var events [][]byte
	for _, file := range files {
		event, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, event)
	}
	return events
}

// readOrderLog returns the lines of the sample shop's order log.
func readOrderLog(t *testing.T, data string) []string {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(data, "orders.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
}

func expectOrderLog(t *testing.T, data string, want []string) {
	t.Helper()
	if got := readOrderLog(t, data); !slices.Equal(got, want) {
		t.Errorf("order log:\n got %q\nwant %q", got, want)
	}
}

// pinnedNPMDependencies returns a package.json's dependencies as
// name@version, each pinned to one exact version.
func pinnedNPMDependencies(t *testing.T, packageJSON string) []string {
	t.Helper()
	raw, err := os.ReadFile(packageJSON)
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("%s: %v", packageJSON, err)
	}
	var packages []string
	for name, version := range manifest.Dependencies {
		if strings.ContainsAny(version, "^~<>=*x| ") || version == "" {
			t.Errorf("%s: %s %q is not pinned to one version", packageJSON, name, version)
		}
		packages = append(packages, name+"@"+version)
	}
	if len(packages) == 0 {
		t.Fatalf("%s names no dependencies", packageJSON)
	}
	slices.Sort(packages)
	return packages
}

// freeLoopbackAddress returns a loopback address with a port nothing
// listens on now.
func freeLoopbackAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startSampleShop starts the shop's process and waits until it accepts
// connections at addr; it is stopped when the test ends, and what it
// printed is logged if the test fails.
func startSampleShop(t *testing.T, shop *exec.Cmd, addr string) {
	t.Helper()
	var output lockedBuffer
	shop.Stdout, shop.Stderr = &output, &output
	if err := shop.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = shop.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = shop.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("the shop printed:\n%s", output.String())
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("the shop stopped at once:\n%s", output.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shop does not listen on %s:\n%s", addr, output.String())
		}
	}
}

// lockedBuffer collects a process's output, written from its own goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The code the shop guide quotes is the code the tests run: every php and js
// block of docs/guide-shop.md is a passage of the sample it comes from.
func TestGuideShopQuotesItsSamples(t *testing.T) {
	guide, err := os.ReadFile(filepath.Join("docs", "guide-shop.md"))
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]string{
		"php": filepath.Join("docs", "examples", "shop-php", "webhook.php"),
		"js":  filepath.Join("docs", "examples", "shop-node", "server.js"),
	}
	quoted := map[string]int{}
	blocks := strings.Split(string(guide), "\n```")
	for i := 1; i < len(blocks); i += 2 { // the odd parts open a fence: "php\n<code>"
		language, code, _ := strings.Cut(blocks[i], "\n")
		sample, ok := samples[language]
		if !ok {
			continue
		}
		source, err := os.ReadFile(sample)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(source), code+"\n") {
			t.Errorf("the guide's %s block %d is not a passage of %s:\n%s", language, quoted[language]+1, sample, code)
		}
		quoted[language]++
	}
	if quoted["php"] == 0 || quoted["js"] == 0 {
		t.Errorf("the guide quotes %d php and %d js blocks; want both samples quoted", quoted["php"], quoted["js"])
	}
}
