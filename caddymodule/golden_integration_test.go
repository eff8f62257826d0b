package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// readRawRequest reads a golden .in file: the exact request a provider sends.
func readRawRequest(t testing.TB, path string) (*http.Request, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, body
}

// replayGolden sends every golden request of normalize/testdata/<provider>
// through the running Caddy as the provider sent it (or through send, which
// may re-sign it), after serve has taught the fake API the case's
// <case>.fetched.json (if any), and compares what the shop receives with the
// golden envelope, less the receive time and the Date checked.
// acknowledgement is the body of the answer provider's module gives a
// callback it took.
func acknowledgement(t *testing.T, provider string) string {
	t.Helper()
	p, err := NewProvider(provider)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	p.Acknowledge(w)
	return w.Body.String()
}

func replayGolden(t *testing.T, e *env, provider string, serve func(fetched []byte, base string), send func(req *http.Request, body []byte) (*http.Response, string)) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("../normalize/testdata", provider, "*.in"))
	if len(files) == 0 {
		t.Fatalf("no golden requests for %s", provider)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			e.t = t
			e.upstream.reset()
			req, body := readRawRequest(t, in)
			base := strings.TrimSuffix(in, ".in")
			if fetched, err := os.ReadFile(base + ".fetched.json"); err == nil && serve != nil {
				serve(fetched, base)
			}
			var resp *http.Response
			var answer string
			if send != nil {
				resp, answer = send(req, body)
			} else {
				header := req.Header.Clone()
				header.Del("Content-Type")
				header.Del("Content-Length")
				resp, answer = e.post(req.RequestURI, req.Header.Get("Content-Type"), string(body), header)
			}
			if strings.HasPrefix(name, "reject_") {
				expectAnswer(t, resp, answer, http.StatusBadRequest, "")
				e.expectNothingForwarded()
				return
			}
			if strings.HasPrefix(name, "ignore_") {
				// A notification that concerns no payment: acknowledged,
				// not forwarded.
				expectAnswer(t, resp, answer, http.StatusOK, acknowledgement(t, provider))
				e.expectNothingForwarded()
				return
			}
			golden, err := os.ReadFile(base + ".envelope.json")
			if err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, resp, answer, http.StatusOK, acknowledgement(t, provider))
			// A batch golden is the array of the envelopes the shop
			// receives, one request each, in order.
			want := [][]byte{golden}
			if golden := bytes.TrimSpace(golden); len(golden) > 0 && golden[0] == '[' {
				var list []json.RawMessage
				if err := json.Unmarshal(golden, &list); err != nil {
					t.Fatal(err)
				}
				want = want[:0]
				for _, envelope := range list {
					want = append(want, envelope)
				}
			}
			got := e.upstream.received()
			if len(got) != len(want) {
				t.Fatalf("upstream received %d requests, want %d", len(got), len(want))
			}
			for i := range want {
				if got, want := comparable(t, got[i].Body), comparable(t, want[i]); got != want {
					t.Errorf("upstream's request %d\n%s\nwant (golden)\n%s", i+1, got, want)
				}
			}
		})
	}
}

func TestPayrexxGoldenThroughCaddy(t *testing.T) {
	e, api := startPayrexx(t, "payrexx", "dedupe off")
	replayGolden(t, e, "payrexx", func(answer []byte, _ string) {
		kind := "Transaction"
		if gjson.GetBytes(answer, "data.0.valid_until").Exists() {
			kind = "Subscription"
		}
		api.set("/v1.14/"+kind+"/"+gjson.GetBytes(answer, "data.0.id").String()+"/", 200, string(answer))
	}, nil)
}

// The Swedbank Pay goldens hold the API's answers: a payment order, or a
// legacy transaction (with <case>.payment.json, its payment's answer), or,
// for cases written before answers were kept apart, a transaction with its
// payment expanded, which the fake API serves as the two documents Swedbank
// Pay has.
func TestSwedbankPayGoldenThroughCaddy(t *testing.T) {
	e, api := startSwedbank(t, "", "dedupe off")
	replayGolden(t, e, "swedbankpay", func(fetched []byte, base string) {
		for _, key := range []string{"paymentOrder", "paymentorder"} {
			if order := gjson.GetBytes(fetched, key); order.IsObject() {
				api.set(order.Get("id").String(), 200, string(fetched))
				return
			}
		}
		if payment, err := os.ReadFile(base + ".payment.json"); err == nil {
			api.set(gjson.GetBytes(payment, "payment.id").String(), 200, string(payment))
			api.set(swedbankTransactionPath(fetched), 200, string(fetched))
			return
		}
		payment, transaction := gjson.GetBytes(fetched, "payment"), gjson.GetBytes(fetched, "transaction")
		if !transaction.Exists() { // a payment's own answer
			api.set(payment.Get("id").String(), 200, string(fetched))
			return
		}
		api.set(payment.Get("id").String(), 200, `{"payment":`+payment.Raw+`}`)
		api.set(transaction.Get("id").String(), 200, `{"payment":"`+payment.Get("id").String()+`","transaction":`+transaction.Raw+`}`)
	}, nil)
}

// swedbankTransactionPath is the id of the object a legacy transaction's
// GET answer holds the transaction in ("capture": {"id": …}).
func swedbankTransactionPath(answer []byte) string {
	path := ""
	gjson.ParseBytes(answer).ForEach(func(key, value gjson.Result) bool {
		if key.Str != "payment" && value.IsObject() {
			path = value.Get("id").Str
			return false
		}
		return true
	})
	return path
}

// The Pyxis goldens are posted to the OnSuccess URL, the OnFail URL or a
// URL for both: three routes, as docs/pyxis.md configures them.
func TestPyxisGoldenThroughCaddy(t *testing.T) {
	t.Setenv("PAYHOOK_TEST_PYXIS_TOKEN", "golden-token")
	route := func(path, extra string) string {
		return strings.Replace(pyxisSite("dedupe off\n\t\t\t"+extra), "route /callbacks/pyxis*", "route "+path, 1)
	}
	e := startCaddy(t, route("/callbacks/pyxis/success*", "outcome success")+"\n\t"+route("/callbacks/pyxis/fail*", "outcome fail")+"\n\t"+route("/callbacks/pyxis", ""))
	replayGolden(t, e, "pyxis", nil, nil)
}

// TestIXOPAYGoldenThroughCaddy replays every golden IXOPAY request,
// re-signed with a fresh Date.
func TestIXOPAYGoldenThroughCaddy(t *testing.T) {
	e := startCaddy(t, noDedupe(defaultSite))
	replayGolden(t, e, "ixopay", nil, func(req *http.Request, body []byte) (*http.Response, string) {
		c := ixopayCallback(string(body))
		c.contentType = req.Header.Get("Content-Type")
		return e.send(c)
	})
}

// signIXOPAYWithPHP signs a callback the way IXOPAY's PHP client checks one
// (Client::validateCallback, CurlClient::createSignature in ixopay/php-ixopay),
// by PHP itself and a signer written from that algorithm rather than
// payhook's: the JSON API's message (method, the body's SHA-512, or MD5 for
// the legacy algorithm, in hex, the content type, the date and the request
// URI, joined by newlines), HMAC-SHA512 with the shared secret, in base64.
// As the client does, the content type is "application/json;
// charset=utf-8" whatever the request says, and the date is its default
// form, PHP's "D, d M Y H:i:s T" in UTC, which reads "… UTC", not "… GMT".
func signIXOPAYWithPHP(t *testing.T, algorithm, uri string, body []byte) (date, signature string) {
	t.Helper()
	const signer = `$body = stream_get_contents(STDIN);
$date = (new DateTime("now", new DateTimeZone("UTC")))->format("D, d M Y H:i:s T");
$hash = $argv[3] === "md5" ? md5($body) : hash("sha512", $body);
$message = implode("\n", ["POST", $hash, "application/json; charset=utf-8", $date, $argv[2]]);
echo $date, "\n", base64_encode(hash_hmac("sha512", $message, $argv[1], true));`
	cmd := exec.Command(lookPHP(t, "to sign as IXOPAY's PHP client does"), "-r", signer, testSecret, uri, algorithm)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	date, signature, ok := strings.Cut(string(out), "\n")
	if !ok || !strings.HasSuffix(date, " UTC") {
		t.Fatalf("PHP signer printed %q", out)
	}
	return date, signature
}

// TestIXOPAYCorpusSignedByPHP replays every golden IXOPAY request, the
// published notifications included, signed by PHP as IXOPAY's PHP client
// expects: X-Date in its UTC form, and the content type it hard-codes
// signed while the header says plain "application/json".
func TestIXOPAYCorpusSignedByPHP(t *testing.T) {
	e := startCaddy(t, noDedupe(defaultSite))
	replayGolden(t, e, "ixopay", nil, func(_ *http.Request, body []byte) (*http.Response, string) {
		date, signature := signIXOPAYWithPHP(t, "sha512", "/callbacks/ixopay", body)
		return e.post("/callbacks/ixopay", "application/json", string(body), http.Header{"X-Date": {date}, "X-Signature": {signature}})
	})
}

// The legacy algorithm (MD5 of the body), which IXOPAY's PHP client still
// accepts, is accepted with legacy_md5 and named in the envelope.
func TestIXOPAYLegacyMD5SignedByPHP(t *testing.T) {
	e := startCaddy(t, strings.Replace(defaultSite, "max_body 8KiB", "max_body 8KiB\n\t\t\tlegacy_md5", 1))
	_, body := readRawRequest(t, "../normalize/testdata/ixopay/published_success_notification.in")
	date, signature := signIXOPAYWithPHP(t, "md5", "/callbacks/ixopay", body)
	resp, answer := e.post("/callbacks/ixopay", "application/json", string(body), http.Header{"X-Date": {date}, "X-Signature": {signature}})
	expectAnswer(t, resp, answer, http.StatusOK, "OK")
	r, doc := e.onlyDelivery()
	if doc.Data.Status != "captured" || gjson.GetBytes(r.Body, "data.verification.variant").String() != "legacy-md5" ||
		gjson.GetBytes(r.Body, "data.verification.date").String() != date {
		t.Errorf("envelope: %s", r.Body)
	}
}
