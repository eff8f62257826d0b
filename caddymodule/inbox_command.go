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
	cmd.AddCommand(inboxRoutesCommand(), inboxMoveCommand())
	return cmd
}

func inboxRoutesCommand() *cobra.Command {
	var admin adminFlags
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Lists each inbox: its route, its waiting events, and those of routes gone",
		Long: `
Lists the inbox of every payhook route of the running configuration, with
the events waiting in it, and the inboxes of routes no running
configuration has (their matchers, ports or provider changed, or they were
removed) that still hold waiting events: deliver those through a running
route with 'caddy payhook inbox move'.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			return listInboxRoutes(addr, cmd.OutOrStdout())
		},
	}
	admin.add(cmd)
	return cmd
}

func listInboxRoutes(addr string, out io.Writer) error {
	var list struct{ Inboxes []routeView }
	if err := adminGet(addr, "/payhook/inbox/routes", &list); err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "INBOX	PROVIDER	WAITING	OLDEST	ROUTE")
	for _, v := range list.Inboxes {
		route := v.Route
		switch {
		case v.Orphaned:
			route = "(gone: move its events with caddy payhook inbox move)"
		case !v.Enabled:
			route += " (inbox off: delivers what it stored)"
		}
		oldest := ""
		if !v.Oldest.IsZero() && v.Pending > 0 {
			oldest = v.Oldest.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", v.Inbox, v.Provider, v.Pending, oldest, route)
	}
	return w.Flush()
}

func inboxMoveCommand() *cobra.Command {
	var admin adminFlags
	var from, to string
	cmd := &cobra.Command{
		Use:   "move --from <inbox> --to <inbox>",
		Short: "Delivers the waiting events of a gone route through a running one",
		Long: `
Hands the waiting events of a route that no running configuration has to
a running route, which delivers them through its handlers, in the order
they were stored, merged with its own. Each event is delivered as the
provider sent it (method, host, path): the route named must be one that
such a request reaches. 'caddy payhook inbox routes' names the inboxes.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("give --from and --to (see caddy payhook inbox routes)")
			}
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			query := url.Values{"from": {from}, "to": {to}}
			resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/payhook/inbox/move?"+query.Encode(), nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var moved struct {
				Moved int
				Route string
			}
			if err := json.NewDecoder(resp.Body).Decode(&moved); err != nil {
				return fmt.Errorf("reading the admin API's answer: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d events moved to %s (%s)\n", moved.Moved, to, moved.Route)
			return nil
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&from, "from", "", "the gone route's inbox")
	cmd.Flags().StringVar(&to, "to", "", "the running route's inbox")
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
		if e.Orphaned {
			detail = "its route is gone (caddy payhook inbox routes), " + detail
		}
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
