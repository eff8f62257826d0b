package caddymodule

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	payPalClientID  = "it-paypal-client"
	payPalSecret    = "it-paypal-client-secret"
	payPalWebhookID = "8PT597110X687430LKGECATA"
)

// fakePayPal stands in for PayPal's API: OAuth2 tokens for the app's
// credentials, and verify-webhook-signature checking an RSA signature (its
// own key standing in for PayPal's) over "<id>|<time>|<webhook id>|<CRC32
// of webhook_event's bytes as received>": a verifier that re-encodes the
// event fails here, as it would at PayPal.
type fakePayPal struct {
	*httptest.Server
	key *rsa.PrivateKey

	mu             sync.Mutex
	tokens         map[string]bool
	tokenRequests  int
	verifyRequests int
	expiresIn      int
	tokenStatus    int // answer of the token endpoint, when not 0
	verifyStatus   int // answer of the verify endpoint, when not 0
	revokeAll      bool
}

func newFakePayPal(t *testing.T) *fakePayPal {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePayPal{key: key, tokens: map[string]bool{}, expiresIn: 32400}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePayPal) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/oauth2/token":
		f.tokenRequests++
		body, _ := io.ReadAll(r.Body)
		user, pass, ok := r.BasicAuth()
		if f.tokenStatus != 0 {
			w.WriteHeader(f.tokenStatus)
			return
		}
		if !ok || user != payPalClientID || pass != payPalSecret || string(body) != "grant_type=client_credentials" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"Client Authentication failed"}`)
			return
		}
		token := fmt.Sprintf("A21AA-it-%d", f.tokenRequests)
		f.tokens[token] = true
		fmt.Fprintf(w, `{"scope":"https://uri.paypal.com/services/payments/payment","access_token":%q,"token_type":"Bearer","app_id":"APP-80W284485P519543T","expires_in":%d,"nonce":"2026-11-20T10:00:00Z"}`, token, f.expiresIn)
	case "/v1/notifications/verify-webhook-signature":
		f.verifyRequests++
		if f.verifyStatus != 0 {
			w.WriteHeader(f.verifyStatus)
			return
		}
		if f.revokeAll {
			clear(f.tokens)
			f.revokeAll = false
		}
		if !f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_token","error_description":"Token signature verification failed"}`)
			return
		}
		var req struct {
			AuthAlgo  string          `json:"auth_algo"`
			CertURL   string          `json:"cert_url"`
			ID        string          `json:"transmission_id"`
			Sig       string          `json:"transmission_sig"`
			Time      string          `json:"transmission_time"`
			WebhookID string          `json:"webhook_id"`
			Event     json.RawMessage `json:"webhook_event"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil || req.AuthAlgo == "" || req.CertURL == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"name":"VALIDATION_ERROR"}`)
			return
		}
		status := "FAILURE"
		sig, err := base64.StdEncoding.DecodeString(req.Sig)
		digest := sha256.Sum256([]byte(payPalSigned(req.ID, req.Time, req.WebhookID, req.Event)))
		if err == nil && rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, digest[:], sig) == nil {
			status = "SUCCESS"
		}
		fmt.Fprintf(w, `{"verification_status":%q}`, status)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func payPalSigned(id, at, webhookID string, event []byte) string {
	return fmt.Sprintf("%s|%s|%s|%d", id, at, webhookID, crc32.ChecksumIEEE(event))
}

// sign returns the PAYPAL-* headers PayPal sends with body.
func (f *fakePayPal) sign(t *testing.T, id string, at time.Time, webhookID string, body []byte) http.Header {
	t.Helper()
	when := at.UTC().Format(time.RFC3339)
	digest := sha256.Sum256([]byte(payPalSigned(id, when, webhookID, body)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{
		"Paypal-Transmission-Id":   {id},
		"Paypal-Transmission-Time": {when},
		"Paypal-Transmission-Sig":  {base64.StdEncoding.EncodeToString(sig)},
		"Paypal-Cert-Url":          {"https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"},
		"Paypal-Auth-Algo":         {"SHA256withRSA"},
	}
}

func (f *fakePayPal) counts() (tokens, verifies int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests, f.verifyRequests
}

func (f *fakePayPal) set(change func(f *fakePayPal)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func payPalSite(api *fakePayPal, extra string) string {
	return fmt.Sprintf(`route /callbacks/paypal* {
		payhook paypal {
			client_id {env.PAYHOOK_TEST_PAYPAL_ID}
			client_secret {env.PAYHOOK_TEST_PAYPAL_SECRET}
			webhook_id %s
			api_base %s
			api_timeout 1s
			%s
		}
		reverse_proxy {upstream}
	}`, payPalWebhookID, api.URL, extra)
}

func startPayPal(t *testing.T, extra string) (*env, *fakePayPal) {
	t.Helper()
	return startPayPalAt(t, "http://localhost:{port}", extra)
}

// startPayPalAt is startPayPal on a site address of its own.
func startPayPalAt(t *testing.T, siteAddress, extra string) (*env, *fakePayPal) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_PAYPAL_ID", payPalClientID)
	t.Setenv("PAYHOOK_TEST_PAYPAL_SECRET", payPalSecret)
	api := newFakePayPal(t)
	return startCaddyAt(t, t.TempDir(), "", siteAddress, payPalSite(api, extra)), api
}

func payPalCapture(eventID, captureID, value string) string {
	// Formatted as PayPal formats it, with a space before each value: the
	// verifier must hand PayPal these bytes, not a re-encoding.
	return `{"id": "` + eventID + `", "event_version": "1.0", "create_time": "2026-11-20T10:34:47.940Z", "resource_type": "capture", "resource_version": "2.0",` +
		` "event_type": "PAYMENT.CAPTURE.COMPLETED", "summary": "Payment completed for € ` + value + ` EUR", "resource": {"id": "` + captureID + `", "status": "COMPLETED",` +
		` "amount": {"currency_code": "EUR", "value": "` + value + `"}, "final_capture": true, "custom_id": "order-1042", "invoice_id": "INV-1042"}}`
}

// A webhook signed (as PayPal signs) reaches the shop once PayPal's API
// says SUCCESS; the token is asked for once and reused.
func TestPayPalThroughCaddy(t *testing.T) {
	e, api := startPayPal(t, "max_skew 10m")
	body := payPalCapture("WH-58D329510W468432D-8HN650336L201105X", "27M47624FP291604U", "49.90")
	resp, answer := e.post("/callbacks/paypal", "application/json", body, api.sign(t, "69cd13f0-d67a-11e5-baa3-778b53f4ae01", time.Now(), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || doc.Data.ProviderReference != "27M47624FP291604U" || doc.Subject != "order-1042" || doc.Data.Amount.MinorUnits != 4990 ||
		doc.Data.Verification["method"] != "paypal-verify-api" || gjson.GetBytes(r.Body, "data.original.summary").String() != "Payment completed for € 49.90 EUR" ||
		r.Header.Get("Paypal-Transmission-Sig") != "" {
		t.Errorf("envelope: %s", r.Body)
	}
	if strings.Contains(e.rawLog(), payPalSecret) || strings.Contains(string(r.Body), payPalSecret) {
		t.Error("the client secret leaked")
	}
	// The same event again (PayPal's retry): acknowledged, not forwarded.
	e.upstream.reset()
	resp, answer = e.post("/callbacks/paypal", "application/json", body, api.sign(t, "69cd13f0-d67a-11e5-baa3-778b53f4ae02", time.Now(), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.expectNothingForwarded()
	if tokens, verifies := api.counts(); tokens != 1 || verifies != 2 {
		t.Errorf("token requests %d, verify requests %d; want 1 and 2", tokens, verifies)
	}

	// The token revoked before it expires: one fresh token, the webhook passes.
	api.set(func(f *fakePayPal) { f.revokeAll = true })
	e.upstream.reset()
	body = payPalCapture("WH-58D329510W468432D-8HN650336L201106X", "27M47624FP291605U", "10.00")
	resp, answer = e.post("/callbacks/paypal", "application/json", body, api.sign(t, "69cd13f0-d67a-11e5-baa3-778b53f4ae03", time.Now(), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.onlyDelivery()
	if tokens, _ := api.counts(); tokens != 2 {
		t.Errorf("token requests %d after a revocation, want 2", tokens)
	}
}

// A burst of webhooks on a fresh start costs one token request.
func TestPayPalTokenIsSharedByABurst(t *testing.T) {
	e, api := startPayPal(t, "")
	var wg sync.WaitGroup
	statuses := make([]int, 16)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := payPalCapture(fmt.Sprintf("WH-BURST-%02d", i), fmt.Sprintf("CAPTURE%02d", i), "1.00")
			req := e.postRequest("/callbacks/paypal", "application/json", body, api.sign(t, fmt.Sprintf("burst-%02d", i), time.Now(), payPalWebhookID, []byte(body)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("webhook %d answered %d", i, s)
		}
	}
	if tokens, verifies := api.counts(); tokens != 1 || verifies != len(statuses) {
		t.Errorf("token requests %d, verify requests %d; want 1 and %d", tokens, verifies, len(statuses))
	}
	if n := len(e.upstream.received()); n != len(statuses) {
		t.Errorf("the shop received %d events, want %d", n, len(statuses))
	}
}

// Every rejection, and whether PayPal's API was asked.
func TestPayPalRejections(t *testing.T) {
	e, api := startPayPal(t, "max_skew 10m")
	body := payPalCapture("WH-REJECT-1", "27M47624FP291604U", "49.90")
	// Each case is a transmission of its own: one carries one body.
	transmissions := 0
	good := func() http.Header {
		transmissions++
		return api.sign(t, fmt.Sprintf("reject-tx-%d", transmissions), time.Now(), payPalWebhookID, []byte(body))
	}
	with := func(name, value string) http.Header {
		h := good()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	for _, tt := range []struct {
		name     string
		body     string
		header   http.Header
		fake     func(f *fakePayPal)
		status   int
		reason   string
		apiAsked bool
	}{
		{"no headers", body, nil, nil, 401, "signature_missing", false},
		{"no signature", body, with("Paypal-Transmission-Sig", ""), nil, 401, "signature_malformed", false},
		{"certificate elsewhere", body, with("Paypal-Cert-Url", "https://evil.example/v1/notifications/certs/CERT-1"), nil, 401, "signature_malformed", false},
		{"certificate on a look-alike host", body, with("Paypal-Cert-Url", "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1"), nil, 401, "signature_malformed", false},
		{"certificate over http", body, with("Paypal-Cert-Url", "http://api.paypal.com/v1/notifications/certs/CERT-1"), nil, 401, "signature_malformed", false},
		{"another algorithm", body, with("Paypal-Auth-Algo", "SHA1withRSA"), nil, 401, "signature_malformed", false},
		{"time not a time", body, with("Paypal-Transmission-Time", "yesterday"), nil, 401, "date_malformed", false},
		{"stale (max_skew)", body, api.sign(t, "reject-stale", time.Now().Add(-11*time.Minute), payPalWebhookID, []byte(body)), nil, 401, "date_outside_window", false},
		{"body not JSON", "{", good(), nil, 400, "payload_malformed", false},
		{"body without event_type", `{"id":"WH-1"}`, good(), nil, 400, "field_missing", false},
		{"forged signature", body, api.sign(t, "reject-forged", time.Now(), "ANOTHERWEBHOOK", []byte(body)), nil, 401, "signature_mismatch", true},
		{"amount raised after signing", strings.Replace(body, `"value": "49.90"`, `"value": "4990.00"`, 1), good(), nil, 401, "signature_mismatch", true},
		{"verify API down", body, good(), func(f *fakePayPal) { f.verifyStatus = 503 }, 503, "api_unavailable", true},
		{"verify API refuses the request", body, good(), func(f *fakePayPal) { f.verifyStatus = 400 }, 401, "signature_mismatch", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			api.set(func(f *fakePayPal) { f.verifyStatus = 0 })
			if tt.fake != nil {
				api.set(tt.fake)
			}
			_, before := api.counts()
			resp, answer := e.post("/callbacks/paypal", "application/json", tt.body, tt.header)
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			if _, after := api.counts(); (after > before) != tt.apiAsked {
				t.Errorf("API asked: %v, want %v", after > before, tt.apiAsked)
			}
			e.expectReason(tt.reason)
		})
	}
}

// PayPal signs the body's CRC32, not a digest of it, and CRC32 is affine:
// whoever holds one genuine transmission (its headers and body) can write
// a body of their own with the same CRC32, which PayPal's API then
// verifies under the genuine headers. Here a capture of 1.00 is turned into
// another event, a capture of 4990.00: the stand-in of PayPal's API says
// SUCCESS, as PayPal would, and payhook refuses it, because the
// transmission came with another body first, whether or not that body's
// delivery succeeded.
func TestPayPalTransmissionCarriesOneBody(t *testing.T) {
	genuine := []byte(payPalCapture("WH-5BD03526B1153221W-9HB25429U8102344G", "5O190127TN364715T", "1.00"))
	crafted := []byte(strings.Replace(payPalCapture("WH-0CRAFTED0000000X-0000000000000000X", "9X000000AA000000B", "4990.00"),
		"Payment completed for € 4990.00 EUR", "patch 0123456789", 1))
	crafted = crc32Patch(t, crafted, strings.Index(string(crafted), "0123456789"), 10, crc32.ChecksumIEEE(genuine))
	transmission := 0
	// headers returns the PAYPAL-* headers of a new genuine transmission.
	headers := func(api *fakePayPal) http.Header {
		transmission++
		return api.sign(t, fmt.Sprintf("2b6f1c40-c8a2-11f0-9d2e-6b1c4b3a%04d", transmission), time.Now(), payPalWebhookID, genuine)
	}
	post := func(t *testing.T, e *env, body []byte, header http.Header, want int) {
		t.Helper()
		resp, answer := e.post("/callbacks/paypal", "application/json", string(body), header)
		expectAnswer(t, resp, answer, want, "")
	}

	t.Run("after the genuine body was delivered", func(t *testing.T) {
		e, api := startPayPal(t, "")
		header := headers(api)
		post(t, e, genuine, header, http.StatusOK)
		post(t, e, crafted, header, http.StatusUnauthorized)
		e.expectReason("transmission_reused")
		if _, doc := e.onlyDelivery(); doc.Data.Amount.MinorUnits != 100 {
			t.Errorf("the shop received %+v, want the genuine capture only", doc.Data.Amount)
		}
		// PayPal's API would verify the crafted body (its CRC32 is the
		// genuine one's), but it is not asked: the transmission has a body.
		if crc32.ChecksumIEEE(crafted) != crc32.ChecksumIEEE(genuine) {
			t.Fatalf("the crafted body's CRC32 differs: PayPal would refuse it, and the test proves nothing")
		}
		if _, verifies := api.counts(); verifies != 1 {
			t.Errorf("%d verify requests, want 1: the crafted body must be refused before PayPal's API is asked", verifies)
		}
	})

	t.Run("after the genuine delivery failed", func(t *testing.T) {
		e, api := startPayPal(t, "")
		header := headers(api)
		e.upstream.setStatus(http.StatusInternalServerError)
		post(t, e, genuine, header, http.StatusBadGateway)
		e.upstream.setStatus(http.StatusOK)
		e.upstream.reset()
		post(t, e, crafted, header, http.StatusUnauthorized)
		e.expectNothingForwarded()
		// PayPal's retry of that transmission, with its body, goes through.
		post(t, e, genuine, header, http.StatusOK)
		if _, doc := e.onlyDelivery(); doc.Data.Amount.MinorUnits != 100 {
			t.Errorf("the shop received %+v, want the genuine capture", doc.Data.Amount)
		}
	})

	// A transmission belongs to the webhook, not to the Host header the
	// callback names: a site of two host names binds it once.
	t.Run("under another host name", func(t *testing.T) {
		e, api := startPayPalAt(t, "http://localhost:{port}, http://127.0.0.1:{port}", "")
		header := headers(api)
		post(t, e, genuine, header, http.StatusOK)
		req := e.postRequest("/callbacks/paypal", "application/json", string(crafted), header)
		req.Host = strings.Replace(req.URL.Host, "localhost", "127.0.0.1", 1)
		resp, answer := e.do(req)
		expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
		e.expectReason("transmission_reused")
		if _, doc := e.onlyDelivery(); doc.Data.Amount.MinorUnits != 100 {
			t.Errorf("the shop received %+v, want the genuine capture only", doc.Data.Amount)
		}
	})

	t.Run("with the inbox", func(t *testing.T) {
		e, api := startPayPal(t, "inbox")
		header := headers(api)
		post(t, e, genuine, header, http.StatusOK)
		post(t, e, crafted, header, http.StatusUnauthorized)
		e.waitTaken(1, 30*time.Second)
		time.Sleep(500 * time.Millisecond) // nothing more may follow
		if got := e.waitTaken(1, 0); len(got) != 1 {
			t.Errorf("the shop took %d events, want the genuine one", len(got))
		}
	})

	// The first body is bound before PayPal's API is asked: when the API
	// answers 5xx to the genuine body, the crafted one is still refused,
	// and PayPal's retry of the genuine body goes through.
	t.Run("after PayPal's API failed once", func(t *testing.T) {
		e, api := startPayPal(t, "")
		header := headers(api)
		api.set(func(f *fakePayPal) { f.verifyStatus = http.StatusInternalServerError })
		resp, answer := e.post("/callbacks/paypal", "application/json", string(genuine), header)
		if resp.StatusCode < 500 {
			t.Fatalf("with PayPal's API failing the genuine body was answered %d %q, want 5xx", resp.StatusCode, answer)
		}
		api.set(func(f *fakePayPal) { f.verifyStatus = 0 })
		post(t, e, crafted, header, http.StatusUnauthorized)
		e.expectReason("transmission_reused")
		e.expectNothingForwarded()
		post(t, e, genuine, header, http.StatusOK)
		if _, doc := e.onlyDelivery(); doc.Data.Amount.MinorUnits != 100 {
			t.Errorf("the shop received %+v, want the genuine capture", doc.Data.Amount)
		}
	})

	// Someone floods the route until api_rate is spent, so that PayPal's
	// genuine delivery is answered 503 before the API is asked; the
	// crafted body under the genuine headers is refused all the same.
	t.Run("while api_rate is spent", func(t *testing.T) {
		e, api := startPayPal(t, "api_rate 1")
		for attempt := 1; ; attempt++ {
			// Forged transmissions of the flood, until the rate answers 503.
			for flood := 0; ; flood++ {
				forged := api.sign(t, fmt.Sprintf("2b6f1c40-c8a2-11f0-9d2e-f100d%07d", attempt*1000+flood), time.Now(), "WH-OTHER", genuine)
				resp, _ := e.post("/callbacks/paypal", "application/json", string(genuine), forged)
				if resp.StatusCode == http.StatusServiceUnavailable {
					break
				}
				if flood > 20 {
					t.Fatalf("api_rate 1 never answered 503 to the flood")
				}
			}
			header := headers(api)
			resp, _ := e.post("/callbacks/paypal", "application/json", string(genuine), header)
			if resp.StatusCode != http.StatusServiceUnavailable {
				// The rate refilled meanwhile (a slow machine): again.
				if attempt == 5 {
					t.Fatalf("the genuine delivery was never answered 503 while the flood went on")
				}
				e.upstream.reset()
				continue
			}
			_, verifiesBefore := api.counts()
			time.Sleep(2100 * time.Millisecond) // the rate refills
			post(t, e, crafted, header, http.StatusUnauthorized)
			e.expectReason("transmission_reused")
			if _, verifies := api.counts(); verifies != verifiesBefore {
				t.Errorf("the crafted body cost %d requests to PayPal's API, want none", verifies-verifiesBefore)
			}
			e.expectNothingForwarded()
			post(t, e, genuine, header, http.StatusOK)
			if _, doc := e.onlyDelivery(); doc.Data.Amount.MinorUnits != 100 {
				t.Errorf("the shop received %+v, want the genuine capture", doc.Data.Amount)
			}
			return
		}
	})
}

// A PayPal route needs its dedupe records for at least as long as a
// transmission is accepted: they hold the binding of each transmission to
// its body. A shorter window, or none, is refused at configuration time.
func TestPayPalDedupeShorterThanMaxSkewIsRefused(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PAYPAL_ID", payPalClientID)
	t.Setenv("PAYHOOK_TEST_PAYPAL_SECRET", payPalSecret)
	api := newFakePayPal(t)
	for _, tt := range []struct {
		options string
		refused string
	}{
		{"dedupe off", "dedupe off is refused"},
		{"dedupe 1d", "shorter than max_skew"},
		{"dedupe 2h\n\t\t\tmax_skew 3h", "shorter than max_skew"},
		{"dedupe 3h\n\t\t\tmax_skew 3h", ""},
		{"", ""},
	} {
		t.Run(tt.options, func(t *testing.T) {
			err := provisionSite(t, payPalSite(api, tt.options))
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("got %v, want an error saying %q", err, tt.refused)
			}
		})
	}
}

// Without max_skew, a transmission older than 4 days (PayPal retries for 3)
// is refused before PayPal's API is asked: it could otherwise verify a
// crafted body once its dedupe record has expired.
func TestPayPalOldTransmissionIsRefusedByDefault(t *testing.T) {
	e, api := startPayPal(t, "")
	body := payPalCapture("WH-OLD-TRANSMISSION-1", "27M47624FP291604U", "49.90")
	resp, answer := e.post("/callbacks/paypal", "application/json", body, api.sign(t, "old-tx-1", time.Now().Add(-5*24*time.Hour), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e.expectNothingForwarded()
	e.expectReason("date_outside_window")
	if _, verifies := api.counts(); verifies != 0 {
		t.Errorf("PayPal's API was asked %d times about a stale transmission", verifies)
	}
	// A retry of the third day passes.
	resp, answer = e.post("/callbacks/paypal", "application/json", body, api.sign(t, "old-tx-2", time.Now().Add(-71*time.Hour), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	e.onlyDelivery()
}

// crc32Patch returns body with its n bytes at offset replaced by
// characters from '`' to DEL (valid anywhere in a JSON string) so that its
// CRC32 is want. CRC32 is affine in the bits of a message of fixed length,
// so the patch is the solution of a linear system over GF(2): 5 free bits
// per byte, 32 equations.
func crc32Patch(t *testing.T, body []byte, offset, n int, want uint32) []byte {
	t.Helper()
	out := append([]byte(nil), body...)
	for i := range n {
		out[offset+i] = 0x60
	}
	base := crc32.ChecksumIEEE(out)
	type combination struct {
		crc  uint32 // the CRC's change
		bits uint64 // made by flipping these free bits
	}
	var basis [32]*combination // by the change's highest bit
	reduce := func(c combination) combination {
		for b := 31; b >= 0; b-- {
			if c.crc>>b&1 == 1 && basis[b] != nil {
				c.crc ^= basis[b].crc
				c.bits ^= basis[b].bits
			}
		}
		return c
	}
	for j := range 5 * n {
		flipped := append([]byte(nil), out...)
		flipped[offset+j/5] ^= 1 << (j % 5)
		c := reduce(combination{crc32.ChecksumIEEE(flipped) ^ base, 1 << j})
		for b := 31; b >= 0; b-- {
			if c.crc>>b&1 == 1 {
				basis[b] = &c
				break
			}
		}
	}
	solution := reduce(combination{crc: base ^ want})
	if solution.crc != 0 {
		t.Fatal("crc32Patch: no patch of these bytes reaches the CRC")
	}
	for j := range 5 * n {
		if solution.bits>>j&1 == 1 {
			out[offset+j/5] ^= 1 << (j % 5)
		}
	}
	if got := crc32.ChecksumIEEE(out); got != want {
		t.Fatalf("crc32Patch: CRC %08x, want %08x", got, want)
	}
	return out
}

// Credentials PayPal refuses are a misconfiguration: 503 (PayPal retries
// once it is fixed), logged at error level.
func TestPayPalRefusedCredentials(t *testing.T) {
	e, api := startPayPal(t, "")
	api.set(func(f *fakePayPal) { f.tokenStatus = http.StatusUnauthorized })
	body := payPalCapture("WH-CREDS-1", "27M47624FP291604U", "49.90")
	resp, answer := e.post("/callbacks/paypal", "application/json", body, api.sign(t, "creds-tx", time.Now(), payPalWebhookID, []byte(body)))
	expectAnswer(t, resp, answer, http.StatusServiceUnavailable, "")
	e.expectNothingForwarded()
	entries := e.logEntries(1)
	if last := entries[len(entries)-1]; last["reason"] != "api_refused" || last["level"] != "error" {
		t.Errorf("log = %v", last)
	}
}

// Every PayPal golden event, signed afresh, reaches the shop as its golden
// envelope.
func TestPayPalGoldenThroughCaddy(t *testing.T) {
	e, api := startPayPal(t, "")
	replayGolden(t, e, "paypal", nil, func(req *http.Request, body []byte) (*http.Response, string) {
		header := api.sign(t, req.Header.Get("Paypal-Transmission-Id"), time.Now(), payPalWebhookID, body)
		return e.post("/callbacks/paypal", "application/json", string(body), header)
	})
}

// `caddy payhook send paypal` against the demo's stand-in of PayPal's API.
func TestSendPayPalThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	t.Setenv("PAYHOOK_TEST_PAYPAL_ID", "demo-client")
	t.Setenv("PAYHOOK_TEST_PAYPAL_SECRET", "demo-client-secret")
	e := startCaddy(t, `route /callbacks/paypal* {
		payhook paypal {
			client_id {env.PAYHOOK_TEST_PAYPAL_ID}
			client_secret {env.PAYHOOK_TEST_PAYPAL_SECRET}
			webhook_id DEMOWEBHOOK1
			api_base `+standIn.URL+`
		}
		reverse_proxy {upstream}
	}`)
	for _, status := range []string{"captured", "refunded", "chargeback"} {
		e.upstream.reset()
		resp, body, err := sendSample(t.Context(), "paypal", e.base+"/callbacks/paypal", sendOptions{
			secret: "DEMOWEBHOOK1", status: status, amount: "12.30", currency: "EUR", reference: "order-9", timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, resp, string(body), http.StatusOK, "OK")
		if _, doc := e.onlyDelivery(); doc.Data.Status != status || doc.Data.Amount.MinorUnits != 1230 || doc.Subject != "order-9" {
			t.Errorf("%s: %+v", status, doc.Data)
		}
	}
	// Signed for another webhook: the stand-in says FAILURE.
	e.upstream.reset()
	resp, body, err := sendSample(t.Context(), "paypal", e.base+"/callbacks/paypal", sendOptions{secret: "OTHERWEBHOOK", status: "captured", amount: "1", currency: "EUR", timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, resp, string(body), http.StatusUnauthorized, "")
	e.expectNothingForwarded()
}
