package normalize

import (
	"fmt"
	"unsafe"

	"github.com/tidwall/gjson"
)

// parseJSONObject checks that body is one valid JSON object and returns it
// for reading with gjson. The body is not copied: the strings read from the
// result share its memory, which is why Input.Body must not change while
// an Event made from it is in use.
func parseJSONObject(body []byte) (gjson.Result, error) {
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, fmt.Errorf("%w: not valid JSON", ErrMalformed)
	}
	doc := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !doc.IsObject() {
		return gjson.Result{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	return doc, nil
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
