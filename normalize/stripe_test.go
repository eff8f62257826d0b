package normalize_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

func stripe(in *Input) (*Event, error) { return Stripe(in, StripeOptions{}) }

func TestStripeGolden(t *testing.T) {
	runGolden(t, "stripe", stripe, func(req *http.Request, _ *Input) verify.Result {
		ts, _, _ := strings.Cut(strings.TrimPrefix(req.Header.Get("Stripe-Signature"), "t="), ",")
		return verify.Result{Method: "hmac-sha256", Date: ts}
	})
}

// Stripe's smallest units are not always ISO 4217's: a test per special
// case of stripe.com/docs/currencies.
func TestStripeAmountSpecialCurrencies(t *testing.T) {
	for _, tt := range []struct {
		name, amount, currency string
		want                   int64
		err                    error
	}{
		{"quirk_usd_two_decimal", "999", "usd", 999, nil},
		{"quirk_jpy_zero_decimal_both", "500", "jpy", 500, nil},
		{"quirk_mga_zero_decimal_in_stripe_two_in_iso", "100", "mga", 10000, nil},
		{"quirk_ugx_zero_decimal_both", "5000", "ugx", 5000, nil},
		{"quirk_isk_two_decimal_in_stripe_none_in_iso", "50000", "isk", 500, nil},
		{"quirk_isk_fractional_krona_is_inexact", "4010", "isk", 0, ErrInexactAmount},
		{"quirk_huf_two_decimal_in_the_api", "100000", "huf", 100000, nil},
		{"quirk_twd_two_decimal_in_the_api", "1500", "twd", 1500, nil},
		{"quirk_kwd_three_decimal", "5120", "kwd", 5120, nil},
		{"quirk_bhd_three_decimal", "1000", "bhd", 1000, nil},
		{"unknown currency", "100", "xyz", 0, ErrUnknownCurrency},
		{"fraction of a unit", "100.5", "eur", 0, ErrInexactAmount},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StripeAmount(tt.amount, tt.currency)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got.MinorUnits != tt.want || got.Currency != strings.ToUpper(tt.currency) {
				t.Errorf("StripeAmount(%s %s) = %+v, %v; want %d", tt.amount, tt.currency, got, err, tt.want)
			}
		})
	}
}

// The merchant reference: a checkout session's client_reference_id, else
// the configured metadata key.
func TestStripeMerchantReference(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"payment_intent.succeeded","livemode":false,"created":1700000000,` +
		`"data":{"object":{"id":"pi_1","amount":100,"amount_received":100,"currency":"eur","metadata":{"order_id":"o-1","shop.order":"o-2"}}}}`)
	for key, want := range map[string]string{"": "o-1", "shop.order": "o-2", "missing": ""} {
		ev, err := Stripe(&Input{Provider: "stripe", Body: body}, StripeOptions{MetadataKey: key})
		if err != nil || ev.MerchantReference != want {
			t.Errorf("metadata key %q: %q, %v; want %q", key, ev.MerchantReference, err, want)
		}
	}
}

// Two events about one PaymentIntent are two notifications; a retry of one
// (the same evt_ id) is the same.
func TestStripeEventIdentity(t *testing.T) {
	mk := func(id, eventType string) string {
		ev, err := Stripe(&Input{Provider: "stripe", Body: []byte(`{"id":"` + id + `","type":"` + eventType + `","livemode":false,"created":1,` +
			`"data":{"object":{"id":"pi_1","amount":100,"amount_received":100,"currency":"eur"}}}`)}, StripeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	first, retry := mk("evt_1", "payment_intent.succeeded"), mk("evt_1", "payment_intent.succeeded")
	if first != retry || first == mk("evt_2", "payment_intent.succeeded") {
		t.Error("the event id must follow Stripe's event id")
	}
}

func TestStripeSampleRoundTrips(t *testing.T) {
	for _, status := range []Status{StatusCaptured, StatusPending, StatusAuthorized, StatusFailed, StatusCancelled} {
		for _, amount := range []Amount{{MinorUnits: 1234, Currency: "EUR"}, {MinorUnits: 10000, Currency: "MGA"}, {MinorUnits: 500, Currency: "ISK"}} {
			body, _, err := StripeSample(Sample{Status: status, Amount: amount, MerchantReference: "o-1", ProviderReference: "42"})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Stripe(&Input{Provider: "stripe", Body: body}, StripeOptions{})
			if err != nil || ev.Status != status || ev.MerchantReference != "o-1" || (ev.Amount != nil && *ev.Amount != amount) {
				t.Errorf("%s %v: %+v, %v", status, amount, ev, err)
			}
			envelopetest.Check(t, Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now()))
		}
	}
}

// The thin sample with the object it names maps as the snapshot sample.
func TestStripeThinSampleRoundTrips(t *testing.T) {
	for _, status := range []Status{StatusCaptured, StatusPending, StatusAuthorized, StatusFailed, StatusCancelled} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1234, Currency: "EUR"}, MerchantReference: "o-1", ProviderReference: "42"}
		thin, _, err := StripeThinSample(s)
		if err != nil {
			t.Fatal(err)
		}
		path, object, err := StripeSampleObject(s)
		if err != nil {
			t.Fatal(err)
		}
		id, named, _, err := StripeThinObject(thin)
		if err != nil || id != "pi_42" || named != path || !StripeThinEvent(thin) {
			t.Errorf("%s: the thin sample names %s at %s (%v), the object is at %s", status, id, named, err, path)
		}
		ev, err := StripeThin(&Input{Provider: "stripe", Body: thin, Fetched: object}, StripeOptions{})
		if err != nil || ev.Status != status || ev.MerchantReference != "o-1" || (ev.Amount != nil && *ev.Amount != s.Amount) {
			t.Errorf("%s: %+v, %v", status, ev, err)
		}
	}
}

func FuzzStripe(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","livemode":true,"created":1,"data":{"object":{"id":"ch_1","amount":100,"amount_refunded":50,"currency":"isk"}}}`))
	f.Add([]byte(`{"id":"evt_1","type":"customer.subscription.updated","data":{"object":{"id":"sub_1","status":"active","cancel_at_period_end":true}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Stripe(&Input{Provider: "stripe", Body: body}, StripeOptions{})
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "hmac-sha256"}, time.Now())); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v", err)
		}
	})
}

// The golden requests are what Stripe would send: signed, with crypto/hmac
// alone (not payhook's verifier), by the secret SOURCES.md names.
func TestStripeGoldenRequestsAreSigned(t *testing.T) {
	files, _ := filepath.Glob("testdata/stripe/*.in")
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		head, body, _ := bytes.Cut(raw, []byte("\n\n"))
		var header string
		for _, line := range strings.Split(string(head), "\n") {
			if v, ok := strings.CutPrefix(line, "Stripe-Signature: "); ok {
				header = v
			}
		}
		ts, sig, _ := strings.Cut(strings.TrimPrefix(header, "t="), ",v1=")
		mac := hmac.New(sha256.New, []byte("whsec_payhook_golden"))
		mac.Write([]byte(ts + "." + string(body)))
		if want := hex.EncodeToString(mac.Sum(nil)); sig != want {
			t.Errorf("%s: Stripe-Signature v1 %q, want %q", file, sig, want)
		}
	}
}

// A thin event with the object fetched for it maps as the snapshot event
// of its type, its id the thin event's (Stripe keeps it across retries),
// data.original the snapshot-shaped document.
func TestStripeThin(t *testing.T) {
	thin := []byte(`{"id":"evt_65R9","object":"v2.core.event","type":"v1.charge.refunded","livemode":true,"created":"2026-12-07T10:00:00.123Z",` +
		`"related_object":{"id":"ch_1","type":"charge","url":"/v1/charges/ch_1"},"context":null}`)
	fetched := []byte(`{"id":"ch_1","object":"charge","amount":4000,"amount_refunded":4000,"currency":"eur","refunded":true,"payment_intent":"pi_1","metadata":{"order_id":"o-1"}}`)
	ev, err := StripeThin(&Input{Provider: "stripe", ContentType: "application/json", Body: thin, Fetched: fetched}, StripeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := []byte(`{"id":"evt_65R9","object":"event","type":"charge.refunded","livemode":true,"created":1796637600,"data":{"object":` + string(fetched) + `}}`)
	want, err := Stripe(&Input{Provider: "stripe", ContentType: "application/json", Body: snapshot}, StripeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != want.Status || *ev.Amount != *want.Amount || ev.ID() != want.ID() || ev.PaymentReference != "pi_1" ||
		ev.MerchantReference != "o-1" || *ev.Test || !ev.Time.Equal(time.Unix(1796637600, 0)) {
		t.Errorf("thin: %+v\nsnapshot: %+v", ev, want)
	}
	if !gjson.ValidBytes(ev.Original) || gjson.GetBytes(ev.Original, "data.object.id").Str != "ch_1" || gjson.GetBytes(ev.Original, "related_object.url").Str != "/v1/charges/ch_1" {
		t.Errorf("original %s", ev.Original)
	}
	if !StripeThinEvent(thin) || StripeThinEvent(snapshot) {
		t.Error("StripeThinEvent")
	}
}

// Whatever the thin event and the fetched object, StripeThin either fails
// or makes an event whose original is JSON and whose id is the thin
// event's.
func FuzzStripeThin(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","object":"v2.core.event","type":"v1.payment_intent.succeeded","created":"2026-12-07T10:00:00Z","related_object":{"id":"pi_1","url":"/v1/payment_intents/pi_1"}}`),
		[]byte(`{"id":"pi_1","object":"payment_intent","amount":100,"currency":"eur"}`))
	f.Add([]byte(`{"id":"evt_\u2028","type":"v2.x","created":"x"}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, thin, fetched []byte) {
		ev, err := StripeThin(&Input{Provider: "stripe", ContentType: "application/json", Body: thin, Fetched: fetched}, StripeOptions{})
		if err != nil {
			return
		}
		if !gjson.ValidBytes(ev.Original) {
			t.Fatalf("original not JSON: %s", ev.Original)
		}
		if ev.NotificationID != gjson.GetBytes(thin, "id").String() {
			t.Fatalf("id %q, thin %q", ev.NotificationID, gjson.GetBytes(thin, "id").String())
		}
	})
}
