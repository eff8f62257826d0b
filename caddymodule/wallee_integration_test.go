package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// The official test vector (wallee-payment/python-sdk 5.0.0
// test/test_webhook_encryption_service.py): content, header and public key.
const (
	walleeVectorContent = `{"entityId":11,"eventId":35,"listenerEntityId":1472041829003,"listenerEntityTechnicalName":"Transaction",` +
		`"spaceId":1,"state":"PROCESSING","timestamp":"2023-12-19T13:43:35+0000","webhookListenerId":2}`
	walleeVectorHeader = "algorithm=SHA256withECDSA, keyId=ab3b774e-770e-4644-9b51-885d71f973e5, " +
		"signature=MEYCIQCTzbMrMsOAC6T57T9kQTb1iGZVg2R7n6pY9A4ML4P31gIhAIOoav8cG8x0jpRWQztqSJIC8gXWKq+4DuENEySvmMYf"
	walleeVectorKeyID     = "ab3b774e-770e-4644-9b51-885d71f973e5"
	walleeVectorPublicKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdWq7ZBGsjUzhBO3e6mzUBLpjpV3TQw1bL1rk3ocjn5C5qne7TY0OBBhiWgaPtWlvUcqASz903vtfeSTQma+SBA=="

	walleeUserID  = "4711"
	walleeAuthKey = "cGF5aG9vay10ZXN0LWF1dGhlbnRpY2F0aW9uLWtleS0zMmI=" // base64, as the platform shows it
)

// walleeStandIn is a stand-in of the platform's API: it checks each
// request's MAC as the platform does, serves public keys by id
// (/api/webhook-encryption/read?id=) and entities
// (/api/transaction/read?spaceId=&id=, /api/refund/read?…).
type walleeStandIn struct {
	*httptest.Server
	mu       sync.Mutex
	keys     map[string]string // key id → base64 DER
	entities map[string]string // request URI less /api → JSON
	asked    []string          // request URIs, MAC-valid ones
	badMAC   int
	refuse   bool // answer 401 to everything
}

func newWalleeStandIn(t *testing.T) *walleeStandIn {
	s := &walleeStandIn{keys: map[string]string{}, entities: map[string]string{}}
	key, _ := base64.StdEncoding.DecodeString(walleeAuthKey)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ts int64
		fmt.Sscan(r.Header.Get("X-Mac-Timestamp"), &ts)
		if s.refuse || r.Header.Get("X-Mac-Version") != "1" || r.Header.Get("X-Mac-Userid") != walleeUserID ||
			r.Header.Get("X-Mac-Value") != verify.WalleeMAC(walleeUserID, key, ts, r.Method, r.URL.RequestURI()) {
			s.badMAC++
			http.Error(w, `{"id":"x","message":"Authentication failed"}`, http.StatusUnauthorized)
			return
		}
		s.asked = append(s.asked, r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		if r.URL.Path == "/api/webhook-encryption/read" {
			if pub, ok := s.keys[r.URL.Query().Get("id")]; ok {
				fmt.Fprintf(w, `{"id":%q,"publicKey":%q}`, r.URL.Query().Get("id"), pub)
				return
			}
		} else if doc, ok := s.entities[strings.TrimPrefix(r.URL.RequestURI(), "/api")]; ok {
			fmt.Fprint(w, doc)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"id":"x","message":"Entity not found"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *walleeStandIn) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

func (s *walleeStandIn) setKey(id, publicKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = publicKey
}

func (s *walleeStandIn) refusedMACs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badMAC
}

func (s *walleeStandIn) setEntity(uri, doc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entities[uri] = doc
}

// newKey makes the stand-in the holder of a new signing key.
func (s *walleeStandIn) newKey(t *testing.T, id string) *ecdsa.PrivateKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	s.mu.Lock()
	s.keys[id] = base64.StdEncoding.EncodeToString(der)
	s.mu.Unlock()
	return priv
}

func walleeSite(provider string, api *walleeStandIn, extra string) string {
	return fmt.Sprintf(`route /callbacks/%[1]s* {
		payhook %[1]s {
			user_id %[2]s
			authentication_key {env.PAYHOOK_TEST_WALLEE_KEY}
			api_base %[3]s/api
			api_timeout 500ms
			%[4]s
		}
		reverse_proxy {upstream}
	}`, provider, walleeUserID, api.URL, extra)
}

func startWallee(t *testing.T, provider, extra string) (*env, *walleeStandIn) {
	t.Helper()
	t.Setenv("PAYHOOK_TEST_WALLEE_KEY", walleeAuthKey)
	api := newWalleeStandIn(t)
	return startCaddy(t, walleeSite(provider, api, extra)), api
}

const walleeTransaction11 = `{"id":11,"linkedSpaceId":1,"state":"AUTHORIZED","currency":"CHF","authorizationAmount":129.95,` +
	`"merchantReference":"order-1042","environment":"PREVIEW","version":4}`

// The official vector, end to end: payhook reads the vector's public key
// by its id from the stand-in, verifies the vector's signature over its
// content, reads the transaction, and the shop gets the notification's
// state with the transaction's amount. A retry reaches the shop once, and
// costs no second key request.
func TestWalleeOfficialVectorThroughCaddy(t *testing.T) {
	for _, provider := range []string{"wallee", "postfinance"} {
		t.Run(provider, func(t *testing.T) {
			e, api := startWallee(t, provider, "")
			api.setKey(walleeVectorKeyID, walleeVectorPublicKey)
			api.setEntity("/transaction/read?spaceId=1&id=11", walleeTransaction11)
			header := http.Header{"X-Signature": {walleeVectorHeader}}
			for i := 0; i < 2; i++ {
				resp, body := e.post("/callbacks/"+provider, "application/json;charset=UTF-8", walleeVectorContent, header)
				expectAnswer(t, resp, body, http.StatusOK, "OK")
			}
			got := e.upstream.received()
			if len(got) != 1 {
				t.Fatalf("shop received %d requests, want 1 (the retry is a duplicate)", len(got))
			}
			envelope := got[0].Body
			for path, want := range map[string]string{
				"source": "payhook/" + provider, "type": "payhook.payment.pending", "subject": "order-1042",
				"data.provider_status": "PROCESSING", "data.amount.value": "12995", "data.amount.currency": "CHF",
				"data.verification.method": "ecdsa-p256-sha256", "data.verification.status": "AUTHORIZED",
				"data.original.eventId": "35", "data.fetched.state": "AUTHORIZED", "data.test": "true",
				"time": "2023-12-19T13:43:35Z",
			} {
				if v := gjson.GetBytes(envelope, path).String(); v != want {
					t.Errorf("%s = %q, want %q", path, v, want)
				}
			}
			if strings.Contains(string(envelope), walleeAuthKey) || strings.Contains(e.rawLog(), walleeAuthKey) {
				t.Error("the authentication key leaked")
			}
			asked := api.requests()
			keyReads := 0
			for _, uri := range asked {
				if strings.HasPrefix(uri, "/api/webhook-encryption/read?id="+walleeVectorKeyID) {
					keyReads++
				}
			}
			if keyReads != 1 || api.refusedMACs() != 0 {
				t.Errorf("API asked %v (%d refused MACs); want one key read", asked, api.refusedMACs())
			}
		})
	}
}

// A notification signed with the platform's key (the stand-in's) and each
// way to forge one.
func TestWalleeSignedAndForged(t *testing.T) {
	e, api := startWallee(t, "wallee", "dedupe off")
	priv := api.newKey(t, "5b1c2d3e-0000-4000-8000-000000000001")
	api.setEntity("/transaction/read?spaceId=1&id=12", `{"id":12,"linkedSpaceId":1,"state":"FULFILL","currency":"EUR",`+
		`"authorizationAmount":20,"completedAmount":19.9,"merchantReference":"order-7","environment":"LIVE"}`)
	body := `{"entityId":12,"eventId":36,"listenerEntityId":1472041829003,"listenerEntityTechnicalName":"Transaction","spaceId":1,"state":"FULFILL","timestamp":"2026-12-07T10:00:00+0000","webhookListenerId":2}`
	header, err := verify.SignWallee(priv, "5b1c2d3e-0000-4000-8000-000000000001", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, answer := e.post("/callbacks/wallee", "application/json", body, http.Header{"X-Signature": {header}})
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	got := e.upstream.received()
	if len(got) != 1 || gjson.GetBytes(got[0].Body, "data.status").String() != "captured" ||
		gjson.GetBytes(got[0].Body, "data.amount.value").Int() != 1990 {
		t.Fatalf("shop received %d: %v", len(got), got)
	}
	e.upstream.reset()
	before := len(api.requests())

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forgedSig, _ := verify.SignWallee(other, "5b1c2d3e-0000-4000-8000-000000000001", []byte(body))
	for _, tt := range []struct {
		name, body, header string
		status             int
		reason             string
	}{
		{"body changed", strings.Replace(body, "FULFILL", "VOIDED", 1), header, 401, "signature_mismatch"},
		{"another key", body, forgedSig, 401, "signature_mismatch"},
		{"malformed header", body, "algorithm=SHA256withECDSA, keyId=x", 401, "signature_malformed"},
		{"other algorithm", body, strings.Replace(header, "SHA256withECDSA", "SHA1withRSA", 1), 401, "signature_malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, answer := e.post("/callbacks/wallee", "application/json", tt.body, http.Header{"X-Signature": {tt.header}})
			expectAnswer(t, resp, answer, tt.status, "")
			e.expectNothingForwarded()
			e.expectReason(tt.reason)
		})
	}
	if after := len(api.requests()); after != before {
		t.Errorf("forged notifications caused %d API requests", after-before)
	}
}

// A signature with a key id the API does not know is forged (401), and
// asked for once; fresh forged key ids cost a few key requests, then 503
// (the platform retries), never one request each.
func TestWalleeForgedKeyIDsThroughCaddy(t *testing.T) {
	e, api := startWallee(t, "wallee", "")
	const forgeries = 12
	statuses := map[int]int{}
	for i := 0; i < forgeries; i++ {
		header := strings.Replace(walleeVectorHeader, walleeVectorKeyID, fmt.Sprintf("forged-%d", i), 1)
		resp, _ := e.post("/callbacks/wallee", "application/json", walleeVectorContent, http.Header{"X-Signature": {header}})
		statuses[resp.StatusCode]++
	}
	e.expectNothingForwarded()
	if n := len(api.requests()); n > 3 || statuses[401] != n || statuses[503] != forgeries-n {
		t.Errorf("%d forged key ids: %d API requests, answers %v", forgeries, n, statuses)
	}
}

// Unsigned notifications (listeners without payload signature): the
// entity the API returns is the truth; what the API does not know is not
// forwarded; require_signature refuses them without any request.
func TestWalleeUnsignedThroughCaddy(t *testing.T) {
	e, api := startWallee(t, "wallee", "dedupe off")
	api.setEntity("/refund/read?spaceId=1&id=77", `{"id":77,"linkedSpaceId":1,"state":"SUCCESSFUL","amount":30.5,"environment":"LIVE",`+
		`"transaction":{"id":11,"currency":"CHF","merchantReference":"order-1042"}}`)
	refund := `{"entityId":77,"eventId":52,"listenerEntityId":1472041839405,"listenerEntityTechnicalName":"Refund","spaceId":1,"timestamp":"2023-12-20T08:01:00+0000","webhookListenerId":3}`
	resp, answer := e.post("/callbacks/wallee", "application/json", refund, nil)
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	got := e.upstream.received()
	if len(got) != 1 {
		t.Fatalf("shop received %d", len(got))
	}
	for path, want := range map[string]string{
		"data.status": "refunded", "data.payment_reference": "11", "data.provider_reference": "77", "data.amount.value": "3050",
		"data.verification.method": "api-fetch", "data.unverified.eventId": "52", "data.original": "",
	} {
		if v := gjson.GetBytes(got[0].Body, path).String(); v != want {
			t.Errorf("%s = %q, want %q", path, v, want)
		}
	}
	e.upstream.reset()

	unknown := strings.Replace(refund, `"entityId":77`, `"entityId":78`, 1)
	resp, answer = e.post("/callbacks/wallee", "application/json", unknown, nil)
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e.expectReason("resource_unknown")
	for _, tt := range []struct{ name, body, reason string }{
		{"not an id", strings.Replace(refund, `"entityId":77`, `"entityId":"77&id=1"`, 1), "field_missing"},
		{"another entity", strings.Replace(refund, `"Refund"`, `"Token"`, 1), "resource_invalid"},
	} {
		before := len(api.requests())
		resp, answer = e.post("/callbacks/wallee", "application/json", tt.body, nil)
		expectAnswer(t, resp, answer, http.StatusBadRequest, "")
		e.expectReason(tt.reason)
		if len(api.requests()) != before {
			t.Errorf("%s: payhook asked the API", tt.name)
		}
	}
	e.expectNothingForwarded()

	e2, api2 := startWallee(t, "wallee", "require_signature\n\t\t\tspace_id 1")
	resp, answer = e2.post("/callbacks/wallee", "application/json", refund, nil)
	expectAnswer(t, resp, answer, http.StatusUnauthorized, "")
	e2.expectReason("signature_missing")
	if len(api2.requests()) != 0 || api2.refusedMACs() != 0 {
		t.Error("require_signature: payhook asked the API")
	}
}

// The API refusing payhook's credentials, or down, is a 503: the
// platform retries.
func TestWalleeAPIFailuresAre503(t *testing.T) {
	e, api := startWallee(t, "wallee", "space_id 1")
	api.mu.Lock()
	api.refuse = true
	api.mu.Unlock()
	refund := `{"entityId":77,"listenerEntityTechnicalName":"Refund","spaceId":1}`
	resp, answer := e.post("/callbacks/wallee", "application/json", refund, nil)
	expectAnswer(t, resp, answer, http.StatusServiceUnavailable, "")
	e.expectReason("api_refused")
	resp, answer = e.post("/callbacks/wallee", "application/json", strings.Replace(refund, `"spaceId":1`, `"spaceId":2`, 1), nil)
	expectAnswer(t, resp, answer, http.StatusBadRequest, "")
	e.expectReason("resource_invalid")
	e.expectNothingForwarded()
}

// `caddy payhook send wallee --id <space>/<transaction>` posts an unsigned
// notification; payhook reads the transaction from the API (here the
// stand-in) and the shop gets it.
func TestSendWallee(t *testing.T) {
	for _, provider := range []string{"wallee", "postfinance"} {
		t.Run(provider, func(t *testing.T) {
			e, api := startWallee(t, provider, "")
			api.setEntity("/transaction/read?spaceId=405&id=12", `{"id":12,"linkedSpaceId":405,"state":"FULFILL","currency":"CHF",`+
				`"authorizationAmount":9.95,"completedAmount":9.95,"merchantReference":"order-1042","environment":"PREVIEW"}`)
			out, err := runSend(t, provider, "--status", "captured", "--id", "405/12", e.base+"/callbacks/"+provider)
			if err != nil {
				t.Fatalf("send: %v\n%s", err, out)
			}
			got := e.upstream.received()
			if len(got) != 1 || gjson.GetBytes(got[0].Body, "data.status").String() != "captured" ||
				gjson.GetBytes(got[0].Body, "data.amount.value").Int() != 995 {
				t.Fatalf("shop received %d: %v", len(got), got)
			}
			if _, err := runSend(t, provider, "--status", "captured", "--id", "405/13", e.base+"/callbacks/"+provider); err == nil {
				t.Error("send of a transaction the API does not know succeeded")
			}
		})
	}
}

// The rejections every provider shares: another method, another content
// type, a compressed body, a body over max_body; nothing is forwarded and
// the API is not asked.
func TestWalleeSharedRejections(t *testing.T) {
	e, api := startWallee(t, "postfinance", "max_body 64KiB")
	big := `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tt := range []struct {
		name, method, contentType, body string
		header                          http.Header
		status                          int
	}{
		{"GET", http.MethodGet, "", "", nil, 405},
		{"PUT", http.MethodPut, "application/json", "{}", nil, 405},
		{"text/plain", http.MethodPost, "text/plain", walleeVectorContent, nil, 415},
		{"compressed", http.MethodPost, "application/json", walleeVectorContent, http.Header{"Content-Encoding": {"gzip"}}, 415},
		{"over max_body", http.MethodPost, "application/json", big, nil, 413},
		{"two signatures", http.MethodPost, "application/json", walleeVectorContent, http.Header{"X-Signature": {walleeVectorHeader, walleeVectorHeader}}, 401},
		{"not JSON", http.MethodPost, "application/json", `{"entityId":11,`, nil, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			var resp *http.Response
			var answer string
			if tt.body == big {
				// Caddy answers 413 and closes before the body is all
				// sent: write and read at once, as a provider does.
				resp, answer = e.postUnread("/callbacks/postfinance", tt.contentType, tt.body, tt.header)
			} else {
				req := e.postRequest("/callbacks/postfinance", tt.contentType, tt.body, tt.header)
				req.Method = tt.method
				resp, answer = e.do(req)
			}
			expectAnswer(t, resp, answer, tt.status, "")
		})
	}
	e.t = t
	e.expectNothingForwarded()
	if n := len(api.requests()); n != 0 {
		t.Errorf("the API was asked %d times", n)
	}
}

// `caddy payhook send wallee --api` stores the sample transaction at the
// demo's stand-in of the platform's API, and --secret (the demo's signing
// key) signs the notification: payhook reads the key's public half and
// the transaction from the stand-in, as the demo's application user.
func TestSendWalleeThroughTheDemoStandIn(t *testing.T) {
	standIn := httptest.NewServer(newDemoAPI())
	defer standIn.Close()
	for _, name := range []string{"WALLEE_USER_ID", "WALLEE_AUTHENTICATION_KEY"} {
		t.Setenv("PAYHOOK_TEST_DEMO_"+name, demoSecrets[name])
	}
	e := startCaddy(t, `route /callbacks/wallee* {
		payhook wallee {
			user_id {env.PAYHOOK_TEST_DEMO_WALLEE_USER_ID}
			authentication_key {env.PAYHOOK_TEST_DEMO_WALLEE_AUTHENTICATION_KEY}
			api_base `+standIn.URL+`/api
		}
		reverse_proxy {upstream}
	}`)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(other)
	for _, tt := range []struct {
		name, status, secret string
		answer               int
		method               string
	}{
		{"signed captured", "captured", demoWalleeSigningKey, http.StatusOK, "ecdsa-p256-sha256"},
		{"signed authorized", "authorized", demoWalleeSigningKey, http.StatusOK, "ecdsa-p256-sha256"},
		{"unsigned", "captured", "", http.StatusOK, "api-fetch"},
		{"signed with another key", "captured", base64.StdEncoding.EncodeToString(otherDER), http.StatusUnauthorized, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			resp, body, err := sendSample(t.Context(), "wallee", e.base+"/callbacks/wallee", sendOptions{
				api: standIn.URL, secret: tt.secret, status: tt.status, amount: "129.95", currency: "CHF", reference: "order-8", timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, string(body), tt.answer, "")
			if tt.answer != http.StatusOK {
				e.expectNothingForwarded()
				return
			}
			r, doc := e.onlyDelivery()
			if doc.Data.Status != tt.status || doc.Data.Amount.MinorUnits != 12995 || doc.Data.Amount.Currency != "CHF" ||
				doc.Data.MerchantReference != "order-8" || gjson.GetBytes(r.Body, "data.verification.method").String() != tt.method {
				t.Errorf("envelope: %s", r.Body)
			}
		})
	}
	// The stand-in answers only the demo's application user.
	e.t = t
	resp, err := http.Get(standIn.URL + "/api/webhook-encryption/read?id=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a request without the MAC: %s", resp.Status)
	}
}
