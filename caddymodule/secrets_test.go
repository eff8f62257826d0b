package caddymodule

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/payhook/payhook/verify"
)

// Every secret can come from a file ({file.*}, as Docker and Kubernetes
// mount secrets), with the file's trailing newline not part of it.
func TestEverySecretFromAFile(t *testing.T) {
	dir := t.TempDir()
	file := func(name, value string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return "{file." + path + "}"
	}
	api := newFakeAPI(t)
	api.set(payrexxTransactionPath, 200, apiSuccess(payrexxConfirmedDoc))
	api.set(poPath, 200, paymentOrder(`"status":"Paid","transactionType":"Sale"`))
	site := strings.NewReplacer(
		"@BASE@", api.URL,
		"@APIKEY@", file("payrexx_api_key", payrexxAPIKey),
		"@SIGSECRET@", file("payrexx_signature", "file-signing-secret"),
		"@BEARER@", file("swedbank_token", swedbankToken),
		"@URLTOKEN@", file("pyxis_token", pyxisToken),
	).Replace(`route /callbacks/payrexx* {
		payhook payrexx {
			instance myshop
			api_key @APIKEY@
			signature_secret @SIGSECRET@
			api_base @BASE@
		}
		reverse_proxy {upstream}
	}
	route /callbacks/swedbankpay* {
		payhook swedbankpay {
			token @BEARER@
			api_base @BASE@
		}
		reverse_proxy {upstream}
	}
	route /callbacks/pyxis* {
		payhook pyxis {
			url_token @URLTOKEN@
		}
		reverse_proxy {upstream}
	}`)
	e := startCaddy(t, site)

	sig := verify.SignHexHMACSHA256([]byte("file-signing-secret"), []byte(payrexxForm))
	resp, body := e.post("/callbacks/payrexx", formType, payrexxForm, http.Header{"X-Webhook-Signature": {sig}})
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if got := api.asked()[0].Header.Get("X-Api-Key"); got != payrexxAPIKey {
		t.Errorf("X-API-KEY from the file = %q", got)
	}
	resp, body = e.post("/callbacks/swedbankpay", "application/json", callbackV31, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if got := api.asked()[1].Header.Get("Authorization"); got != "Bearer "+swedbankToken {
		t.Errorf("bearer token from the file = %q", got)
	}
	resp, body = e.post("/callbacks/pyxis?token="+pyxisToken, "application/json", pyxisSuccess, nil)
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	if n := len(e.upstream.received()); n != 3 {
		t.Errorf("the shop got %d envelopes, want 3", n)
	}
}
