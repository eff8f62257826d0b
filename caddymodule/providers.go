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
	newVerifier func(h *Handler) (verify.Verifier, error)
	// claim reads what an unsigned callback is about before it is verified,
	// for providers verified by fetching that back; nil for signed ones.
	claim func(in *normalize.Input) (verify.Claim, error)
	// defaultAPIBase is the provider's API, for providers payhook fetches from.
	defaultAPIBase string
	// testHosts maps the provider's API hosts to whether they are its test
	// environment, for providers whose documents do not say (data.test).
	testHosts map[string]bool
	// verifiedByURLToken says the provider's verification is the URL token
	// itself, which therefore is not added again as an extra check.
	verifiedByURLToken bool
	// normalize turns a verified payload into the canonical event.
	normalize normalize.Normalizer
	// ack writes the provider's success acknowledgement and returns its status.
	ack func(w http.ResponseWriter) int
	// sample and sign fabricate a callback for `caddy payhook send`;
	// signRequired says whether sign needs a secret.
	sample       normalize.SampleBuilder
	sign         func(r *http.Request, body []byte, secret []byte)
	signRequired bool
}

// providers is the registry: the only place that lists the providers.
var providers = map[string]*provider{
	"ixopay": {
		contentTypes: []string{"application/json"},
		options:      []string{"secret", "legacy_md5", "max_skew"},
		newVerifier: func(h *Handler) (verify.Verifier, error) {
			if len(h.resolved.secrets) == 0 {
				return nil, errors.New("at least one secret is required (secret {env.IXOPAY_SHARED_SECRET})")
			}
			return &verify.IXOPAY{Secrets: h.resolved.secrets, MaxSkew: time.Duration(h.MaxSkew), LegacyMD5: h.LegacyMD5}, nil
		},
		normalize:    normalize.IXOPAY,
		ack:          ackText("OK"),
		sample:       normalize.IXOPAYSample,
		sign:         signIXOPAY,
		signRequired: true,
	},
	"payrexx":    payrexxPlatform("https://api.payrexx.com"),
	"shopandpay": payrexxPlatform("https://api.shop-and-pay.com"),
	"swedbankpay": {
		contentTypes:   []string{"application/json"},
		options:        []string{"token", "api_base", "api_timeout"},
		defaultAPIBase: "https://api.payex.com",
		testHosts:      map[string]bool{"api.payex.com": false, "api.externalintegration.payex.com": true},
		newVerifier: func(h *Handler) (verify.Verifier, error) {
			if len(h.resolved.token) == 0 {
				return nil, errors.New("token is required (token {env.SWEDBANK_PAY_TOKEN})")
			}
			return &verify.SwedbankPay{APIBase: h.resolved.apiBase, Token: h.resolved.token, Fetcher: h.resolved.fetcher}, nil
		},
		claim: func(in *normalize.Input) (verify.Claim, error) {
			kind, path, err := normalize.SwedbankPayClaim(in)
			return verify.Claim{Kind: kind, ID: path}, err
		},
		normalize: normalize.SwedbankPay,
		ack:       ackText("OK"),
		sample:    normalize.SwedbankPaySample,
	},
	"pyxis": {
		contentTypes:       []string{"application/json"},
		options:            []string{"currency"},
		verifiedByURLToken: true,
		newVerifier: func(h *Handler) (verify.Verifier, error) {
			if len(h.resolved.urlTokens) == 0 {
				return nil, errors.New("url_token is required (url_token {env.PYXIS_CALLBACK_TOKEN}); Pyxis signs nothing")
			}
			return &verify.URLToken{Tokens: h.resolved.urlTokens}, nil
		},
		normalize:    normalize.Pyxis,
		ack:          ackText("OK"),
		sample:       normalize.PyxisSample,
		sign:         signURLToken,
		signRequired: true,
	},
}

// payrexxPlatform serves Payrexx and its white labels, which differ only in
// their API host: webhooks (JSON or PHP form) are verified by fetching the
// transaction back from the API.
func payrexxPlatform(defaultAPIBase string) *provider {
	return &provider{
		contentTypes:   []string{"application/x-www-form-urlencoded", "application/json"},
		options:        []string{"instance", "api_key", "api_base", "api_timeout", "signature_secret"},
		defaultAPIBase: defaultAPIBase,
		newVerifier: func(h *Handler) (verify.Verifier, error) {
			if h.resolved.instance == "" {
				return nil, errors.New("instance is required (the Payrexx instance name)")
			}
			if len(h.resolved.apiKey) == 0 {
				return nil, errors.New("api_key is required (api_key {env.PAYREXX_API_KEY})")
			}
			return &verify.Payrexx{
				APIBase:          h.resolved.apiBase,
				Instance:         h.resolved.instance,
				APIKey:           h.resolved.apiKey,
				SignatureSecrets: h.resolved.signatureSecrets,
				Fetcher:          h.resolved.fetcher,
			}, nil
		},
		claim: func(in *normalize.Input) (verify.Claim, error) {
			kind, id, status, err := normalize.PayrexxClaim(in)
			return verify.Claim{Kind: kind, ID: id, Status: status}, err
		},
		normalize: normalize.Payrexx,
		ack:       ackText("OK"),
		sample:    normalize.PayrexxSample,
		sign:      signPayrexx,
	}
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
	length, raw := []string{strconv.Itoa(len(body))}, []byte(body)
	return func(w http.ResponseWriter) int {
		header := w.Header()
		header["Content-Type"] = textPlain
		header["Content-Length"] = length
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
		return http.StatusOK
	}
}

// signURLToken puts the token into the callback URL, as the merchant does
// when registering it with the provider.
func signURLToken(r *http.Request, _ []byte, secret []byte) {
	q := r.URL.Query()
	q.Set(verify.URLTokenParam, string(secret))
	r.URL.RawQuery = q.Encode()
}

// signPayrexx adds the optional X-Webhook-Signature.
func signPayrexx(r *http.Request, body []byte, secret []byte) {
	if len(secret) > 0 {
		r.Header.Set("X-Webhook-Signature", verify.SignHexHMACSHA256(secret, body))
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
