package verify

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock is a Fetcher's clock that moves only when a test moves it.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// newClockedFetcher returns a Fetcher of rate perSecond whose clock is the
// returned fakeClock, stopped.
func newClockedFetcher(perSecond int) (*Fetcher, *fakeClock) {
	clock := &fakeClock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	f := NewFetcher(FetchLimits{Timeout: time.Second, Rate: perSecond})
	f.now = clock.Now
	return f, clock
}

// requestCount is how many requests a stand-in API has received.
func requestCount(api *fakePayrexx) int {
	api.mu.Lock()
	defer api.mu.Unlock()
	return len(api.requests)
}

// The rate counts requests, not lookups: a lookup pays for its first
// request as it starts, each further request pays for itself, and a
// request past the rate is not sent (ErrAPIThrottled). Requests made
// outside a lookup (an access token's) pay too.
func TestFetcherRateCountsEveryRequest(t *testing.T) {
	api := newFakePayrexx(t, func(string) (int, string) { return 200, `{}` })
	f, clock := newClockedFetcher(2) // bursts of 4
	get := func(ctx context.Context) error {
		_, err := f.Get(ctx, api.URL+"/document", nil)
		return err
	}
	threeRequests := func(ctx context.Context) (Result, error) {
		for range 3 {
			if err := get(ctx); err != nil {
				return Result{}, err
			}
		}
		return Result{}, nil
	}
	for _, tt := range []struct {
		name     string
		lookup   bool // a lookup of three requests, else one request
		runs     bool // the lookup runs
		err      error
		requests int // the stand-in's count after the step
	}{
		{"a lookup: the paid request and two of the burst's", true, true, nil, 3},
		{"a lookup: the burst's last token pays for its first request only", true, true, ErrAPIThrottled, 4},
		{"a lookup with no token left", true, false, ErrAPIThrottled, 4},
		{"a request outside a lookup", false, false, ErrAPIThrottled, 4},
	} {
		var err error
		ran := false
		if tt.lookup {
			_, err = f.Lookup(context.Background(), tt.name, func(ctx context.Context) (Result, error) {
				ran = true
				return threeRequests(ctx)
			})
		} else {
			err = get(context.Background())
		}
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || requestCount(api) != tt.requests {
			t.Fatalf("%s: err %v, the API received %d requests; want %v, %d", tt.name, err, requestCount(api), tt.err, tt.requests)
		}
		if ran != tt.runs {
			t.Errorf("%s: the lookup ran: %v, want %v", tt.name, ran, tt.runs)
		}
	}
	// A second later, two more requests may be sent, and no more.
	clock.Advance(time.Second)
	for range 2 {
		if err := get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := get(context.Background()); !errors.Is(err, ErrAPIThrottled) || requestCount(api) != 6 {
		t.Errorf("a third request in that second: %v, the API received %d requests, want ErrAPIThrottled and 6", err, requestCount(api))
	}
}
