package verify

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const klarnaTestOrderID = "7849fd84-47dc-4919-a7ce-47b9f461562f"

func TestCheckKlarnaOrderID(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{klarnaTestOrderID, true}, {strings.ToUpper(klarnaTestOrderID), true},
		{"12345", false}, {"", false}, {klarnaTestOrderID + "0", false}, {klarnaTestOrderID[:35], false},
		{"7849fd84_47dc-4919-a7ce-47b9f461562f", false}, {"7849fd84-47dc-4919-a7ce-47b9f461562g", false},
		{"7849fd84-47dc-4919-a7ce-47b9f46156/f", false}, {"../../../orders/abcd-4919-a7ce-47b9f4", false},
		{"7849fd84-47dc-4919-a7ce-47b9f461562%", false}, {"7849fd84-47dc-4919-a7ce-47b9f4615 2f", false},
	} {
		err := CheckKlarnaOrderID(tt.id)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadResource)) {
			t.Errorf("%q: %v", tt.id, err)
		}
	}
}

func TestKlarnaPushOrderID(t *testing.T) {
	id := klarnaTestOrderID
	for _, tt := range []struct {
		name, uri string
		params    []string
		inPath    bool
		want      string
	}{
		{"docs example's parameter", "/kco/push?klarna_order_id=" + id, KlarnaOrderParams, false, id},
		{"order_id", "/kco/push?order_id=" + id, KlarnaOrderParams, false, id},
		{"the first parameter wins", "/kco/push?order_id=x&klarna_order_id=" + id, KlarnaOrderParams, false, id},
		{"other parameters around", "/kco/push?shop=1&klarna_order_id=" + id + "&token=abc", KlarnaOrderParams, false, id},
		{"a configured name", "/push?checkout_uri=" + id, []string{"checkout_uri"}, false, id},
		{"in the path", "/push/" + id, nil, true, id},
		{"in the path, trailing slash", "/push/" + id + "/?x=1", nil, true, id},
		{"none", "/kco/push", KlarnaOrderParams, false, ""},
		{"another name only", "/kco/push?checkout_uri=" + id, KlarnaOrderParams, false, ""},
		{"twice", "/kco/push?klarna_order_id=" + id + "&klarna_order_id=" + id, KlarnaOrderParams, false, ""},
		{"not a UUID", "/kco/push?klarna_order_id=12345", KlarnaOrderParams, false, ""},
		{"a path for an id", "/kco/push?klarna_order_id=" + id + "%2F..%2Fcaptures", KlarnaOrderParams, false, ""},
		{"an escaped slash in the path", "/push/..%2F" + id, nil, true, ""},
		{"a bad escape", "/kco/push?klarna_order_id=%zz", KlarnaOrderParams, false, ""},
		{"a long query", "/kco/push?x=" + strings.Repeat("a", 3000) + "&klarna_order_id=" + id, KlarnaOrderParams, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KlarnaPushOrderID(tt.uri, tt.params, tt.inPath)
			if tt.want == "" {
				if !errors.Is(err, ErrBadResource) {
					t.Fatalf("got %q, %v; want ErrBadResource", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// klarnaStandIn answers the Order Management API's order and acknowledge
// calls for one order and records what it was asked.
type klarnaStandIn struct {
	orderStatus, ackStatus int
	order, ackAnswer       string
	requests               []string // method and path of each
	auth                   []string
	ackBodies              []string
	ackLengths             []int64
}

func (s *klarnaStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if strings.HasSuffix(r.URL.Path, "/acknowledge") {
		body, _ := io.ReadAll(r.Body)
		s.ackBodies = append(s.ackBodies, string(body))
		s.ackLengths = append(s.ackLengths, r.ContentLength)
		w.WriteHeader(s.ackStatus)
		_, _ = io.WriteString(w, s.ackAnswer)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.orderStatus)
	_, _ = io.WriteString(w, s.order)
}

// The order is fetched with the API credentials as HTTP basic
// authentication, at /ordermanagement/v1/orders/{id} under the configured
// base only; the acknowledge is a POST without a body to …/acknowledge.
func TestKlarnaFetchAndAcknowledge(t *testing.T) {
	order := `{"order_id":"` + klarnaTestOrderID + `","status":"AUTHORIZED","fraud_status":"ACCEPTED","order_amount":200,"purchase_currency":"PLN"}`
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("PK0001_user:pass:word"))
	for _, tt := range []struct {
		name   string
		id     string
		status int
		answer string
		err    error
		asked  bool
	}{
		{"found", klarnaTestOrderID, 200, order, nil, true},
		{"no such order", klarnaTestOrderID, 404, `{"error_code":"NO_SUCH_ORDER","error_messages":["Order cannot be found."]}`, ErrUnknownResource, true},
		{"invalid id", klarnaTestOrderID, 400, `{"error_code":"INVALID_ORDER_ID"}`, ErrUnknownResource, true},
		{"credentials refused", klarnaTestOrderID, 401, `{"error_code":"UNAUTHORIZED"}`, ErrAPIRefused, true},
		{"down", klarnaTestOrderID, 503, ``, ErrAPIUnavailable, true},
		{"another order", klarnaTestOrderID, 200, strings.Replace(order, "7849fd84", "00000000", 1), ErrAPIResponse, true},
		{"not JSON", klarnaTestOrderID, 200, `<html>`, ErrAPIResponse, true},
		{"not an id", "12345/../../payments", 200, order, ErrBadResource, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stand := &klarnaStandIn{orderStatus: tt.status, order: tt.answer, ackStatus: 204}
			srv := httptest.NewServer(stand)
			defer srv.Close()
			v := &Klarna{APIBase: srv.URL + "/", Username: []byte("PK0001_user"), Password: []byte("pass:word"), Fetcher: NewFetcher(FetchLimits{})}
			res, err := v.Fetch(context.Background(), tt.id)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			} else if err != nil || res.Status != "AUTHORIZED" || res.Resource != "orders/"+tt.id || res.Method != "api-fetch" {
				t.Fatalf("got %+v, %v", res, err)
			}
			if !tt.asked {
				if len(stand.requests) != 0 {
					t.Fatalf("asked %v", stand.requests)
				}
				return
			}
			if want := "GET /ordermanagement/v1/orders/" + tt.id; len(stand.requests) != 1 || stand.requests[0] != want {
				t.Fatalf("requests %v, want %s", stand.requests, want)
			}
			if stand.auth[0] != basic {
				t.Fatalf("Authorization %q", stand.auth[0])
			}
		})
	}

	t.Run("acknowledge", func(t *testing.T) {
		for _, tt := range []struct {
			status int
			answer string
			err    error
		}{
			{204, "", nil},
			{200, "", nil},
			{404, `{"error_code":"NO_SUCH_ORDER"}`, ErrUnknownResource},
			{403, `{"error_code":"NOT_ALLOWED"}`, ErrAPIRefused},
			{400, `{"error_code":"BAD_VALUE"}`, ErrAPIResponse},
			{500, ``, ErrAPIUnavailable},
		} {
			stand := &klarnaStandIn{ackStatus: tt.status, ackAnswer: tt.answer}
			srv := httptest.NewServer(stand)
			v := &Klarna{APIBase: srv.URL, Username: []byte("PK0001_user"), Password: []byte("pass:word"), Fetcher: NewFetcher(FetchLimits{})}
			err := v.Acknowledge(context.Background(), klarnaTestOrderID)
			srv.Close()
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("%d: err = %v, want %v", tt.status, err, tt.err)
			}
			if want := "POST /ordermanagement/v1/orders/" + klarnaTestOrderID + "/acknowledge"; len(stand.requests) != 1 || stand.requests[0] != want {
				t.Fatalf("requests %v, want %s", stand.requests, want)
			}
			if stand.auth[0] != basic || stand.ackBodies[0] != "" || stand.ackLengths[0] != 0 {
				t.Fatalf("Authorization %q, body %q, length %d", stand.auth[0], stand.ackBodies[0], stand.ackLengths[0])
			}
		}
		v := &Klarna{APIBase: "http://127.0.0.1:1", Fetcher: NewFetcher(FetchLimits{})}
		if err := v.Acknowledge(context.Background(), "../x"); !errors.Is(err, ErrBadResource) {
			t.Fatalf("a bad id: %v", err)
		}
	})
}

func FuzzKlarnaPushOrderID(f *testing.F) {
	f.Add("/kco/push?klarna_order_id="+klarnaTestOrderID, false)
	f.Add("/push/"+klarnaTestOrderID, true)
	f.Add("/push?order_id=%zz&klarna_order_id=1", false)
	f.Fuzz(func(t *testing.T, uri string, inPath bool) {
		id, err := KlarnaPushOrderID(uri, KlarnaOrderParams, inPath)
		if err != nil {
			if !errors.Is(err, ErrBadResource) {
				t.Fatalf("%q: %v", uri, err)
			}
			return
		}
		if CheckKlarnaOrderID(id) != nil {
			t.Fatalf("%q: accepted %q", uri, id)
		}
	})
}
