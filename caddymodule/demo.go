package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// demoSecrets are set for the demo when the environment lacks them, so that
// Caddyfile.example starts on a fresh machine. Never used outside the demo.
var demoSecrets = map[string]string{
	"IXOPAY_SHARED_SECRET": "demo-secret", "PYXIS_CALLBACK_TOKEN": "demo-token", "MOLLIE_API_KEY": "test_demo",
	"PAYPAL_CLIENT_ID": "demo-client", "PAYPAL_CLIENT_SECRET": "demo-client-secret", "PAYPAL_WEBHOOK_ID": "DEMOWEBHOOK1",
}

func demoCommand() *cobra.Command {
	var configFile, upstreamAddr, apiAddr string
	var upstreamStatus int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Runs Caddyfile.example with a demo upstream that prints the envelopes it receives",
		Long: `
Starts a demo upstream (the "shop") that prints every envelope it receives,
then runs Caddy with the given Caddyfile (default: Caddyfile.example) in the
foreground. Send it a callback from another terminal with
'caddy payhook send'. Stop with Ctrl-C.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.OutOrStdout(), configFile, upstreamAddr, apiAddr, upstreamStatus)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "Caddyfile.example", "Caddyfile to run")
	cmd.Flags().StringVar(&upstreamAddr, "upstream", "localhost:8080", "address of the demo upstream")
	cmd.Flags().StringVar(&apiAddr, "api", "localhost:8881", "address of the stand-in of the providers' APIs (Mollie, PayPal)")
	cmd.Flags().IntVar(&upstreamStatus, "upstream-status", http.StatusOK, "status the demo upstream answers (try 500 to see payhook ask the provider to retry)")
	return cmd
}

func runDemo(out io.Writer, configFile, upstreamAddr, apiAddr string, upstreamStatus int) error {
	for name, value := range demoSecrets {
		if os.Getenv(name) == "" {
			_ = os.Setenv(name, value)
			fmt.Fprintf(out, "demo: %s is not set; using %q for this demo only\n", name, value)
		}
	}
	ln, err := net.Listen("tcp", upstreamAddr)
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	upstream := &http.Server{Handler: demoUpstream(out, upstreamStatus)}
	go func() { _ = upstream.Serve(ln) }()
	defer upstream.Close()
	fmt.Fprintf(out, "demo: upstream (the shop) listening on http://%s, answering %d\n", ln.Addr(), upstreamStatus)
	apiListener, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("demo API stand-in: %w", err)
	}
	api := &http.Server{Handler: newDemoAPI()}
	go func() { _ = api.Serve(apiListener) }()
	defer api.Close()
	fmt.Fprintf(out, "demo: stand-in of the providers' APIs (Mollie, PayPal) listening on http://%s\n", apiListener.Addr())

	config, _, _, err := caddycmd.LoadConfig(configFile, "caddyfile")
	if err != nil {
		return err
	}
	if err := caddy.Load(config, true); err != nil {
		return fmt.Errorf("loading %s: %w", configFile, err)
	}
	defer func() { _ = caddy.Stop() }()
	fmt.Fprintf(out, `demo: Caddy is running %s. In another terminal, send a signed sample callback:

    go run ./caddymodule/cmd/caddy payhook send ixopay --secret "${IXOPAY_SHARED_SECRET:-demo-secret}" \
        --status captured http://localhost:8880/callbacks/ixopay

or a Mollie webhook, whose payment the stand-in of Mollie's API serves:

    go run ./caddymodule/cmd/caddy payhook send mollie --api http://localhost:8881 \
        --status captured http://localhost:8880/callbacks/mollie

or a PayPal webhook, which the stand-in of PayPal's API verifies:

    go run ./caddymodule/cmd/caddy payhook send paypal --secret DEMOWEBHOOK1 \
        --status captured http://localhost:8880/callbacks/paypal

demo: press Ctrl-C to stop
`, configFile)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return nil
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
// /v2/payments/tr_…) to any bearer token, and PayPal's token and
// verify-webhook-signature endpoints for what `caddy payhook send paypal`
// signs (an HMAC where PayPal's signature is RSA).
type demoAPI struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func newDemoAPI() *demoAPI { return &demoAPI{docs: map[string][]byte{}} }

func (a *demoAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path, ok := strings.CutPrefix(r.URL.Path, demoStorePrefix); ok && r.Method == http.MethodPut {
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
	w.Header().Set("Content-Type", "application/hal+json")
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"status":401,"title":"Unauthorized Request","detail":"Missing authentication, or failed to authenticate"}`)
		return
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
