package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// adminFlags are the flags that find Caddy's admin API, as `caddy reload`
// has them.
type adminFlags struct {
	address, config, adapter string
}

func (a *adminFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.address, "address", "", "the admin API's address (default: from --config, else localhost:2019)")
	cmd.Flags().StringVarP(&a.config, "config", "c", "", "a configuration file to read the admin address from")
	cmd.Flags().StringVarP(&a.adapter, "adapter", "a", "", "the adapter of --config")
}

func (a *adminFlags) resolve() (string, error) {
	return caddycmd.DetermineAdminAPIAddress(a.address, nil, a.config, a.adapter)
}

func inboxCommand() *cobra.Command {
	var admin adminFlags
	var state string
	var limit int
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "Lists the events in payhook's inboxes and what became of them",
		Long: `
Lists the newest events of the running payhook inboxes, with their delivery
state: delivered, pending (with the next attempt's time) or failed (with the
last error). Asks the admin API of the running Caddy, as 'caddy reload'
does. Payload contents are never listed: GET /payhook/inbox/<id> on the
admin API shows one event's envelope.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			return listInbox(addr, state, limit, cmd.OutOrStdout())
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only events in this state: pending, delivered or failed")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events")
	return cmd
}

func listInbox(addr, state string, limit int, out io.Writer) error {
	query := url.Values{"limit": {strconv.Itoa(limit)}}
	if state != "" {
		query.Set("state", state)
	}
	var list struct{ Events []inboxSummary }
	if err := adminGet(addr, "/payhook/inbox?"+query.Encode(), &list); err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT\tPROVIDER\tTYPE\tSTATE\tRECEIVED\tATTEMPTS\tNEXT / LAST ERROR")
	for _, e := range list.Events {
		detail := e.LastError
		if e.State == statePending && !e.NextAttempt.IsZero() {
			detail = "next " + e.NextAttempt.Local().Format(time.TimeOnly) + ", " + detail
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Provider, e.Type, e.State, e.ReceivedAt.Local().Format(time.DateTime), e.Attempts, detail)
	}
	return w.Flush()
}

func replayCmd() *cobra.Command {
	var admin adminFlags
	var failed bool
	cmd := &cobra.Command{
		Use:   "replay <event id> | --failed",
		Short: "Delivers an event from payhook's inbox to the shop again",
		Long: `
Delivers an event again: a delivered or failed one goes back to the end of
its payment's queue, a pending one is tried at once. With --failed, every
failed event is replayed. Asks the admin API of the running Caddy.
`,
		Args: func(cmd *cobra.Command, args []string) error {
			if failed != (len(args) == 0) {
				return fmt.Errorf("give an event id or --failed")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			if failed {
				resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/payhook/inbox/retry-failed", nil, nil)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
				return err
			}
			_, err = replayCommand(context.Background(), addr, args[0], cmd.OutOrStdout())
			return err
		},
	}
	admin.add(cmd)
	cmd.Flags().BoolVar(&failed, "failed", false, "replay every failed event")
	return cmd
}

// replayCommand asks the admin API at addr to replay event id.
func replayCommand(_ context.Context, addr, id string, out io.Writer) (inboxSummary, error) {
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/payhook/inbox/"+url.PathEscape(id)+"/replay", nil, nil)
	if err != nil {
		return inboxSummary{}, err
	}
	defer resp.Body.Close()
	var s inboxSummary
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	fmt.Fprintf(out, "event %s (%s, %s) queued for delivery\n", s.ID, s.Provider, s.Type)
	return s, nil
}
