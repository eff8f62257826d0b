package normalize

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/payhook/payhook/verify"
)

// parseJSONObject checks that body is one JSON object nested at most
// verify.MaxJSONDepth deep, without recursion, and returns it for reading
// with gjson, together with raw: the bytes to embed in the envelope. raw is
// body itself, or, when body holds strings that strict readers refuse
// (invalid UTF-8, lone surrogates; see verify.CheckJSON), a repaired copy.
// body is not copied otherwise: the strings read from the result share its
// memory, which is why Input.Body must not change while an Event made from
// it is in use.
func parseJSONObject(body []byte) (doc gjson.Result, raw []byte, err error) {
	repair, err := verify.CheckJSON(body, verify.MaxJSONDepth)
	if err != nil {
		return gjson.Result{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	raw = body
	if repair {
		if raw, err = verify.RepairJSON(body, verify.MaxJSONDepth); err != nil {
			return gjson.Result{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	doc = gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
	if !doc.IsObject() {
		return gjson.Result{}, nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	return doc, raw, nil
}

// text returns a scalar field as text whatever JSON type the provider chose
// for it: a string's value, a number's literal digits (never through a
// float), "true"/"false"; "" for null, a missing field, an object or an array.
func text(r gjson.Result) string {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number, gjson.True, gjson.False:
		return r.Raw
	default:
		return ""
	}
}

// rfc3339 reads a built-in provider's event time as ParseEventTime does
// (RFC 3339, and the offsets without a colon some providers write); anything
// else is no time, and the envelope carries the receive time.
func rfc3339(s string) time.Time {
	if s == "" || len(s) > 40 {
		return time.Time{}
	}
	t, _ := ParseEventTime(s)
	return t
}
