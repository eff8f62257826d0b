package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// runSend runs `caddy payhook send` with args and returns what it printed
// on its standard output and its error.
func runSend(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := sendCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append(args, "--timeout", "5s"))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// send tells payhook's answer from any other by AnswerHeader, and fails
// for every answer but payhook's acknowledgement, saying why.
func TestSendJudgesTheAnswer(t *testing.T) {
	const target = "http://localhost:8880/callbacks/ixopay"
	marked := func(provider string) http.Header { return http.Header{AnswerHeader: {provider}} }
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string // in the error; "" for none
	}{
		{"payhook's acknowledgement", 200, marked("ixopay"), "OK", ""},
		{"Caddy's empty answer: no route handles the path", 200, nil, "", `no payhook answered at ` + target + `: check the path, and that its route has payhook ixopay; got 200 OK with an empty body`},
		{"a route without payhook", 404, nil, "404 page not found\n", `got 404 Not Found with "404 page not found"`},
		{"the shop's answer", 200, http.Header{"Content-Type": {"application/json"}}, `{"ok":true}`, `no payhook answered`},
		{"a refusal", 401, marked("ixopay"), "signature mismatch\n", ""},
		{"a refusal by another provider's route", 401, marked("stripe"), "signature missing\n", `the route at ` + target + ` takes stripe callbacks, not ixopay`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Status: fmt.Sprintf("%d %s", tt.status, http.StatusText(tt.status)), Header: tt.header}
			err := payhookAnswered("ixopay", target, resp, []byte(tt.body))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

// `caddy payhook send` to a path no payhook route handles fails with a
// hint, where it printed Caddy's empty "200 OK" and succeeded.
func TestSendFailsWhenNoPayhookAnswers(t *testing.T) {
	e := startCaddy(t, defaultSite+"\n\trespond /shop/* 404")
	for _, path := range []string{"/callback/ixopay", "/shop/ixopay"} {
		out, err := runSend(t, "ixopay", "--secret", testSecret, e.base+path)
		if err == nil || !strings.Contains(err.Error(), "no payhook answered at "+e.base+path+": check the path") {
			t.Errorf("send to %s: error %v, want no payhook answered; printed:\n%s", path, err, out)
		}
		if strings.Contains(out, "200 OK") {
			t.Errorf("send to %s printed an answer as payhook's:\n%s", path, out)
		}
	}
	e.expectNothingForwarded()
}

// `caddy payhook send` prints payhook's answer and succeeds only when
// payhook acknowledged; a refusal fails with payhook's reason.
func TestSendReportsPayhooksAnswer(t *testing.T) {
	e := startCaddy(t, defaultSite)
	out, err := runSend(t, "ixopay", "--secret", testSecret, e.base+"/callbacks/ixopay")
	if err != nil || out != "HTTP/1.1 200 OK\nOK\n" {
		t.Errorf("send: error %v, printed %q", err, out)
	}
	e.onlyDelivery()
	out, err = runSend(t, "ixopay", "--secret", testSecret, "--json", e.base+"/callbacks/ixopay")
	want := `{
  "provider": "ixopay",
  "url": "` + e.base + `/callbacks/ixopay",
  "status": 200,
  "answer": "OK"
}
`
	if err != nil || out != want {
		t.Errorf("send --json: error %v, printed %q, want %q", err, out, want)
	}
	out, err = runSend(t, "ixopay", "--secret", "wrong", e.base+"/callbacks/ixopay")
	if err == nil || err.Error() != `payhook refused the callback: 401 Unauthorized: "signature mismatch"` {
		t.Errorf("send with a wrong secret: error %v; printed:\n%s", err, out)
	}
}
