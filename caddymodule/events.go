package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/payhook/payhook/caddymodule/internal/store"
	"github.com/payhook/payhook/normalize"
)

// The journal on the admin API and on the command line: "did the callback
// for order 1234 arrive, and what became of it?"
//
//	GET /payhook/events?ref=order-1234&provider=ixopay&outcome=rejected&since=24h&limit=50&before=<seq>
//	GET /payhook/stats[?since=24h]   callbacks per hour, provider and outcome (the console's chart)
//	caddy payhook events --ref order-1234

func init() {
	caddy.RegisterModule(eventsAdmin{})
}

// eventsAdmin serves the journal on Caddy's admin API, from the payhook
// app of the configuration the admin API was loaded with.
type eventsAdmin struct{ ctx caddy.Context }

// CaddyModule returns the Caddy module information.
func (eventsAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.payhook_events", New: func() caddy.Module { return new(eventsAdmin) }}
}

// Provision keeps the configuration's context, where the app is found.
func (a *eventsAdmin) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// Routes are the journal's routes.
func (a *eventsAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/payhook/events", Handler: caddy.AdminHandlerFunc(a.handleEvents)},
		{Pattern: "/payhook/stats", Handler: caddy.AdminHandlerFunc(a.handleStats)},
	}
}

// journalEntry is an entry as the admin API shows it.
type journalEntry struct {
	Seq        int64          `json:"seq"`
	At         time.Time      `json:"at"`
	Route      string         `json:"route"`
	Provider   string         `json:"provider"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	EventID    string         `json:"event_id,omitempty"`
	EventType  string         `json:"event_type,omitempty"`
	Status     string         `json:"status,omitempty"`
	Amount     *entryAmount   `json:"amount,omitempty"`
	Merchant   string         `json:"merchant_reference,omitempty"`
	Reference  string         `json:"provider_reference,omitempty"`
	VerifiedBy string         `json:"verified_by,omitempty"`
	ClientIP   string         `json:"client_ip,omitempty"`
	Attempts   []entryAttempt `json:"attempts,omitempty"`
	// InboxState is, for an event the inbox took (outcome queued), what
	// became of it since: pending, delivered or failed.
	InboxState string `json:"inbox_state,omitempty"`
}

// entryAmount is an amount in minor units, as in the envelope, and in
// the currency's own decimals (999 EUR: 9.99) when the currency is known.
type entryAmount struct {
	Value    int64  `json:"value"`
	Currency string `json:"currency"`
	Decimal  string `json:"decimal,omitempty"`
}

// entryAttempt is one delivery attempt of an entry's event.
type entryAttempt struct {
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

// viewAttempts shows delivery attempts as the admin API does.
func viewAttempts(attempts []store.Attempt) []entryAttempt {
	out := make([]entryAttempt, 0, len(attempts))
	for _, a := range attempts {
		out = append(out, entryAttempt{At: a.At, Status: a.Status, LatencyMS: float64(a.Latency.Microseconds()) / 1000, Error: a.Error})
	}
	return out
}

func viewEntry(e store.Entry) journalEntry {
	v := journalEntry{Seq: e.Seq, At: e.At, Route: e.Route, Provider: e.Provider, Outcome: e.Outcome, Reason: e.Reason,
		EventID: e.EventID, EventType: e.EventType, Status: e.Status, Merchant: e.Merchant, Reference: e.Reference,
		VerifiedBy: e.VerifiedBy, ClientIP: e.ClientIP}
	if e.Amount != nil {
		v.Amount = &entryAmount{Value: *e.Amount, Currency: e.Currency}
		v.Amount.Decimal, _ = normalize.Amount{MinorUnits: *e.Amount, Currency: e.Currency}.Decimal()
	}
	return v
}

// configuredApp is the payhook app of a configuration.
func configuredApp(ctx caddy.Context) (*App, error) {
	app, err := ctx.AppIfConfigured("payhook")
	if err != nil {
		return nil, errors.New("no payhook route is running")
	}
	return app.(*App), nil
}

// parseQuery reads the journal's query from a request's parameters. since
// and until take an RFC 3339 time or a duration back from now (24h, 7d).
func parseQuery(values url.Values, now time.Time) (store.Query, error) {
	q := store.Query{Ref: values.Get("ref"), Provider: values.Get("provider"), Route: values.Get("route"), Outcome: values.Get("outcome")}
	for _, t := range []struct {
		name   string
		target *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		raw := values.Get(t.name)
		if raw == "" {
			continue
		}
		if at, err := time.Parse(time.RFC3339, raw); err == nil {
			*t.target = at
		} else if ago, err := caddy.ParseDuration(raw); err == nil && ago > 0 {
			*t.target = now.Add(-ago)
		} else {
			return q, fmt.Errorf("%s: want an RFC 3339 time or a duration such as 24h, got %q", t.name, raw)
		}
	}
	for _, n := range []struct {
		name   string
		target *int64
	}{{"before", &q.Before}} {
		if raw := values.Get(n.name); raw != "" {
			v, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || v <= 0 {
				return q, fmt.Errorf("%s: want a positive number, got %q", n.name, raw)
			}
			*n.target = v
		}
	}
	if raw := values.Get("limit"); raw != "" {
		limit, err := strconv.Atoi(raw)
		if err != nil || limit <= 0 || limit > 1000 {
			return q, fmt.Errorf("limit: want 1 to 1000, got %q", raw)
		}
		q.Limit = limit
	}
	return q, nil
}

// eventsPage is a page of the journal, as GET /payhook/events answers it.
type eventsPage struct {
	Events []journalEntry `json:"events"`
	Next   int64          `json:"next,omitempty"` // before= for the next page
}

func (a *eventsAdmin) handleEvents(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	out, err := a.page(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

// page answers the journal's query of values: GET /payhook/events, and
// the console page's first rows.
func (a *eventsAdmin) page(ctx context.Context, values url.Values) (*eventsPage, error) {
	app, err := configuredApp(a.ctx)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	q, err := parseQuery(values, time.Now())
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	entries, err := app.state.Search(ctx, q)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	out := &eventsPage{Events: make([]journalEntry, 0, len(entries))}
	for _, e := range entries {
		v := viewEntry(e)
		// A reference search shows each event's delivery attempts too.
		if q.Ref != "" && e.EventID != "" {
			attempts, err := app.state.Attempts(ctx, e.Route, e.EventID)
			if err != nil {
				return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
			}
			v.Attempts = viewAttempts(attempts)
		}
		out.Events = append(out.Events, v)
	}
	if err := app.addInboxStates(ctx, out.Events); err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	if limit := cmp.Or(q.Limit, 100); len(entries) == limit {
		out.Next = entries[len(entries)-1].Seq
	}
	return out, nil
}

// maxStatsSince bounds the time range of GET /payhook/stats: its answer
// counts every entry of the range.
const maxStatsSince = 7 * 24 * time.Hour

// hourCount is one bar segment of the console's chart.
type hourCount struct {
	Hour     time.Time `json:"hour"`
	Provider string    `json:"provider"`
	Outcome  string    `json:"outcome"`
	Count    int64     `json:"count"`
}

// handleStats answers how many callbacks each provider had per hour and
// outcome, since ?since= (an RFC 3339 time or a duration back; default 24h,
// at most 7 days back).
func (a *eventsAdmin) handleStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	app, err := configuredApp(a.ctx)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	now := time.Now()
	q, err := parseQuery(url.Values{"since": {cmp.Or(r.URL.Query().Get("since"), "24h")}}, now)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if q.Since.Before(now.Add(-maxStatsSince)) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("since: at most 7 days back")}
	}
	counts, err := app.state.Hourly(r.Context(), q.Since)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	out := struct {
		Since time.Time   `json:"since"`
		Now   time.Time   `json:"now"`
		Hours []hourCount `json:"hours"`
	}{Since: q.Since.UTC(), Now: now.UTC(), Hours: make([]hourCount, 0, len(counts))}
	for _, c := range counts {
		out.Hours = append(out.Hours, hourCount{Hour: c.Hour, Provider: c.Provider, Outcome: c.Outcome, Count: c.Count})
	}
	return writeJSON(w, out)
}

// addInboxStates tells, for each entry of an event the inbox took, what
// became of it: one look-up for the page.
func (a *App) addInboxStates(ctx context.Context, entries []journalEntry) error {
	var ids []string
	for _, e := range entries {
		if e.Outcome == outcomeQueued && e.EventID != "" {
			ids = append(ids, e.EventID)
		}
	}
	events, err := a.state.InboxStates(ctx, ids)
	if err != nil {
		return err
	}
	// An event is in the inbox of the route that received it; a route
	// gone since has no place any more: its event is matched by id.
	byRoute, byID := map[[2]string]string{}, map[string]string{}
	for _, ev := range events { // newest first: the first of each is kept
		if ib := a.deliverer.routes[ev.Route]; ib != nil {
			key := [2]string{ib.place(), ev.EventID}
			if _, ok := byRoute[key]; !ok {
				byRoute[key] = ev.State.String()
			}
		}
		if _, ok := byID[ev.EventID]; !ok {
			byID[ev.EventID] = ev.State.String()
		}
	}
	for i, e := range entries {
		if e.Outcome != outcomeQueued || e.EventID == "" {
			continue
		}
		if state, ok := byRoute[[2]string{e.Route, e.EventID}]; ok {
			entries[i].InboxState = state
		} else {
			entries[i].InboxState = byID[e.EventID]
		}
	}
	return nil
}

// eventsCommand is `caddy payhook events`.
func eventsCommand() *cobra.Command {
	var admin adminFlags
	var ref, provider, outcome, since string
	var limit int
	cmd := &cobra.Command{
		Use:   "events [--ref <reference>]",
		Short: "Searches payhook's journal of callbacks: did the callback for an order arrive, and what became of it",
		Long: `
Lists the callbacks payhook received, newest first, from its journal: when,
which provider, the outcome (forwarded, duplicate, queued, rejected,
upstream_failed, ignored, challenge_answered) and its reason, the canonical status, the amount, the
merchant's and the provider's references and the event id. --ref finds a
merchant reference, a provider reference or an event id, and shows each
event's delivery attempts. Asks the admin API of the running Caddy.
--json prints the admin API's answer.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := admin.resolve()
			if err != nil {
				return err
			}
			query := url.Values{"limit": {strconv.Itoa(limit)}}
			for name, value := range map[string]string{"ref": ref, "provider": provider, "outcome": outcome, "since": since} {
				if value != "" {
					query.Set(name, value)
				}
			}
			cmd.SilenceUsage = true
			return listEvents(addr, query, admin.json, cmd.OutOrStdout())
		},
	}
	admin.add(cmd)
	cmd.Flags().StringVar(&ref, "ref", "", "a merchant reference, a provider reference or an event id")
	cmd.Flags().StringVar(&provider, "provider", "", "only this provider's callbacks")
	cmd.Flags().StringVar(&outcome, "outcome", "", "only this outcome: forwarded, duplicate, queued, rejected, upstream_failed, ignored, challenge_answered")
	cmd.Flags().StringVar(&since, "since", "", "only since this time (RFC 3339) or this long ago (24h, 7d)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	return cmd
}

func listEvents(addr string, query url.Values, asJSON bool, out io.Writer) error {
	var list struct {
		Events []journalEntry `json:"events"`
		Next   int64          `json:"next,omitempty"`
	}
	if err := adminGet(addr, "/payhook/events?"+query.Encode(), &list); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, list)
	}
	if len(list.Events) == 0 {
		fmt.Fprintln(out, "no callback in the journal matches")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tPROVIDER\tOUTCOME\tSTATUS\tAMOUNT\tMERCHANT REF\tPROVIDER REF\tEVENT")
	for _, e := range list.Events {
		outcome := e.Outcome
		if e.Reason != "" {
			outcome += " (" + e.Reason + ")"
		}
		amount := ""
		if e.Amount != nil {
			// In the currency's own decimals (999 EUR minor units: 9.99 EUR).
			decimal, err := normalize.Amount{MinorUnits: e.Amount.Value, Currency: e.Amount.Currency}.Decimal()
			if err != nil {
				decimal = strconv.FormatInt(e.Amount.Value, 10) + " minor units"
			}
			amount = decimal + " " + e.Amount.Currency
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format(time.DateTime), e.Provider, outcome, e.Status, amount,
			e.Merchant, e.Reference, e.EventID)
		for _, a := range e.Attempts {
			result := strconv.Itoa(a.Status)
			if a.Error != "" {
				result = a.Error
			}
			fmt.Fprintf(w, "\t  attempt %s\t%s\t%.1f ms\t\t\t\t\n", a.At.Local().Format(time.TimeOnly), result, a.LatencyMS)
		}
	}
	return w.Flush()
}

// adminGet asks the admin API at addr for path and decodes its JSON answer
// into v.
func adminGet(addr, path string, v any) error {
	return adminDo(addr, http.MethodGet, path, v)
}

// adminDo makes a request of the admin API at addr and decodes its JSON
// answer into v. A refusal is told in the admin API's own words ("no
// payhook route is running"), not as the JSON it came in.
func adminDo(addr, method, path string, v any) error {
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, nil)
	if err != nil {
		return adminError(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return nil
}

// adminError takes the message out of caddycmd.AdminAPIRequest's error
// for an answer of the admin API with an error: "caddy responded with
// error: HTTP 404: {"error":"…"}".
func adminError(err error) error {
	_, body, ok := strings.Cut(err.Error(), "caddy responded with error: HTTP ")
	if !ok {
		return err
	}
	_, body, _ = strings.Cut(body, ": ")
	var answer struct{ Error string }
	if json.Unmarshal([]byte(body), &answer) != nil || answer.Error == "" {
		return err
	}
	return errors.New(answer.Error)
}

// Interface guard.
var (
	_ caddy.AdminRouter = (*eventsAdmin)(nil)
	_ caddy.Provisioner = (*eventsAdmin)(nil)
)
