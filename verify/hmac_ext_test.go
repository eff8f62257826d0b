package verify

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The extensions of the generic scheme, each against signatures computed
// here from the providers' documented constructions (not with Sign), and
// each round trip through Sign.
func TestHMACExtensions(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"order":{"orderId":"LDLW5N7MF4140324GUEST000P01","status":"COMPLETED","totalAmount":"21000"}}`)
	md5hex := func(parts ...string) string {
		sum := md5.Sum([]byte(strings.Join(parts, "")))
		return hex.EncodeToString(sum[:])
	}
	sha256hex := func(parts ...string) string {
		sum := sha256.Sum256([]byte(strings.Join(parts, "")))
		return hex.EncodeToString(sum[:])
	}
	hmacSHA256 := func(key string, parts ...string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(strings.Join(parts, "")))
		return hex.EncodeToString(m.Sum(nil))
	}
	hmacSHA512 := func(key string, parts ...string) string {
		m := hmac.New(sha512.New, []byte(key))
		m.Write([]byte(strings.Join(parts, "")))
		return hex.EncodeToString(m.Sum(nil))
	}
	unix := "1796637600" // now
	iso := "2026-12-07T10:00:00.000Z"
	stale := "2026-12-07T09:00:00.000Z"

	payu := func() *HMAC {
		return &HMAC{Mode: ModeHash, Algorithm: "md5", Algorithms: []string{"md5", "sha256"}, Header: "OpenPayU-Signature",
			SignatureKey: "signature", AlgorithmKey: "algorithm", Encoding: "hex", Content: mustTemplateWithoutBody(t, "{body}{secret}")}
	}
	worldpay := func() *HMAC {
		return &HMAC{Algorithm: "sha256", Header: "Event-Signature", Fields: []string{"key_id", "algorithm", "signature"},
			FieldSeparator: "/", Encoding: "hex", Content: mustTemplate(t, "{body}")}
	}
	msp := func() *HMAC {
		return &HMAC{Algorithm: "sha512", Header: "Auth", HeaderEncoding: "base64", Fields: []string{"timestamp", "signature"},
			FieldSeparator: ":", Encoding: "hex", Content: mustTemplate(t, "{timestamp}:{body}"), MaxSkew: 5 * time.Minute}
	}
	dlocal := func() *HMAC {
		return &HMAC{Algorithm: "sha256", Header: "Authorization", Prefix: "V2-HMAC-SHA256, Signature: ", Encoding: "hex",
			TimestampHeader: "X-Date", TimestampFormat: "rfc3339", MaxSkew: 5 * time.Minute,
			Content: mustTemplate(t, "{http.request.header.X-Login}{http.request.header.X-Date}{body}")}
	}
	mercadopago := func() *HMAC {
		return &HMAC{Algorithm: "sha256", Header: "X-Signature", SignatureKey: "v1", TimestampKey: "ts", Encoding: "hex",
			MaxSkew: 5 * time.Minute, UnsignedBody: true,
			Content: mustTemplateWithoutBody(t, "id:{http.request.uri.query.data.id|lower};request-id:{http.request.header.X-Request-Id};ts:{timestamp};")}
	}
	secret := func() *HMAC { return &HMAC{Mode: ModeSecret, Header: "Verif-Hash"} }
	secretHash := func() *HMAC {
		return &HMAC{Mode: ModeSecretHash, Algorithm: "sha256", Header: "Authorization", Encoding: "hex"}
	}
	mpManifest := "id:abc123def;request-id:bb56a2f1-6aae-46ac-982e-9dcd3581d08e;ts:" + unix + ";"
	mpPlaceholders := mapPlaceholders{"http.request.uri.query.data.id": "ABC123def",
		"http.request.header.X-Request-Id": "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"}
	dlocalPlaceholders := func(date string) mapPlaceholders {
		return mapPlaceholders{"http.request.header.X-Login": "sak223k2wdksdl2", "http.request.header.X-Date": date}
	}
	for _, tt := range []struct {
		name         string
		scheme       func() *HMAC
		secret       string
		header       string
		placeholders mapPlaceholders
		body         []byte
		want         error
		method       string
	}{
		{"payu_md5", payu, "b6ca15b0d1020e8094d9b5f8d163db54", "sender=checkout;signature=" + md5hex(string(body), "b6ca15b0d1020e8094d9b5f8d163db54") + ";algorithm=MD5;content=DOCUMENT", nil, body, nil, "hash-md5"},
		{"payu_sha256", payu, "b6ca15b0d1020e8094d9b5f8d163db54", "sender=checkout;signature=" + sha256hex(string(body), "b6ca15b0d1020e8094d9b5f8d163db54") + ";algorithm=SHA-256;content=DOCUMENT", nil, body, nil, "hash-sha256"},
		{"payu_algorithm_not_accepted", payu, "k", "sender=checkout;signature=" + md5hex(string(body), "k") + ";algorithm=SHA1", nil, body, ErrMalformedSignature, ""},
		{"payu_md5_named_sha256", payu, "k", "signature=" + md5hex(string(body), "k") + ";algorithm=SHA256", nil, body, ErrMalformedSignature, ""},
		{"payu_wrong_key", payu, "k", "signature=" + md5hex(string(body), "other") + ";algorithm=MD5", nil, body, ErrBadSignature, ""},
		{"payu_body_without_key", payu, "k", "signature=" + md5hex(string(body)) + ";algorithm=MD5", nil, body, ErrBadSignature, ""},
		{"worldpay_rotation", worldpay, "new", "1/SHA256/" + hmacSHA256("old", string(body)) + ",2/SHA256/" + hmacSHA256("new", string(body)), nil, body, nil, "hmac-sha256"},
		{"worldpay_other_algorithm_named", worldpay, "new", "2/SHA512/" + hmacSHA256("new", string(body)), nil, body, ErrMalformedSignature, ""},
		{"worldpay_entry_missing_a_field", worldpay, "new", "SHA256/" + hmacSHA256("new", string(body)), nil, body, ErrNotSigned, ""},
		{"multisafepay", msp, "api-key", base64.StdEncoding.EncodeToString([]byte(unix + ":" + hmacSHA512("api-key", unix, ":", string(body)))), nil, body, nil, "hmac-sha512"},
		{"multisafepay_stale", msp, "api-key", base64.StdEncoding.EncodeToString([]byte("1796630000:" + hmacSHA512("api-key", "1796630000:", string(body)))), nil, body, ErrDateOutsideWindow, ""},
		{"multisafepay_not_base64", msp, "api-key", unix + ":" + hmacSHA512("api-key", unix, ":", string(body)), nil, body, ErrMalformedSignature, ""},
		{"dlocal", dlocal, "dlocal-secret", "V2-HMAC-SHA256, Signature: " + hmacSHA256("dlocal-secret", "sak223k2wdksdl2", iso, string(body)), dlocalPlaceholders(iso), body, nil, "hmac-sha256"},
		{"dlocal_stale", dlocal, "dlocal-secret", "V2-HMAC-SHA256, Signature: " + hmacSHA256("dlocal-secret", "sak223k2wdksdl2", stale, string(body)), dlocalPlaceholders(stale), body, ErrDateOutsideWindow, ""},
		{"mercadopago", mercadopago, "mp-secret", "ts=" + unix + ",v1=" + hmacSHA256("mp-secret", mpManifest), mpPlaceholders, []byte(`{"data":{"id":"ABC123def"}}`), nil, "hmac-sha256"},
		{"mercadopago_other_id", mercadopago, "mp-secret", "ts=" + unix + ",v1=" + hmacSHA256("mp-secret", strings.Replace(mpManifest, "abc123def", "abc123deg", 1)), mpPlaceholders, []byte(`{}`), ErrBadSignature, ""},
		{"secret", secret, "flw-secret-hash", "flw-secret-hash", nil, body, nil, "shared-secret"},
		{"secret_other", secret, "flw-secret-hash", "flw-secret-hasH", nil, body, ErrBadSignature, ""},
		{"secret_longer", secret, "flw-secret-hash", "flw-secret-hash2", nil, body, ErrBadSignature, ""},
		{"secret_hash", secretHash, "merchant:s3cret", sha256hex("merchant:s3cret"), nil, body, nil, "shared-secret-sha256"},
		{"secret_hash_of_another", secretHash, "merchant:s3cret", sha256hex("merchant:other"), nil, body, ErrBadSignature, ""},
		{"secret_hash_is_not_the_secret", secretHash, "merchant:s3cret", "merchant:s3cret", nil, body, ErrBadSignature, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.scheme()
			v.Secrets = [][]byte{[]byte(tt.secret)}
			v.Now = func() time.Time { return now }
			if err := v.Check(); err != nil {
				t.Fatal(err)
			}
			cb := &Callback{Header: http.Header{http.CanonicalHeaderKey(v.Header): {tt.header}}, Body: tt.body, Placeholders: tt.placeholders}
			if date, ok := tt.placeholders["http.request.header.X-Date"]; ok {
				cb.Header.Set("X-Date", date)
			}
			res, err := v.Verify(context.Background(), cb)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if res.Method != tt.method {
				t.Errorf("method %q, want %q", res.Method, tt.method)
			}
			// What Sign makes for the same values verifies too.
			timestamp := tt.placeholders["http.request.header.X-Date"]
			if ts := firstTimestamp(v, tt.header); ts != "" {
				timestamp = ts
			}
			signed, err := v.Sign([]byte(tt.secret), TemplateValues{Body: tt.body, Timestamp: timestamp, Placeholders: tt.placeholders})
			if err != nil {
				t.Fatal(err)
			}
			cb.Header.Set(v.Header, signed)
			if v.TimestampHeader != "" {
				cb.Header.Set(v.TimestampHeader, timestamp)
			}
			if _, err := v.Verify(context.Background(), cb); err != nil {
				t.Errorf("Sign made %q, refused: %v", signed, err)
			}
		})
	}
}

// firstTimestamp is the timestamp a header gives (a key or a field).
func firstTimestamp(v *HMAC, header string) string {
	if v.HeaderEncoding == "base64" {
		decoded, _ := base64.StdEncoding.DecodeString(header)
		header = string(decoded)
	}
	_, ts := v.signatures([]string{header})
	return ts
}

// Configurations that would verify nothing, or not what they say, are
// refused before any callback.
func TestHMACExtensionRules(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    HMAC
		want string
	}{
		{"hash_without_secret", HMAC{Mode: ModeHash, Algorithm: "md5", Header: "S", Encoding: "hex", Content: mustTemplate(t, "{body}")}, "must hold {secret}"},
		{"hmac_with_secret", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Content: mustTemplateWithoutBody(t, "{body}{secret}")}, "keys the HMAC"},
		{"unsigned_body_without_timestamp", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", UnsignedBody: true,
			Content: mustTemplateWithoutBody(t, "id:{http.request.uri.query.id}")}, "needs a signed timestamp"},
		{"unsigned_body_that_is_signed", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", UnsignedBody: true,
			Content: mustTemplate(t, "{body}")}, "remove unsigned_body"},
		{"body_left_out", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Content: mustTemplateWithoutBody(t, "{http.request.uri}")}, "does not cover the body"},
		{"several_algorithms_unnamed", HMAC{Algorithm: "md5", Algorithms: []string{"md5", "sha256"}, Header: "S", Encoding: "hex",
			Content: mustTemplate(t, "{body}")}, "name each signature"},
		{"fields_without_signature", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Fields: []string{"key_id", "algorithm"},
			FieldSeparator: "/", Content: mustTemplate(t, "{body}")}, "one must be signature"},
		{"fields_with_a_comma", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Fields: []string{"key_id", "signature"},
			FieldSeparator: ",", Content: mustTemplate(t, "{body}")}, "not ','"},
		{"fields_unknown", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Fields: []string{"kid", "signature"},
			FieldSeparator: "/", Content: mustTemplate(t, "{body}")}, "want signature"},
		{"secret_with_timestamp", HMAC{Mode: ModeSecret, Header: "S", TimestampHeader: "T", MaxSkew: time.Minute}, "no content, timestamp"},
		{"unknown_mode", HMAC{Mode: "rsa", Algorithm: "sha256", Header: "S", Encoding: "hex", Content: mustTemplate(t, "{body}")}, "want hmac, hash"},
		{"header_encoding", HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", HeaderEncoding: "hex", Content: mustTemplate(t, "{body}")}, "want base64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Check()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ParseTemplateWithoutBody("{body|lower}"); err == nil {
		t.Error("|lower on the body is accepted")
	}
	if _, err := ParseTemplateWithoutBody("{http.request.header.X|upper}"); err == nil {
		t.Error("an unknown filter is accepted")
	}
}

// Whatever the header, a header that names fields verifies only with the
// genuine signature of an accepted algorithm.
func FuzzHMACFields(f *testing.F) {
	body := []byte("body")
	genuine := SignHexHMACSHA256([]byte("k"), body)
	f.Add("1/SHA256/" + genuine)
	f.Add("1/SHA256/" + genuine + ",2/SHA-256/" + genuine)
	f.Add("//,/,,1/sha256/")
	f.Fuzz(func(t *testing.T, header string) {
		v := &HMAC{Algorithm: "sha256", Header: "S", Encoding: "hex", Fields: []string{"key_id", "algorithm", "signature"},
			FieldSeparator: "/", Content: mustTemplate(t, "{body}"), Secrets: [][]byte{[]byte("k")}}
		if _, err := v.Verify(context.Background(), &Callback{Header: http.Header{"S": {header}}, Body: body}); err != nil {
			return
		}
		if !strings.Contains(strings.ToLower(header), strings.ToLower(genuine)) {
			t.Fatalf("accepted %q", header)
		}
	})
}

// A base64 header of timestamp and signature verifies only with the
// genuine signature over the genuine, fresh timestamp.
func FuzzHMACHeaderEncoding(f *testing.F) {
	body := []byte("body")
	now := time.Unix(1700000000, 0)
	f.Add(base64.StdEncoding.EncodeToString([]byte("1700000000:" + SignHexHMACSHA256([]byte("k"), []byte("1700000000:body")))))
	f.Add("MTcwMDAwMDAwMDo=")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, header string) {
		v := &HMAC{Algorithm: "sha256", Header: "Auth", HeaderEncoding: "base64", Encoding: "hex", Fields: []string{"timestamp", "signature"},
			FieldSeparator: ":", Content: mustTemplate(t, "{timestamp}:{body}"), MaxSkew: time.Minute, Secrets: [][]byte{[]byte("k")},
			Now: func() time.Time { return now }}
		res, err := v.Verify(context.Background(), &Callback{Header: http.Header{"Auth": {header}}, Body: body})
		if err != nil {
			return
		}
		decoded, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
		want := res.Date + ":" + SignHexHMACSHA256([]byte("k"), []byte(res.Date+":body"))
		if !strings.Contains(strings.ToLower(string(decoded)), want) {
			t.Fatalf("accepted %q (%q)", header, decoded)
		}
	})
}

func mustTemplateWithoutBody(t testing.TB, s string) Template {
	t.Helper()
	tmpl, err := ParseTemplateWithoutBody(s)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// A keyed-hash header that names its algorithm (PayU's) verifies only with
// the genuine digest under an accepted algorithm; a header that carries the
// secret (mode secret) only with the secret itself.
func FuzzHMACHashAndSecretModes(f *testing.F) {
	body := []byte("body")
	md5Sum := md5.Sum([]byte("bodyk"))
	genuine := hex.EncodeToString(md5Sum[:])
	f.Add("signature=" + genuine + ";algorithm=MD5")
	f.Add("signature=" + genuine + ";algorithm=SHA-256;algorithm=MD5")
	f.Add("algorithm=md5;signature=;signature=" + genuine)
	f.Add("k")
	f.Fuzz(func(t *testing.T, header string) {
		hash := &HMAC{Mode: ModeHash, Algorithm: "md5", Algorithms: []string{"md5", "sha256"}, Header: "S", SignatureKey: "signature",
			AlgorithmKey: "algorithm", Encoding: "hex", Content: mustTemplate(t, "{body}{secret}"), Secrets: [][]byte{[]byte("k")}}
		if _, err := hash.Verify(context.Background(), &Callback{Header: http.Header{"S": {header}}, Body: body}); err == nil {
			sha := sha256.Sum256([]byte("bodyk"))
			if !strings.Contains(strings.ToLower(header), genuine) && !strings.Contains(strings.ToLower(header), hex.EncodeToString(sha[:])) {
				t.Fatalf("hash mode accepted %q", header)
			}
		}
		secret := &HMAC{Mode: ModeSecret, Header: "S", Secrets: [][]byte{[]byte("k3y")}}
		if _, err := secret.Verify(context.Background(), &Callback{Header: http.Header{"S": {header}}, Body: body}); err == nil && strings.TrimSpace(header) != "k3y" {
			t.Fatalf("secret mode accepted %q", header)
		}
	})
}
