package verify

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestSignIXOPAYOfficialVector reproduces the vector from IXOPAY's own
// signature-testing tool (see ../shared/providers.md).
func TestSignIXOPAYOfficialVector(t *testing.T) {
	got := SignIXOPAY(nil, IXOPAYSHA512, IXOPAYMessage{
		Method:      "POST",
		ContentType: "application/json; charset=utf-8",
		Date:        "Tue, 28 Apr 2026 15:23:40 GMT",
		RequestURI:  "/api/v3/transaction/YOUR-API-KEY-HERE/debit",
	})
	const want = "4ICq+hfHFA81dAJHcXoP2/Pb+nkp9GljLe2S+REN0vMBhbQYNQUHIw/YxUTEIWS5Uu5WgdDEc7keMtqS0mpnAA=="
	if got != want {
		t.Fatalf("SignIXOPAY = %s, want %s", got, want)
	}
}

const (
	testSecret  = "s3cr3t-connector"
	testDate    = "Fri, 20 Nov 2026 10:34:47 GMT"
	testURI     = "/callbacks/ixopay?shop=1"
	testCT      = "application/json; charset=utf-8"
	testBody    = `{"result":"OK","uuid":"abc","transactionType":"DEBIT","amount":"9.99","currency":"EUR"}`
	otherSecret = "previous-secret"
)

var testNow = time.Date(2026, 11, 20, 10, 34, 47, 0, time.UTC)

// signedCallback returns a callback signed like IXOPAY would sign it; mutate
// modifies it after signing.
func signedCallback(secret string, digest IXOPAYBodyDigest, mutate func(cb *Callback)) *Callback {
	cb := &Callback{
		Method:     "POST",
		RequestURI: testURI,
		Header:     http.Header{"Content-Type": {testCT}, "Date": {testDate}},
		Body:       []byte(testBody),
	}
	cb.Header.Set("X-Signature", SignIXOPAY([]byte(secret), digest, IXOPAYMessage{
		Method: cb.Method, ContentType: testCT, Date: testDate, RequestURI: testURI, Body: cb.Body,
	}))
	if mutate != nil {
		mutate(cb)
	}
	return cb
}

func TestIXOPAYVerify(t *testing.T) {
	verifier := func(legacy bool, secrets ...string) *IXOPAY {
		v := &IXOPAY{MaxSkew: 5 * time.Minute, LegacyMD5: legacy, Now: func() time.Time { return testNow }}
		for _, s := range secrets {
			v.Secrets = append(v.Secrets, []byte(s))
		}
		return v
	}
	resign := func(cb *Callback, date string) {
		cb.Header.Set("X-Signature", SignIXOPAY([]byte(testSecret), IXOPAYSHA512, IXOPAYMessage{
			Method: cb.Method, ContentType: cb.Header.Get("Content-Type"), Date: date, RequestURI: cb.RequestURI, Body: cb.Body,
		}))
	}
	tests := []struct {
		name     string
		verifier *IXOPAY
		cb       *Callback
		wantErr  error
		variant  string
	}{
		{"valid", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, nil), nil, ""},
		{"second secret during rotation", verifier(false, otherSecret, testSecret), signedCallback(testSecret, IXOPAYSHA512, nil), nil, ""},
		{"wrong secret", verifier(false, otherSecret), signedCallback(testSecret, IXOPAYSHA512, nil), ErrBadSignature, ""},
		{"no secrets configured", verifier(false), signedCallback(testSecret, IXOPAYSHA512, nil), ErrBadSignature, ""},
		{"missing signature", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Del("X-Signature") }), ErrNotSigned, ""},
		{"signature not base64", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Set("X-Signature", "not base64!") }), ErrMalformedSignature, ""},
		{"signature too short", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Set("X-Signature", "AAAA") }), ErrMalformedSignature, ""},
		{"signature huge", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Set("X-Signature", string(make([]byte, 4096))) }), ErrMalformedSignature, ""},
		{"signature without padding", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			s := cb.Header.Get("X-Signature")
			cb.Header.Set("X-Signature", s[:len(s)-2])
		}), nil, ""},
		{"body tampered", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Body = []byte(`{"result":"OK","amount":"999.99"}`) }), ErrBadSignature, ""},
		{"uri tampered", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.RequestURI = "/callbacks/ixopay" }), ErrBadSignature, ""},
		{"method tampered", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Method = "PUT" }), ErrBadSignature, ""},
		{"missing date", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Del("Date") }), ErrNoDate, ""},
		{"malformed date", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) { cb.Header.Set("Date", "yesterday") }), ErrMalformedDate, ""},
		{"stale date", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Date", "Fri, 20 Nov 2026 10:29:46 GMT")
			resign(cb, "Fri, 20 Nov 2026 10:29:46 GMT")
		}), ErrDateOutsideWindow, ""},
		{"future date", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Date", "Fri, 20 Nov 2026 10:39:48 GMT")
			resign(cb, "Fri, 20 Nov 2026 10:39:48 GMT")
		}), ErrDateOutsideWindow, ""},
		{"date at the edge of the window", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Date", "Fri, 20 Nov 2026 10:29:47 GMT")
			resign(cb, "Fri, 20 Nov 2026 10:29:47 GMT")
		}), nil, ""},
		{"quirk: date in UTC instead of GMT", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Date", "Fri, 20 Nov 2026 10:34:47 UTC")
			resign(cb, "Fri, 20 Nov 2026 10:34:47 UTC")
		}), nil, ""},
		{"quirk: X-Date takes precedence over Date", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
			cb.Header.Set("X-Date", "Fri, 20 Nov 2026 10:34:50 GMT")
			resign(cb, "Fri, 20 Nov 2026 10:34:50 GMT")
		}), nil, ""},
		{"quirk: PHP client signs the hard-coded content type", verifier(false, testSecret), signedCallback(testSecret, IXOPAYSHA512, func(cb *Callback) {
			cb.Header.Set("Content-Type", "application/json")
		}), nil, ""},
		{"legacy md5 accepted when enabled", verifier(true, testSecret), signedCallback(testSecret, IXOPAYMD5, nil), nil, "legacy-md5"},
		{"legacy md5 refused by default", verifier(false, testSecret), signedCallback(testSecret, IXOPAYMD5, nil), ErrBadSignature, ""},
		{"sha512 still accepted with legacy md5", verifier(true, testSecret), signedCallback(testSecret, IXOPAYSHA512, nil), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.verifier.Verify(context.Background(), tt.cb)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if res.Method != "hmac-sha512" || res.Variant != tt.variant {
				t.Errorf("Verify() = %+v, want method hmac-sha512 variant %q", res, tt.variant)
			}
			wantDate := tt.cb.Header.Get("X-Date")
			if wantDate == "" {
				wantDate = tt.cb.Header.Get("Date")
			}
			if res.Date != wantDate {
				t.Errorf("Verify().Date = %q, want %q", res.Date, wantDate)
			}
		})
	}
}
