package normalize_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/normalize/envelopetest"
	"github.com/payhook/payhook/verify"
)

// goldenBraintreeKey signs the golden requests (SOURCES.md).
var goldenBraintreeKey = verify.BraintreeKey{PublicKey: "golden_public_key", PrivateKey: []byte("golden_private_key")}

func TestBraintreeGolden(t *testing.T) {
	runGolden(t, "braintree", Braintree, func(*http.Request, *Input) verify.Result {
		return verify.Result{Method: "hmac-sha1"}
	})
}

// The golden requests are signed as Braintree signs (the SDK's samples by
// the SDK itself, the others by a script), each with the golden key.
func TestBraintreeGoldenRequestsAreSigned(t *testing.T) {
	files, _ := filepath.Glob("testdata/braintree/*.in")
	for _, file := range files {
		_, body := ReadRawRequest(t, file)
		signature, payload, err := verify.ParseBraintreeForm(body)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, err := verify.CheckBraintreeSignature([]verify.BraintreeKey{goldenBraintreeKey}, signature, payload); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

func TestDecodeBraintreeXML(t *testing.T) {
	for _, tt := range []struct {
		name, xml, want string
		err             bool
	}{
		{"types", `<n><a type="array"><i>x</i><i type="integer">-12</i></a><b type="boolean">true</b><c nil="true"/><d/><e type="integer">007</e></n>`,
			`{"n":{"a":["x",-12],"b":true,"c":null,"d":"","e":"007"}}`, false},
		{"repeated names become an array", `<n><t>1</t><u>2</u><t>3</t></n>`, `{"n":{"t":["1","3"],"u":"2"}}`, false},
		{"entities of XML only", `<n>&lt;&amp;&#65;</n>`, `{"n":"<&A"}`, false},
		{"text with quotes and controls", "<n>a\"b\\\tc</n>", `{"n":"a\"b\\\tc"}`, false},
		{"declaration and comments", `<?xml version="1.0" encoding="UTF-8"?><!-- c --><n>1</n>`, `{"n":"1"}`, false},
		{"empty array", `<n><a type="array"/></n>`, `{"n":{"a":[]}}`, false},
		{"doctype", `<!DOCTYPE n [<!ENTITY e "x">]><n>&e;</n>`, "", true},
		{"undeclared entity", `<n>&e;</n>`, "", true},
		{"external entity", `<!DOCTYPE n SYSTEM "file:///etc/passwd"><n/>`, "", true},
		{"two roots", `<n/><m/>`, "", true},
		{"text outside", `x<n/>`, "", true},
		{"unclosed", `<n><m></n>`, "", true},
		{"not closed", `<n>`, "", true},
		{"empty", ``, "", true},
		{"processing instruction", `<n><?php x?></n>`, "", true},
		{"another charset", `<?xml version="1.0" encoding="ISO-8859-1"?><n/>`, "", true},
		{"too deep", strings.Repeat("<a>", MaxBraintreeXMLDepth+1) + strings.Repeat("</a>", MaxBraintreeXMLDepth+1), "", true},
		{"deep enough", strings.Repeat("<a>", MaxBraintreeXMLDepth) + strings.Repeat("</a>", MaxBraintreeXMLDepth), "", false},
		{"too many elements", "<n>" + strings.Repeat("<a/>", MaxBraintreeXMLElements) + "</n>", "", true},
		{"too many attributes", `<n a="1" b="1" c="1" d="1" e="1" f="1" g="1" h="1" i="1"/>`, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBraintreeXML([]byte(tt.xml))
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || (tt.want != "" && string(got) != tt.want) {
				t.Errorf("= %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// The id rule: a retry (the same form again, or the same notification
// signed anew with its payload wrapped otherwise) has the same id; another
// timestamp, another charge of the subscription, another kind do not.
func TestBraintreeEventID(t *testing.T) {
	notification := func(timestamp, kind, chargeID string) *Input {
		xml := `<?xml version="1.0" encoding="UTF-8"?><notification><timestamp type="datetime">` + timestamp + `</timestamp><kind>` + kind +
			`</kind><subject><subscription><id>sub_1</id><transactions type="array"><transaction><id>` + chargeID +
			`</id><amount>9.99</amount><currency-iso-code>EUR</currency-iso-code></transaction></transactions></subscription></subject></notification>`
		payload := encodeBase64Lines([]byte(xml))
		form := url.Values{"bt_signature": {verify.SignBraintree(goldenBraintreeKey, payload)}, "bt_payload": {payload}}
		return &Input{Provider: "braintree", ContentType: "application/x-www-form-urlencoded", Body: []byte(form.Encode())}
	}
	id := func(in *Input) string {
		t.Helper()
		ev, err := Braintree(in)
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	first := id(notification("2026-11-20T10:34:47Z", "subscription_charged_successfully", "c1"))
	if again := id(notification("2026-11-20T10:34:47Z", "subscription_charged_successfully", "c1")); again != first {
		t.Error("a retry has another id")
	}
	for name, in := range map[string]*Input{
		"next month":  notification("2026-12-20T10:34:47Z", "subscription_charged_successfully", "c2"),
		"same second": notification("2026-11-20T10:34:47Z", "subscription_charged_successfully", "c2"),
		"later":       notification("2026-11-20T10:34:48Z", "subscription_charged_successfully", "c1"),
		"failed":      notification("2026-11-20T10:34:47Z", "subscription_charged_unsuccessfully", "c1"),
	} {
		if id(in) == first {
			t.Errorf("%s: same id as the first notification", name)
		}
	}
}

// encodeBase64Lines encodes as Braintree's gateway does (Ruby's
// Base64.encode64): lines of 60 characters, each ending in a newline.
func encodeBase64Lines(b []byte) string {
	var out strings.Builder
	s := base64Std(b)
	for len(s) > 60 {
		out.WriteString(s[:60] + "\n")
		s = s[60:]
	}
	out.WriteString(s + "\n")
	return out.String()
}

func TestBraintreeSample(t *testing.T) {
	for _, status := range []Status{StatusCaptured, StatusFailed, StatusRefunded, StatusRefundFailed, StatusChargeback, StatusChargebackReversed} {
		s := Sample{Status: status, Amount: Amount{MinorUnits: 1999, Currency: "EUR"}, MerchantReference: "o-<1>", ProviderReference: "tx1"}
		xml, err := BraintreeSampleXML(s, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		payload := base64Std(xml)
		form := url.Values{"bt_signature": {verify.SignBraintree(goldenBraintreeKey, payload)}, "bt_payload": {payload}}
		ev, err := Braintree(&Input{Provider: "braintree", Body: []byte(form.Encode())})
		if err != nil || ev.Status != status || ev.MerchantReference != "o-<1>" || ev.PaymentReference != "tx1" || *ev.Amount != s.Amount {
			t.Errorf("%s: %+v, %v", status, ev, err)
			continue
		}
		envelopetest.Check(t, Encode(ev, verify.Result{Method: "hmac-sha1"}, time.Now()))
	}
	if _, err := BraintreeSampleXML(Sample{Status: StatusPending, Amount: Amount{MinorUnits: 1, Currency: "EUR"}}, time.Now()); err == nil {
		t.Error("a pending sample was made")
	}
}

func FuzzDecodeBraintreeXML(f *testing.F) {
	f.Add([]byte(`<n><a type="array"><i>x</i></a><b type="boolean">true</b><c nil="true"/><e type="integer">-7</e></n>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE n><n>&amp;</n>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := DecodeBraintreeXML(doc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !gjson.ValidBytes(out) || !bytes.HasPrefix(out, []byte("{")) {
			t.Fatalf("not a JSON object: %s", out)
		}
	})
}

func FuzzBraintree(f *testing.F) {
	files, _ := filepath.Glob("testdata/braintree/*.in")
	for _, file := range files {
		_, body := ReadRawRequest(f, file)
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Braintree(&Input{Provider: "braintree", ContentType: "application/x-www-form-urlencoded", Body: body})
		if err != nil {
			for _, sentinel := range []error{ErrMalformed, ErrMissingField, ErrInexactAmount, ErrUnknownCurrency} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if err := envelopetest.Validate(Encode(ev, verify.Result{Method: "hmac-sha1"}, time.Now())); err != nil {
			t.Fatalf("accepted payload gives an invalid envelope: %v", err)
		}
	})
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
