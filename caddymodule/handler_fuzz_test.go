package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/payhook/payhook/caddymodule/internal/store"
	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// fuzzRoute is one payhook route of FuzzHandler: its Caddyfile block and
// how a callback body is made authentic under it.
type fuzzRoute struct {
	module    string // the provider module: payhook <module>
	caddyfile string
	// sign makes r, whose body is body, authentic; it may replace the body
	// (Adyen signs each item inside it). Nil: the body is sent as it is
	// (fetch-verified providers, which ask the API).
	sign func(r *http.Request, body []byte) error
	h    *Handler // dedupe off: each input is judged alone
	// deduped is the same route with dedupe on, in a storage of the
	// fuzzing process's own.
	deduped *Handler
}

const (
	fuzzSecret = "fuzz-secret-0123456789abcdef"
	// fuzzAdyenKey is a hex HMAC key, as Adyen's Customer Area shows one.
	fuzzAdyenKey = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
)

var fuzzStandardWebhooksSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(fuzzSecret))

// fuzzStripeSecret is an endpoint's signing secret, as Stripe shows one.
const fuzzStripeSecret = "whsec_" + fuzzSecret

// fuzzPresetSecret signs every preset's routes: hex and base64 as it
// stands, for presets that take their secret encoded.
const fuzzPresetSecret = "0123456789abcdef0123456789abcdef"

// fuzzRoutes configures one route per registered provider: the providers
// with code of their own below, and every preset from the registry; the
// fetch-verified ones ask the stand-in of their API at apiBase.
func fuzzRoutes(tb testing.TB, apiBase string) []*fuzzRoute {
	sample := func(p SampleSender) func(r *http.Request, body []byte) error {
		return func(r *http.Request, body []byte) error { return p.SignSample(r, body, []byte(fuzzSecret)) }
	}
	hexHMAC := func(header string) func(r *http.Request, body []byte) error {
		return func(r *http.Request, body []byte) error {
			r.Header.Set(header, verify.SignHexHMACSHA256([]byte(fuzzSecret), body))
			return nil
		}
	}
	// Secrets come from placeholders, as in production.
	for name, value := range map[string]string{
		"PAYHOOK_FUZZ_SECRET": fuzzSecret, "PAYHOOK_FUZZ_STRIPE_SECRET": fuzzStripeSecret, "PAYHOOK_FUZZ_ADYEN_KEY": fuzzAdyenKey, "PAYHOOK_FUZZ_SW_SECRET": fuzzStandardWebhooksSecret,
		"PAYHOOK_FUZZ_MOLLIE_KEY": "test_fuzz", "PAYHOOK_FUZZ_PRESET_SECRET": fuzzPresetSecret,
		"PAYHOOK_FUZZ_UNZER_KEY": "s-priv-fuzz",
	} {
		tb.Setenv(name, value)
	}
	const secret = "{env.PAYHOOK_FUZZ_SECRET}"
	api := "\tapi_base " + apiBase + "\n\tapi_rate 1000000\n"
	routes := []*fuzzRoute{
		{caddyfile: "payhook ixopay {\n\tsecret " + secret + "\n}", sign: sample(new(IXOPAY))},
		{caddyfile: "payhook stripe {\n\tsecret {env.PAYHOOK_FUZZ_STRIPE_SECRET}\n}", sign: func(r *http.Request, body []byte) error {
			return new(Stripe).SignSample(r, body, []byte(fuzzStripeSecret))
		}},
		{caddyfile: "payhook adyen {\n\thmac_key {env.PAYHOOK_FUZZ_ADYEN_KEY}\n}", sign: func(r *http.Request, body []byte) error {
			return new(Adyen).SignSample(r, body, []byte(fuzzAdyenKey))
		}},
		{caddyfile: "payhook standard_webhooks {\n\tsecret {env.PAYHOOK_FUZZ_SW_SECRET}\n}", sign: func(r *http.Request, body []byte) error {
			key, err := verify.DecodeStandardWebhooksSecret(fuzzStandardWebhooksSecret)
			if err != nil {
				return err
			}
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			r.Header.Set("Webhook-Id", "msg_fuzz")
			r.Header.Set("Webhook-Timestamp", ts)
			r.Header.Set("Webhook-Signature", verify.SignStandardWebhooks(key, "msg_fuzz", ts, body))
			return nil
		}},
		{caddyfile: "payhook hmac {\n\tname acme\n\tsecret " + secret + "\n\theader X-Acme-Signature\n\tprefix sha256= optional\n" +
			"\tmap {\n\t\tid id\n\t\tstatus type\n\t\tstatuses {\n\t\t\tpayment.paid captured\n\t\t}\n\t\tamount amount minor\n\t\tcurrency currency\n\t}\n}",
			sign: hexHMAC("X-Acme-Signature")},
		{caddyfile: "payhook pyxis {\n\turl_token " + secret + "\n\tcurrency EUR\n}", sign: sample(new(Pyxis))},
		{caddyfile: "payhook mollie {\n\tapi_key {env.PAYHOOK_FUZZ_MOLLIE_KEY}\n\tsignature_secret " + secret + "\n" + api + "}", sign: sample(new(Mollie))},
		{caddyfile: "payhook payrexx {\n\tinstance fuzz\n\tapi_key " + secret + "\n" + api + "}"},
		{caddyfile: "payhook shopandpay {\n\tinstance fuzz\n\tapi_key " + secret + "\n" + api + "}"},
		{caddyfile: "payhook swedbankpay {\n\ttoken " + secret + "\n" + api + "}"},
		{caddyfile: "payhook wallee {\n\tuser_id 1\n\tauthentication_key {env.PAYHOOK_FUZZ_PRESET_SECRET}\n" + api + "}"},
		{caddyfile: "payhook postfinance {\n\tuser_id 1\n\tauthentication_key {env.PAYHOOK_FUZZ_PRESET_SECRET}\n" + api + "}"},
		{caddyfile: "payhook payone {\n\tportal_key " + secret + "\n\tportal_id 1234567\n\taccount_id 12345\n\tallow_ips 0.0.0.0/0 ::/0\n}", sign: sample(new(Payone))},
		{caddyfile: "payhook unzer {\n\tprivate_key {env.PAYHOOK_FUZZ_UNZER_KEY}\n" + api + "}"},
		// Klarna's push names its order in the URL, as the goldens' orders.
		{caddyfile: "payhook klarna {\n\tusername fuzz\n\tpassword " + secret + "\n" + api + "}", sign: func(r *http.Request, _ []byte) error {
			r.URL.RawQuery = "klarna_order_id=903e3d51-3b68-4993-be73-2c2f95e83d97"
			return nil
		}},
		{caddyfile: "payhook multisafepay {\n\tapi_key " + secret + "\n" + api + "}", sign: sample(new(MultiSafepay))},
		{caddyfile: "payhook paypal {\n\tclient_id fuzz\n\tclient_secret " + secret + "\n\twebhook_id FUZZWEBHOOK\n" + api + "}", sign: sample(new(PayPal))},
		{caddyfile: "payhook braintree {\n\tpublic_key fuzz_public\n\tprivate_key " + secret + "\n}", sign: func(r *http.Request, body []byte) error {
			return new(Braintree).SignSample(r, body, []byte("fuzz_public|"+fuzzSecret))
		}},
	}
	// Every preset, from the registry: a new one is fuzzed without a line
	// here.
	for _, name := range ProviderNames() {
		p, _ := NewProvider(name)
		if preset, ok := p.(*Preset); ok {
			routes = append(routes, &fuzzRoute{
				caddyfile: "payhook " + name + " {\n\tsecret {env.PAYHOOK_FUZZ_PRESET_SECRET}\n}",
				sign: func(r *http.Request, body []byte) error {
					return preset.SignSample(r, body, []byte(fuzzPresetSecret))
				},
			})
		}
	}
	for _, rt := range routes {
		rt.module = strings.Fields(rt.caddyfile)[1]
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	// The dedupe records go to memory where the system offers it (each
	// record is synced to its file).
	storageDir := ""
	if dir, err := os.MkdirTemp("/dev/shm", "payhook-fuzz-"); err == nil {
		storageDir = dir
		tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	} else {
		storageDir = tb.TempDir()
	}
	state, err := store.OpenSQLite(context.Background(), filepath.Join(storageDir, "payhook.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { state.Close() })
	provision := func(block string) *Handler {
		h := new(Handler)
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
			tb.Fatalf("%v\n%s", err, block)
		}
		// The route judges each input alone: its records are dropped once
		// provisioned (a weakly signed provider's route cannot be
		// configured without them); the deduped one gets its own below.
		h.state = state
		if err := h.Provision(ctx); err != nil {
			tb.Fatalf("%v\n%s", err, block)
		}
		if h.dedupe != nil {
			h.dedupe.close()
			h.dedupe = nil
		}
		h.logger = zap.NewNop() // a fuzzer's rejections are not news
		return h
	}
	for _, rt := range routes {
		rt.h = provision(rt.caddyfile)
		rt.deduped = provision(rt.caddyfile)
		rt.deduped.dedupe = newDeduper(state, time.Hour, zap.NewNop())
		tb.Cleanup(rt.deduped.dedupe.close)
	}
	return routes
}

// FuzzHandler sends arbitrary bodies, made authentic where the provider
// signs, through payhook's whole handler for every provider: reading,
// verification, normalization, the envelopes and the answer. The stand-in
// of the providers' APIs answers with a document of the input's, so that
// fetch-verified callbacks are normalized from arbitrary documents too. It
// checks what the unit fuzzers of each parser cannot: that the handler's
// glue never panics; that it answers 5xx ("try again later") only when a
// retry can help (here: only when the provider's API was asked, or is
// remembered as not knowing the resource a moment ago; the shop always
// takes the envelope); that it acknowledges only what reached the shop;
// that whatever reaches the shop is a valid envelope whose
// Payhook-Event-Id is its id; and that an acknowledged callback sent again
// brings the same ids or, on the route with dedupe, is acknowledged at
// once and not forwarded.
func FuzzHandler(f *testing.F) {
	// The stand-in of every provider's API answers each request with the
	// input's document (PayPal's OAuth2 token aside), under the status the
	// document may start with; with none, it fails.
	var apiCalls atomic.Int64
	var apiDocument atomic.Pointer[[]byte]
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiCalls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/oauth2/token" {
			_, _ = io.WriteString(w, `{"access_token":"A21AA-fuzz","token_type":"Bearer","expires_in":32400}`)
			return
		}
		doc := apiDocument.Load()
		if doc == nil || len(*doc) == 0 {
			http.Error(w, "stand-in of a failing API", http.StatusInternalServerError)
			return
		}
		// A document may start with the answer's status: "404\n{…}".
		answer := *doc
		if code, rest, ok := bytes.Cut(answer, []byte("\n")); ok && len(code) == 3 {
			if status, err := strconv.Atoi(string(code)); err == nil && status >= 200 && status <= 599 {
				w.WriteHeader(status)
				answer = rest
			}
		}
		_, _ = w.Write(answer)
	}))
	f.Cleanup(api.Close)
	routes := fuzzRoutes(f, api.URL)
	// Input bits: variant's low six choose the content type, 0x40 the
	// route with dedupe, 0x80 an unsigned callback. Each seed goes to both
	// routes.
	seed := func(route, variant uint8, body, doc []byte) {
		f.Add(route, variant, body, doc)
		f.Add(route, variant|0x40, body, doc)
	}

	for i, rt := range routes {
		p, err := NewProvider(rt.module)
		if err != nil {
			f.Fatal(err)
		}
		statuses := []normalize.Status{normalize.StatusCaptured, normalize.StatusRefunded, normalize.StatusFailed}
		if preset, ok := p.(*Preset); ok {
			statuses = preset.SampleStatuses()
		}
		if s, ok := p.(SampleSender); ok {
			for _, status := range statuses {
				body, contentType, err := s.Sample(normalize.Sample{
					Status: status, Amount: normalize.Amount{MinorUnits: 1050, Currency: "EUR"},
					MerchantReference: "order-1", ProviderReference: "4711",
				})
				if variant := slices.Index(rt.h.contentTypes, contentType); err == nil && variant >= 0 {
					seed(uint8(i), uint8(variant), body, nil)
				}
			}
		}
	}
	// The presets' official vectors and published examples, and
	// MultiSafepay's (a preset once).
	for i, rt := range routes {
		dir := filepath.Join("testdata/presets", rt.module)
		if rt.module == "multisafepay" {
			dir = "testdata/multisafepay"
		}
		raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
		if err != nil {
			continue
		}
		var cases presetCases
		if err := json.Unmarshal(raw, &cases); err != nil {
			f.Fatal(err)
		}
		files := make([]string, 0, len(cases.Vectors)+len(cases.Examples))
		for _, v := range cases.Vectors {
			files = append(files, v.Body)
		}
		for _, ex := range cases.Examples {
			files = append(files, ex.File)
		}
		for _, file := range files {
			body, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				f.Fatal(err)
			}
			seed(uint8(i), uint8(0), body, nil)
		}
	}
	byName := func(name string) uint8 {
		i := slices.IndexFunc(routes, func(rt *fuzzRoute) bool { return rt.module == name })
		if i < 0 {
			f.Fatalf("no route for %s", name)
		}
		return uint8(i)
	}
	seed(byName("ixopay"), uint8(0), []byte(`{"a":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}`), nil)
	seed(byName("standard_webhooks"), uint8(0), []byte(`{"type":"payment.succeeded","timestamp":"2026-11-22T10:00:00Z","data":{"id":"pay_1","amount":1050}}`), nil)
	seed(byName("mollie"), uint8(0), []byte("id=tr_4711"), []byte("404\n{\"status\":404,\"title\":\"Not Found\"}"))
	seed(byName("payrexx"), uint8(0), []byte("transaction[id]=4711&transaction[status]=confirmed"), []byte("429\n"))
	seed(byName("swedbankpay"), uint8(1), []byte(`{"paymentOrder":{"id":"/psp/paymentorders/4711","instrument":"paymentorders"},"transaction":{"id":"/psp/paymentorders/4711/financialtransactions/1","number":1}}`), []byte("401\n{}"))
	// The golden callbacks, with the API's answers where they have one.
	for i, rt := range routes {
		cases, _ := filepath.Glob(filepath.Join("../normalize/testdata", rt.module, "*.in"))
		for _, in := range cases {
			req, body := readRawRequest(f, in)
			mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
			variant := max(0, slices.Index(rt.h.contentTypes, mediaType))
			doc, _ := os.ReadFile(strings.TrimSuffix(in, ".in") + ".fetched.json")
			if rt.module == "paypal" {
				doc = []byte(`{"verification_status":"SUCCESS"}`)
			}
			seed(uint8(i), uint8(variant), body, doc)
		}
	}

	f.Fuzz(func(t *testing.T, route, variant uint8, body, doc []byte) {
		apiDocument.Store(&doc)
		rt := routes[int(route)%len(routes)]
		contentTypes := rt.h.contentTypes
		contentType := contentTypes[int(variant&0x3f)%len(contentTypes)]
		// The callback as the provider sends it, every time it retries.
		signed := httptest.NewRequest(http.MethodPost, "/callbacks/"+rt.h.name, bytes.NewReader(body))
		signed.Header.Set("Content-Type", contentType)
		if rt.sign != nil && variant&0x80 == 0 {
			if err := rt.sign(signed, body); err != nil {
				signed.Body = io.NopCloser(bytes.NewReader(body)) // not signable: sent as it is
			}
		}
		sent, err := io.ReadAll(signed.Body) // Adyen's signatures go into the body
		if err != nil {
			t.Fatal(err)
		}

		h, deduped := rt.h, variant&0x40 != 0
		if deduped {
			h = rt.deduped
		}
		// send delivers the callback once and returns the answer's status and
		// the ids of the envelopes the shop received.
		send := func() (status int, ids []string) {
			req := httptest.NewRequest(http.MethodPost, signed.URL.RequestURI(), bytes.NewReader(sent)) // Pyxis's token is in the URL
			req.Header = signed.Header.Clone()
			vars := map[string]any{}
			req = req.WithContext(context.WithValue(req.Context(), caddyhttp.VarsCtxKey, vars))
			caddyhttp.NewTestReplacer(req)
			shop := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				envelope, err := io.ReadAll(r.Body)
				if err != nil {
					t.Fatalf("%s: reading the forwarded body: %v", rt.h.name, err)
				}
				if r.ContentLength != int64(len(envelope)) {
					t.Errorf("%s: Content-Length %d, envelope of %d bytes", rt.h.name, r.ContentLength, len(envelope))
				}
				if err := envelopetest.Validate(envelope); err != nil {
					t.Errorf("%s: the shop received an invalid envelope: %v\n%s", rt.h.name, err, envelope)
				}
				var head struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(envelope, &head); err != nil || head.ID == "" || r.Header.Get(EventIDHeader) != head.ID {
					t.Errorf("%s: %s %q, envelope id %q (%v)", rt.h.name, EventIDHeader, r.Header.Get(EventIDHeader), head.ID, err)
				}
				ids = append(ids, head.ID)
				w.WriteHeader(http.StatusOK)
				return nil
			})
			calls := apiCalls.Load()
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, req, shop); err != nil {
				var he caddyhttp.HandlerError
				if !errors.As(err, &he) {
					t.Fatalf("%s: ServeHTTP returned %v", rt.h.name, err)
				}
				status = he.StatusCode
			} else {
				status = w.Code
			}
			// Without asking, only the API's recent answer (this resource is
			// unknown to it) is remembered, and answered with 503 for a while.
			recent := strings.TrimSpace(w.Body.String()) == verify.ErrRecentlyUnknown.Error()
			if status >= 500 && apiCalls.Load() == calls && !recent {
				t.Fatalf("%s: answered %d (try again later) to a callback a retry cannot help; the API was not asked:\n%s\nbody: %q",
					rt.h.name, status, w.Body, sent)
			}
			// With dedupe, an input may repeat one the fuzzer sent before;
			// a notification that concerns no payment is acknowledged and
			// not forwarded.
			if status < 300 && len(ids) == 0 && !deduped && vars["payhook.outcome"] != outcomeIgnored {
				t.Fatalf("%s: answered %d, and the shop received nothing:\n%s\nbody: %q", rt.h.name, status, w.Body, sent)
			}
			return status, ids
		}

		status, ids := send()
		if status >= 300 {
			return
		}
		again, retried := send()
		switch {
		case deduped && (again >= 300 || len(retried) > 0):
			// Delivered once: a retry is acknowledged at once (its claim
			// released, whatever path the first took) and not forwarded.
			t.Fatalf("%s: a retry of a delivered callback was answered %d and forwarded %q\nbody: %q", rt.h.name, again, retried, sent)
		case !deduped && again < 300 && !slices.Equal(ids, retried):
			// A retry is the same events: the same ids, in the same order
			// (dedupe off: the shop receives them again).
			t.Fatalf("%s: a retry's event ids %q differ from the first delivery's %q\nbody: %q", rt.h.name, retried, ids, sent)
		}
	})
}

// Every registered provider, presets included, has a route in FuzzHandler
// and a sample for `caddy payhook send`: a new provider is fuzzed and can
// be tried without a line in a shared file. (A plugin's provider, from
// another package, is the plugin's to fuzz.)
func TestEveryProviderIsFuzzedAndHasASample(t *testing.T) {
	fuzzed := map[string]bool{}
	for _, rt := range fuzzRoutes(t, "http://127.0.0.1:9") {
		fuzzed[rt.module] = true
	}
	ours := reflect.TypeFor[Handler]().PkgPath()
	for _, name := range ProviderNames() {
		if p, _ := NewProvider(name); reflect.TypeOf(p).Elem().PkgPath() != ours {
			continue
		}
		if !fuzzed[name] {
			t.Errorf("provider %s has no route in FuzzHandler", name)
		}
		p, err := NewProvider(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.(SampleSender); !ok {
			t.Errorf("provider %s has no sample for caddy payhook send", name)
		}
	}
}
