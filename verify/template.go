package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Template describes the content a signature covers, built from a
// callback's raw bytes and headers: literal text and placeholders.
//
//	{body}                the raw body, exactly as received
//	{body.sha256.hex}     the SHA-256 of the raw body, lowercase hex
//	{body.sha256.base64}  the SHA-256 of the raw body, standard base64
//	{timestamp}           the timestamp, exactly as sent
//	{id}                  the notification id header, exactly as sent
//	{url}                 the URL called (or the configured one)
//	{secret}              the secret itself, for schemes that hash it with
//	                      the content instead of keying an HMAC (PayU)
//	{<anything else>}     the server's placeholder of that name, such as
//	                      {http.request.method}, {http.request.uri},
//	                      {http.request.header.X-Date},
//	                      {http.request.uri.query.data.id}
//
// A server placeholder may end in |lower for its value in lower case
// ({http.request.uri.query.data.id|lower}).
//
// In literal text, \n, \r and \t stand for a line feed, a carriage return
// and a tab, \\ for a backslash, \{ and \} for braces.
type Template struct {
	parts []templatePart
}

type partKind int

const (
	partLiteral partKind = iota
	partBody
	partBodySHA256Hex
	partBodySHA256Base64
	partTimestamp
	partID
	partURL
	partSecret
	partPlaceholder
)

type templatePart struct {
	kind  partKind
	text  string // the literal, or the placeholder's name
	lower bool   // the placeholder's value in lower case
}

// maxTemplateLen bounds a template; real ones are a few dozen bytes.
const maxTemplateLen = 1024

// ParseTemplate reads a template. It fails on an unterminated or empty
// placeholder, an unknown escape, or a template that does not cover the
// body ({body} or one of its digests): a signature that leaves the body
// out authenticates nothing the shop receives.
func ParseTemplate(s string) (Template, error) {
	t, err := ParseTemplateWithoutBody(s)
	if err == nil && !t.CoversBody() {
		return Template{}, fmt.Errorf("template does not cover the body: use {body} or one of its digests")
	}
	return t, err
}

// CoversBody reports whether the template signs the body ({body} or one
// of its digests).
func (t Template) CoversBody() bool {
	return t.uses(partBody) || t.uses(partBodySHA256Hex) || t.uses(partBodySHA256Base64)
}

// ParseTemplateWithoutBody reads a template that need not cover the body,
// for the providers whose signature leaves it out (Mercado Pago signs the
// resource's id, the request's id and a timestamp): the caller binds the
// body some other way.
func ParseTemplateWithoutBody(s string) (Template, error) {
	if len(s) > maxTemplateLen {
		return Template{}, fmt.Errorf("template longer than %d bytes", maxTemplateLen)
	}
	var t Template
	var literal strings.Builder
	flush := func() {
		if literal.Len() > 0 {
			t.parts = append(t.parts, templatePart{kind: partLiteral, text: literal.String()})
			literal.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return Template{}, fmt.Errorf("template ends with a backslash")
			}
			i++
			switch s[i] {
			case 'n':
				literal.WriteByte('\n')
			case 'r':
				literal.WriteByte('\r')
			case 't':
				literal.WriteByte('\t')
			case '\\', '{', '}':
				literal.WriteByte(s[i])
			default:
				return Template{}, fmt.Errorf("template has an unknown escape \\%c", s[i])
			}
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return Template{}, fmt.Errorf("template has an unterminated placeholder at byte %d", i)
			}
			name := s[i+1 : i+end]
			if name == "" || strings.ContainsAny(name, "{ \t\n") {
				return Template{}, fmt.Errorf("template has an invalid placeholder {%s}", name)
			}
			flush()
			part := templatePart{kind: placeholderKind(name), text: name}
			if base, ok := strings.CutSuffix(name, "|lower"); ok {
				part = templatePart{kind: placeholderKind(base), text: base, lower: true}
				if part.kind != partPlaceholder {
					return Template{}, fmt.Errorf("template: {%s}: only a server placeholder takes |lower", name)
				}
			}
			if strings.ContainsRune(part.text, '|') {
				return Template{}, fmt.Errorf("template: {%s}: the only filter is |lower", name)
			}
			t.parts = append(t.parts, part)
			i += end
		case '}':
			return Template{}, fmt.Errorf("template has an unmatched } at byte %d", i)
		default:
			literal.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

func placeholderKind(name string) partKind {
	switch name {
	case "body":
		return partBody
	case "body.sha256.hex":
		return partBodySHA256Hex
	case "body.sha256.base64":
		return partBodySHA256Base64
	case "timestamp":
		return partTimestamp
	case "id":
		return partID
	case "url":
		return partURL
	case "secret":
		return partSecret
	}
	return partPlaceholder
}

func (t Template) uses(kind partKind) bool {
	for _, p := range t.parts {
		if p.kind == kind {
			return true
		}
	}
	return false
}

// TemplateValues are what a template's placeholders stand for.
type TemplateValues struct {
	Body         []byte
	Timestamp    string
	ID           string
	URL          string
	Secret       []byte
	Placeholders Placeholders
}

// Append appends the content to dst. A server placeholder that does not
// resolve is ErrNotSigned: the signed content cannot be built.
func (t Template) Append(dst []byte, v TemplateValues) ([]byte, error) {
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			dst = append(dst, p.text...)
		case partBody:
			dst = append(dst, v.Body...)
		case partBodySHA256Hex:
			sum := sha256.Sum256(v.Body)
			dst = hex.AppendEncode(dst, sum[:])
		case partBodySHA256Base64:
			sum := sha256.Sum256(v.Body)
			dst = base64.StdEncoding.AppendEncode(dst, sum[:])
		case partTimestamp:
			dst = append(dst, v.Timestamp...)
		case partID:
			dst = append(dst, v.ID...)
		case partURL:
			dst = append(dst, v.URL...)
		case partSecret:
			dst = append(dst, v.Secret...)
		case partPlaceholder:
			var value any
			ok := false
			if v.Placeholders != nil {
				value, ok = v.Placeholders.Get(p.text)
			}
			if !ok {
				return nil, fmt.Errorf("%w: {%s} has no value", ErrNotSigned, p.text)
			}
			s, isString := value.(string)
			if !isString {
				s = fmt.Sprint(value)
			}
			if p.lower {
				s = strings.ToLower(s)
			}
			dst = append(dst, s...)
		}
	}
	return dst, nil
}
