package caddymodule

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// adminFlags are the flags of the commands that ask Caddy's admin API:
// where to find it, as `caddy reload` has them, and --json.
type adminFlags struct {
	address, config, adapter string
	// json prints the admin API's answer as JSON instead of a table or a
	// sentence.
	json bool
}

func (a *adminFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.address, "address", "", "the admin API's address (default: from --config, else localhost:2019)")
	cmd.Flags().StringVarP(&a.config, "config", "c", "", "a configuration file to read the admin address from")
	cmd.Flags().StringVarP(&a.adapter, "adapter", "a", "", "the adapter of --config")
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON instead of a table")
}

// resolve finds the admin API's address. A --config is adapted here,
// not by caddycmd.LoadConfig, which logs each step on Caddy's logger: the
// adapter's warnings say nothing about the address, and a command's
// output is its own.
func (a *adminFlags) resolve() (string, error) {
	if a.address != "" || a.config == "" {
		return caddycmd.DetermineAdminAPIAddress(a.address, nil, "", "")
	}
	config, err := os.ReadFile(a.config)
	if err != nil {
		return "", fmt.Errorf("reading --config: %w", err)
	}
	adapter := a.adapter
	base := strings.ToLower(filepath.Base(a.config))
	if adapter == "" && (strings.HasPrefix(base, "caddyfile") || filepath.Ext(base) == ".caddyfile") {
		adapter = "caddyfile" // as Caddy's own commands guess it
	}
	if adapter != "" {
		adapt := caddyconfig.GetAdapter(adapter)
		if adapt == nil {
			return "", fmt.Errorf("unrecognized config adapter: %s", adapter)
		}
		if config, _, err = adapt.Adapt(config, map[string]any{"filename": a.config}); err != nil {
			return "", fmt.Errorf("adapting --config with %s: %w", adapter, err)
		}
	}
	return caddycmd.DetermineAdminAPIAddress("", config, a.config, adapter)
}

// printJSON prints v as the admin API does.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errNoInbox says that the running Caddy has no inbox to list or replay from.
var errNoInbox = errors.New("no inbox is configured: no payhook route of the running Caddy has one (add inbox to its payhook block), and none holds events")

// inboxConfigured asks the admin API at addr whether any route has an
// inbox, or an inbox holds events still (a route whose inbox was turned
// off delivers what it stored; a gone route's events wait for a move).
func inboxConfigured(addr string) error {
	var list struct{ Inboxes []routeView }
	if err := adminGet(addr, "/payhook/inbox/routes", &list); err != nil {
		return err
	}
	for _, v := range list.Inboxes {
		if v.Enabled || v.Orphaned || v.Pending > 0 || v.Failed > 0 {
			return nil
		}
	}
	return errNoInbox
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
state: delivered, pending (with the next attempt's time, or "now") or
failed (with the last error); when the callback was received (a replay
does not change it) and the merchant reference. Asks the admin API of the
running Caddy, as 'caddy reload' does, and fails when no route has an
inbox. Payload contents are never listed: GET /payhook/inbox/<id> on the
admin API shows one event's envelope. --json prints the admin API's answer.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return listInbox(addr, state, limit, admin.json, cmd.OutOrStdout())
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only events in this state: pending, delivered or failed")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events")
	cmd.AddCommand(inboxRoutesCommand(), inboxMoveCommand())
	return cmd
}

// inboxList is the admin API's answer to GET /payhook/inbox.
type inboxList struct {
	Events     []inboxSummary `json:"events"`
	Now        time.Time      `json:"now"`
	NextBefore int64          `json:"next_before,omitempty"`
}

func listInbox(addr, state string, limit int, asJSON bool, out io.Writer) error {
	query := url.Values{"limit": {strconv.Itoa(limit)}}
	if state != "" {
		query.Set("state", state)
	}
	var list inboxList
	if err := adminGet(addr, "/payhook/inbox?"+query.Encode(), &list); err != nil {
		return err
	}
	if len(list.Events) == 0 {
		if err := inboxConfigured(addr); err != nil {
			return err
		}
	}
	if asJSON {
		return printJSON(out, list)
	}
	if len(list.Events) == 0 {
		what := "no event"
		if state != "" {
			what = "no " + state + " event"
		}
		_, err := fmt.Fprintln(out, what+" in the inbox")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT\tPROVIDER\tTYPE\tMERCHANT REF\tSTATE\tRECEIVED\tATTEMPTS\tNEXT / LAST ERROR")
	for _, e := range list.Events {
		var detail []string
		if e.Orphaned {
			detail = append(detail, "its route is gone (caddy payhook inbox routes)")
		}
		if e.State == statePending && !e.NextAttempt.IsZero() {
			detail = append(detail, "next "+attemptTime(e.NextAttempt, list.Now))
		}
		if !e.ReplayedAt.IsZero() {
			detail = append(detail, "replayed "+e.ReplayedAt.Local().Format(time.DateTime))
		}
		if e.LastError != "" {
			detail = append(detail, e.LastError)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Provider, e.Type, cmp.Or(e.MerchantReference, "-"), e.State,
			e.ReceivedAt.Local().Format(time.DateTime), e.Attempts, strings.Join(detail, ", "))
	}
	return w.Flush()
}

// attemptTime shows when a pending event is tried next: "now" when it is
// due (the admin API answers no time before its own now), else the time,
// with its date when it is not today.
func attemptTime(next, now time.Time) string {
	if !next.After(now) {
		return "now"
	}
	next = next.Local()
	if y, m, d := next.Date(); now.Local().Year() != y || now.Local().Month() != m || now.Local().Day() != d {
		return next.Format(time.DateTime)
	}
	return next.Format(time.TimeOnly)
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
route with 'caddy payhook inbox move'. Fails when no route has an inbox.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return listInboxRoutes(addr, admin.json, cmd.OutOrStdout())
		},
	}
	admin.add(cmd)
	return cmd
}

func listInboxRoutes(addr string, asJSON bool, out io.Writer) error {
	var list struct {
		Inboxes []routeView `json:"inboxes"`
	}
	if err := adminGet(addr, "/payhook/inbox/routes", &list); err != nil {
		return err
	}
	if err := inboxConfigured(addr); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, list)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "INBOX\tPROVIDER\tWAITING\tFAILED\tOLDEST\tROUTE")
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
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", v.Inbox, v.Provider, v.Pending, v.Failed, oldest, route)
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
			cmd.SilenceUsage = true
			query := url.Values{"from": {from}, "to": {to}}
			var moved struct {
				Moved int    `json:"moved"`
				To    string `json:"to"`
				Route string `json:"route"`
			}
			if err := adminDo(addr, http.MethodPost, "/payhook/inbox/move?"+query.Encode(), &moved); err != nil {
				return err
			}
			if admin.json {
				return printJSON(cmd.OutOrStdout(), moved)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d events moved to %s (%s)\n", moved.Moved, to, moved.Route)
			return err
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&from, "from", "", "the gone route's inbox")
	cmd.Flags().StringVar(&to, "to", "", "the running route's inbox")
	return cmd
}

// replayCmd is `caddy payhook replay`.
func replayCmd() *cobra.Command {
	var admin adminFlags
	var failed bool
	cmd := &cobra.Command{
		Use:   "replay <event id> | --failed",
		Short: "Delivers an event from payhook's inbox to the shop again",
		Long: `
Delivers an event again: a delivered or failed one goes back to the end of
its payment's queue, a pending one is tried at once. With --failed, every
failed event is replayed. A replayed event keeps the time it was received;
its retry period starts again. Asks the admin API of the running Caddy, and
fails when no route has an inbox.
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
			cmd.SilenceUsage = true
			if failed {
				return replayFailed(addr, admin.json, cmd.OutOrStdout())
			}
			_, err = replayEvent(addr, args[0], admin.json, cmd.OutOrStdout())
			return err
		},
	}
	admin.add(cmd)
	cmd.Flags().BoolVar(&failed, "failed", false, "replay every failed event")
	return cmd
}

// replayEvent asks the admin API at addr to replay event id.
func replayEvent(addr, id string, asJSON bool, out io.Writer) (inboxSummary, error) {
	if err := inboxConfigured(addr); err != nil {
		return inboxSummary{}, err
	}
	var s inboxSummary
	if err := adminDo(addr, http.MethodPost, "/payhook/inbox/"+url.PathEscape(id)+"/replay", &s); err != nil {
		return s, err
	}
	if asJSON {
		return s, printJSON(out, s)
	}
	_, err := fmt.Fprintf(out, "event %s (%s, %s) queued for delivery\n", s.ID, s.Provider, s.Type)
	return s, err
}

// replayFailed asks the admin API at addr to replay every failed event.
func replayFailed(addr string, asJSON bool, out io.Writer) error {
	if err := inboxConfigured(addr); err != nil {
		return err
	}
	var replayed struct {
		Replayed []string `json:"replayed"`
	}
	if err := adminDo(addr, http.MethodPost, "/payhook/inbox/retry-failed", &replayed); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, replayed)
	}
	var err error
	switch n := len(replayed.Replayed); n {
	case 0:
		_, err = fmt.Fprintln(out, "no failed event to replay")
	case 1:
		_, err = fmt.Fprintf(out, "1 failed event queued for delivery: %s\n", replayed.Replayed[0])
	default:
		_, err = fmt.Fprintf(out, "%d failed events queued for delivery: %s\n", n, strings.Join(replayed.Replayed, ", "))
	}
	return err
}
