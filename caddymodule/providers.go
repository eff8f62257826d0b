package caddymodule

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

// provider is everything payhook needs to serve one payment provider.
type provider struct {
	// contentTypes are the media types the provider posts; others get 415.
	contentTypes []string
	// options are the provider-specific configuration options it accepts,
	// by their Caddyfile names.
	options []string
	// newVerifier builds the verifier from the provisioned configuration.
	newVerifier func(h *Handler, secrets [][]byte) (verify.Verifier, error)
	// normalize turns a verified payload into the canonical event.
	normalize normalize.Normalizer
	// ack writes the provider's success acknowledgement and returns its status.
	ack func(w http.ResponseWriter) int
	// sample and sign fabricate a callback for `caddy payhook send`.
	sample normalize.SampleBuilder
	sign   func(r *http.Request, body []byte, secret []byte)
}

// providers is the registry: the only place that lists the providers.
var providers = map[string]*provider{
	"ixopay": {
		contentTypes: []string{"application/json"},
		options:      []string{"secret", "legacy_md5"},
		newVerifier: func(h *Handler, secrets [][]byte) (verify.Verifier, error) {
			if len(secrets) == 0 {
				return nil, errors.New("at least one secret is required (secret {env.IXOPAY_SHARED_SECRET})")
			}
			return &verify.IXOPAY{Secrets: secrets, MaxSkew: time.Duration(h.MaxSkew), LegacyMD5: h.LegacyMD5}, nil
		},
		normalize: normalize.IXOPAY,
		ack:       ackText("OK"),
		sample:    normalize.IXOPAYSample,
		sign:      signIXOPAY,
	},
}

func providerNames() []string {
	names := make([]string, 0, len(providers))
	for name := range providers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ackText answers 200 with a text/plain body, as IXOPAY expects ("OK").
func ackText(body string) func(w http.ResponseWriter) int {
	return func(w http.ResponseWriter) int {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
		return http.StatusOK
	}
}

// signIXOPAY signs r like IXOPAY does, with the verifier's own code.
func signIXOPAY(r *http.Request, body []byte, secret []byte) {
	signIXOPAYAt(r, body, secret, time.Now().UTC().Format(http.TimeFormat))
}

func signIXOPAYAt(r *http.Request, body []byte, secret []byte, date string) {
	r.Header.Set("Date", date)
	r.Header.Set("X-Signature", verify.SignIXOPAY(secret, verify.IXOPAYSHA512, verify.IXOPAYMessage{
		Method:      r.Method,
		ContentType: r.Header.Get("Content-Type"),
		Date:        date,
		RequestURI:  r.URL.RequestURI(),
		Body:        body,
	}))
}
