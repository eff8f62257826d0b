package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
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
)

// Default limits of a Fetcher.
const (
	DefaultFetchTimeout   = 5 * time.Second
	DefaultFetchMaxBody   = 1 << 20
	defaultMaxConnsPerAPI = 16
)

// Fetcher GETs documents from one provider's API over a shared HTTP client:
// connections are kept alive and reused, their number bounded, and every
// request bounded in time and size. Create one per configured provider and
// reuse it; Close releases its idle connections.
type Fetcher struct {
	client  *http.Client
	maxBody int64
}

// NewFetcher returns a Fetcher whose requests time out after timeout (0
// means DefaultFetchTimeout) and whose answers are bounded by maxBody bytes
// (0 means DefaultFetchMaxBody).
func NewFetcher(timeout time.Duration, maxBody int64) *Fetcher {
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	if maxBody <= 0 {
		maxBody = DefaultFetchMaxBody
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
	}
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
// wraps ErrAPIResponse. Errors never include the header's values.
func (f *Fetcher) Get(ctx context.Context, url string, header http.Header) (*FetchResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIResponse, err)
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", ErrAPIUnavailable, redactURLError(err))
	}
	if int64(len(body)) > f.maxBody {
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
	return &FetchResponse{Status: resp.StatusCode, Body: body}, nil
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
