package caddymodule

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/payhook/payhook/verify"
)

// BenchmarkServeHTTP measures payhook's whole handler for one IXOPAY
// callback (read, verify, normalize, encode, hand-over, answer, log line,
// metrics), with a next handler that takes the envelope and answers 200 at
// once, and dedupe off. Network and reverse_proxy are not included: the
// side-by-side comparison (caddymodule/cmd/payhook-compare) measures those.
func BenchmarkServeHTTP(b *testing.B) {
	body, err := os.ReadFile("../normalize/testdata/bench/ixopay_2k.json")
	if err != nil {
		b.Fatal(err)
	}
	secret := []byte("a-realistic-connector-shared-secret-0123456789")
	provider := &IXOPAY{verifier: &verify.IXOPAY{Secrets: [][]byte{secret}, MaxSkew: 5 * time.Minute}}
	h := &Handler{
		MaxBody:      DefaultMaxBody,
		provider:     provider,
		name:         provider.Name(),
		contentTypes: provider.ContentTypes(),
		logger:       zap.NewNop(),
		rejectLog:    newLogLimiter(rejectLogRate),
		metrics:      collectors,
		routePlace:   new(atomic.Pointer[routeScope]),
		series:       new(sync.Once),
	}
	date := time.Now().UTC().Format(http.TimeFormat)
	signature := verify.SignIXOPAY(secret, verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: http.MethodPost, ContentType: "application/json; charset=utf-8", Date: date, RequestURI: "/callbacks/ixopay", Body: body,
	})
	b.Run("route=payhook", func(b *testing.B) { benchCallback(b, h, body, date, signature, http.StatusOK) })
	forged := verify.SignIXOPAY([]byte("not-the-secret"), verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: http.MethodPost, ContentType: "application/json; charset=utf-8", Date: date, RequestURI: "/callbacks/ixopay", Body: body,
	})
	// A forged callback: read, date checked, signature computed and refused
	// with 401 (its log line sampled away after the first few).
	b.Run("route=forged", func(b *testing.B) { benchCallback(b, h, body, date, forged, http.StatusUnauthorized) })
}

// benchCallback sends one signed IXOPAY callback per iteration and expects
// the answer want.
func benchCallback(b *testing.B, h *Handler, body []byte, date, signature string, want int) {
	shop := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = r.Body.Read(make([]byte, 1))
		w.WriteHeader(http.StatusOK)
		return nil
	})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/callbacks/ixopay", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Date", date)
		req.Header.Set("X-Signature", signature)
		req = req.WithContext(context.WithValue(req.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, req, shop); err != nil || w.Code != want {
			b.Fatalf("%d %v %s", w.Code, err, w.Body)
		}
	}
}
