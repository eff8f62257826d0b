package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/payhook/payhook/verify"
)

// unzerNodeSDK is Unzer's Node.js SDK, the oracle of how a payment is
// fetched: its fetchPayment (FetchAdapter) GETs <api>/payments/{id} with
// "Basic " and the base64 of the private key and a colon, and treats an
// answer with an "errors" list as a failure.
const unzerNodeSDK = "@unzer/nodejs-sdk@1.1.0"

// The SDK and payhook, asking one stand-in of Unzer's API for one payment,
// send the same request and take the same document; a payment the API
// does not know fails for both.
func TestUnzerFetchAgreesWithUnzersNodeSDK(t *testing.T) {
	dir := npmPackage(t, unzerNodeSDK)
	const key = "s-priv-oracle0123456789"
	payments := map[string]string{
		"/v1/payments/s-pay-1": unzerPayment("s-pay-1", 3, "partly", "100.0000", "50.0000", "0.0000", "50.0000", ""),
		"/v1/payments/s-pay-2": unzerPayment("s-pay-2", 5, "chargeback", "1.0000", "0.0000", "1.0000", "0.0000",
			`{"date":"2023-08-01 13:57:15","type":"chargeback","status":"success","url":"https://api.unzer.com/v1/payments/s-pay-2/charges/chargebacks/s-cbk-1","amount":"1.0000"}`),
	}
	var mu sync.Mutex
	var asked []*http.Request
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Clone(context.Background()))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		doc, ok := payments[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			doc = `{"id":"s-err-1","isSuccess":false,"isPending":false,"isError":true,"errors":[{"code":"API.310.100.003","merchantMessage":"Payment not found","customerMessage":"Payment not found"}]}`
		}
		_, _ = w.Write([]byte(doc))
	}))
	defer api.Close()
	last := func() *http.Request {
		mu.Lock()
		defer mu.Unlock()
		return asked[len(asked)-1]
	}
	const script = `
const Unzer = require('@unzer/nodejs-sdk').default;
const [key, api, id] = process.argv.slice(-3);
const unzer = new Unzer(key);
unzer.paymentService.getRequestAdapter().api = api + '/v1'; // the SDK's hosts are fixed
unzer.fetchPayment(id)
  .then(p => console.log(JSON.stringify({id: p.getId(), payload: p.getPayload()})))
  .catch(e => console.log(JSON.stringify({error: String(e.message)})));`
	v := &verify.Unzer{APIBase: api.URL, PrivateKey: []byte(key), Fetcher: verify.NewFetcher(verify.FetchLimits{})}
	for _, id := range []string{"s-pay-1", "s-pay-2", "s-pay-404"} {
		var sdk struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
			Error   string          `json:"error"`
		}
		out := runNode(t, dir, script, key, api.URL, id)
		if err := json.Unmarshal([]byte(out), &sdk); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(asked)
		mu.Unlock()
		if n == 0 {
			t.Fatalf("the SDK asked nothing: %s", out)
		}
		sdkRequest := last()
		res, err := v.Fetch(t.Context(), id)
		ours := last()
		if sdkRequest.Method != ours.Method || sdkRequest.URL.Path != ours.URL.Path || sdkRequest.URL.RawQuery != ours.URL.RawQuery ||
			sdkRequest.Header.Get("Authorization") != ours.Header.Get("Authorization") {
			t.Errorf("%s: the SDK asked %s %s with %q; payhook %s %s with %q", id, sdkRequest.Method, sdkRequest.URL, sdkRequest.Header.Get("Authorization"),
				ours.Method, ours.URL, ours.Header.Get("Authorization"))
		}
		if sdk.Error != "" {
			if !errors.Is(err, verify.ErrUnknownResource) {
				t.Errorf("%s: the SDK failed (%s); payhook: %v", id, sdk.Error, err)
			}
			continue
		}
		if err != nil || sdk.ID != id {
			t.Fatalf("%s: the SDK took payment %q; payhook: %v", id, sdk.ID, err)
		}
		var a, b any
		if json.Unmarshal(sdk.Payload, &a) != nil || json.Unmarshal(res.Fetched, &b) != nil || !jsonEqual(a, b) {
			t.Errorf("%s: the SDK's payment %s, payhook's %s", id, sdk.Payload, res.Fetched)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
