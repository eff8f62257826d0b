package normalize

import (
	"strings"
	"testing"
	"time"
)

// The built-in providers read their event times as the mapping does: an
// offset without its colon is the provider's time, not the receive time.
func TestBuiltInProvidersReadOffsetsWithoutAColon(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // RFC 3339 in UTC; empty for no time
	}{
		{"2017-02-02T11:24:14.040+0100", "2017-02-02T10:24:14.04Z"},
		{"2026-11-20T10:34:47+01:00", "2026-11-20T09:34:47Z"},
		{"2026-11-20T10:34:47.940Z", "2026-11-20T10:34:47.94Z"},
		{"2026-11-20T10:34:47", ""}, // no zone: nothing says which
		{"yesterday", ""},
		{strings.Repeat("9", 41), ""},
	} {
		got := rfc3339(tt.in)
		if (tt.want == "") != got.IsZero() || (!got.IsZero() && got.UTC().Format(time.RFC3339Nano) != tt.want) {
			t.Errorf("rfc3339(%q) = %v, want %q", tt.in, got, tt.want)
		}
	}
}
