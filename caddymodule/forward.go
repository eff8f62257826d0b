package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// EventIDHeader carries the envelope's event id on the forwarded request,
// for shops and logs that look at headers only.
const EventIDHeader = "Payhook-Event-Id"

// keptHeaders are the provider's request headers that reach the shop
// without being named in forward_headers: reverse_proxy's own forwarding
// headers, which it replaces unless the request came through a trusted
// proxy (so that, behind a load balancer, the shop still sees the
// provider's address).
var keptHeaders = map[string]bool{
	"X-Forwarded-For":   true,
	"X-Forwarded-Proto": true,
	"X-Forwarded-Host":  true,
}

// framingHeaders describe the provider's body and its transport; payhook
// sets its own for the envelope, so they can never be forwarded.
var framingHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Content-Encoding": true, "Transfer-Encoding": true,
	"Trailer": true, "Connection": true, "Keep-Alive": true, "Te": true, "Upgrade": true,
	"Proxy-Connection": true, "Expect": true, "Host": true,
}

// checkForwardHeader refuses a forward_headers name that payhook sets
// itself or that describes the provider's body.
func checkForwardHeader(name string) error {
	canonical := http.CanonicalHeaderKey(name)
	if name == "" || strings.ContainsAny(name, " :\t\r\n") {
		return fmt.Errorf("forward_headers: %q is not a header name", name)
	}
	if framingHeaders[canonical] || canonical == EventIDHeader {
		return fmt.Errorf("forward_headers: %s describes the provider's body or is payhook's own; it cannot be forwarded", canonical)
	}
	return nil
}

var envelopeContentType = []string{normalize.EnvelopeContentType}

// prepareForward readies the request for its envelopes, once per callback:
// only the allowlisted headers stay (the provider's signature, credentials,
// cookies and anything else a sender added, such as X-Original-URL, do
// not), and the URL token leaves the URL. Method and path stay as received.
func (h *Handler) prepareForward(r *http.Request) {
	for name := range r.Header {
		if !keptHeaders[name] && !h.forwardNames[name] {
			delete(r.Header, name)
		}
	}
	r.Trailer = nil
	r.TransferEncoding = nil
	if r.Method == http.MethodGet {
		// A notification by query (QueryNotified): the envelope is a body,
		// which the shop receives as every envelope, by POST.
		r.Method = http.MethodPost
	}
	if h.urlToken != nil {
		stripURLToken(r)
	}
}

// setEnvelope makes the envelope the request's body: exact Content-Length,
// never chunked.
func setEnvelope(r *http.Request, id string, envelope []byte) {
	values := []string{strconv.Itoa(len(envelope)), id} // one allocation for both
	r.Header["Content-Type"] = envelopeContentType
	r.Header["Content-Length"] = values[0:1:1]
	r.Header[EventIDHeader] = values[1:2:2]
	r.ContentLength = int64(len(envelope))
	r.Body = io.NopCloser(bytes.NewReader(envelope))
	r.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(envelope)), nil
	}
}

// signEnvelope adds Standard Webhooks headers over the envelope: the event
// id as webhook-id, the time, and a v1 signature per key.
func signEnvelope(r *http.Request, keys [][]byte, id string, envelope []byte, now time.Time) {
	timestamp := strconv.FormatInt(now.Unix(), 10)
	signatures := make([]string, len(keys))
	for i, key := range keys {
		signatures[i] = verify.SignStandardWebhooks(key, id, timestamp, envelope)
	}
	r.Header["Webhook-Id"] = []string{id}
	r.Header["Webhook-Timestamp"] = []string{timestamp}
	r.Header["Webhook-Signature"] = []string{strings.Join(signatures, " ")}
}

// stripURLToken removes the token parameter from the request's URL: the
// shop never sees the secret, nor do access logs written after payhook.
func stripURLToken(r *http.Request) {
	r.URL.RawQuery = verify.StripURLToken(r.URL.RawQuery)
	r.RequestURI = withoutURLToken(r.RequestURI)
}

// upstreamRecorder stands in for the provider's connection while the next
// handler delivers the envelope: it keeps the status and discards the
// response, so that only payhook answers the provider. It deliberately does
// not unwrap to the real ResponseWriter: a flush there would send headers.
type upstreamRecorder struct {
	header http.Header
	status int
}

func (u *upstreamRecorder) Header() http.Header {
	if u.header == nil {
		u.header = make(http.Header)
	}
	return u.header
}

// WriteHeader records the final status; informational 1xx answers are not one.
func (u *upstreamRecorder) WriteHeader(status int) {
	if u.status == 0 && status >= 200 {
		u.status = status
	}
}

func (u *upstreamRecorder) Write(b []byte) (int, error) {
	if u.status == 0 {
		u.status = http.StatusOK
	}
	return len(b), nil
}

// Flush is a no-op: reverse_proxy flushes streamed responses.
func (u *upstreamRecorder) Flush() {}
