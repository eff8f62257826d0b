package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/payhook/payhook/normalize"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "payhook",
		Usage: "send|demo",
		Short: "Sends sample payment callbacks and runs the payhook demo",
		Long: `
payhook receives payment-provider callbacks in Caddy, verifies them and
forwards one canonical envelope to the shop.

  caddy payhook send <provider> <url>   sends a correctly signed sample callback
  caddy payhook demo                     runs Caddyfile.example with a demo upstream
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(sendCommand(), demoCommand())
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
	timeout   time.Duration
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

Example:
  caddy payhook send ixopay --secret "$IXOPAY_SHARED_SECRET" --status captured \
      http://localhost:8880/callbacks/ixopay
`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, body, err := sendSample(cmd.Context(), args[0], args[1], opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n%s\n", resp.Proto, resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				cmd.SilenceUsage = true
				return fmt.Errorf("callback not accepted: %s", resp.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.secret, "secret", "", "shared secret to sign with (required for providers that sign)")
	f.StringVar(&opts.status, "status", "captured", "canonical status of the sample payment")
	f.StringVar(&opts.amount, "amount", "9.99", "amount as a decimal in the currency's major unit")
	f.StringVar(&opts.currency, "currency", "EUR", "ISO 4217 currency code")
	f.StringVar(&opts.reference, "reference", "order-1042", "merchant reference (the shop's order id)")
	f.StringVar(&opts.id, "id", "", "provider's transaction id (default: random, so each send is a new event)")
	f.DurationVar(&opts.timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return cmd
}

// sendSample fabricates, signs and posts a sample callback and returns the answer.
func sendSample(ctx context.Context, providerName, target string, opts sendOptions) (*http.Response, []byte, error) {
	provider, err := NewProvider(providerName)
	if err != nil {
		return nil, nil, err
	}
	p, ok := provider.(SampleSender)
	if !ok {
		return nil, nil, fmt.Errorf("payhook cannot fabricate %s callbacks", providerName)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("invalid URL %q: want http(s)://host/path", target)
	}
	currency := strings.ToUpper(opts.currency)
	amount, err := normalize.ParseDecimalAmount(opts.amount, currency)
	if err != nil {
		return nil, nil, fmt.Errorf("--amount %s --currency %s: %w", opts.amount, opts.currency, err)
	}
	id := opts.id
	if id == "" {
		id = randomID()
	}
	body, contentType, err := p.Sample(normalize.Sample{
		Status:            normalize.Status(opts.status),
		Amount:            amount,
		MerchantReference: opts.reference,
		ProviderReference: id,
	})
	if err != nil {
		return nil, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
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

// randomID returns 12 random decimal digits: a valid transaction id for
// every provider (Payrexx's are integers).
func randomID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1e12))
	return fmt.Sprintf("%012d", n)
}
