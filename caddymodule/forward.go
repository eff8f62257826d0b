package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// strippedHeaders are the provider's headers that must not reach the shop:
// its signature and credentials (the body they covered is gone) and the
// framing of the original body.
var strippedHeaders = []string{
	"X-Signature", "X-Date", "Authorization", "Proxy-Authorization", "Cookie",
	"Webhook-Signature", "X-Webhook-Signature", "Content-Md5", "Digest",
	"Content-Encoding", "Transfer-Encoding", "Content-Length", "Trailer",
}

var envelopeContentType = []string{normalize.EnvelopeContentType}

// prepareForward replaces the request's body with the envelope: exact
// Content-Length, never chunked, the provider's signature headers removed.
// Method and path stay as received.
func prepareForward(r *http.Request, envelope []byte) {
	for _, name := range strippedHeaders {
		delete(r.Header, name) // the names are canonical already
	}
	r.Trailer = nil
	r.TransferEncoding = nil
	r.Header["Content-Type"] = envelopeContentType
	r.Header["Content-Length"] = []string{strconv.Itoa(len(envelope))}
	r.ContentLength = int64(len(envelope))
	r.Body = io.NopCloser(bytes.NewReader(envelope))
	r.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(envelope)), nil
	}
}

// stripURLToken removes the token parameter from the request's URL: the
// shop never sees the secret, nor do access logs written after payhook.
func stripURLToken(r *http.Request) {
	r.URL.RawQuery = verify.StripURLToken(r.URL.RawQuery)
	path, _, _ := strings.Cut(r.RequestURI, "?")
	r.RequestURI = path
	if r.URL.RawQuery != "" {
		r.RequestURI += "?" + r.URL.RawQuery
	}
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
