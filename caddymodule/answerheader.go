package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// AnswerHeader is the header payhook puts on every answer it writes to a
// callback, naming the route's provider module (ixopay, hmac, …). By it
// `caddy payhook send` tells payhook's answer from any other: Caddy's
// empty 200 when no route handles the path, a shop's, a proxy's.
// Providers ignore headers they do not know, so their success answer stays
// what they expect.
const AnswerHeader = "Payhook-Provider"

// answerMark is the AnswerHeader value of one route's answers, made once
// when the route is provisioned: net/http only reads it.
type answerMark []string

func newAnswerMark(p Provider) answerMark { return answerMark{caddy.GetModuleName(p)} }

// set marks the answer about to be written as payhook's.
func (m answerMark) set(h http.Header) { h[AnswerHeader] = m }
