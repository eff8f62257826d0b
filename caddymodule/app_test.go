package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/payhook/payhook/caddymodule/internal/store"
)

// Every callback leaves its entry in the journal: accepted with its
// references and amount, refused with its reason, a duplicate as one;
// never a secret or the payload.
func TestJournalRecordsEveryCallback(t *testing.T) {
	e := startCaddy(t, defaultSite)
	resp, body := e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")
	forged := ixopayCallback(debitOK)
	forged.secret = "forger"
	resp, body = e.send(forged)
	expectAnswer(t, resp, body, http.StatusUnauthorized, "")
	resp, body = e.send(ixopayCallback(debitOK))
	expectAnswer(t, resp, body, http.StatusOK, "OK")

	journal, err := store.OpenSQLite(context.Background(), e.database(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	var entries []store.Entry
	for deadline := time.Now().Add(5 * time.Second); len(entries) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if entries, err = journal.Search(context.Background(), store.Query{}); err != nil {
			t.Fatal(err)
		}
	}
	var outcomes []string
	for _, en := range entries {
		outcomes = append(outcomes, en.Outcome)
	}
	if strings.Join(outcomes, " ") != "duplicate rejected forwarded" {
		t.Fatalf("journal outcomes, newest first: %v", outcomes)
	}
	delivered := entries[2]
	if delivered.Provider != "ixopay" || delivered.Merchant != "order-1042" || delivered.Reference != "d94c0d72f3a36e21f16e" ||
		delivered.Amount == nil || *delivered.Amount != 999 || delivered.Currency != "EUR" || delivered.Status != "captured" ||
		delivered.EventID == "" || delivered.VerifiedBy == "" || !strings.Contains(delivered.Route, "/callbacks/ixopay*") {
		t.Errorf("the delivered callback's entry: %+v", delivered)
	}
	if entries[0].EventID != delivered.EventID {
		t.Errorf("the duplicate's entry names event %q, want %q", entries[0].EventID, delivered.EventID)
	}
	if refused := entries[1]; refused.Reason != "signature_mismatch" || refused.EventID != "" || refused.Merchant != "" {
		t.Errorf("the forged callback's entry: %+v", refused)
	}
	found, err := journal.Search(context.Background(), store.Query{Ref: "order-1042"})
	if err != nil || len(found) != 2 {
		t.Errorf("searching the merchant reference: %d entries, %v", len(found), err)
	}
	raw, _ := json.Marshal(entries)
	for _, secret := range []string{testSecret, "Lovelace", "ada@example.org"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the journal holds %q", secret)
		}
	}

	// The admin API answers the operator's question, with the delivery
	// attempts; so does `caddy payhook events`.
	status, answer := adminCall(t, http.MethodGet, "/payhook/events?ref=order-1042")
	var list struct {
		Events []journalEntry `json:"events"`
	}
	if err := json.Unmarshal(answer, &list); status != http.StatusOK || err != nil || len(list.Events) != 2 {
		t.Fatalf("GET /payhook/events?ref=order-1042: %d %s", status, answer)
	}
	if got := list.Events[1]; got.Amount == nil || got.Amount.Value != 999 || len(got.Attempts) != 1 || got.Attempts[0].Status != http.StatusOK {
		t.Errorf("the delivered callback on the admin API: %s", answer)
	}
	if status, answer := adminCall(t, http.MethodGet, "/payhook/events?outcome=rejected&since=1h"); status != http.StatusOK ||
		!strings.Contains(string(answer), "signature_mismatch") || strings.Contains(string(answer), "order-1042") {
		t.Errorf("GET /payhook/events?outcome=rejected: %d %s", status, answer)
	}
	if status, answer := adminCall(t, http.MethodGet, "/payhook/events?since=yesterday"); status != http.StatusBadRequest {
		t.Errorf("a bad since: %d %s", status, answer)
	}
	var out strings.Builder
	if err := listEvents("localhost:2999", url.Values{"ref": {"order-1042"}}, false, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"duplicate", "forwarded", "9.99 EUR", "order-1042", "attempt", "200"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("caddy payhook events --ref order-1042 lacks %q:\n%s", want, out.String())
		}
	}
}

// The payhook global option configures the app.
func TestPayhookGlobalOption(t *testing.T) {
	adapt := func(option string) (map[string]any, error) {
		raw, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n"+option+"\n}\n:8080 {\n\trespond ok\n}\n"), nil)
		if err != nil {
			return nil, err
		}
		var config struct {
			Apps map[string]map[string]any `json:"apps"`
		}
		if err := json.Unmarshal(raw, &config); err != nil {
			t.Fatal(err)
		}
		return config.Apps["payhook"], nil
	}
	for _, tt := range []struct {
		option string
		want   string // the app's JSON, or the error's words
	}{
		{"payhook {\n\tstore postgres {env.PAYHOOK_DATABASE_URL}\n\tjournal_keep 7d\n}",
			`{"journal_keep":604800000000000,"store":{"dsn":"{env.PAYHOOK_DATABASE_URL}","engine":"postgres"}}`},
		{"payhook {\n\tstore sqlite /var/lib/caddy/payhook.db\n}", `{"store":{"engine":"sqlite","path":"/var/lib/caddy/payhook.db"}}`},
		{"payhook {\n\tstore sqlite\n}", `{"store":{"engine":"sqlite"}}`},
		{"payhook {\n\tstore postgres\n}", "store takes sqlite [<path>] or postgres <dsn>"},
		{"payhook {\n\tstore mysql x\n}", "store takes sqlite [<path>] or postgres <dsn>"},
		{"payhook {\n\tjournal_keep 5 minutes\n}", "journal_keep"},
		{"payhook {\n\tqueue x\n}", `unrecognized payhook global option "queue"`},
	} {
		app, err := adapt(tt.option)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			raw, _ := json.Marshal(app)
			got = string(raw)
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("%q: %s, want %s", tt.option, got, tt.want)
		}
	}
}
