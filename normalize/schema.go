package normalize

import _ "embed"

// EnvelopeSchema is the JSON Schema (draft 2020-12) of the envelope,
// envelope.schema.json in this directory.
//
//go:embed envelope.schema.json
var EnvelopeSchema []byte
