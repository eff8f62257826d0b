package caddymodule

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/spf13/cobra"

	"github.com/payhook/payhook/verify"
)

// demoCaddyfile is the demo's Caddyfile, Caddyfile.example with the
// demo's addresses: the demo runs from anywhere with the binary alone.
//
//go:embed Caddyfile.example.tmpl
var demoCaddyfile string

var demoTemplate = template.Must(template.New("Caddyfile.example").Parse(demoCaddyfile))

// demoAddresses are what the demo's Caddyfile names: where Caddy serves
// the callbacks (Site, an http:// site address) and its admin API, and the
// demo's shop and stand-in of the providers' APIs (API, an http:// URL).
type demoAddresses struct {
	Site, Admin, Shop, API string
}

// defaultDemoAddresses are the demo's defaults, Caddyfile.example's own.
var defaultDemoAddresses = demoAddresses{Site: "http://localhost:8880", Admin: "localhost:2019", Shop: "localhost:8080", API: "http://localhost:8881"}

// demoCaddyfileFor renders the demo's Caddyfile for addresses.
func demoCaddyfileFor(a demoAddresses) []byte {
	var out bytes.Buffer
	if err := demoTemplate.Execute(&out, a); err != nil {
		panic(err) // a constant template of string fields
	}
	return out.Bytes()
}

// demoSecrets are the demo's values of the placeholders in its Caddyfile,
// set for the demo's process only, whatever the environment holds: the
// commands the demo suggests sign with them.
var demoSecrets = map[string]string{
	"IXOPAY_SHARED_SECRET": "demo-secret", "PYXIS_CALLBACK_TOKEN": "demo-token", "MOLLIE_API_KEY": "test_demo",
	"PAYPAL_CLIENT_ID": "demo-client", "PAYPAL_CLIENT_SECRET": "demo-client-secret", "PAYPAL_WEBHOOK_ID": "DEMOWEBHOOK1",
	"UNZER_PRIVATE_KEY": "s-priv-demo", "UNZER_PUBLIC_KEY": "s-pub-demo",
	"STRIPE_WEBHOOK_SECRET": "whsec_demo", "STRIPE_API_KEY": "rk_test_demo", "SWEDBANK_PAY_TOKEN": "demo-token",
	"PAYREXX_INSTANCE": "demo", "PAYREXX_API_KEY": "demo-api-key",
	"KLARNA_USERNAME": "demo-klarna-user", "KLARNA_PASSWORD": "demo-klarna-password", "MULTISAFEPAY_API_KEY": "demo-msp-api-key",
	// base64 of "payhook-demo-wallee-authentication-key"
	"WALLEE_USER_ID": "1", "WALLEE_AUTHENTICATION_KEY": "cGF5aG9vay1kZW1vLXdhbGxlZS1hdXRoZW50aWNhdGlvbi1rZXk=",
}

// demoWalleeSigningKey is the demo's stand-in of wallee's signing key, a
// P-256 key made for the demo and published here (base64 PKCS #8 DER, as
// `caddy payhook send wallee --secret` takes it): the demo's stand-in of
// the API serves its public half, so it signs for the demo only.
const demoWalleeSigningKey = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglwv952zi/5/jytdSwPRlPSjLGN5SP3Ued0wbURFpMFShRANCAASCQlUa284Kd+Tvb3ynK7KqTKxQf7NS6dF8+JT6ah9HTIjWCcop8eJnQnDp6F7h48CX9PqiRLtEhsjp55RT8jhh"

// demoOptions are the flags of `caddy payhook demo`.
type demoOptions struct {
	listen, admin, upstream, api string
	upstreamStatus               int
}

func demoCommand() *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Runs Caddyfile.example with a demo upstream that prints the envelopes it receives",
		Long: `
Runs Caddyfile.example (built into this binary) in the foreground, with a
demo upstream (the "shop") that prints every envelope it receives and a
stand-in of the providers' APIs that payhook asks (Mollie, PayPal, Unzer,
wallee, Stripe, Swedbank Pay, Payrexx), with the demo's keys and secrets.
The routes proxy to the shop and fetch from the stand-in wherever the flags
put them. Send it a callback from another terminal with 'caddy payhook
send': the demo prints a command for each route that asks the stand-in.
Stop with Ctrl-C.

The demo keeps payhook's database (its dedupe records, its journal) and
Caddy's storage in a temporary directory removed when it stops, and saves no configuration:
every demo starts afresh, and your Caddy's own data stays untouched.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", "localhost:8880", "host:port Caddy serves the callbacks on")
	f.StringVar(&opts.admin, "admin", "localhost:2019", "host:port of Caddy's admin API (and its /metrics)")
	f.StringVar(&opts.upstream, "upstream", "localhost:8080", "host:port of the demo upstream (the shop), which the routes proxy to")
	f.StringVar(&opts.api, "api", "localhost:8881", "host:port of the stand-in of the providers' APIs (Mollie, PayPal, Unzer, wallee, Stripe, Swedbank Pay, Payrexx), which the routes fetch from")
	f.IntVar(&opts.upstreamStatus, "upstream-status", http.StatusOK, "status the demo upstream answers (try 500 to see payhook ask the provider to retry)")
	return cmd
}

// runDemo runs the demo until ctx is done.
func runDemo(ctx context.Context, out io.Writer, opts demoOptions) (err error) {
	if ctx == nil {
		ctx = context.Background() // a command run without one
	}
	for _, hostport := range []struct{ flag, value string }{{"--listen", opts.listen}, {"--admin", opts.admin}} {
		if _, _, err := net.SplitHostPort(hostport.value); err != nil {
			return fmt.Errorf("%s %s: want host:port, such as localhost:8880", hostport.flag, hostport.value)
		}
	}
	if opts.upstreamStatus < 100 || opts.upstreamStatus > 599 {
		return fmt.Errorf("--upstream-status %d: want an HTTP status, 100 to 599", opts.upstreamStatus)
	}
	state, err := os.MkdirTemp("", "payhook-demo-")
	if err != nil {
		return fmt.Errorf("demo state: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(state); rmErr != nil {
			fmt.Fprintf(out, "demo: could not remove its state in %s: %v\n", state, rmErr)
		}
	}()
	restore := demoEnvironment(out, state)
	defer restore()

	ln, err := net.Listen("tcp", opts.upstream)
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	upstream := &http.Server{Handler: demoUpstream(out, opts.upstreamStatus)}
	go func() { _ = upstream.Serve(ln) }()
	defer upstream.Close()
	fmt.Fprintf(out, "demo: upstream (the shop) listening on http://%s, answering %d\n", ln.Addr(), opts.upstreamStatus)
	apiListener, err := net.Listen("tcp", opts.api)
	if err != nil {
		return fmt.Errorf("demo API stand-in: %w", err)
	}
	api := &http.Server{Handler: newDemoAPI()}
	go func() { _ = api.Serve(apiListener) }()
	defer api.Close()
	fmt.Fprintf(out, "demo: stand-in of the providers' APIs (Mollie, PayPal, Unzer, wallee, Stripe, Swedbank Pay, Payrexx) listening on http://%s\n", apiListener.Addr())

	addresses := demoAddresses{Site: "http://" + opts.listen, Admin: opts.admin, Shop: ln.Addr().String(), API: "http://" + apiListener.Addr().String()}
	config, err := demoConfig(out, demoCaddyfileFor(addresses), state)
	if err != nil {
		return err
	}
	if err := caddy.Load(config, true); err != nil {
		return fmt.Errorf("starting Caddy with the demo's Caddyfile.example (--listen and --admin choose its addresses): %w", err)
	}
	defer func() { _ = caddy.Stop() }()

	self := demoSelf()
	fmt.Fprintf(out, `demo: Caddy is running Caddyfile.example on %[1]s, its state in %[2]s
(removed when the demo stops). In another terminal, send a signed sample callback:

    %[3]s payhook send ixopay --secret demo-secret \
        --status captured %[1]s/callbacks/ixopay

or a Mollie webhook, whose payment the stand-in of Mollie's API serves:

    %[3]s payhook send mollie --api %[4]s \
        --status captured %[1]s/callbacks/mollie

or a PayPal webhook, which the stand-in of PayPal's API verifies:

    %[3]s payhook send paypal --secret DEMOWEBHOOK1 \
        --status captured %[1]s/callbacks/paypal

or an Unzer webhook, whose payment the stand-in of Unzer's API serves:

    %[3]s payhook send unzer --api %[4]s \
        --secret s-pub-demo --status captured %[1]s/callbacks/unzer

or a wallee notification signed with the demo's signing key, whose public
key and transaction the stand-in of wallee's API serves:

    %[3]s payhook send wallee --api %[4]s \
        --secret %[5]s \
        --status captured %[1]s/callbacks/wallee

or a Stripe thin event, whose payment intent the stand-in of Stripe's API
serves:

    %[3]s payhook send stripe --thin --api %[4]s \
        --secret whsec_demo --status captured %[1]s/callbacks/stripe

or a Swedbank Pay callback, whose payment order the stand-in of Swedbank
Pay's API serves:

    %[3]s payhook send swedbankpay --api %[4]s \
        --status captured %[1]s/callbacks/swedbankpay

or a Payrexx webhook, whose transaction the stand-in of Payrexx's API
serves:

    %[3]s payhook send payrexx --api %[4]s \
        --status captured %[1]s/callbacks/payrexx

or a Klarna push, whose order the stand-in of Klarna's API serves and
takes the acknowledgement of:

    %[3]s payhook send klarna --api %[4]s \
        --status captured %[1]s/callbacks/klarna

or MultiSafepay's GET notification, whose order the stand-in of
MultiSafepay's API serves:

    %[3]s payhook send multisafepay --api %[4]s \
        --status captured %[1]s/callbacks/multisafepay

demo: press Ctrl-C to stop
`, addresses.Site, state, self, addresses.API, demoWalleeSigningKey)

	<-ctx.Done()
	fmt.Fprintln(out, "demo: stopping")
	return nil
}

// demoEnvironment sets the demo's secrets, and points Caddy's data and
// config directories into the demo's state, for what Caddy keeps there
// whatever its configuration says (its instance id). It returns the
// function that restores the environment.
func demoEnvironment(out io.Writer, state string) (restore func()) {
	values := maps.Clone(demoSecrets)
	values["XDG_DATA_HOME"] = filepath.Join(state, "data")
	values["XDG_CONFIG_HOME"] = filepath.Join(state, "config")
	saved := map[string]*string{}
	for name, value := range values {
		if old, ok := os.LookupEnv(name); ok {
			saved[name] = &old
		} else {
			saved[name] = nil
		}
		_ = os.Setenv(name, value)
	}
	names := slices.Sorted(maps.Keys(demoSecrets))
	for i, name := range names {
		names[i] = name + "=" + demoSecrets[name]
	}
	fmt.Fprintf(out, "demo: for this demo only, %s\n", strings.Join(names, " "))
	return func() {
		for name, old := range saved {
			if old == nil {
				_ = os.Unsetenv(name)
			} else {
				_ = os.Setenv(name, *old)
			}
		}
	}
}

// demoConfig adapts the demo's Caddyfile, printing the adapter's warnings,
// and keeps Caddy's state in the directory state: its storage there, its
// configuration not saved.
func demoConfig(out io.Writer, caddyfile []byte, state string) ([]byte, error) {
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		return nil, fmt.Errorf("the demo's Caddyfile.example: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(out, "demo: warning: %s\n", w.String())
	}
	cfg := new(caddy.Config)
	if err := caddy.StrictUnmarshalJSON(adapted, cfg); err != nil {
		return nil, err
	}
	storage, err := json.Marshal(map[string]string{"module": "file_system", "root": filepath.Join(state, "storage")})
	if err != nil {
		return nil, err
	}
	cfg.StorageRaw = storage
	if cfg.Admin == nil {
		cfg.Admin = new(caddy.AdminConfig)
	}
	persist := false
	cfg.Admin.Config = &caddy.ConfigSettings{Persist: &persist}
	return json.Marshal(cfg)
}

// demoSelf is how to run this program in the commands the demo suggests:
// as it was started, or `go run` from the checkout when it was.
func demoSelf() string {
	if strings.Contains(filepath.ToSlash(os.Args[0]), "/go-build") {
		return "go run ./caddymodule/cmd/caddy"
	}
	return os.Args[0]
}

// demoUpstream prints each envelope it receives and answers status.
func demoUpstream(out io.Writer, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err != nil {
			pretty.Write(body)
		}
		fmt.Fprintf(out, "\n── the shop received %s %s (Content-Type: %s, Content-Length: %d) ──\n%s\n",
			r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.ContentLength, pretty.String())
		w.WriteHeader(status)
	})
}

// demoStorePrefix is where `caddy payhook send --api` stores a sample's
// resource at the demo's stand-in of a provider's API.
const demoStorePrefix = "/_payhook-demo"

// demoAPI stands in for providers' APIs in the demo: it serves the
// documents `caddy payhook send --api` stored (a Mollie payment at
// /v2/payments/tr_…) to any bearer token (or MultiSafepay's api_key), and PayPal's token and
// verify-webhook-signature endpoints for what `caddy payhook send paypal`
// signs (an HMAC where PayPal's signature is RSA).
type demoAPI struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func newDemoAPI() *demoAPI { return &demoAPI{docs: map[string][]byte{}} }

func (a *demoAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path, ok := strings.CutPrefix(r.URL.Path, demoStorePrefix); ok && r.Method == http.MethodPut {
		if r.URL.RawQuery != "" {
			path += "?" + r.URL.RawQuery // wallee's entities: /api/transaction/read?spaceId=&id=
		}
		doc, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !json.Valid(doc) {
			http.Error(w, "want a JSON document", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		if len(a.docs) >= 10000 {
			clear(a.docs)
		}
		a.docs[path] = doc
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch r.URL.Path {
	case "/v1/oauth2/token":
		a.payPalToken(w, r)
		return
	case "/v1/notifications/verify-webhook-signature":
		a.payPalVerify(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		a.wallee(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/hal+json")
	// Basic: Unzer, Klarna; api_key: MultiSafepay; X-Api-Key: Payrexx.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") && !strings.HasPrefix(auth, "Basic ") &&
		r.Header.Get("api_key") == "" && r.Header.Get("X-Api-Key") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"status":401,"title":"Unauthorized Request","detail":"Missing authentication, or failed to authenticate"}`)
		return
	}
	if order, ok := strings.CutSuffix(r.URL.Path, "/acknowledge"); ok && r.Method == http.MethodPost && strings.HasPrefix(order, "/ordermanagement/v1/orders/") {
		// Klarna's acknowledge of an order the stand-in holds: 204.
		a.mu.Lock()
		_, known := a.docs[order]
		a.mu.Unlock()
		if known {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	a.mu.Lock()
	doc, ok := a.docs[r.URL.Path]
	a.mu.Unlock()
	if !ok || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"status":404,"title":"Not Found","detail":"No such resource in the payhook demo's stand-in"}`)
		return
	}
	_, _ = w.Write(doc)
}

// wallee serves the platform's API to the demo's application user, whose
// requests it authenticates by their MAC as the platform does: the demo's
// signing key's public half by its id (/api/webhook-encryption/read?id=),
// and the entities `caddy payhook send wallee --api` stored
// (/api/transaction/read?spaceId=&id=).
func (a *demoAPI) wallee(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	key, _ := base64.StdEncoding.DecodeString(demoSecrets["WALLEE_AUTHENTICATION_KEY"])
	userID := demoSecrets["WALLEE_USER_ID"]
	timestamp, _ := strconv.ParseInt(r.Header.Get("X-Mac-Timestamp"), 10, 64)
	if r.Method != http.MethodGet || r.Header.Get("X-Mac-Version") != "1" || r.Header.Get("X-Mac-Userid") != userID ||
		!hmac.Equal([]byte(r.Header.Get("X-Mac-Value")), []byte(verify.WalleeMAC(userID, key, timestamp, r.Method, r.URL.RequestURI()))) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"id":"payhook-demo","message":"Authentication failed: not the demo's application user (WALLEE_USER_ID, WALLEE_AUTHENTICATION_KEY)"}`)
		return
	}
	if r.URL.Path == "/api/webhook-encryption/read" {
		if id, public, err := demoWalleePublicKey(); err == nil && r.URL.Query().Get("id") == id {
			fmt.Fprintf(w, `{"id":%q,"publicKey":%q,"state":"ACTIVE"}`, id, public)
			return
		}
	} else {
		a.mu.Lock()
		doc, ok := a.docs[r.URL.RequestURI()]
		a.mu.Unlock()
		if ok {
			_, _ = w.Write(doc)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, `{"id":"payhook-demo","message":"No such entity in the payhook demo's stand-in"}`)
}

// demoWalleePublicKey is the id and the public key (base64 DER, as the
// platform's API answers it) of the demo's wallee signing key.
func demoWalleePublicKey() (id, public string, err error) {
	der, err := base64.StdEncoding.DecodeString(demoWalleeSigningKey)
	if err != nil {
		return "", "", err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return "", "", err
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return "", "", errors.New("the demo's wallee signing key is not an ECDSA key")
	}
	if id, err = walleeSampleKeyID(&key.PublicKey); err != nil {
		return "", "", err
	}
	publicDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return id, base64.StdEncoding.EncodeToString(publicDER), err
}

// payPalToken hands any client with basic credentials a token.
func (a *demoAPI) payPalToken(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := r.BasicAuth(); !ok || r.Method != http.MethodPost {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"scope":"https://uri.paypal.com/services/payments/payment","access_token":"A21AA-payhook-demo","token_type":"Bearer","app_id":"APP-DEMO","expires_in":32400}`)
}

// payPalVerify checks a transmission as PayPal does, over the webhook
// event's bytes exactly as received, with the demo's HMAC for PayPal's RSA.
func (a *demoAPI) payPalVerify(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || !json.Valid(body) {
		http.Error(w, `{"name":"INVALID_REQUEST"}`, http.StatusBadRequest)
		return
	}
	var req struct {
		ID      string          `json:"transmission_id"`
		Time    string          `json:"transmission_time"`
		Sig     string          `json:"transmission_sig"`
		Webhook string          `json:"webhook_id"`
		Event   json.RawMessage `json:"webhook_event"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"name":"INVALID_REQUEST"}`, http.StatusBadRequest)
		return
	}
	status := "FAILURE"
	if hmac.Equal([]byte(req.Sig), []byte(demoPayPalSignature(req.ID, req.Time, req.Webhook, req.Event))) {
		status = "SUCCESS"
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"verification_status":"`+status+`"}`)
}
