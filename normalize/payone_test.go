package normalize_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func TestPayoneGolden(t *testing.T) {
	runGolden(t, "payone", Payone, func(*http.Request, *Input) verify.Result {
		return verify.Result{Method: "portal-key-md5", Also: []string{"ip-allowlist"}}
	})
}

// TestDecodeLatin1Form: PAYONE's forms are ISO-8859-1; each byte above
// 0x7F, raw or %-escaped, is the code point of its value.
func TestDecodeLatin1Form(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		want string
	}{
		{"ascii", "a=b&c=d+e", `{"a":"b","c":"d e"}`},
		{"escaped umlauts", "street=J%E4gerweg+12&name=M%FCller%20%D6%C4%DC%DF", `{"street":"Jägerweg 12","name":"Müller ÖÄÜß"}`},
		{"raw umlauts", "name=M\xfcller&city=K\xf6ln", `{"name":"Müller","city":"Köln"}`},
		{"lower-case escapes", "name=M%fcller", `{"name":"Müller"}`},
		{"0x80 to 0x9f are C1 controls, not Windows-1252", "a=%80&b=\x9f", `{"a":"\u0080","b":"\u009f"}`},
		{"0xff", "a=%FF\xff", `{"a":"ÿÿ"}`},
		{"an escaped separator stays data", "a=1%262%3D3", `{"a":"1&2=3"}`},
		{"an invalid escape stays", "a=%E&b=%G4&c=%", `{"a":"%E","b":"%G4","c":"%"}`},
		{"high bytes in keys", "n%E4me=x&\xe9=y", `{"näme":"x","é":"y"}`},
		{"nesting as PHP", "de[1]=Sch%FChe&de[2]=Hut&a.b=1", `{"de":{"1":"Schühe","2":"Hut"},"a_b":"1"}`},
		{"UTF-8 bytes are read as two Latin-1 characters", "a=%C3%A4", `{"a":"Ã¤"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DecodeLatin1Form([]byte(c.body))
			if !jsonEqual(t, got, []byte(c.want)) {
				t.Fatalf("DecodeLatin1Form(%q) = %s, want %s", c.body, got, c.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

const payoneKey = "3c6e0b8a9c15224a8228b9a98ca1531d"

func payoneInput(body string) *Input {
	return &Input{Provider: "payone", ContentType: "application/x-www-form-urlencoded", Body: []byte(body)}
}

func payoneEvent(t *testing.T, body string) *Event {
	t.Helper()
	ev, err := Payone(payoneInput(body))
	if err != nil {
		t.Fatalf("Payone(%q): %v", body, err)
	}
	return ev
}

func TestPayoneDecodeBounds(t *testing.T) {
	fields := strings.Repeat("x=1&", PayoneMaxFields-1) + "key=" + payoneKey
	creds, err := PayoneDecode(payoneInput(fields))
	if err != nil || creds.Key != payoneKey {
		t.Fatalf("%d fields: %+v, %v", PayoneMaxFields, creds, err)
	}
	if _, err := PayoneDecode(payoneInput("key=" + payoneKey + strings.Repeat("&x=1", PayoneMaxFields))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d fields: %v, want ErrMalformed", PayoneMaxFields+1, err)
	}
	for body, want := range map[string]PayoneCredentials{
		"key=" + payoneKey + "&portalid=1&aid=2":   {Key: payoneKey, PortalID: "1", AccountID: "2"},
		"key[]=" + payoneKey + "&portalid=1&aid=2": {PortalID: "1", AccountID: "2"}, // an array is no key
		"key=a&key=b": {Key: "b"}, // PHP: the last one
		"0=a&1=b":     {},         // a list, not fields
		"":            {},
	} {
		if got, err := PayoneDecode(payoneInput(body)); err != nil || got != want {
			t.Errorf("PayoneDecode(%q) = %+v, %v; want %+v", body, got, err, want)
		}
	}
}

// TestPayoneOriginalHasNoKey: the key authenticates PAYONE's notifications;
// whoever learns it can make them, so it never reaches the shop.
func TestPayoneOriginalHasNoKey(t *testing.T) {
	ev := payoneEvent(t, "key="+payoneKey+"&txaction=paid&txid=1&currency=EUR&price=1.00&keyword=x&portalid=1")
	if bytes.Contains(ev.Original, []byte(payoneKey)) || !json.Valid(ev.Original) {
		t.Fatalf("original: %s", ev.Original)
	}
	if !jsonEqual(t, ev.Original, []byte(`{"txaction":"paid","txid":"1","currency":"EUR","price":"1.00","keyword":"x","portalid":"1"}`)) {
		t.Fatalf("original: %s", ev.Original)
	}
}

// TestPayoneEventIdentity: a retry (the same notification again) has the
// same id; notifications PAYONE sends about one transaction with one
// txaction and sequencenumber, which tell the shop something new, do not.
func TestPayoneEventIdentity(t *testing.T) {
	const common = "key=" + payoneKey + "&portalid=1234567&aid=12345&mode=live&clearingtype=wlt&currency=EUR&txid=385247150&price=1.11&sequencenumber=0"
	ids := map[string]string{}
	for name, body := range map[string]string{
		"appointed pending":          common + "&txaction=appointed&transaction_status=pending&balance=0.00&receivable=0.00",
		"appointed completed":        common + "&txaction=appointed&transaction_status=completed&balance=1.11&receivable=1.11",
		"paid":                       common + "&txaction=paid&transaction_status=completed&balance=0.00&receivable=1.11",
		"underpaid, first transfer":  common + "&txaction=underpaid&transaction_status=completed&balance=0.80&receivable=1.11",
		"underpaid, second transfer": common + "&txaction=underpaid&transaction_status=completed&balance=0.30&receivable=1.11",
		"reminder level 1":           common + "&txaction=reminder&reminderlevel=1&balance=1.11&receivable=1.11",
		"reminder level 2":           common + "&txaction=reminder&reminderlevel=2&balance=1.11&receivable=1.11",
		"capture, seq 1":             strings.Replace(common, "sequencenumber=0", "sequencenumber=1", 1) + "&txaction=capture&balance=0.50&receivable=0.50",
		"capture, seq 2":             strings.Replace(common, "sequencenumber=0", "sequencenumber=2", 1) + "&txaction=capture&balance=0.50&receivable=0.50",
	} {
		id := payoneEvent(t, body).ID()
		if other, ok := ids[id]; ok {
			t.Errorf("%s and %s share the id %s", name, other, id)
		}
		ids[id] = name
		// A retry: the same fields (PAYONE resends the notification).
		if again := payoneEvent(t, body).ID(); again != id {
			t.Errorf("%s: a retry has the id %s, not %s", name, again, id)
		}
		// Fields that are no news (the customer's details, the order of
		// the fields, an amount written with more zeros) do not change it.
		reordered := strings.Replace(body+"&firstname=J%F6rg", "&price=1.11", "", 1) + "&price=1.110"
		if again := payoneEvent(t, reordered).ID(); again != id {
			t.Errorf("%s: reordered, the id is %s, not %s", name, again, id)
		}
	}
}

func TestPayoneStatuses(t *testing.T) {
	const common = "key=" + payoneKey + "&currency=EUR&txid=1&price=100.00&"
	for _, c := range []struct {
		body string
		want Status
	}{
		{"txaction=appointed&clearingtype=cc&receivable=0.00", StatusAuthorized},
		{"txaction=appointed&clearingtype=cc", StatusAuthorized},
		{"txaction=appointed&clearingtype=cc&receivable=100.00", StatusCaptured},
		{"txaction=appointed&clearingtype=cc&transaction_status=pending&receivable=0.00", StatusPending},
		{"txaction=appointed&clearingtype=vor&receivable=100.00", StatusPending},
		{"txaction=appointed&clearingtype=rec&receivable=0.00", StatusPending},
		{"txaction=capture&clearingtype=cc&receivable=100.00", StatusCaptured},
		{"txaction=capture&clearingtype=rec&receivable=100.00", StatusPending},
		{"txaction=capture&clearingtype=cod&receivable=100.00", StatusPending},
		{"txaction=paid&clearingtype=vor&receivable=100.00&balance=0.00", StatusCaptured},
		{"txaction=underpaid&clearingtype=vor&receivable=100.00&balance=40.00", StatusPending},
		{"txaction=cancelation&clearingtype=elv", StatusChargeback},
		{"txaction=refund&receivable=0.00", StatusRefunded},
		{"txaction=refund&receivable=30.00", StatusPartiallyRefunded},
		{"txaction=refund&transaction_status=pending&receivable=0.00", StatusRefundPending},
		{"txaction=debit&receivable=0.00", StatusRefunded},
		{"txaction=debit&receivable=70.00", StatusPartiallyRefunded},
		{"txaction=debit&receivable=120.00&clearingtype=cc", StatusCaptured},
		{"txaction=debit&receivable=120.00&clearingtype=vor", StatusPending},
		{"txaction=debit", StatusUnknown},
		{"txaction=failed&failedcause=x", StatusFailed},
		{"txaction=reminder&reminderlevel=2", StatusUnknown},
		{"txaction=transfer", StatusUnknown},
		{"txaction=invoice", StatusUnknown},
		{"txaction=vauthorization", StatusUnknown},
		{"txaction=vsettlement", StatusUnknown},
		{"txaction=Paid", StatusUnknown}, // PAYONE writes its actions in lower case
	} {
		ev := payoneEvent(t, common+c.body)
		if ev.Status != c.want {
			t.Errorf("%s: %s, want %s", c.body, ev.Status, c.want)
		}
		if unmapped := c.body == "txaction=Paid"; ev.Unmapped != unmapped {
			t.Errorf("%s: unmapped %v", c.body, ev.Unmapped)
		}
		if (ev.Status == StatusFailed) != (ev.Failure != nil) {
			t.Errorf("%s: failure %+v", c.body, ev.Failure)
		}
	}
}

func TestPayoneSampleRoundTrip(t *testing.T) {
	for _, status := range []Status{StatusPending, StatusAuthorized, StatusCaptured, StatusRefunded, StatusPartiallyRefunded, StatusChargeback, StatusFailed} {
		body, contentType, err := PayoneSample(Sample{Status: status, Amount: Amount{MinorUnits: 1050, Currency: "EUR"}, MerchantReference: "order-1", ProviderReference: "4711"}, "2000002", "12345")
		if err != nil || contentType != "application/x-www-form-urlencoded" {
			t.Fatalf("%s: %v", status, err)
		}
		in := payoneInput("key=" + payoneKey + "&" + string(body))
		creds, err := PayoneDecode(in)
		if err != nil || creds.PortalID != "2000002" || creds.AccountID != "12345" {
			t.Fatalf("%s: %+v %v", status, creds, err)
		}
		ev, err := Payone(in)
		if err != nil {
			t.Fatalf("%s: %v", status, err)
		}
		if ev.Status != status || ev.Amount == nil || ev.Amount.MinorUnits != 1050 || ev.MerchantReference != "order-1" || ev.ProviderReference != "4711" {
			t.Errorf("%s: %+v", status, ev)
		}
		if !bytes.Contains(ev.Original, []byte(`"Müller"`)) {
			t.Errorf("%s: the sample's ISO-8859-1 name did not decode: %s", status, ev.Original)
		}
	}
	if _, _, err := PayoneSample(Sample{Status: StatusExpired, Amount: Amount{MinorUnits: 1, Currency: "EUR"}}, "1", "2"); err == nil {
		t.Error("a sample for a status PAYONE does not send")
	}
}

// FuzzDecodeLatin1Form: any body decodes to valid JSON in valid UTF-8,
// the same as DecodePHPForm for bodies without bytes above 0x7F, and every
// byte above 0x7F of a value becomes one character.
func FuzzDecodeLatin1Form(f *testing.F) {
	for _, seed := range []string{"a=b", "street=J%E4gerweg+12", "n\xe4me=M\xfcller", "a=%80%9f%FF", "de[1]=%FC&de[]=x", "a=%E", "%C3%A4=%C3%A4", "a[b][c]=1&a[b][]=%ff"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := DecodeLatin1Form(body)
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("DecodeLatin1Form(%q) = %q", body, got)
		}
		transcoded := Latin1FormToUTF8(body)
		if len(transcoded) > 2*len(body) {
			t.Fatalf("transcoded %d bytes into %d", len(body), len(transcoded))
		}
		ascii := true
		for _, c := range body {
			ascii = ascii && c < 0x80
		}
		if ascii && !strings.Contains(string(body), "%") && !bytes.Equal(transcoded, body) {
			t.Fatalf("an ASCII body without escapes changed: %q → %q", body, transcoded)
		}
		if ascii && !bytes.ContainsAny(body, "%") && !bytes.Equal(got, DecodePHPForm(body)) {
			t.Fatalf("%q: %s, DecodePHPForm %s", body, got, DecodePHPForm(body))
		}
	})
}

// FuzzPayone: any body is an event or a sentinel error, never a panic; an
// event's original never holds the key.
func FuzzPayone(f *testing.F) {
	f.Add([]byte("key=" + payoneKey + "&txaction=paid&txid=1&currency=EUR&price=1.00&balance=0&receivable=1"))
	f.Add([]byte("key=" + payoneKey + "&txaction=refund&txid=1&currency=JPY&price=100&receivable=0&transaction_status=pending"))
	f.Add([]byte("txaction[]=x&txid=1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in := payoneInput(string(body))
		creds, err := PayoneDecode(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		ev, err := Payone(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissingField) && !errors.Is(err, ErrInexactAmount) && !errors.Is(err, ErrUnknownCurrency) {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		var top map[string]any
		if err := json.Unmarshal(ev.Original, &top); err != nil {
			t.Fatalf("%q: original %s: %v", body, ev.Original, err)
		}
		if _, ok := top["key"]; ok {
			t.Fatalf("%q: original has the key (%q): %s", body, creds.Key, ev.Original)
		}
		_ = ev.ID()
	})
}
