package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "payhook",
		Usage: "send|demo|inbox|replay|events|console",
		Short: "Sends sample payment callbacks and runs the payhook demo",
		Long: `
payhook receives payment-provider callbacks in Caddy, verifies them and
forwards one canonical envelope to the shop.

  caddy payhook send <provider> <url>   sends a correctly signed sample callback
  caddy payhook demo                     runs Caddyfile.example with a demo shop
  caddy payhook inbox                    lists the inbox's events and their delivery state
  caddy payhook inbox routes             lists each inbox, its route and its waiting events
  caddy payhook inbox move               delivers a gone route's events through a running one
  caddy payhook replay <event id>        delivers an event from the inbox again (--failed: every failed one)
  caddy payhook events --ref <ref>       searches the journal: did the callback arrive, what became of it
  caddy payhook console                  opens the operator's console in the browser

Every command but demo and console prints a table or a sentence, and
JSON with --json; its output is its own (no Caddy log lines), and it fails
when what it asks for is not there (no inbox, no payhook route).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(sendCommand(), demoCommand(), inboxCommand(), replayCmd(), eventsCommand(), consoleCommand())
		},
	})
}

// sendOptions are the flags of `caddy payhook send`.
type sendOptions struct {
	secret    string
	status    string
	amount    string
	currency  string
	reference string
	id        string
	body      string // a file with the payload to send (generic providers)
	api       string // a stand-in of the provider's API to store the sample's resource at (the demo's)
	thin      bool   // stripe: send a thin event
	timeout   time.Duration
	json      bool // print payhook's answer as JSON

	// The payment portal's ids of a payone route.
	payonePortalID, payoneAccountID string

	// The scheme of a standard_webhooks or hmac route, as in its Caddyfile.
	headerPrefix string
	scheme       HMAC
}

func sendCommand() *cobra.Command {
	var opts sendOptions
	cmd := &cobra.Command{
		Use:   "send <provider> <url>",
		Short: "Sends a correctly signed sample callback",
		Long: `
Sends a sample callback for <provider> to <url>, signed with --secret by the
same code that payhook verifies with, and prints payhook's answer. Use it to
test the whole chain (Caddy, payhook, your shop) without the provider.

A preset (paddle, square, …) signs its own sample, which its route takes
with exactly the --status, --amount, --currency and --reference given. For
standard_webhooks and hmac routes, the flags repeat the route's scheme
(for hmac: --header, --algorithm, --content, …, as in the Caddyfile), and
--body sends a payload of your own (the provider's example, to try a map).

Examples:
  caddy payhook send ixopay --secret "$IXOPAY_SHARED_SECRET" --status captured \
      http://localhost:8880/callbacks/ixopay
  caddy payhook send paddle --secret "$PADDLE_WEBHOOK_SECRET" --status refunded \
      --amount 25.00 --currency USD --reference order-1042 http://localhost:8880/hooks/paddle
  caddy payhook send standard_webhooks --secret "$ACME_WEBHOOK_SECRET" \
      --body event.json http://localhost:8880/hooks/acme
  caddy payhook send hmac --secret "$PADDLE_WEBHOOK_SECRET" --header Paddle-Signature \
      --signature-key h1 --timestamp-key ts --content '{timestamp}:{body}' \
      --body transaction.json http://localhost:8880/hooks/paddle
`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, body, err := sendSample(cmd.Context(), args[0], args[1], opts)
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true // the arguments were fine: the answer was not
			if err := payhookAnswered(args[0], args[1], resp, body); err != nil {
				return err
			}
			if opts.json {
				if err := printJSON(cmd.OutOrStdout(), sendAnswer{Provider: args[0], URL: args[1], Status: resp.StatusCode,
					Answer: strings.TrimSpace(string(body))}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n%s\n", resp.Proto, resp.Status, strings.TrimSpace(string(body)))
			}
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("payhook refused the callback: %s: %s", resp.Status, firstBytes(body))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.secret, "secret", "", "shared secret to sign with (required for providers that sign; wallee: a P-256 private key, base64 PKCS #8; unzer: the route's public key)")
	f.StringVar(&opts.status, "status", "captured", "canonical status of the sample payment")
	f.StringVar(&opts.amount, "amount", "9.99", "amount as a decimal in the currency's major unit")
	f.StringVar(&opts.currency, "currency", "", "ISO 4217 currency code (default: the provider's only currency, where its callbacks name none; else EUR)")
	f.StringVar(&opts.reference, "reference", "order-1042", "merchant reference (the shop's order id)")
	f.StringVar(&opts.id, "id", "", "provider's transaction id (default: random, so each send is a new event)")
	f.StringVar(&opts.body, "body", "", "standard_webhooks, hmac: a file with the payload to send (default: a small sample)")
	f.StringVar(&opts.api, "api", "", "mollie, unzer, wallee, stripe --thin: the demo's stand-in of the provider's API, to store the sample payment at first (http://localhost:8881)")
	f.BoolVar(&opts.thin, "thin", false, "stripe: send a thin event (API v2 event destinations), whose payment intent payhook fetches")
	f.DurationVar(&opts.timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	f.BoolVar(&opts.json, "json", false, "print payhook's answer as JSON")
	f.StringVar(&opts.payonePortalID, "portal-id", "", "payone: the route's portal_id")
	f.StringVar(&opts.payoneAccountID, "account-id", "", "payone: the route's account_id")
	f.StringVar(&opts.headerPrefix, "header-prefix", "webhook", "standard_webhooks: the headers' prefix (svix)")
	s := &opts.scheme
	f.StringVar(&s.SecretEncoding, "secret-encoding", "raw", "hmac: raw, base64 or hex")
	f.StringVar(&s.Mode, "mode", "hmac", "hmac: hmac, hash, secret or secret_hash")
	f.StringVar(&s.Algorithm, "algorithm", "sha256", "hmac: md5, sha1, sha256 or sha512")
	f.StringVar(&s.HeaderEncoding, "header-encoding", "", "hmac: base64 when the header's value is base64")
	f.StringVar(&s.Header, "header", "", "hmac: the signature header")
	f.StringVar(&s.SignatureKey, "signature-key", "", "hmac: the signature's key in a header of key=value pairs")
	f.StringVar(&s.SignatureEncoding, "signature-encoding", "hex", "hmac: hex, base64 or base64url")
	f.StringVar(&s.Prefix, "prefix", "", "hmac: the signature's prefix (sha256=)")
	f.StringVar(&s.Content, "content", "{body}", "hmac: the signed content's template")
	f.StringVar(&s.URL, "url", "", "hmac: the template's {url} (default: <url>)")
	f.StringVar(&s.TimestampHeader, "timestamp-header", "", "hmac: the timestamp's header")
	f.StringVar(&s.TimestampKey, "timestamp-key", "", "hmac: the timestamp's key in the signature header")
	f.StringVar(&s.TimestampFormat, "timestamp-format", "seconds", "hmac: seconds, milliseconds, http-date or rfc3339")
	f.StringVar(&s.IDHeader, "id-header", "", "hmac: the {id}'s header")
	return cmd
}

// sendAnswer is payhook's answer to a sample callback, as send --json
// prints it.
type sendAnswer struct {
	Provider string `json:"provider"`
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Answer   string `json:"answer"`
}

// sendSample fabricates, signs and posts a sample callback and returns the answer.
func sendSample(ctx context.Context, providerName, target string, opts sendOptions) (*http.Response, []byte, error) {
	if ctx == nil {
		ctx = context.Background() // a command run without one
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("invalid URL %q: want http(s)://host/path", target)
	}
	provider, err := NewProvider(providerName)
	if err != nil {
		return nil, nil, err
	}
	currency := strings.ToUpper(opts.currency)
	if currency == "" {
		currency = "EUR"
		if p, ok := provider.(*Preset); ok && p.OnlyCurrency() != "" {
			currency = p.OnlyCurrency()
		}
	}
	amount, err := normalize.ParseDecimalAmount(opts.amount, currency)
	if err != nil {
		return nil, nil, fmt.Errorf("--amount %s --currency %s: %w", opts.amount, opts.currency, err)
	}
	id := opts.id
	if id == "" {
		id = randomID()
	}
	sample := normalize.Sample{Status: normalize.Status(opts.status), Amount: amount, MerchantReference: opts.reference, ProviderReference: id}

	if generic, ok := provider.(sendConfigurable); ok {
		if err := generic.configureSend(opts); err != nil {
			return nil, nil, err
		}
	}
	p, ok := provider.(SampleSender)
	if !ok {
		return nil, nil, fmt.Errorf("payhook cannot fabricate %s callbacks", providerName)
	}
	body, contentType, err := p.Sample(sample)
	if err != nil {
		return nil, nil, err
	}
	if opts.api != "" {
		standIn, ok := provider.(SampleAPIStandIn)
		if !ok {
			return nil, nil, fmt.Errorf("--api: %s callbacks need no stand-in of an API", providerName)
		}
		if err := storeAtStandIn(ctx, opts, standIn, sample); err != nil {
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "caddy-payhook-send")
	if err := p.SignSample(req, body, []byte(opts.secret)); err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, answer, err
}

// payhookAnswered checks that the answer to a callback sent to target is
// payhook's, for the provider sent: any other answer (Caddy's empty 200
// when no route handles the path, the shop's, a proxy's) says nothing of
// whether payhook would take the callback.
func payhookAnswered(provider, target string, resp *http.Response, body []byte) error {
	answeredFor := resp.Header.Get(AnswerHeader)
	if answeredFor == "" {
		return fmt.Errorf("no payhook answered at %s: check the path, and that its route has payhook %s; got %s with %s",
			target, provider, resp.Status, firstBytes(body))
	}
	if answeredFor != provider && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return fmt.Errorf("payhook refused the callback: %s: %s; the route at %s takes %s callbacks, not %s",
			resp.Status, firstBytes(body), target, answeredFor, provider)
	}
	return nil
}

// firstBytes shows the start of an answer's body in an error.
func firstBytes(body []byte) string {
	text := strings.TrimSpace(string(body))
	switch {
	case text == "":
		return "an empty body"
	case len(text) > 120:
		return strconv.Quote(text[:120]) + "…"
	}
	return strconv.Quote(text)
}

// storeAtStandIn stores the sample's resource at the demo's stand-in of the
// provider's API, for payhook to fetch it there.
func storeAtStandIn(ctx context.Context, opts sendOptions, p SampleAPIStandIn, s normalize.Sample) error {
	path, doc, err := p.SampleAPIDocument(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(opts.api, "/")+demoStorePrefix+path, bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("--api: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("--api: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("--api: the stand-in answered %s; is it the demo's (caddy payhook demo)?", resp.Status)
	}
	return nil
}

// genericSampleBody is the payload to send to a standard_webhooks or hmac
// route: the file given, or a small sample of the fields a map would read.
func genericSampleBody(file string, s normalize.Sample) ([]byte, error) {
	if file != "" {
		body, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--body: %w", err)
		}
		return body, nil
	}
	return json.Marshal(map[string]any{
		"id": "evt_" + s.ProviderReference, "type": "payment." + string(s.Status), "status": string(s.Status),
		"payment": map[string]any{"id": s.ProviderReference, "amount": s.Amount.MinorUnits, "currency": s.Amount.Currency, "reference": s.MerchantReference},
		"created": time.Now().UTC().Format(time.RFC3339),
	})
}

// sendConfigurable is implemented by the generic providers, whose scheme
// and payload `caddy payhook send` takes from its flags, as their route
// takes them from its Caddyfile.
type sendConfigurable interface {
	configureSend(opts sendOptions) error
}

// configureSend takes the hmac scheme from the flags.
func (p *HMAC) configureSend(opts sendOptions) error {
	*p = opts.scheme
	if p.Header == "" {
		return errors.New("--header is required: the header that carries the signature")
	}
	if (p.Mode == verify.ModeSecret || p.Mode == verify.ModeSecretHash) && p.Content == "{body}" {
		p.Content = "" // --content's default: these modes sign nothing
	}
	p.sampleBody = opts.body
	return nil
}

// Sample is the --body file, or a small payload of the fields a map reads.
func (p *HMAC) Sample(s normalize.Sample) ([]byte, string, error) {
	body, err := genericSampleBody(p.sampleBody, s)
	return body, "application/json", err
}

// SignSample signs as the scheme says a sender does.
func (p *HMAC) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: hmac callbacks are signed")
	}
	return p.signRequest(r, body, string(secret), time.Now())
}

// configureSend takes the headers' prefix and the payload from the flags.
func (p *StandardWebhooks) configureSend(opts sendOptions) error {
	p.HeaderPrefix, p.sampleBody = opts.headerPrefix, opts.body
	return nil
}

// Sample is the --body file, or a small payload of the fields a map reads.
func (p *StandardWebhooks) Sample(s normalize.Sample) ([]byte, string, error) {
	body, err := genericSampleBody(p.sampleBody, s)
	return body, "application/json", err
}

// SignSample signs as a Standard Webhooks sender does, with a whsec_
// secret (v1) or a whsk_ secret key (v1a).
func (p *StandardWebhooks) SignSample(r *http.Request, body []byte, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("--secret is required: standard_webhooks callbacks are signed")
	}
	return p.signRequest(r, body, string(secret), time.Now())
}

// requestPlaceholders resolves the request placeholders a template may
// name, from the request being sent, as Caddy will on arrival.
type requestPlaceholders struct{ r *http.Request }

func (p requestPlaceholders) Get(name string) (any, bool) {
	switch name {
	case "http.request.method":
		return p.r.Method, true
	case "http.request.host":
		return p.r.URL.Hostname(), true
	case "http.request.hostport":
		return p.r.URL.Host, true
	}
	if header, ok := strings.CutPrefix(name, "http.request.header."); ok {
		return p.r.Header.Get(header), true
	}
	if uri, ok := strings.CutPrefix(name, "http.request.uri"); ok {
		return uriPlaceholder(uri, p.r.URL.RequestURI(), p.r.URL)
	}
	return nil, false
}

// randomID returns 12 random decimal digits: a valid transaction id for
// every provider (Payrexx's are integers).
func randomID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1e12))
	return fmt.Sprintf("%012d", n)
}
