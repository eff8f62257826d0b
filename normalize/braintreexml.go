package normalize

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Braintree's notifications are XML documents in the shape of its API's
// answers (braintree_node lib/braintree/webhook_testing_gateway.js): elements
// named in kebab-case, typed by a type attribute (array, boolean, integer,
// datetime, date), nil="true" for null. DecodeBraintreeXML turns one into
// JSON the way the official SDKs read it (Util.convertNodeToObject), keeping
// the element names as Braintree writes them:
//
//   - an element whose type is "array" is a JSON array of its children;
//   - an element with nil="true" is null;
//   - an element with children is an object; a name repeated among them
//     becomes an array, in document order;
//   - a leaf is its text: a JSON boolean or integer when its type says so and
//     its text is one, a string otherwise ("" when empty).
//
// Other attributes, comments and the XML declaration are dropped.

// Bounds of the XML payhook parses (after the signature is checked).
// Braintree's notifications nest about 6 deep and hold a few hundred
// elements.
const (
	MaxBraintreeXMLDepth    = 32
	MaxBraintreeXMLElements = 10000
	maxBraintreeXMLAttrs    = 8
)

// errBraintreeXMLLimit means the document passes a bound.
var errBraintreeXMLLimit = errors.New("XML past payhook's bounds")

// xmlNode is an element of the document being read.
type xmlNode struct {
	name     string
	typ      string // the type attribute
	null     bool   // nil="true"
	text     []byte
	children []*xmlNode
}

// DecodeBraintreeXML parses a Braintree notification and returns it as
// JSON ({"notification": {…}}). It takes no DTD (a DOCTYPE or any other
// directive is refused, so no entity is ever declared or expanded and
// nothing external is fetched), only UTF-8, at most MaxBraintreeXMLDepth
// levels and MaxBraintreeXMLElements elements. Errors wrap ErrMalformed.
func DecodeBraintreeXML(doc []byte) ([]byte, error) {
	root, err := parseBraintreeXML(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	out := make([]byte, 0, len(doc))
	out = append(out, '{')
	out = appendJSONString(out, root.name)
	out = append(out, ':')
	out = appendXMLNode(out, root)
	return append(out, '}'), nil
}

func parseBraintreeXML(doc []byte) (*xmlNode, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	d.Entity = nil        // only XML's five entities and character references
	d.CharsetReader = nil // a declared encoding other than UTF-8 is an error
	var stack []*xmlNode
	var root *xmlNode
	elements := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, errors.New("more than one root element")
			}
			if len(stack) >= MaxBraintreeXMLDepth {
				return nil, fmt.Errorf("%w: deeper than %d", errBraintreeXMLLimit, MaxBraintreeXMLDepth)
			}
			if elements++; elements > MaxBraintreeXMLElements {
				return nil, fmt.Errorf("%w: more than %d elements", errBraintreeXMLLimit, MaxBraintreeXMLElements)
			}
			if len(t.Attr) > maxBraintreeXMLAttrs {
				return nil, fmt.Errorf("%w: more than %d attributes", errBraintreeXMLLimit, maxBraintreeXMLAttrs)
			}
			n := &xmlNode{name: qualifiedName(t.Name)}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space != "":
				case a.Name.Local == "type":
					n.typ = a.Value
				case a.Name.Local == "nil":
					n.null = a.Value == "true"
				}
			}
			if len(stack) == 0 {
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			// RawToken does not match end tags with start tags: this does.
			if len(stack) == 0 || stack[len(stack)-1].name != qualifiedName(t.Name) {
				return nil, errors.New("end tag without its start tag")
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			n := stack[len(stack)-1]
			n.text = append(n.text, t...)
		case xml.ProcInst:
			if t.Target != "xml" || root != nil {
				return nil, errors.New("processing instruction")
			}
		case xml.Directive:
			return nil, errors.New("DOCTYPE or other directive")
		case xml.Comment:
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	if len(stack) != 0 {
		return nil, errors.New("element not closed")
	}
	return root, nil
}

// qualifiedName keeps a prefix, should an element carry one (Braintree's
// never do), so that it never merges with an unprefixed name.
func qualifiedName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// appendXMLNode appends n's value as JSON.
func appendXMLNode(out []byte, n *xmlNode) []byte {
	switch {
	case n.null:
		return append(out, "null"...)
	case n.typ == "array":
		out = append(out, '[')
		for i, c := range n.children {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendXMLNode(out, c)
		}
		return append(out, ']')
	case len(n.children) > 0:
		// Children by name, in the order of each name's first appearance.
		var names []string
		groups := make(map[string][]*xmlNode, len(n.children))
		for _, c := range n.children {
			if _, seen := groups[c.name]; !seen {
				names = append(names, c.name)
			}
			groups[c.name] = append(groups[c.name], c)
		}
		out = append(out, '{')
		for i, name := range names {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJSONString(out, name)
			out = append(out, ':')
			same := groups[name]
			if len(same) == 1 {
				out = appendXMLNode(out, same[0])
				continue
			}
			out = append(out, '[')
			for j, s := range same {
				if j > 0 {
					out = append(out, ',')
				}
				out = appendXMLNode(out, s)
			}
			out = append(out, ']')
		}
		return append(out, '}')
	}
	text := string(n.text)
	switch n.typ {
	case "boolean":
		if text == "true" || text == "false" {
			return append(out, text...)
		}
	case "integer":
		// A JSON number: no leading zero, no "-0".
		if digits := strings.TrimPrefix(text, "-"); digits != "" && len(digits) <= 18 && allDigits(digits) &&
			(digits == "0" && digits == text || digits[0] != '0') {
			return append(out, text...)
		}
	}
	return appendJSONString(out, text)
}
