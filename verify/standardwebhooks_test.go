package verify

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The official vectors of ../shared/providers.md ("Standard Webhooks"):
// the first two from the reference libraries' tests, the third (v1a) from
// Svix's server.
var standardWebhooksVectors = []struct {
	name, secret, publicKey, id, timestamp, body, signature string
}{
	{"reference libraries' vector", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`,
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	{"second vector", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", `{"email":"test@example.com","username":"test_user"}`,
		"v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
	{"v1a vector", "", "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`,
		"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="},
}

func standardWebhooksVerifier(t *testing.T, secret, publicKey string, at string) *StandardWebhooks {
	t.Helper()
	v := &StandardWebhooks{MaxSkew: 5 * time.Minute}
	if secret != "" {
		key, err := DecodeStandardWebhooksSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		v.Secrets = append(v.Secrets, key)
	}
	if publicKey != "" {
		key, err := DecodeStandardWebhooksPublicKey(publicKey)
		if err != nil {
			t.Fatal(err)
		}
		v.PublicKeys = append(v.PublicKeys, key)
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return time.Unix(n, 0) }
	return v
}

func swCallback(prefix, id, timestamp, signature, body string) *Callback {
	h := http.Header{}
	if id != "" {
		h.Set(prefix+"-id", id)
	}
	if timestamp != "" {
		h.Set(prefix+"-timestamp", timestamp)
	}
	if signature != "" {
		h.Set(prefix+"-signature", signature)
	}
	return &Callback{Method: http.MethodPost, RequestURI: "/hooks", Header: h, Body: []byte(body)}
}

func TestStandardWebhooksOfficialVectors(t *testing.T) {
	for _, vec := range standardWebhooksVectors {
		t.Run(vec.name, func(t *testing.T) {
			v := standardWebhooksVerifier(t, vec.secret, vec.publicKey, vec.timestamp)
			res, err := v.Verify(context.Background(), swCallback("webhook", vec.id, vec.timestamp, vec.signature, vec.body))
			if err != nil || res.Method != "standard-webhooks" || res.NotificationID != vec.id {
				t.Fatalf("Verify = %+v, %v", res, err)
			}
			// The signer payhook's tests and `caddy payhook send` use agrees.
			if vec.secret != "" {
				key, _ := DecodeStandardWebhooksSecret(vec.secret)
				if got := SignStandardWebhooks(key, vec.id, vec.timestamp, []byte(vec.body)); got != vec.signature {
					t.Errorf("SignStandardWebhooks = %s, want %s", got, vec.signature)
				}
			}
			// One changed byte of the body is refused.
			_, err = v.Verify(context.Background(), swCallback("webhook", vec.id, vec.timestamp, vec.signature, vec.body+" "))
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("tampered body: %v, want ErrBadSignature", err)
			}
		})
	}
	// The v1a secret key of the vector signs what its public key verifies.
	private, err := DecodeStandardWebhooksPrivateKey("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==")
	if err != nil {
		t.Fatal(err)
	}
	if got := SignStandardWebhooksV1a(private, standardWebhooksVectors[2].id, standardWebhooksVectors[2].timestamp, []byte(standardWebhooksVectors[2].body)); got != standardWebhooksVectors[2].signature {
		t.Errorf("SignStandardWebhooksV1a = %s, want the vector's", got)
	}
}

func TestStandardWebhooksRules(t *testing.T) {
	vec := standardWebhooksVectors[0]
	v := standardWebhooksVerifier(t, vec.secret, "", vec.timestamp)
	other, _ := DecodeStandardWebhooksSecret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	rotated := &StandardWebhooks{Secrets: [][]byte{other, v.Secrets[0]}, MaxSkew: v.MaxSkew, Now: v.Now}
	tests := []struct {
		name     string
		verifier *StandardWebhooks
		prefix   string
		id, ts   string
		sig      string
		want     error
	}{
		{"quirk_several_signatures_one_matches", v, "webhook", vec.id, vec.timestamp, "v1,Zm9yZ2Vk " + vec.signature, nil},
		{"quirk_unknown_versions_skipped", v, "webhook", vec.id, vec.timestamp, "v2,abc v1b,xyz " + vec.signature, nil},
		{"quirk_only_unknown_versions", v, "webhook", vec.id, vec.timestamp, "v2,abc v9,xyz", ErrMalformedSignature},
		{"quirk_secret_rotation", rotated, "webhook", vec.id, vec.timestamp, vec.signature, nil},
		{"quirk_svix_header_prefix", &StandardWebhooks{Secrets: v.Secrets, HeaderPrefix: "svix", MaxSkew: v.MaxSkew, Now: v.Now}, "svix", vec.id, vec.timestamp, vec.signature, nil},
		{"svix headers to a webhook- verifier", v, "svix", vec.id, vec.timestamp, vec.signature, ErrNotSigned},
		{"no signature", v, "webhook", vec.id, vec.timestamp, "", ErrNotSigned},
		{"no id", v, "webhook", "", vec.timestamp, vec.signature, ErrNotSigned},
		{"no timestamp", v, "webhook", vec.id, "", vec.signature, ErrNoDate},
		{"timestamp not a number", v, "webhook", vec.id, "1614265330.5", vec.signature, ErrMalformedDate},
		{"timestamp negative", v, "webhook", vec.id, "-1614265330", vec.signature, ErrMalformedDate},
		{"stale: 6 minutes old", v, "webhook", vec.id, "1614264970", vec.signature, ErrDateOutsideWindow},
		{"future: 6 minutes ahead", v, "webhook", vec.id, "1614265690", vec.signature, ErrDateOutsideWindow},
		{"another id", v, "webhook", "msg_other", vec.timestamp, vec.signature, ErrBadSignature},
		{"id too long", v, "webhook", strings.Repeat("m", 300), vec.timestamp, vec.signature, ErrMalformedSignature},
		{"too many signatures", v, "webhook", vec.id, vec.timestamp, strings.Repeat("v1,abc ", 40), ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.verifier.Verify(context.Background(), swCallback(tt.prefix, tt.id, tt.ts, tt.sig, vec.body))
			if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzStandardWebhooksSignatureHeader(f *testing.F) {
	vec := standardWebhooksVectors[0]
	f.Add(vec.signature, vec.timestamp, vec.id)
	f.Add("v1a,AAAA v1,==== ,,, v1", "0", "x")
	key, _ := DecodeStandardWebhooksSecret(vec.secret)
	v := &StandardWebhooks{Secrets: [][]byte{key}, MaxSkew: 5 * time.Minute, Now: func() time.Time { return time.Unix(1614265330, 0) }}
	f.Fuzz(func(t *testing.T, signature, timestamp, id string) {
		res, err := v.Verify(context.Background(), swCallback("webhook", id, timestamp, signature, vec.body))
		if err == nil && (id != vec.id || timestamp != vec.timestamp || res.NotificationID != id) {
			t.Fatalf("accepted id %q timestamp %q signature %q", id, timestamp, signature)
		}
	})
}
