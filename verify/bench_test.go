package verify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkFetch shows what a fetch-back costs beyond the network round
// trip: "round trip" is a plain keep-alive GET to a local fake API, "payrexx"
// is verify.Payrexx fetching and checking a transaction from the same API.
func BenchmarkFetch(b *testing.B) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":[{"id":4711,"uuid":"a1b2c3d4","status":"confirmed","amount":4590,"invoice":{"currency":"CHF","referenceId":"order-2001"},"contact":{"email":"max@example.ch"}}]}`)
	}))
	defer api.Close()
	b.Run("round trip", func(b *testing.B) {
		client := &http.Client{Timeout: time.Second}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Get(api.URL + "/v1.14/Transaction/4711/?instance=myshop")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("payrexx", func(b *testing.B) {
		v := &Payrexx{APIBase: api.URL, Instance: "myshop", APIKey: []byte("key"), Fetcher: NewFetcher(FetchLimits{Timeout: time.Second, Rate: 1 << 20})}
		cb := &Callback{Claim: Claim{Kind: "Transaction", ID: "4711", Status: "confirmed"}}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, cb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
