package caddymodule

import "testing"

// Swedbank Pay's documents do not say whether they are test payments; the
// API payhook fetched them from does.
func TestAPIEnvironment(t *testing.T) {
	hosts := swedbankPayHosts
	for _, tt := range []struct {
		apiBase string
		want    string
	}{
		{"https://api.payex.com", "false"},
		{"https://api.externalintegration.payex.com", "true"},
		{"https://API.ExternalIntegration.PayEx.com:443", "true"},
		{"http://127.0.0.1:8443", "null"},
		{"https://api.payex.com.evil.example", "null"},
	} {
		got := "null"
		if test := apiEnvironment(hosts, tt.apiBase); test != nil {
			got = map[bool]string{true: "true", false: "false"}[*test]
		}
		if got != tt.want {
			t.Errorf("apiEnvironment(%q) = %s, want %s", tt.apiBase, got, tt.want)
		}
	}
}
