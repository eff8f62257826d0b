package verify

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// Klarna Checkout's push is not signed: Klarna POSTs an empty body to the
// merchant's push URI, the {checkout.order.id} placeholder of which it
// replaced with the order's id (docs.klarna.com "Confirm purchase":
// https://merchant.com/kco/push.php?klarna_order_id=12345). The merchant
// reads the order from the Order Management API, GET
// /ordermanagement/v1/orders/{order_id} with HTTP basic authentication
// (the API username and password), and then acknowledges it, POST
// /ordermanagement/v1/orders/{order_id}/acknowledge with no body, answered
// 204; until then Klarna pushes again (docs.klarna.com "Acknowledge your
// KCO orders"; klarna/kco_rest_php OrderManagement\Order::fetch and
// ::acknowledge).

// KlarnaAPIs are Klarna's API hosts by region (docs.klarna.com "API URLs";
// klarna/kco_rest_dotnet KlarnaEnvironment): live Europe, North America
// and Oceania, and the playground (test) host of each.
var KlarnaAPIs = map[string]string{
	"eu":            "https://api.klarna.com",
	"na":            "https://api-na.klarna.com",
	"oc":            "https://api-oc.klarna.com",
	"playground-eu": "https://api.playground.klarna.com",
	"playground-na": "https://api-na.playground.klarna.com",
	"playground-oc": "https://api-oc.playground.klarna.com",
}

// KlarnaOrderParams are the query parameters a push URI names its order id
// with by default: Klarna's documented example (klarna_order_id), then the
// name of the API's own field (order_id).
var KlarnaOrderParams = []string{"klarna_order_id", "order_id"}

// CheckKlarnaOrderID accepts only a Klarna order id: a UUID, 36 characters
// of hex digits and dashes in the 8-4-4-4-12 pattern (the Order Management
// API refuses anything else: "INVALID_ORDER_ID: Order ID must be a valid
// UUID"). Nothing else ever reaches the API's path, so a push cannot point
// payhook's request, and its credentials, anywhere else.
func CheckKlarnaOrderID(id string) error {
	if len(id) != 36 {
		return fmt.Errorf("%w: not a Klarna order id (a UUID)", ErrBadResource)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return fmt.Errorf("%w: not a Klarna order id (a UUID)", ErrBadResource)
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Errorf("%w: character %q in a Klarna order id", ErrBadResource, c)
		}
	}
	return nil
}

// maxKlarnaQuery bounds the push URI's query read: a real one holds an
// order id and perhaps the merchant's own parameters.
const maxKlarnaQuery = 2048

// KlarnaPushOrderID reads the order id a push names: the first of params
// present in the request URI's query, or, with inPath, the last segment of
// its path (a push URI such as /push/{checkout.order.id}). It is checked
// by CheckKlarnaOrderID; none found is ErrBadResource as well.
func KlarnaPushOrderID(requestURI string, params []string, inPath bool) (string, error) {
	path, query, _ := strings.Cut(requestURI, "?")
	if len(query) > maxKlarnaQuery {
		return "", fmt.Errorf("%w: a query longer than %d bytes", ErrBadResource, maxKlarnaQuery)
	}
	var id string
	if inPath {
		path = strings.TrimRight(path, "/")
		segment := path[strings.LastIndexByte(path, '/')+1:]
		unescaped, err := url.PathUnescape(segment)
		if err != nil {
			return "", fmt.Errorf("%w: the push URI's last path segment is not a Klarna order id", ErrBadResource)
		}
		id = unescaped
	} else {
		values, err := url.ParseQuery(query)
		if err != nil {
			return "", fmt.Errorf("%w: the push URI's query does not parse", ErrBadResource)
		}
		found := false
		for _, name := range params {
			if v, ok := values[name]; ok {
				if len(v) != 1 {
					return "", fmt.Errorf("%w: %s given %d times", ErrBadResource, name, len(v))
				}
				id, found = v[0], true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("%w: no order id in the push URI's query (%s)", ErrBadResource, strings.Join(params, ", "))
		}
	}
	if err := CheckKlarnaOrderID(id); err != nil {
		return "", err
	}
	return id, nil
}

// Klarna fetches Klarna orders back from the Order Management API and
// acknowledges them.
type Klarna struct {
	// APIBase is the API's origin, one of KlarnaAPIs.
	APIBase string
	// Username and Password are the merchant's API credentials (Klarna's
	// merchant portal, "API credentials").
	Username, Password []byte
	// Fetcher performs the API requests; share one per configuration.
	Fetcher *Fetcher
}

func (v *Klarna) header() http.Header {
	credentials := make([]byte, 0, len(v.Username)+1+len(v.Password))
	credentials = append(append(append(credentials, v.Username...), ':'), v.Password...)
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString(credentials)}}
}

// KlarnaOrderPath is the Order Management API's path of an order.
func KlarnaOrderPath(id string) string { return "/ordermanagement/v1/orders/" + id }

// Fetch GETs the order id (checked by CheckKlarnaOrderID) and checks that
// the answer is that order.
func (v *Klarna) Fetch(ctx context.Context, id string) (Result, error) {
	if err := CheckKlarnaOrderID(id); err != nil {
		return Result{}, err
	}
	// NO_SUCH_ORDER is a 404, INVALID_ORDER_ID a 400: both unknown.
	doc, err := v.Fetcher.getDocument(ctx, strings.TrimRight(v.APIBase, "/")+KlarnaOrderPath(id), v.header())
	if err != nil {
		return Result{}, err
	}
	order := gjson.ParseBytes(doc)
	if got := order.Get("order_id").String(); !strings.EqualFold(got, id) {
		return Result{}, fmt.Errorf("%w: asked for order %s, got %s", ErrAPIResponse, id, truncate(got, 80))
	}
	return Result{Method: "api-fetch", Resource: "orders/" + id, Status: order.Get("status").String(), Fetched: doc}, nil
}

// Acknowledge tells Klarna that the merchant has the order: POST
// …/acknowledge, without a body. Klarna answers 204 (kco_rest_php expects
// exactly that); any 2xx is taken as done. Klarna does not document a
// second acknowledgement of one order; a captured order counts as
// acknowledged ("Orders are also considered acknowledged if captured").
func (v *Klarna) Acknowledge(ctx context.Context, id string) error {
	if err := CheckKlarnaOrderID(id); err != nil {
		return err
	}
	// An empty, non-nil body: Go sends Content-Length: 0 with the POST.
	resp, err := v.Fetcher.Do(ctx, http.MethodPost, strings.TrimRight(v.APIBase, "/")+KlarnaOrderPath(id)+"/acknowledge", v.header(), []byte{})
	if err != nil {
		return err
	}
	if resp.Status < 200 || resp.Status >= 300 {
		code := gjson.GetBytes(resp.Body, "error_code").String()
		return fmt.Errorf("%w: acknowledge answered HTTP %d %s", ErrAPIResponse, resp.Status, truncate(code, 40))
	}
	return nil
}
