package caddymodule

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// The tests send as PAYONE does: from an address of its published range
// (185.60.20.0/24), which Caddy believes from X-Forwarded-For only because
// the test's own address is a trusted proxy.
const (
	payonePortalKey   = "it-payone-portal-key-0123"
	payoneTrusted     = "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"
	payoneFromPAYONE  = "185.60.20.17"
	payoneFormType    = "application/x-www-form-urlencoded"
	payoneCapturedFmt = "portalid=2000002&aid=12345&mode=live&clearingtype=cc&notify_version=7.4&txtime=1765100000&currency=EUR" +
		"&txid=385247147&reference=order-1042&sequencenumber=1&price=99.90&balance=99.90&receivable=99.90" +
		"&transaction_status=completed&txaction=capture&lastname=M%FCller&street=J%E4gerweg+12"
)

func payoneSite(path, portalID, extra string) string {
	return `route ` + path + ` {
		payhook payone {
			portal_key {env.PAYHOOK_TEST_PAYONE_KEY}
			portal_id ` + portalID + `
			account_id 12345
			` + extra + `
		}
		reverse_proxy {upstream}
	}`
}

func startPayone(t *testing.T, extra string) *env {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_PAYONE_KEY", payonePortalKey)
	return startCaddyWith(t, payoneTrusted, payoneSite("/callbacks/payone*", "2000002", extra))
}

// payoneBody is a notification with the key of portal key.
func payoneBody(portalKey, fields string) string {
	return "key=" + verify.PayoneKey([]byte(portalKey)) + "&" + fields
}

func fromPAYONE() http.Header { return http.Header{"X-Forwarded-For": {payoneFromPAYONE}} }

// A notification from PAYONE's range is forwarded, its ISO-8859-1 decoded
// and its key left out, and PAYONE gets exactly TSOK; its retry is
// answered TSOK again without reaching the shop twice.
func TestPayoneThroughCaddy(t *testing.T) {
	e := startPayone(t, "")
	body := payoneBody(payonePortalKey, payoneCapturedFmt)
	resp, answer := e.post("/callbacks/payone", payoneFormType, body, fromPAYONE())
	expectAnswer(t, resp, answer, http.StatusOK, "TSOK")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("answer Content-Type %q", ct)
	}
	r, _ := e.onlyDelivery()
	doc := gjson.ParseBytes(r.Body)
	for path, want := range map[string]string{
		"type": "payhook.payment.captured", "subject": "order-1042", "data.provider_status": "capture",
		"data.provider_reference": "385247147", "data.payment_reference": "385247147",
		"data.amount.value": "9990", "data.amount.currency": "EUR", "data.test": "false",
		"data.verification.method": "portal-key-md5", "data.verification.also.0": "ip-allowlist",
		"data.original.lastname": "Müller", "data.original.street": "Jägerweg 12",
	} {
		if got := doc.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if doc.Get("data.original.key").Exists() || strings.Contains(string(r.Body), verify.PayoneKey([]byte(payonePortalKey))) {
		t.Errorf("the key reached the shop: %s", r.Body)
	}
	if r.Header.Get("Payhook-Event-Id") != doc.Get("id").String() {
		t.Errorf("Payhook-Event-Id %q, id %q", r.Header.Get("Payhook-Event-Id"), doc.Get("id"))
	}

	e.upstream.reset()
	resp, answer = e.post("/callbacks/payone", payoneFormType, body, fromPAYONE())
	expectAnswer(t, resp, answer, http.StatusOK, "TSOK")
	e.expectNothingForwarded()
}

// Until the shop takes the event, PAYONE is not answered TSOK (so it
// retries); once it does, the retry brings TSOK.
func TestPayoneShopDownIsNotTSOK(t *testing.T) {
	e := startPayone(t, "")
	body := payoneBody(payonePortalKey, payoneCapturedFmt)
	e.upstream.setStatus(http.StatusInternalServerError)
	resp, answer := e.post("/callbacks/payone", payoneFormType, body, fromPAYONE())
	if resp.StatusCode < 500 || strings.Contains(answer, "TSOK") {
		t.Fatalf("shop down: answered %d %q", resp.StatusCode, answer)
	}
	e.upstream.setStatus(http.StatusOK)
	resp, answer = e.post("/callbacks/payone", payoneFormType, body, fromPAYONE())
	expectAnswer(t, resp, answer, http.StatusOK, "TSOK")
	if got := taken(e.upstream.received()); len(got) != 1 {
		t.Errorf("the shop took %d events, want 1", len(got))
	}
}

// With the inbox, the event is stored before PAYONE gets TSOK, whatever
// the shop does now; payhook delivers it once the shop is back.
func TestPayoneInboxAnswersTSOKWhenStored(t *testing.T) {
	e := startPayone(t, "inbox")
	e.upstream.setStatus(http.StatusServiceUnavailable)
	resp, answer := e.post("/callbacks/payone", payoneFormType, payoneBody(payonePortalKey, payoneCapturedFmt), fromPAYONE())
	expectAnswer(t, resp, answer, http.StatusOK, "TSOK")
	e.upstream.setStatus(http.StatusOK)
	got := e.waitTaken(1, time.Minute)
	if len(got) != 1 || gjson.GetBytes(got[0].Body, "data.original.lastname").String() != "Müller" {
		t.Fatalf("the shop took %d events", len(got))
	}
}

// Forged, foreign or malformed notifications reach nobody and are never
// answered TSOK; the address is checked first, against PAYONE's range
// unless allow_ips says otherwise.
func TestPayoneRejections(t *testing.T) {
	e := startPayone(t, "")
	good := payoneBody(payonePortalKey, payoneCapturedFmt)
	for _, c := range []struct {
		name, contentType, body string
		header                  http.Header
		status                  int
		reason                  string
	}{
		{"from outside PAYONE's range", payoneFormType, good, http.Header{"X-Forwarded-For": {"203.0.113.7"}}, 403, "address_not_allowed"},
		{"from the proxy itself", payoneFormType, good, nil, 403, "address_not_allowed"},
		{"no key", payoneFormType, payoneCapturedFmt, fromPAYONE(), 401, "signature_missing"},
		{"the key of another portal", payoneFormType, payoneBody("another-portal-key", payoneCapturedFmt), fromPAYONE(), 401, "signature_mismatch"},
		{"the portal key itself", payoneFormType, "key=" + payonePortalKey + "&" + payoneCapturedFmt, fromPAYONE(), 401, "signature_malformed"},
		{"another portal", payoneFormType, strings.Replace(good, "portalid=2000002", "portalid=2000003", 1), fromPAYONE(), 401, "signature_mismatch"},
		{"another sub-account", payoneFormType, strings.Replace(good, "aid=12345", "aid=12346", 1), fromPAYONE(), 401, "signature_mismatch"},
		{"an inexact price", payoneFormType, strings.Replace(good, "price=99.90", "price=99.901", 1), fromPAYONE(), 400, "amount_inexact"},
		{"no txid", payoneFormType, strings.Replace(good, "txid=385247147", "", 1), fromPAYONE(), 400, "field_missing"},
		{"too many fields", payoneFormType, good + strings.Repeat("&x=1", 1000), fromPAYONE(), 400, "payload_malformed"},
		{"JSON", "application/json", `{"key":"` + verify.PayoneKey([]byte(payonePortalKey)) + `"}`, fromPAYONE(), 415, "content_type_not_accepted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, answer := e.post("/callbacks/payone", c.contentType, c.body, c.header)
			expectAnswer(t, resp, answer, c.status, "")
			if strings.Contains(answer, "TSOK") {
				t.Errorf("answered %q", answer)
			}
			e.expectNothingForwarded()
			e.expectReason(c.reason)
		})
	}
}

// allow_ips replaces PAYONE's range: here the proxy's own address is
// allowed, and PAYONE's no longer is.
func TestPayoneAllowIPsReplacesTheRange(t *testing.T) {
	e := startPayone(t, "allow_ips 127.0.0.1")
	body := payoneBody(payonePortalKey, payoneCapturedFmt)
	resp, answer := e.post("/callbacks/payone", payoneFormType, body, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "TSOK")
	e.upstream.reset()
	resp, answer = e.post("/callbacks/payone", payoneFormType, strings.Replace(body, "sequencenumber=1", "sequencenumber=2", 1), fromPAYONE())
	expectAnswer(t, resp, answer, http.StatusForbidden, "")
	e.expectNothingForwarded()
}

// The goldens, posted from PAYONE's range: the one an integrator logged
// names its own portal, and goes to a route of that portal.
func TestPayoneGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PAYONE_KEY", "key") // the goldens' key is the MD5 of "key"
	e := startCaddyWith(t, payoneTrusted, payoneSite("/callbacks/payone", "1234567", "dedupe off")+"\n\t"+
		payoneSite("/callbacks/payone-logged", "2022125", "dedupe off"))
	replayGolden(t, e, "payone", nil, func(req *http.Request, body []byte) (*http.Response, string) {
		uri := req.RequestURI
		if strings.Contains(string(body), "portalid=2022125") {
			uri = "/callbacks/payone-logged"
		}
		header := req.Header.Clone()
		header.Del("Content-Length")
		header.Del("Content-Type")
		header.Set("X-Forwarded-For", payoneFromPAYONE)
		return e.post(uri, req.Header.Get("Content-Type"), string(body), header)
	})
}

// `caddy payhook send payone` sends a notification the route takes.
func TestPayoneSend(t *testing.T) {
	e := startPayone(t, "allow_ips 127.0.0.1")
	opts := sendOptions{secret: payonePortalKey, status: "captured", amount: "10.50", currency: "EUR", reference: "order-7",
		id: "385247199", timeout: 10 * time.Second, payonePortalID: "2000002", payoneAccountID: "12345"}
	resp, answer, err := sendSample(context.Background(), "payone", e.base+"/callbacks/payone", opts)
	if err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, resp, string(answer), http.StatusOK, "TSOK")
	if err := payhookAnswered("payone", e.base+"/callbacks/payone", resp, answer); err != nil {
		t.Error(err)
	}
	r, _ := e.onlyDelivery()
	if got := gjson.GetBytes(r.Body, "data.status").String() + " " + gjson.GetBytes(r.Body, "data.amount.value").String(); got != "captured 1050" {
		t.Errorf("the shop got %s", got)
	}
	opts.payoneAccountID = ""
	if _, _, err := sendSample(context.Background(), "payone", e.base+"/callbacks/payone", opts); err == nil || !strings.Contains(err.Error(), "--account-id") {
		t.Errorf("without --account-id: %v", err)
	}
}
