package normalize_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// The hot path of a callback, stage by stage and as a whole, on realistic
// payloads (testdata/bench). Speed goals live here, never in tests:
//
//	go test ./normalize -run '^$' -bench . -benchmem

func readBench(b *testing.B, name string) []byte {
	raw, err := os.ReadFile("testdata/bench/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// ixopayBench is a signed 2 KB IXOPAY callback and its verifier.
func ixopayBench(b *testing.B) (*verify.IXOPAY, *verify.Callback) {
	body := readBench(b, "ixopay_2k.json")
	now := time.Date(2026, 11, 20, 10, 34, 47, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	cb := &verify.Callback{
		Method:     http.MethodPost,
		RequestURI: "/callbacks/ixopay",
		Header:     http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Date": {date}},
		Body:       body,
	}
	secret := []byte("a-realistic-connector-shared-secret-0123456789")
	cb.Header.Set("X-Signature", verify.SignIXOPAY(secret, verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method: cb.Method, ContentType: cb.Header.Get("Content-Type"), Date: date, RequestURI: cb.RequestURI, Body: body,
	}))
	return &verify.IXOPAY{Secrets: [][]byte{secret}, MaxSkew: 5 * time.Minute, Now: func() time.Time { return now }}, cb
}

func BenchmarkIXOPAY(b *testing.B) {
	v, cb := ixopayBench(b)
	in := &Input{Provider: "ixopay", ContentType: "application/json", Body: cb.Body}
	received := time.Now()
	ctx := context.Background()
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(cb.Body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, cb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("normalize", func(b *testing.B) {
		b.SetBytes(int64(len(cb.Body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := IXOPAY(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	ev, _ := IXOPAY(in)
	res, _ := v.Verify(ctx, cb)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(cb.Body)))
		b.ReportAllocs()
		for b.Loop() {
			Encode(ev, res, received)
		}
	})
	b.Run("verify+normalize+encode", func(b *testing.B) {
		b.SetBytes(int64(len(cb.Body)))
		b.ReportAllocs()
		for b.Loop() {
			res, err := v.Verify(ctx, cb)
			if err != nil {
				b.Fatal(err)
			}
			ev, err := IXOPAY(&Input{Provider: "ixopay", ContentType: "application/json", Body: cb.Body})
			if err != nil {
				b.Fatal(err)
			}
			Encode(ev, res, received)
		}
	})
}

// BenchmarkPayrexx covers a 3 KB PHP form webhook with products and custom
// fields: decode and claim, normalize from the fetched document, encode.
// The fetch itself is BenchmarkFetch in package verify.
func BenchmarkPayrexx(b *testing.B) {
	body := readBench(b, "payrexx_3k.form")
	fetched := readBench(b, "payrexx_3k.fetched.json")
	res := verify.Result{Method: "api-fetch", Resource: "Transaction/4711", Status: "confirmed"}
	received := time.Now()
	newInput := func() *Input {
		return &Input{Provider: "payrexx", ContentType: "application/x-www-form-urlencoded", Body: body, Fetched: fetched}
	}
	b.Run("decode+claim", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := PayrexxClaim(newInput()); err != nil {
				b.Fatal(err)
			}
		}
	})
	in := newInput()
	_, _, _, _ = PayrexxClaim(in)
	b.Run("normalize", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Payrexx(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	ev, _ := Payrexx(in)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			Encode(ev, res, received)
		}
	})
	b.Run("decode+claim+normalize+encode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			in := newInput()
			if _, _, _, err := PayrexxClaim(in); err != nil {
				b.Fatal(err)
			}
			ev, err := Payrexx(in)
			if err != nil {
				b.Fatal(err)
			}
			Encode(ev, res, received)
		}
	})
}

// BenchmarkDecodePHPForm shows the decoder is linear in its input: ns/op
// grows with the size, MB/s stays flat.
func BenchmarkDecodePHPForm(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		var body strings.Builder
		for i := 0; body.Len() < size; i++ {
			fmt.Fprintf(&body, "transaction%%5Binvoice%%5D%%5Bproducts%%5D%%5B%d%%5D%%5Bname%%5D=Product+%d&transaction[invoice][custom_fields][%d][value]=v%%C3%%A9%d&", i, i, i, i)
		}
		form := []byte(body.String()[:size])
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(form)))
			b.ReportAllocs()
			for b.Loop() {
				DecodePHPForm(form)
			}
		})
	}
}

// BenchmarkSwedbankPay and BenchmarkPyxis cover the other two providers'
// normalize+encode on their golden payloads (their verification is an API
// request, BenchmarkFetch, or a token comparison).
func BenchmarkSwedbankPay(b *testing.B) {
	_, body := ReadRawRequest(b, "testdata/swedbankpay/legacy_capture_completed.in")
	fetched := bytes.TrimSpace(readBench(b, "../swedbankpay/legacy_capture_completed.fetched.json"))
	res := verify.Result{Method: "api-fetch", Status: "Capture Completed"}
	received := time.Now()
	b.SetBytes(int64(len(body) + len(fetched)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := SwedbankPay(&Input{Provider: "swedbankpay", ContentType: "application/json", Body: body, Fetched: fetched})
		if err != nil {
			b.Fatal(err)
		}
		Encode(ev, res, received)
	}
}

func BenchmarkPyxis(b *testing.B) {
	_, body := ReadRawRequest(b, "testdata/pyxis/card_success.in")
	res := verify.Result{Method: "url-token"}
	received := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := Pyxis(&Input{Provider: "pyxis", ContentType: "application/json", Body: body})
		if err != nil {
			b.Fatal(err)
		}
		Encode(ev, res, received)
	}
}
