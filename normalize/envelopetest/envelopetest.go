// Package envelopetest validates envelopes against payhook's JSON Schema in
// tests, in this module and in merchants' own test suites.
package envelopetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/payhook/payhook/normalize"
	"github.com/payhook/payhook/verify"
)

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(normalize.EnvelopeSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("envelope.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("envelope.schema.json")
})

// Validate returns an error describing every way envelope departs from the
// schema, or from strict JSON: the envelope must be valid UTF-8 with no
// escaped lone surrogate and no object key starting with U+0000, which
// strict readers such as PHP's json_decode refuse.
func Validate(envelope []byte) error {
	if !utf8.Valid(envelope) {
		return errors.New("envelope is not valid UTF-8")
	}
	if repair, err := verify.CheckJSON(envelope, verify.MaxJSONDepth+8); err != nil || repair {
		return fmt.Errorf("envelope is not strict JSON (repair needed: %v): %v", repair, err)
	}
	schema, err := compiled()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(envelope))
	if err != nil {
		return err
	}
	return schema.Validate(inst)
}

// Check fails t unless envelope is valid against the schema.
func Check(t testing.TB, envelope []byte) {
	t.Helper()
	if err := Validate(envelope); err != nil {
		t.Errorf("envelope does not match envelope.schema.json: %v\n%s", err, envelope)
	}
}
