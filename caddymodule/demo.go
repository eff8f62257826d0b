package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// demoSecrets are set for the demo when the environment lacks them, so that
// Caddyfile.example starts on a fresh machine. Never used outside the demo.
var demoSecrets = map[string]string{"IXOPAY_SHARED_SECRET": "demo-secret", "PYXIS_CALLBACK_TOKEN": "demo-token"}

func demoCommand() *cobra.Command {
	var configFile, upstreamAddr string
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
			return runDemo(cmd.OutOrStdout(), configFile, upstreamAddr, upstreamStatus)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "Caddyfile.example", "Caddyfile to run")
	cmd.Flags().StringVar(&upstreamAddr, "upstream", "localhost:8080", "address of the demo upstream")
	cmd.Flags().IntVar(&upstreamStatus, "upstream-status", http.StatusOK, "status the demo upstream answers (try 500 to see payhook ask the provider to retry)")
	return cmd
}

func runDemo(out io.Writer, configFile, upstreamAddr string, upstreamStatus int) error {
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
