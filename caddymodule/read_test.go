package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// A body's memory follows the bytes that arrive: neither a declared
// Content-Length nor a large max_body reserves anything up front, and a
// connection that has sent a typical callback holds a 4 KiB buffer, not
// more, however many of them are open.
func TestReadBoundedGrowsWithTheBytesReceived(t *testing.T) {
	const limit = 64 << 20
	for _, tt := range []struct {
		name     string
		declared int64 // -1: chunked
		sent     int
	}{
		{"quirk_declares_max_body_sends_little", limit, 100},
		{"quirk_chunked_sends_little", -1, 100},
		{"quirk_fills_the_small_buffer", limit, smallBodySize},
		{"quirk_one_byte_past_the_small_buffer", -1, smallBodySize + 1},
		{"quirk_fills_the_large_buffer", -1, largeBodySize},
		{"quirk_chunked_sends_200KiB", -1, 200 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", io.LimitReader(zeros{}, int64(tt.sent)))
			r.ContentLength = tt.declared
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			body, pooled, err := readBounded(httptest.NewRecorder(), r, limit)
			runtime.ReadMemStats(&after)
			releaseBody(pooled)
			if err != nil || len(body) != tt.sent {
				t.Fatalf("read %d bytes, err %v; want %d", len(body), err, tt.sent)
			}
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > uint64(4*tt.sent+(8<<10)) {
				t.Errorf("reading %d bytes allocated %d", tt.sent, allocated)
			}
			if held := cap(body); held > max(smallBodySize, 2*tt.sent) {
				t.Errorf("reading %d bytes holds a buffer of %d", tt.sent, held)
			}
		})
	}
}

func TestReadBoundedRefusesMoreThanTheLimit(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 1001)))
	r.ContentLength = -1
	_, _, err := readBounded(httptest.NewRecorder(), r, 1000)
	if !errors.Is(err, errBodyTooLarge) {
		t.Errorf("err = %v, want errBodyTooLarge", err)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 1000)))
	if body, _, err := readBounded(httptest.NewRecorder(), r, 1000); err != nil || len(body) != 1000 {
		t.Errorf("a body of exactly the limit: %d bytes, %v", len(body), err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
