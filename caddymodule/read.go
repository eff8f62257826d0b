package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// Errors of the read step; classify maps them to the provider's answer.
var (
	errMethod         = errors.New("method not allowed")
	errContentType    = errors.New("content type not accepted")
	errBodyTooLarge   = errors.New("body over the limit")
	errBodyUnreadable = errors.New("body unreadable")
)

// read checks the method and content type, then reads the body, bounded by
// MaxBody: nothing about a callback is trusted before it is verified, so
// everything that can be refused without reading the body is refused first.
// It returns the callback as the verifier sees it and as the normalizer
// reads it; both share the body.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, rec *record) (cb *verify.Callback, in *normalize.Input, pooled *[]byte, err error) {
	_, byQuery := h.provider.(QueryNotified)
	get := r.Method == http.MethodGet && byQuery
	if r.Method != http.MethodPost && !get {
		return nil, nil, nil, fmt.Errorf("%w: %q", errMethod, truncate(r.Method, 16))
	}
	var mt string
	if get {
		// The notification is its URL's query: nothing of a body is read.
		r.ContentLength, r.Body = 0, http.NoBody
	} else {
		mt, err = mediaType(r.Header.Get("Content-Type"))
		if err != nil && mt == "" && slices.Contains(h.contentTypes, "") {
			err = nil // no Content-Type, which the provider's ContentTypes admits
		}
		if err != nil || !slices.Contains(h.contentTypes, mt) {
			return nil, nil, nil, fmt.Errorf("%w: %q", errContentType, truncate(mt, 64))
		}
	}
	// A compressed body would be signed compressed and parsed decompressed;
	// no provider sends one.
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, nil, nil, fmt.Errorf("%w: content encoding %q", errContentType, truncate(ce, 32))
	}
	if r.ContentLength > h.MaxBody {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes declared, %d allowed", errBodyTooLarge, r.ContentLength, h.MaxBody)
	}
	body, pooled, err := readBounded(w, r, h.MaxBody)
	if err != nil {
		return nil, nil, nil, err
	}
	cb = &rec.callback
	_, uri, _ := sentRequest(r)
	*cb = verify.Callback{
		Method:     r.Method,
		RequestURI: uri,
		Scheme:     "http",
		Host:       r.Host,
		Header:     r.Header,
		Body:       body,
	}
	if r.TLS != nil {
		cb.Scheme = "https"
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	rec.placeholders = sentPlaceholders{repl: repl, r: r}
	cb.Placeholders = &rec.placeholders
	rec.input = normalize.Input{Provider: h.name, ContentType: mt, Body: body}
	return cb, &rec.input, pooled, nil
}

// Body buffers are pooled by size, 4 KiB to 64 KiB, doubling: a read
// starts in a 4 KiB buffer (a typical callback is 1 to 4 KiB) and moves to
// the next size only when its buffer is full, so a connection holds at most
// twice what it has sent (4 KiB for anything smaller), however many such
// connections an attacker opens. Past 64 KiB a body gets buffers of its
// own, still doubling.
const (
	smallBodySize = 4 << 10
	bodyPoolSizes = 5
	largeBodySize = smallBodySize << (bodyPoolSizes - 1) // 64 KiB
)

// bodyPools[i] recycles buffers of smallBodySize<<i bytes.
var bodyPools [bodyPoolSizes]sync.Pool

func init() {
	for i := range bodyPools {
		size := smallBodySize << i
		bodyPools[i].New = func() any { b := make([]byte, 0, size); return &b }
	}
}

// bodyPool returns the pool of buffers with this capacity, or nil.
func bodyPool(capacity int) *sync.Pool {
	for i := range bodyPools {
		if capacity == smallBodySize<<i {
			return &bodyPools[i]
		}
	}
	return nil
}

// releaseBody returns a pooled body buffer to its pool; nil, or a buffer
// larger than the pools keep, is dropped.
func releaseBody(pooled *[]byte) {
	if pooled == nil {
		return
	}
	if pool := bodyPool(cap(*pooled)); pool != nil {
		*pooled = (*pooled)[:0]
		pool.Put(pooled)
	}
}

// readBounded reads at most limit bytes of the body. http.MaxBytesReader
// also tells the server to close the connection rather than drain an
// oversized body. When pooled is not nil, the caller must hand it to
// releaseBody once nothing refers to the body any more (the Event's
// strings share its memory).
//
// Memory follows the bytes that actually arrive, never the declared
// Content-Length nor the limit: a sender that declares (or chunks
// towards) max_body and sends little costs little.
func readBounded(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, pooled *[]byte, err error) {
	pooled = bodyPools[0].Get().(*[]byte)
	buf := (*pooled)[:0]
	reader := http.MaxBytesReader(w, r.Body, limit)
	for {
		n, err := reader.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, pooled, nil
		}
		if err != nil {
			releaseBody(pooled)
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, nil, fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
			}
			return nil, nil, fmt.Errorf("%w: %v", errBodyUnreadable, err)
		}
		if len(buf) < cap(buf) {
			continue
		}
		// The body filled its buffer: move to one twice as large, pooled
		// up to 64 KiB and never more than one byte past the limit (which
		// tells an oversized body apart).
		var grown *[]byte
		if pool := bodyPool(2 * cap(buf)); pool != nil {
			grown = pool.Get().(*[]byte)
			*grown = append((*grown)[:0], buf...)
		} else {
			b := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(b, buf)
			grown = &b
		}
		releaseBody(pooled)
		pooled, buf = grown, *grown
	}
}

// mediaType returns the lower-case media type of a Content-Type value,
// without parameters. It only needs to be right for the types providers are
// allowed to send (anything else is refused), so it does not parse the
// parameters; it allocates only for a type not already in lower case.
func mediaType(contentType string) (string, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	if mt == "" {
		return "", errors.New("no content type")
	}
	for i := 0; i < len(mt); i++ {
		if 'A' <= mt[i] && mt[i] <= 'Z' {
			return strings.ToLower(mt), nil
		}
	}
	return mt, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
