package normalize_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// paymentEvents normalizes one provider's callbacks about one payment, in
// the order the provider sends them.
type paymentEvents func(t *testing.T) []*Event

func ixopayEvents(bodies ...string) paymentEvents {
	return func(t *testing.T) []*Event {
		var events []*Event
		for _, body := range bodies {
			ev, err := IXOPAY(&Input{Provider: "ixopay", Body: []byte(body)})
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			events = append(events, ev)
		}
		return events
	}
}

// stripeEvents wraps each {event type, data object} into an event.
func stripeEvents(events ...[2]string) paymentEvents {
	return func(t *testing.T) []*Event {
		var out []*Event
		for i, e := range events {
			body := `{"id":"evt_` + strconv.Itoa(i) + `","object":"event","type":"` + e[0] + `","created":1763634887,"livemode":false,"data":{"object":` + e[1] + `}}`
			ev, err := Stripe(&Input{Provider: "stripe", Body: []byte(body)}, StripeOptions{})
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			out = append(out, ev)
		}
		return out
	}
}

func adyenEvents(items ...string) paymentEvents {
	return func(t *testing.T) []*Event {
		body := `{"live":"false","notificationItems":[`
		for i, item := range items {
			if i > 0 {
				body += ","
			}
			body += `{"NotificationRequestItem":` + item + `}`
		}
		events, err := Adyen(&Input{Provider: "adyen", ContentType: "application/json", Body: []byte(body + `]}`)})
		if err != nil {
			t.Fatal(err)
		}
		return events
	}
}

func mollieEvents(fetched string, nextGen ...string) paymentEvents {
	return func(t *testing.T) []*Event {
		var events []*Event
		if fetched != "" {
			form := []byte("id=tr_Ns6Hh2AwYe")
			evs, err := MolliePayment(&Input{Provider: "mollie", ContentType: "application/x-www-form-urlencoded", Body: form, Original: []byte(`{"id":"tr_Ns6Hh2AwYe"}`), Fetched: []byte(fetched)}, MollieOptions{})
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, evs...)
		}
		for _, body := range nextGen {
			ev, err := MollieEvent(&Input{Provider: "mollie", ContentType: "application/json", Body: []byte(body)}, MollieOptions{})
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			events = append(events, ev)
		}
		return events
	}
}

// TestRefundAndItsCaptureShareThePaymentReference: every event about one
// payment (its authorization, capture, refund, dispute) carries the same
// data.payment_reference, whichever transaction it reports; an event about
// another payment, or about none, does not.
func TestRefundAndItsCaptureShareThePaymentReference(t *testing.T) {
	tests := []struct {
		name   string
		events paymentEvents
		want   []string // each event's payment_reference, in order
	}{
		{
			"ixopay preauthorize, capture, refund, chargeback, reversal",
			ixopayEvents(
				`{"result":"OK","uuid":"p1","transactionType":"PREAUTHORIZE","amount":"9.99","currency":"EUR"}`,
				`{"result":"OK","uuid":"c1","referenceUuid":"p1","transactionType":"CAPTURE","amount":"9.99","currency":"EUR"}`,
				`{"result":"OK","uuid":"r1","referenceUuid":"p1","transactionType":"REFUND","amount":"4.00","currency":"EUR"}`,
				// As IXOPAY publishes them: no referenceUuid, the original in chargebackData.
				`{"result":"OK","uuid":"cb1","transactionType":"CHARGEBACK","amount":"5.99","currency":"EUR","chargebackData":{"originalUuid":"p1"}}`,
				`{"result":"OK","uuid":"cr1","referenceUuid":"cb1","transactionType":"CHARGEBACK-REVERSAL","amount":"5.99","currency":"EUR","chargebackReversalData":{"originalUuid":"p1","chargebackUuid":"cb1"}}`,
			),
			[]string{"p1", "p1", "p1", "p1", "p1"},
		},
		{
			"ixopay debit and its refund",
			ixopayEvents(
				`{"result":"OK","uuid":"d1","transactionType":"DEBIT","amount":"9.99","currency":"EUR"}`,
				`{"result":"OK","uuid":"r1","referenceUuid":"d1","transactionType":"REFUND","amount":"9.99","currency":"EUR"}`,
			),
			[]string{"d1", "d1"},
		},
		{
			// A recurring debit names the series' first transaction in
			// referenceUuid: it is a payment of its own all the same.
			"ixopay recurring debit, registration",
			ixopayEvents(
				`{"result":"OK","uuid":"d2","referenceUuid":"d1","transactionType":"DEBIT","amount":"9.99","currency":"EUR"}`,
				`{"result":"OK","uuid":"rg1","transactionType":"REGISTER"}`,
			),
			[]string{"d2", ""},
		},
		{
			"stripe payment intent, its charge captured, refunded, disputed",
			stripeEvents(
				[2]string{"payment_intent.succeeded", `{"id":"pi_1","object":"payment_intent","amount":999,"amount_received":999,"currency":"eur"}`},
				[2]string{"charge.captured", `{"id":"ch_1","object":"charge","payment_intent":"pi_1","amount":999,"amount_captured":999,"currency":"eur"}`},
				[2]string{"refund.created", `{"id":"re_1","object":"refund","payment_intent":"pi_1","charge":"ch_1","amount":400,"currency":"eur","status":"succeeded"}`},
				[2]string{"charge.dispute.created", `{"id":"dp_1","object":"dispute","payment_intent":"pi_1","charge":"ch_1","amount":599,"currency":"eur"}`},
				[2]string{"checkout.session.completed", `{"id":"cs_1","object":"checkout.session","payment_intent":"pi_1","amount_total":999,"currency":"eur","payment_status":"paid"}`},
			),
			[]string{"pi_1", "pi_1", "pi_1", "pi_1", "pi_1"},
		},
		{
			// Charges API: no PaymentIntent, the charge is the payment.
			"stripe charge without payment intent and its refund; a setup intent",
			stripeEvents(
				[2]string{"charge.captured", `{"id":"ch_2","object":"charge","payment_intent":null,"amount":999,"amount_captured":999,"currency":"eur"}`},
				[2]string{"refund.created", `{"id":"re_2","object":"refund","payment_intent":null,"charge":"ch_2","amount":999,"currency":"eur","status":"succeeded"}`},
				// A SetupIntent moves no money: no payment.
				[2]string{"setup_intent.succeeded", `{"id":"seti_1","object":"setup_intent","status":"succeeded"}`},
			),
			[]string{"ch_2", "ch_2", ""},
		},
		{
			"adyen authorisation, capture, refund, chargeback; a report",
			adyenEvents(
				`{"eventCode":"AUTHORISATION","success":"true","pspReference":"P1","merchantAccountCode":"Shop","merchantReference":"o1","amount":{"value":999,"currency":"EUR"}}`,
				`{"eventCode":"CAPTURE","success":"true","pspReference":"C1","originalReference":"P1","merchantAccountCode":"Shop","merchantReference":"o1","amount":{"value":999,"currency":"EUR"}}`,
				`{"eventCode":"REFUND","success":"true","pspReference":"R1","originalReference":"P1","merchantAccountCode":"Shop","merchantReference":"o1","amount":{"value":400,"currency":"EUR"}}`,
				`{"eventCode":"CHARGEBACK","success":"true","pspReference":"CB1","originalReference":"P1","merchantAccountCode":"Shop","merchantReference":"o1","amount":{"value":599,"currency":"EUR"}}`,
				`{"eventCode":"REPORT_AVAILABLE","success":"true","pspReference":"settlement_detail_report_batch_12.csv","merchantAccountCode":"Shop","merchantReference":"","amount":{"value":0,"currency":"EUR"}}`,
			),
			[]string{"P1", "P1", "P1", "P1", ""},
		},
		{
			"mollie payment with its refund and chargeback; next-gen payment and refund events",
			mollieEvents(
				`{"resource":"payment","id":"tr_Ns6Hh2AwYe","mode":"test","status":"paid","amount":{"value":"10.00","currency":"EUR"},`+
					`"_embedded":{"refunds":[{"resource":"refund","id":"re_1","status":"refunded","amount":{"value":"4.00","currency":"EUR"},"paymentId":"tr_Ns6Hh2AwYe","createdAt":"2026-11-20T10:00:00+00:00"}],`+
					`"chargebacks":[{"resource":"chargeback","id":"chb_1","amount":{"value":"6.00","currency":"EUR"},"paymentId":"tr_Ns6Hh2AwYe","createdAt":"2026-11-21T10:00:00+00:00"}]}}`,
				`{"resource":"event","id":"event_1","type":"payment.paid","entityId":"tr_Ns6Hh2AwYe","createdAt":"2026-11-20T09:15:02+00:00",`+
					`"_embedded":{"entity":{"resource":"payment","id":"tr_Ns6Hh2AwYe","status":"paid","amount":{"value":"10.00","currency":"EUR"}}}}`,
				`{"resource":"event","id":"event_2","type":"refund.refunded","entityId":"re_1","createdAt":"2026-11-20T10:00:00+00:00",`+
					`"_embedded":{"entity":{"resource":"refund","id":"re_1","status":"refunded","paymentId":"tr_Ns6Hh2AwYe","amount":{"value":"4.00","currency":"EUR"}}}}`,
				// A simple payload: the payment's id is the entity's.
				`{"resource":"event","id":"event_3","type":"payment.paid","entityId":"tr_Ns6Hh2AwYe","createdAt":"2026-11-20T09:15:02+00:00"}`,
				// A payment link names no payment.
				`{"resource":"event","id":"event_4","type":"payment-link.paid","entityId":"pl_1","createdAt":"2026-11-20T09:15:02+00:00"}`,
			),
			[]string{"tr_Ns6Hh2AwYe", "tr_Ns6Hh2AwYe", "tr_Ns6Hh2AwYe", "tr_Ns6Hh2AwYe", "tr_Ns6Hh2AwYe", "tr_Ns6Hh2AwYe", ""},
		},
	}
	receivedAt := time.Date(2026, 11, 20, 10, 34, 48, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := tt.events(t)
			if len(events) != len(tt.want) {
				t.Fatalf("%d events, want %d", len(events), len(tt.want))
			}
			for i, ev := range events {
				if ev.PaymentReference != tt.want[i] {
					t.Errorf("event %d (%s %s): payment_reference %q, want %q", i, ev.ProviderStatus, ev.ProviderReference, ev.PaymentReference, tt.want[i])
				}
				envelope := Encode(ev, verify.Result{Method: "hmac-sha256"}, receivedAt)
				envelopetest.Check(t, envelope)
				want := []byte(`"payment_reference":null,`)
				if tt.want[i] != "" {
					want = []byte(`"payment_reference":"` + tt.want[i] + `",`)
				}
				if !bytes.Contains(envelope, want) {
					t.Errorf("event %d: envelope lacks %s:\n%s", i, want, envelope)
				}
			}
		})
	}
}

// The payment reference tells the shop which events belong together; it
// does not make two notifications one: the event id ignores it.
func TestPaymentReferenceTakesNoPartInTheEventID(t *testing.T) {
	ev := func(paymentReference string) *Event {
		return &Event{Provider: "ixopay", Object: ObjectPayment, Status: StatusRefunded, ProviderStatus: "REFUND OK",
			ProviderReference: "r1", PaymentReference: paymentReference, Original: []byte(`{}`)}
	}
	if ev("p1").ID() != ev("").ID() {
		t.Error("the payment reference changed the event id")
	}
}

// A mapping reads the payment reference from the first of its paths that
// holds one: a refund's payment before a payment's own id.
func TestMappingPaymentReference(t *testing.T) {
	m := Mapping{
		ID: Paths{"id"}, Status: []string{"type"}, Statuses: map[string]string{"payment.paid": "captured", "refund.succeeded": "refunded"},
		ProviderReference: Paths{"data.id"}, PaymentReference: Paths{"data.payment_id", "data.id"},
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`{"id":"e1","type":"payment.paid","data":{"id":"pay_1"}}`:                          "pay_1",
		`{"id":"e2","type":"refund.succeeded","data":{"id":"ref_1","payment_id":"pay_1"}}`: "pay_1",
	} {
		events, err := m.Map(&Input{Provider: "generic", ContentType: "application/json", Body: []byte(body)}, MappingInput{Mapped: true})
		if err != nil || len(events) != 1 || events[0].PaymentReference != want {
			t.Errorf("%s: %+v, %v; want payment_reference %q", body, events, err, want)
		}
	}
	if events, err := (&Mapping{ProviderReference: Paths{"id"}}).Map(&Input{Provider: "generic", ContentType: "application/json", Body: []byte(`{"id":"x"}`)}, MappingInput{}); err != nil || events[0].PaymentReference != "" {
		t.Errorf("without payment_reference paths: %+v, %v; want none", events, err)
	}
	bad := Mapping{PaymentReference: Paths{"a|b"}}
	if err := bad.Check(); err == nil {
		t.Error("a payment_reference path with a pipe passed the check")
	}
}
