package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Sentinel errors of verification by fetching the resource back from the
// provider's API.
var (
	// ErrUnknownResource means the provider's API does not know what the
	// callback claims: a forged or mistaken callback.
	ErrUnknownResource = errors.New("resource unknown to the provider's API")
	// ErrAPIUnavailable means the provider's API could not be asked (down,
	// slow, 5xx): the provider should retry later.
	ErrAPIUnavailable = errors.New("provider's API unavailable")
	// ErrAPIRefused means the provider's API refused payhook's credentials:
	// a misconfiguration (API key, instance, token) an operator must fix.
	ErrAPIRefused = errors.New("provider's API refused the credentials")
	// ErrAPIResponse means the provider's API answered something that is
	// not the document it documents.
	ErrAPIResponse = errors.New("provider's API answered unexpectedly")
	// ErrAPIThrottled means payhook sent the provider's API as many
	// requests as it may this second: a flood of callbacks (forged ones,
	// most likely) is not turned into a flood of API requests. The provider
	// retries later.
	ErrAPIThrottled = errors.New("too many callbacks to verify right now")
	// ErrRecentlyUnknown means the provider's API called the resource
	// unknown a moment ago. The callback is answered as one to retry later,
	// never refused outright: a forger may have posted the id of a genuine
	// payment just before the provider did.
	ErrRecentlyUnknown = errors.New("resource unknown to the provider's API a moment ago")
)

// Default limits of a Fetcher.
const (
	DefaultFetchTimeout   = 5 * time.Second
	DefaultFetchMaxBody   = 1 << 20
	DefaultAPIRate        = 50 // requests per second
	defaultMaxConnsPerAPI = 16
	// UnknownFor is how long a resource the API called unknown is answered
	// ErrRecentlyUnknown without asking again: short against providers'
	// retry schedules (the first retries come after 30 s to 15 min), long
	// against a forger's loop.
	UnknownFor       = time.Minute
	unknownCacheSize = 4096
)

// FetchLimits bound what a Fetcher does.
type FetchLimits struct {
	// Timeout bounds each request; 0 means DefaultFetchTimeout.
	Timeout time.Duration
	// MaxBody bounds each answer, in bytes; 0 means DefaultFetchMaxBody.
	MaxBody int64
	// Rate bounds the requests sent to the API per second, with bursts of
	// twice as many: every request counts, a lookup's fallbacks and second
	// documents, a retry, an access token's. 0 means DefaultAPIRate.
	Rate int
}

// Fetcher GETs documents from one provider's API over a shared HTTP client:
// connections are kept alive and reused, their number bounded, and every
// request bounded in time and size. Create one per configured provider and
// reuse it; Close releases its idle connections.
type Fetcher struct {
	client  *http.Client
	maxBody int64
	limiter *rate.Limiter    // one token per request
	now     func() time.Time // time.Now; a test's clock

	mu      sync.Mutex
	unknown map[string]time.Time // resources the API just called unknown, until when
}

// NewFetcher returns a Fetcher with the given limits.
func NewFetcher(limits FetchLimits) *Fetcher {
	timeout, maxBody, perSecond := limits.Timeout, limits.MaxBody, limits.Rate
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	if maxBody <= 0 {
		maxBody = DefaultFetchMaxBody
	}
	if perSecond <= 0 {
		perSecond = DefaultAPIRate
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          defaultMaxConnsPerAPI,
		MaxIdleConnsPerHost:   defaultMaxConnsPerAPI,
		MaxConnsPerHost:       defaultMaxConnsPerAPI,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Fetcher{
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A provider's API never redirects a resource lookup; following
			// one would send the credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxBody: maxBody,
		limiter: rate.NewLimiter(rate.Limit(perSecond), 2*perSecond),
		now:     time.Now,
		unknown: make(map[string]time.Time),
	}
}

// Lookup verifies a callback by asking the provider's API about key (the
// resource the callback names) with lookup, within the Fetcher's bounds: a
// key the API called unknown less than UnknownFor ago is ErrRecentlyUnknown
// without a request, and past the rate limit a lookup is ErrAPIThrottled.
// Both mean "retry later", so a forger can neither make payhook flood the
// API nor get a genuine callback refused.
//
// A lookup pays for its first request as it starts, so that one the rate
// leaves no request for is refused before anything is done; each further
// request lookup sends through the Fetcher with the context it is given (a
// fallback, a second document) pays for itself, and is ErrAPIThrottled
// past the rate.
func (f *Fetcher) Lookup(ctx context.Context, key string, lookup func(context.Context) (Result, error)) (Result, error) {
	now := f.now()
	f.mu.Lock()
	until, known := f.unknown[key]
	if known && now.After(until) {
		delete(f.unknown, key)
		known = false
	}
	f.mu.Unlock()
	if known {
		return Result{}, fmt.Errorf("%w (less than %s ago)", ErrRecentlyUnknown, UnknownFor)
	}
	if !f.limiter.AllowN(now, 1) {
		return Result{}, ErrAPIThrottled
	}
	res, err := lookup(context.WithValue(ctx, paidRequestKey{}, &paidRequest{fetcher: f}))
	if errors.Is(err, ErrUnknownResource) {
		f.rememberUnknown(key, now.Add(UnknownFor))
	}
	return res, err
}

// rememberUnknown records key until then, in a map of bounded size: when it
// is full, expired keys go, and if none has, all of them (a forger cycling
// through fresh ids gains nothing by it: each costs a rate-limited lookup).
func (f *Fetcher) rememberUnknown(key string, until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.unknown) >= unknownCacheSize {
		now := f.now()
		for k, t := range f.unknown {
			if now.After(t) {
				delete(f.unknown, k)
			}
		}
		if len(f.unknown) >= unknownCacheSize {
			clear(f.unknown)
		}
	}
	f.unknown[key] = until
}

// paidRequestKey is the context key of a lookup's paidRequest.
type paidRequestKey struct{}

// paidRequest is the request a lookup paid for as it started: the first
// request its fetcher sends with its context takes it.
type paidRequest struct {
	fetcher *Fetcher
	taken   atomic.Bool
}

// allowRequest takes the budget of one request: the lookup's paid one if
// ctx carries it untaken, else one of the rate's.
func (f *Fetcher) allowRequest(ctx context.Context) bool {
	if paid, ok := ctx.Value(paidRequestKey{}).(*paidRequest); ok && paid.fetcher == f && paid.taken.CompareAndSwap(false, true) {
		return true
	}
	return f.limiter.AllowN(f.now(), 1)
}

// Close closes the Fetcher's idle connections.
func (f *Fetcher) Close() {
	f.client.CloseIdleConnections()
}

// FetchResponse is an API answer that Get did not classify as a failure.
type FetchResponse struct {
	Status int
	Body   []byte
}

// Get sends GET url with header and classifies the answer: 2xx and 4xx
// other than those below are returned for the caller to read; 404 and 410
// wrap ErrUnknownResource; 401 and 403 wrap ErrAPIRefused; 408, 429, 5xx,
// timeouts and network errors wrap ErrAPIUnavailable; a body over the limit
// wraps ErrAPIResponse. Past the rate, nothing is sent and the error is
// ErrAPIThrottled (see Lookup). Errors never include the header's values.
func (f *Fetcher) Get(ctx context.Context, url string, header http.Header) (*FetchResponse, error) {
	return f.Do(ctx, http.MethodGet, url, header, nil)
}

// Do sends a request with method and body (nil for none) and classifies
// the answer as Get does: for APIs that verify with a POST (PayPal).
func (f *Fetcher) Do(ctx context.Context, method, url string, header http.Header, body []byte) (*FetchResponse, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIResponse, err)
	}
	if !f.allowRequest(ctx) {
		return nil, ErrAPIThrottled
	}
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "payhook")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIUnavailable, redactURLError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", ErrAPIUnavailable, redactURLError(err))
	}
	if int64(len(answer)) > f.maxBody {
		return nil, fmt.Errorf("%w: answer over %d bytes", ErrAPIResponse, f.maxBody)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound || s == http.StatusGone:
		return nil, fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, s)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return nil, fmt.Errorf("%w (HTTP %d)", ErrAPIRefused, s)
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return nil, fmt.Errorf("%w (HTTP %d)", ErrAPIUnavailable, s)
	case s >= 300 && s < 400:
		return nil, fmt.Errorf("%w: redirect (HTTP %d)", ErrAPIResponse, s)
	}
	return &FetchResponse{Status: resp.StatusCode, Body: answer}, nil
}

// redactURLError drops the URL from a client error: it may carry a query
// parameter the operator considers private (an instance name, a token).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// getDocument GETs url from the provider's API and returns its JSON
// document (apiDocument). An error status Get passes on (4xx but 404,
// which Get maps itself) means the API does not know what was asked:
// ErrUnknownResource.
func (f *Fetcher) getDocument(ctx context.Context, url string, header http.Header) ([]byte, error) {
	resp, err := f.Get(ctx, url, header)
	if err != nil {
		return nil, err
	}
	if resp.Status >= 400 {
		return nil, fmt.Errorf("%w (HTTP %d)", ErrUnknownResource, resp.Status)
	}
	return apiDocument(resp)
}

// apiDocument checks that an API answer is JSON within MaxJSONDepth and
// returns it ready to embed in the envelope: the answer itself, or a copy
// whose strings RepairJSON made safe for strict readers.
func apiDocument(resp *FetchResponse) ([]byte, error) {
	repair, err := CheckJSON(resp.Body, MaxJSONDepth)
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON (HTTP %d): %v", ErrAPIResponse, resp.Status, err)
	}
	if !repair {
		return resp.Body, nil
	}
	return RepairJSON(resp.Body, MaxJSONDepth)
}
