package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// unsignedBodySite is a route whose provider signs an id from the query
// string, a request id and a timestamp, but not the body (Mercado Pago's
// manifest).
func unsignedBodySite(options string) string {
	return "route /hooks/mp* {\npayhook hmac {\n\tname mp\n\tsecret {env.PAYHOOK_TEST_MP_SECRET}\n\theader X-Signature v1\n\ttimestamp_key ts\n" +
		"\tcontent `id:{http.request.uri.query.data.id|lower};request-id:{http.request.header.X-Request-Id};ts:{timestamp};`\n" +
		"\tunsigned_body\n\tmap {\n\t\tid id\n\t\tstatus action\n\t}\n\t" + options + "\n}\nreverse_proxy {upstream}\n}"
}

// A signature that leaves the body out is bound, through real Caddy, to
// the first body it arrives with: the same signature with another body is
// refused, the first body again is a duplicate. The query value is the one
// the provider sent, lower-cased as the template says.
func TestHMACUnsignedBodyBindsTheSignatureToItsFirstBody(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_MP_SECRET", "mp-secret")
	e := startCaddy(t, unsignedBodySite(""))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte("mp-secret"))
	mac.Write([]byte("id:pay123abc;request-id:req-1;ts:" + ts + ";"))
	header := http.Header{"X-Signature": {"ts=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))}, "X-Request-Id": {"req-1"}}
	first := `{"id":1,"action":"payment.updated","data":{"id":"PAY123abc"}}`

	resp, answer := e.post("/hooks/mp?data.id=PAY123abc&type=payment", "application/json", first, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	if r, doc := e.onlyDelivery(); doc.Data.Verification["method"] != "hmac-sha256" || !strings.Contains(string(doc.Data.Original), "PAY123abc") {
		t.Errorf("envelope: %s", r.Body)
	}
	e.upstream.reset()
	forged := `{"id":2,"action":"payment.created","data":{"id":"PAY123abc"}}`
	resp, answer = e.post("/hooks/mp?data.id=PAY123abc&type=payment", "application/json", forged, header)
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e.expectNothingForwarded()
	e.expectReason("transmission_reused")

	resp, answer = e.post("/hooks/mp?data.id=PAY123abc&type=payment", "application/json", first, header)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.expectNothingForwarded()

	// Another id in the query than the one signed: refused, and nothing
	// is bound by it.
	resp, answer = e.post("/hooks/mp?data.id=PAY999&type=payment", "application/json", first, header)
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e.expectReason("signature_mismatch")
}

// A route whose signature leaves the body out keeps the bindings for at
// least max_skew: dedupe off or shorter is refused when the configuration
// loads.
func TestHMACUnsignedBodyNeedsDedupe(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_MP_SECRET", "mp-secret")
	for _, tt := range []struct {
		options string
		refused string
	}{
		{"dedupe off", "dedupe off is refused"},
		{"dedupe 1m", "shorter than max_skew"},
		{"dedupe 10m", ""},
	} {
		t.Run(tt.options, func(t *testing.T) {
			err := provisionSite(t, unsignedBodySite(tt.options))
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("got %v, want an error saying %q", err, tt.refused)
			}
		})
	}
}

// The Caddyfile writes every extension of the generic scheme, and what a
// route's sender signs under it verifies; options that contradict the mode
// are refused.
func TestHMACCaddyfileExtensions(t *testing.T) {
	for _, tt := range []struct {
		name, block, refused string
	}{
		{"payu", "mode hash\n\talgorithm md5 sha256\n\theader OpenPayU-Signature signature\n\talgorithm_key algorithm\n\tcontent `{body}{secret}`", ""},
		{"worldpay", "header Event-Signature\n\tfields / key_id algorithm signature", ""},
		{"multisafepay", "algorithm sha512\n\theader Auth\n\theader_encoding base64\n\tfields : timestamp signature\n\tcontent `{timestamp}:{body}`", ""},
		{"dlocal", "header Authorization\n\tprefix `V2-HMAC-SHA256, Signature: `\n\ttimestamp_header X-Date rfc3339\n\tcontent `{http.request.header.X-Date}{body}`", ""},
		{"flutterwave", "mode secret\n\theader verif-hash", ""},
		{"phonepe", "mode secret_hash\n\theader Authorization", ""},
		{"secret_with_content", "mode secret\n\theader verif-hash\n\tcontent {body}", "no content is signed"},
		{"unsigned_body_with_body", "header S\n\tunsigned_body\n\ttimestamp_header T\n\tcontent `{timestamp}{body}`", "remove unsigned_body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := new(HMAC)
			d := caddyfile.NewTestDispenser("hmac {\n\tname " + tt.name + "\n\tsecret s3cret\n\t" + tt.block + "\n}")
			if err := p.UnmarshalCaddyfile(d); err != nil {
				t.Fatal(err)
			}
			err := p.Validate()
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("Validate = %v, want %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := p.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"id":"evt_1"}`)
			r := httptest.NewRequest(http.MethodPost, "https://shop.example.com/hooks", strings.NewReader(string(body)))
			if err := p.signRequest(r, body, "s3cret", time.Now()); err != nil {
				t.Fatal(err)
			}
			cb := &verify.Callback{Method: http.MethodPost, RequestURI: "/hooks", Header: r.Header, Body: body,
				Placeholders: &sentPlaceholders{repl: caddyhttp.NewTestReplacer(r), r: r}}
			if _, err := p.Verify(context.Background(), cb, nil); err != nil {
				t.Fatalf("refuses its own sender (%v): %v", r.Header, err)
			}
			if p.Mode == verify.ModeSecret || p.Mode == verify.ModeSecretHash {
				// The body is not signed; another secret's header is refused.
				other := *p
				if err := other.signRequest(r, body, "0ther", time.Now()); err != nil {
					t.Fatal(err)
				}
			} else {
				cb.Body = []byte(`{"id":"evt_2"}`)
			}
			if _, err := p.Verify(context.Background(), cb, nil); err == nil {
				t.Fatal("a changed body, or another secret, verifies")
			}
		})
	}
}

// A preset's sample sets the headers and query parameters it names, with
// the sample's values, before the request is signed: the signed content
// covers them (Mercado Pago's data.id and x-request-id).
func TestPresetSampleHeadersAndQuery(t *testing.T) {
	def, err := parsePreset("mpsample", "test", []byte(`hmac {
	header X-Signature v1
	timestamp_key ts
	content "id:{http.request.uri.query.data.id|lower};request-id:{http.request.header.X-Request-Id};ts:{timestamp};"
	unsigned_body
	map {
		status action
	}
}
sample {
	body `+"`"+`{"action":"{action}","data":{"id":"{provider_reference}"}}`+"`"+`
	query data.id {provider_reference}
	header X-Request-Id req-{id}
	status captured action=payment.updated
}`))
	if err != nil {
		t.Fatal(err)
	}
	sender := &Preset{preset: def}
	body, _, err := sender.Sample(normalize.Sample{Status: normalize.StatusCaptured, Amount: normalize.Amount{MinorUnits: 100, Currency: "EUR"},
		ProviderReference: "PAY42X"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "https://shop.example.com/hooks/mp?type=payment", strings.NewReader(string(body)))
	r.RequestURI = ""
	if err := sender.SignSample(r, body, []byte("mp-secret")); err != nil {
		t.Fatal(err)
	}
	if r.URL.Query().Get("data.id") != "PAY42X" || r.URL.Query().Get("type") != "payment" || !strings.HasPrefix(r.Header.Get("X-Request-Id"), "req-") {
		t.Fatalf("request %s %v", r.URL, r.Header)
	}
	ts, _, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("X-Signature"), "ts="), ",")
	mac := hmac.New(sha256.New, []byte("mp-secret"))
	mac.Write([]byte("id:pay42x;request-id:" + r.Header.Get("X-Request-Id") + ";ts:" + ts + ";"))
	if want := "ts=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil)); r.Header.Get("X-Signature") != want {
		t.Fatalf("X-Signature %q, want %q", r.Header.Get("X-Signature"), want)
	}
}
