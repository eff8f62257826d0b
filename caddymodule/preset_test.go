package caddymodule

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// presetProvider builds the preset provider name through the Caddyfile
// (payhook <name> { secret … }, with the secret in a placeholder) and the
// module's own provisioning.
func presetProvider(t *testing.T, name, secret string) Provider {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_PRESET_SECRET", secret)
	h := new(Handler)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("payhook " + name + " {\n\tsecret {env.PAYHOOK_TEST_PRESET_SECRET}\n}")); err != nil {
		t.Fatalf("the preset does not parse: %v", err)
	}
	var config map[string]any
	if err := json.Unmarshal(h.ProviderRaw, &config); err != nil {
		t.Fatal(err)
	}
	id := ProvidersNamespace + "." + config["name"].(string)
	delete(config, "name")
	raw, _ := json.Marshal(config)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(id, raw)
	if err != nil {
		t.Fatalf("the preset does not provision: %v", err)
	}
	return mod.(Provider)
}

// presetAt sets the clock of a provisioned preset's verifier.
func presetAt(p Provider, now time.Time) {
	switch s := p.(*Preset).scheme.(type) {
	case *HMAC:
		s.verifier.Now = func() time.Time { return now }
	case *StandardWebhooks:
		s.verifier.Now = func() time.Time { return now }
	}
}

// presetMapping is a provisioned preset's mapping, the route's overrides
// merged.
func presetMapping(p Provider) *normalize.Mapping {
	switch s := p.(*Preset).scheme.(type) {
	case *HMAC:
		return s.Mapping
	case *StandardWebhooks:
		return s.Mapping
	}
	return nil
}

// presetNames lists the registered presets.
func presetNames() []string {
	var names []string
	for _, name := range ProviderNames() {
		if p, err := NewProvider(name); err == nil {
			if _, ok := p.(*Preset); ok {
				names = append(names, name)
			}
		}
	}
	return names
}

// placeholders stands in for Caddy's replacer in preset tests.
type placeholders map[string]string

func (p placeholders) Get(name string) (any, bool) {
	v, ok := p[name]
	return v, ok
}

// presetCases are a preset's tests, in testdata/presets/<preset>/cases.json
// beside the payloads they name: adding a preset adds its directory, not a
// line here.
type presetCases struct {
	// Vectors are the provider's official signed examples.
	Vectors []presetVector `json:"vectors,omitempty"`
	// Examples are the provider's published events (SOURCES.md) and what
	// the preset's map must make of each.
	Examples []presetExample `json:"examples"`
	// SDK is the provider's own verifier, run on what payhook signs.
	SDK *presetSDK `json:"sdk,omitempty"`
}

// presetSDK runs the provider's own verification code on a callback that
// payhook's sender signed: its SDK from npm (Package, name@version,
// installed by the test), or where the provider publishes its verify
// function in another language only, a line-by-line port of it (no
// Package). Script, a file in the preset's directory, is run by node with
// one argument, the callback as JSON ({"secret", "method", "url",
// "headers": {name: value}, "body"}), and prints "valid" when the
// provider's code accepts it, anything else when it does not.
type presetSDK struct {
	Package string `json:"package,omitempty"`
	Script  string `json:"script"`
	// Secret signs the callback, where the provider's secrets have a
	// shape (PhonePe's username:password); another is refused.
	Secret string `json:"secret,omitempty"`
	// BodyUnsigned says the provider's scheme does not cover the body (a
	// header that carries the secret): a changed body is not the test.
	BodyUnsigned bool `json:"body_unsigned,omitempty"`
}

// presetVector is a provider's official test vector for its preset.
type presetVector struct {
	// Source says where the vector comes from: the provider's page, or
	// its SDK (package, version, function) that signed or verified it.
	Source       string       `json:"source,omitempty"`
	Secret       string       `json:"secret"`
	Body         string       `json:"body"` // the file, relative to the preset's directory
	Header       http.Header  `json:"header"`
	RequestURI   string       `json:"request_uri,omitempty"`
	Host         string       `json:"host,omitempty"`
	Now          time.Time    `json:"now,omitzero"` // the vector's time, for schemes with a timestamp
	Placeholders placeholders `json:"placeholders,omitempty"`
	// What the preset's map makes of the vector's payload.
	Status   normalize.Status `json:"status"`
	Events   int              `json:"events"`
	Amount   int64            `json:"amount,omitempty"`
	Currency string           `json:"currency,omitempty"`
}

// presetExample is one provider event and what the provider's preset must
// make of it.
type presetExample struct {
	File              string             `json:"file"` // relative to the preset's directory
	Status            normalize.Status   `json:"status"`
	ProviderStatus    string             `json:"provider_status"`
	Amount            int64              `json:"amount,omitempty"` // with currency; no currency: no amount
	Currency          string             `json:"currency,omitempty"`
	MerchantReference string             `json:"merchant_reference,omitempty"`
	ProviderReference string             `json:"provider_reference,omitempty"`
	Failure           *normalize.Failure `json:"failure,omitempty"` // nil: data.failure is null
	Time              string             `json:"time,omitempty"`    // the envelope's time; "": none in the payload, the receive time
	Test              *bool              `json:"test,omitempty"`
}

// readPresetCases reads a preset's cases.json.
func readPresetCases(tb testing.TB, preset string) presetCases {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata/presets", preset, "cases.json"))
	if err != nil {
		tb.Fatalf("preset %s has no tests: %v", preset, err)
	}
	var cases presetCases
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		tb.Fatalf("testdata/presets/%s/cases.json: %v", preset, err)
	}
	return cases
}

// Every preset verifies its provider's official test vector through its
// definition alone, refuses the vector with one byte of the body changed,
// and maps the vector's payload.
func TestPresetsVerifyTheOfficialVectors(t *testing.T) {
	for _, preset := range presetNames() {
		for i, vec := range readPresetCases(t, preset).Vectors {
			t.Run(fmt.Sprintf("%s/%d", preset, i), func(t *testing.T) { testPresetVector(t, preset, vec) })
		}
	}
}

// testPresetVector verifies and maps one vector, and refuses it tampered.
func testPresetVector(t *testing.T, preset string, vec presetVector) {
	p := presetProvider(t, preset, vec.Secret)
	if !vec.Now.IsZero() {
		presetAt(p, vec.Now)
	}
	body, err := os.ReadFile(filepath.Join("testdata/presets", preset, vec.Body))
	if err != nil {
		t.Fatal(err)
	}
	uri := vec.RequestURI
	if uri == "" {
		uri = "/hooks/" + preset
	}
	callback := func(body []byte) (*verify.Callback, *normalize.Input) {
		cb := &verify.Callback{Method: http.MethodPost, RequestURI: uri, Scheme: "https", Host: vec.Host, Header: vec.Header, Body: body}
		if vec.Placeholders != nil {
			cb.Placeholders = vec.Placeholders
		}
		return cb, &normalize.Input{Provider: p.Name(), ContentType: "application/json", Body: body}
	}
	cb, in := callback(body)
	res, err := p.Verify(context.Background(), cb, in)
	if err != nil {
		t.Fatalf("the official vector is refused: %v", err)
	}
	events, err := p.Normalize(in, res, nil)
	if err != nil || len(events) != vec.Events {
		t.Fatalf("Normalize = %d events, %v", len(events), err)
	}
	ev := events[0]
	if ev.Status != vec.Status || (vec.Amount != 0 && (ev.Amount == nil || ev.Amount.MinorUnits != vec.Amount || ev.Amount.Currency != vec.Currency)) {
		t.Errorf("event: status %s amount %v, want %s %d %s", ev.Status, ev.Amount, vec.Status, vec.Amount, vec.Currency)
	}
	if presetSignsBody(p) {
		tampered := append([]byte(nil), body...)
		tampered[len(tampered)/2] ^= 1
		cb, in = callback(tampered)
		if _, err := p.Verify(context.Background(), cb, in); !errors.Is(err, verify.ErrBadSignature) {
			t.Errorf("a tampered body: %v, want ErrBadSignature", err)
		}
	}
	// The signature changed: refused, whatever the scheme covers.
	header := vec.Header.Clone()
	for name, values := range header {
		if strings.EqualFold(name, presetSignatureHeader(p)) {
			v := []byte(values[0])
			v[len(v)-2] ^= 1
			header[name] = []string{string(v)}
		}
	}
	cb, in = callback(body)
	cb.Header = header
	if _, err := p.Verify(context.Background(), cb, in); err == nil {
		t.Error("a changed signature header verifies")
	}
}

// presetSignsBody reports whether a preset's signature covers the body
// (PhonePe's static header and Mercado Pago's manifest do not).
func presetSignsBody(p Provider) bool {
	s, ok := p.(*Preset).scheme.(*HMAC)
	return !ok || (!s.UnsignedBody && s.Mode != verify.ModeSecret && s.Mode != verify.ModeSecretHash)
}

// presetSignatureHeader is the header a preset's signature comes in.
func presetSignatureHeader(p Provider) string {
	switch s := p.(*Preset).scheme.(type) {
	case *HMAC:
		return s.Header
	case *StandardWebhooks:
		return cmp.Or(s.HeaderPrefix, "webhook") + "-signature"
	}
	return ""
}

// The presets of providers that publish no vector, with signatures made
// here from each provider's documented scheme, independently of payhook's
// signer: Checkout.com (hex HMAC-SHA256 of the body in Cko-Signature),
// Mollie's signed webhooks ("sha256=" and the hex HMAC-SHA256 of the body,
// the header twice during a rotation), Datatrans ("t=<ms>,s0=<hex HMAC-SHA256
// of t and the body>", the key given in hex).
func TestPresetsWithoutAPublishedVector(t *testing.T) {
	mac := func(key []byte, parts ...string) string {
		h := hmac.New(sha256.New, key)
		for _, p := range parts {
			h.Write([]byte(p))
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	now := time.Now()
	datatransKey, _ := hex.DecodeString("861bbfc01e089259091927d6ad7f71c8b46b7ee13499574e83c633b74cdc29e3b7e262e41318c8425c520f146986675fdd58a4531a01c99f06da378fdab0414a")
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	for _, tt := range []struct {
		preset, secret, body string
		header               http.Header
		status               normalize.Status
		amount               int64
		currency             string
	}{
		{"checkout", "cko-webhook-secret",
			`{"id":"evt_az3v6a4lkwbw7gypquvsyo4d3y","type":"payment_captured","created_on":"2026-11-20T10:34:47Z","data":{"id":"pay_mbabizu24mvu3mela5njyhpit4","action_id":"act_y5r2r4vo2ejexmf4vhrjhvgcbi","amount":999,"currency":"EUR","reference":"order-1042","response_code":"10000","response_summary":"Approved"}}`,
			nil, normalize.StatusCaptured, 999, "EUR"},
		{"mollie-signed", "mollie-webhook-secret",
			`{"resource":"event","id":"event_GvJ8WHrp5isUdRub9CJyH","type":"payment-link.paid","entityId":"pl_qng5gbbv8NAZ5gpM5ZYgx","createdAt":"2026-11-20T10:34:47.0Z","_embedded":{"entity":{"resource":"payment-link","id":"pl_qng5gbbv8NAZ5gpM5ZYgx","amount":{"value":"24.95","currency":"EUR"}}}}`,
			nil, normalize.StatusCaptured, 2495, "EUR"},
		{"datatrans", hex.EncodeToString(datatransKey),
			`{"transactionId":"260112092834012345","type":"payment","status":"settled","currency":"CHF","refno":"order-1042","paymentMethod":"VIS","detail":{"settle":{"amount":1000}},"test":true}`,
			nil, normalize.StatusCaptured, 1000, "CHF"},
	} {
		t.Run(tt.preset, func(t *testing.T) {
			p := presetProvider(t, tt.preset, tt.secret)
			header := http.Header{}
			switch tt.preset {
			case "checkout":
				header.Set("Cko-Signature", mac([]byte(tt.secret), tt.body))
			case "mollie-signed":
				// During a rotation Mollie sends one header per secret;
				// its SDK takes a signature with "sha256=" or without.
				header.Add("X-Mollie-Signature", "sha256="+mac([]byte("the-previous-secret"), tt.body))
				header.Add("X-Mollie-Signature", mac([]byte(tt.secret), tt.body))
			case "datatrans":
				header.Set("Datatrans-Signature", fmt.Sprintf("t=%s,s0=%s", ms, mac(datatransKey, ms, tt.body)))
			}
			cb := &verify.Callback{Method: http.MethodPost, RequestURI: "/hooks", Header: header, Body: []byte(tt.body)}
			in := &normalize.Input{Provider: p.Name(), ContentType: "application/json", Body: []byte(tt.body)}
			res, err := p.Verify(context.Background(), cb, in)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			events, err := p.Normalize(in, res, nil)
			if err != nil || len(events) != 1 || events[0].Status != tt.status || events[0].Amount.MinorUnits != tt.amount || events[0].Amount.Currency != tt.currency {
				t.Fatalf("Normalize = %+v, %v", events, err)
			}
			cb.Body = []byte(strings.Replace(tt.body, "order-1042", "order-1043", 1) + " ")
			if _, err := p.Verify(context.Background(), cb, in); !errors.Is(err, verify.ErrBadSignature) {
				t.Errorf("a tampered body: %v", err)
			}
		})
	}
}

// A map block's paths in order of preference and its conditional statuses,
// as the Caddyfile writes them.
func TestMapBlockPreferencesAndRules(t *testing.T) {
	d := caddyfile.NewTestDispenser(`map {
		status event
		statuses {
			refund.failed refund_failed
			refund.processed refunded if payload.payment.entity.refund_status full
			refund.processed partially_refunded if payload.payment.entity.refund_status partial unless payload.payment.entity.captured false
		}
		amount payload.refund.entity.amount payload.payment.entity.amount minor
		time timestamp created_on
	}`)
	d.Next()
	m, err := unmarshalMapping(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []normalize.StatusRule{
		{ProviderStatus: "refund.processed", Status: "refunded", When: []normalize.Condition{{Path: "payload.payment.entity.refund_status", Value: "full"}}},
		{ProviderStatus: "refund.processed", Status: "partially_refunded", When: []normalize.Condition{
			{Path: "payload.payment.entity.refund_status", Value: "partial"}, {Path: "payload.payment.entity.captured", Value: "false", Not: true}}},
	}
	got, _ := json.Marshal(m.StatusRules)
	if wantJSON, _ := json.Marshal(want); string(got) != string(wantJSON) {
		t.Errorf("rules %s, want %s", got, wantJSON)
	}
	if m.Statuses["refund.failed"] != "refund_failed" || len(m.Statuses) != 1 || m.AmountUnit != "minor" ||
		strings.Join(m.Amount, " ") != "payload.refund.entity.amount payload.payment.entity.amount" || strings.Join(m.Time, " ") != "timestamp created_on" {
		t.Errorf("mapping %+v", m)
	}
	for _, tt := range []struct{ block, want string }{
		{"statuses {\n a refunded when b c\n}", "where if or unless belongs"},
		{"statuses {\n a refunded if b\n}", "want <canonical status>"},
		{"statuses {\n a refunded if b c\n a refunded if b c\n}", "mapped twice under the same conditions"},
		{"statuses {\n a refunded\n a captured\n}", "mapped twice"},
		{"statuses {\n a refunded if b c\n}", "statuses needs status"},
		{"status s\nstatuses {\n a settled if b c\n}", "not a canonical status"},
		{"amount a", "amount <path>... minor|decimal"},
		{"amount a b", `amount unit "b"`},
		{"time", "wrong argument count"},
		{"time a b..c", "time #2"},
	} {
		d := caddyfile.NewTestDispenser("map {\n" + tt.block + "\n}")
		d.Next()
		if _, err := unmarshalMapping(d); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want an error with %q", tt.block, err, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Every preset maps its provider's published success, failure, refund and
// dispute examples: the status (a failed operation is never its success, a
// refund full or partial only where the provider says which), the amount in
// minor units (a refund's own), the currency, both references, data.failure
// only on a failing status, and the provider's own time.
func TestPresetsMapThePublishedExamples(t *testing.T) {
	for _, preset := range presetNames() {
		examples := readPresetCases(t, preset).Examples
		if len(examples) == 0 {
			t.Errorf("preset %q has no examples", preset)
		}
		p := presetProvider(t, preset, "a0b1c2d3e4f5") // hex, for datatrans
		for _, ex := range examples {
			t.Run(preset+"/"+filepath.Base(ex.File), func(t *testing.T) {
				body, err := os.ReadFile(filepath.Join("testdata/presets", preset, ex.File))
				if err != nil {
					t.Fatal(err)
				}
				events, err := p.Normalize(&normalize.Input{Provider: p.Name(), ContentType: "application/json", Body: body}, verify.Result{}, nil)
				if err != nil || len(events) != 1 {
					t.Fatalf("Normalize = %d events, %v", len(events), err)
				}
				ev := events[0]
				if ev.Status != ex.Status || ev.ProviderStatus != ex.ProviderStatus || ev.Unmapped != (ex.Status == normalize.StatusUnknown) {
					t.Errorf("status %s (%q, unmapped %v), want %s (%q)", ev.Status, ev.ProviderStatus, ev.Unmapped, ex.Status, ex.ProviderStatus)
				}
				switch {
				case ex.Currency == "" && ev.Amount != nil:
					t.Errorf("amount %+v, want none", ev.Amount)
				case ex.Currency != "" && (ev.Amount == nil || ev.Amount.MinorUnits != ex.Amount || ev.Amount.Currency != ex.Currency):
					t.Errorf("amount %+v, want %d %s", ev.Amount, ex.Amount, ex.Currency)
				}
				if ev.MerchantReference != ex.MerchantReference || ev.ProviderReference != ex.ProviderReference {
					t.Errorf("references %q %q, want %q %q", ev.MerchantReference, ev.ProviderReference, ex.MerchantReference, ex.ProviderReference)
				}
				if (ev.Failure == nil) != (ex.Failure == nil) || (ev.Failure != nil && *ev.Failure != *ex.Failure) {
					t.Errorf("failure %+v, want %+v", ev.Failure, ex.Failure)
				}
				if (ev.Test == nil) != (ex.Test == nil) || (ev.Test != nil && *ev.Test != *ex.Test) {
					t.Errorf("test %v, want %v", ev.Test, ex.Test)
				}
				received := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
				envelope := normalize.Encode(ev, verify.Result{Method: "hmac-sha256"}, received)
				envelopetest.Check(t, envelope)
				var doc struct {
					Time string `json:"time"`
					Data struct {
						Failure json.RawMessage `json:"failure"`
					} `json:"data"`
				}
				if err := json.Unmarshal(envelope, &doc); err != nil {
					t.Fatal(err)
				}
				wantTime := ex.Time
				if wantTime == "" {
					wantTime = "2030-01-01T00:00:00Z"
				}
				if doc.Time != wantTime {
					t.Errorf("time %s, want %s", doc.Time, wantTime)
				}
				if ex.Failure == nil && string(doc.Data.Failure) != "null" {
					t.Errorf("data.failure %s, want null", doc.Data.Failure)
				}
			})
		}
	}
}

// `caddy payhook send <preset>` signs the preset's sample for every status
// it lists, and the preset's own route takes it with exactly the values
// sent: the status, and the amount, currency and merchant reference where
// the provider's events carry them (a Square refund names no order; a
// capture always names its payment).
func TestPresetSamplesArriveAsSent(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef" // hex, for datatrans
	for _, name := range presetNames() {
		p := presetProvider(t, name, secret)
		mapping := presetMapping(p)
		sender, _ := NewProvider(name)
		for _, status := range sender.(*Preset).SampleStatuses() {
			t.Run(name+"/"+string(status), func(t *testing.T) {
				sent := normalize.Sample{Status: status, Amount: normalize.Amount{MinorUnits: 1234, Currency: cmp.Or(sender.(*Preset).OnlyCurrency(), "EUR")},
					MerchantReference: "order-1042", ProviderReference: "4711"}
				body, contentType, err := sender.(SampleSender).Sample(sent)
				if err != nil {
					t.Fatal(err)
				}
				r := httptest.NewRequest(http.MethodPost, "https://shop.example.com/hooks/"+name+"?a=1", strings.NewReader(string(body)))
				if err := sender.(SampleSender).SignSample(r, body, []byte(secret)); err != nil {
					t.Fatal(err)
				}
				// The placeholders as Caddy answers them for the request sent.
				r.RequestURI = r.URL.RequestURI()
				cb := &verify.Callback{Method: http.MethodPost, RequestURI: r.URL.RequestURI(), Scheme: "https", Host: r.Host, Header: r.Header, Body: body,
					Placeholders: &sentPlaceholders{repl: caddyhttp.NewTestReplacer(r), r: r}}
				in := &normalize.Input{Provider: p.Name(), ContentType: contentType, Body: body}
				res, err := p.Verify(context.Background(), cb, in)
				if err != nil {
					t.Fatalf("the preset refuses its own sample: %v\n%s", err, body)
				}
				events, err := p.Normalize(in, res, nil)
				if err != nil || len(events) != 1 {
					t.Fatalf("Normalize = %d events, %v", len(events), err)
				}
				ev := events[0]
				if ev.Status != status {
					t.Errorf("status %s (%q), want %s\n%s", ev.Status, ev.ProviderStatus, status, body)
				}
				if len(mapping.Amount) > 0 && (ev.Amount == nil || *ev.Amount != sent.Amount) {
					t.Errorf("amount %+v, want %+v", ev.Amount, sent.Amount)
				}
				captured := status == normalize.StatusCaptured
				if len(mapping.MerchantReference) > 0 && ev.MerchantReference != sent.MerchantReference && (captured || ev.MerchantReference != "") {
					t.Errorf("merchant reference %q, want %q", ev.MerchantReference, sent.MerchantReference)
				}
				if len(mapping.PaymentReference) > 0 && captured && ev.PaymentReference == "" {
					t.Error("no payment reference")
				}
			})
		}
	}
}

// Every preset whose provider publishes verification code has that code
// accept what payhook's sender signs, and refuse it with the body changed:
// payhook signs as the provider does, checked by the provider's words
// rather than payhook's own verifier.
func TestPresetsSignAsTheProvidersOwnCode(t *testing.T) {
	for _, name := range presetNames() {
		sdk := readPresetCases(t, name).SDK
		if sdk == nil {
			continue
		}
		secret := cmp.Or(sdk.Secret, "0123456789abcdef0123456789abcdef")
		t.Run(name, func(t *testing.T) {
			// No Caddy, no port: the presets' node runs (a second each,
			// loading an SDK) share the machine's cores.
			t.Parallel()
			script, err := os.ReadFile(filepath.Join("testdata/presets", name, sdk.Script))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if sdk.Package != "" {
				dir = npmPackage(t, sdk.Package)
			} else if _, err := exec.LookPath("node"); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("node is needed for the providers' verification code")
				}
				t.Skip("node is not installed")
			}
			sender, _ := NewProvider(name)
			statuses := sender.(*Preset).SampleStatuses()
			body, _, err := sender.(SampleSender).Sample(normalize.Sample{Status: statuses[0],
				Amount: normalize.Amount{MinorUnits: 1234, Currency: "EUR"}, MerchantReference: "order-1042", ProviderReference: "4711"})
			if err != nil {
				t.Fatal(err)
			}
			const url = "https://shop.example.com/hooks/payments?a=1"
			r := httptest.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
			if err := sender.(SampleSender).SignSample(r, body, []byte(secret)); err != nil {
				t.Fatal(err)
			}
			judge := func(secret string, body []byte) string {
				headers := map[string]string{}
				for k := range r.Header {
					headers[k] = r.Header.Get(k)
				}
				arg, _ := json.Marshal(map[string]any{"secret": secret, "method": http.MethodPost, "url": r.URL.String(), "headers": headers, "body": string(body)})
				return runNode(t, dir, string(script), string(arg))
			}
			if got := judge(secret, body); got != "valid" {
				t.Fatalf("%s's code refuses payhook's signature: %s\n%s", name, got, body)
			}
			if got := judge(secret+"0", body); got == "valid" {
				t.Fatalf("%s's code accepts another secret: the script checks nothing", name)
			}
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)/2] ^= 1
			if got := judge(secret, tampered); got == "valid" && !sdk.BodyUnsigned {
				t.Fatalf("%s's code accepts a changed body", name)
			}
		})
	}
}

// A preset's route overrides mapping fields one by one and keeps the rest;
// a preset takes no option of the hmac scheme it is made of.
func TestPresetOverridesAndOptions(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PRESET_SECRET", "s")
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("payhook razorpay {\n\tsecret {env.PAYHOOK_TEST_PRESET_SECRET}\n\tsecret {env.PAYHOOK_TEST_PRESET_SECRET}\n\tmap {\n\t\tmerchant_reference payload.payment.entity.notes.order\n\t}\n}"))
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		Name    string            `json:"name"`
		Secrets []string          `json:"secret"`
		Mapping normalize.Mapping `json:"map"`
	}
	if err := json.Unmarshal(h.ProviderRaw, &config); err != nil || config.Name != "razorpay" || len(config.Secrets) != 2 {
		t.Fatalf("JSON %s (%v)", h.ProviderRaw, err)
	}
	p := presetProvider(t, "razorpay", "s")
	preset := p.(*Preset)
	preset.Mapping = &config.Mapping
	if err := preset.Provision(caddy.Context{Context: context.Background()}); err != nil {
		t.Fatal(err)
	}
	m := presetMapping(preset)
	if strings.Join(m.MerchantReference, " ") != "payload.payment.entity.notes.order" || strings.Join(m.Status, " ") != "event" {
		t.Errorf("merged mapping %+v", m)
	}
	for block, want := range map[string]string{
		"payhook razorpay {\n\theader X-Other\n}": `unrecognized payhook option "header"`,
		"payhook razorpay {\n}":                   "at least one secret",
		"payhook razorpay {\n\tsecret s\n\tmap {\n\t\tamount a minor\n\t\tstatus x y\n\t\tstatuses {\n\t\t\tq settled\n\t\t}\n\t}\n}": "not a canonical status",
	} {
		if err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", block, err, want)
		}
	}
}

// A preset's answer and envelope name come from its file.
func TestPresetAnswerAndName(t *testing.T) {
	def, err := parsePreset("acme-signed", "acme-signed.caddyfile", []byte("name acme\nanswer accepted\nhmac {\n\theader X-Sig\n}\nsample {\n\tbody `{\"id\":\"{id}\"}`\n\tstatus captured\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Preset{preset: def}
	w := httptest.NewRecorder()
	if status := p.Acknowledge(w); status != http.StatusOK || w.Body.String() != "accepted" || p.Name() != "acme" {
		t.Errorf("answer %d %q, name %q", status, w.Body, p.Name())
	}
	if p.CaddyModule().ID != ProvidersNamespace+".acme-signed" {
		t.Errorf("module %s", p.CaddyModule().ID)
	}
}

// A preset may be a standard_webhooks scheme: its sample is signed as a
// Standard Webhooks sender signs, and its route takes it.
func TestStandardWebhooksPreset(t *testing.T) {
	def, err := parsePreset("acme", "acme.caddyfile", []byte("standard_webhooks {\n\tmap {\n\t\tid id\n\t\tstatus type\n\t\tstatuses {\n\t\t\tpayment.succeeded captured\n\t\t}\n"+
		"\t\tamount data.amount minor\n\t\tcurrency data.currency\n\t}\n}\nsample {\n\tbody `{\"id\":\"{id}\",\"type\":\"{type}\",\"data\":{\"amount\":{amount},\"currency\":\"{currency}\"}}`\n"+
		"\tstatus captured type=payment.succeeded\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PAYHOOK_TEST_PRESET_SECRET", swSecret)
	p := &Preset{preset: def, Secrets: []string{"{env.PAYHOOK_TEST_PRESET_SECRET}"}}
	if err := p.Provision(caddy.Context{Context: context.Background()}); err != nil {
		t.Fatal(err)
	}
	sent := normalize.Sample{Status: normalize.StatusCaptured, Amount: normalize.Amount{MinorUnits: 999, Currency: "EUR"}}
	body, _, err := p.Sample(sent)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks/acme", strings.NewReader(string(body)))
	if err := p.SignSample(r, body, []byte(swSecret)); err != nil {
		t.Fatal(err)
	}
	in := &normalize.Input{Provider: p.Name(), ContentType: "application/json", Body: body}
	res, err := p.Verify(context.Background(), &verify.Callback{Method: http.MethodPost, Header: r.Header, Body: body}, in)
	if err != nil {
		t.Fatal(err)
	}
	events, err := p.Normalize(in, res, nil)
	if err != nil || len(events) != 1 || events[0].Status != normalize.StatusCaptured || *events[0].Amount != sent.Amount {
		t.Fatalf("Normalize = %+v, %v", events, err)
	}
	if err := (&Preset{preset: def, Secrets: []string{"s"}, URL: "https://x"}).Validate(); err == nil {
		t.Error("a url on a standard_webhooks preset was taken")
	}
}

// A preset's file is checked as it loads: what is wrong in it is named.
func TestPresetDefinitionErrors(t *testing.T) {
	const scheme = "hmac {\n\theader X-Sig\n}\n"
	for source, want := range map[string]string{
		"":     "no scheme",
		scheme: "no sample",
		scheme + "sample {\n\tbody `{\"a\":\"{nope}\"}`\n\tstatus captured\n}": "placeholder {nope}",
		scheme + "sample {\n\tbody `{\"a\":{id}`\n\tstatus captured\n}":        "not JSON",
		scheme + "sample {\n\tbody `{}`\n\tstatus captured id=1\n}":            "a placeholder of its own",
		scheme + "colour blue": "unrecognized preset option",
		"hmac {\n\tcontent {timestamp}\n\theader X\n}\nsample {\n\tbody `{}`\n\tstatus captured\n}": "content",
	} {
		if _, err := parsePreset("test", "test.caddyfile", []byte(source)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", source, err, want)
		}
	}
}

// Worldline Connect checks an endpoint with a GET whose
// X-GCS-Webhooks-Endpoint-Verification header the endpoint must echo: the
// route docs/presets.md shows answers it beside payhook, which takes the POSTs.
func TestWorldlineEndpointVerificationBesidePayhook(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PRESET_SECRET", "hello+world")
	e := startCaddy(t, `route /hooks/worldline* {
		@verification method GET
		respond @verification "{http.request.header.X-GCS-Webhooks-Endpoint-Verification}" 200
		payhook worldline {
			secret {env.PAYHOOK_TEST_PRESET_SECRET}
		}
		reverse_proxy {upstream}
	}`)
	req := e.postRequest("/hooks/worldline", "", "", http.Header{"X-Gcs-Webhooks-Endpoint-Verification": {"a-challenge-4711"}})
	req.Method = http.MethodGet
	resp, answer := e.do(req)
	expectAnswer(t, resp, answer, http.StatusOK, "a-challenge-4711")
	e.expectNothingForwarded()
}
