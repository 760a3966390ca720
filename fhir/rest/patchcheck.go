package rest

import (
	"encoding/json"

	"github.com/iambilly/billy/fhir"
)

// checkJSONPatch checks the shape of a JSON Patch document (RFC 6902 section 4) before the library
// reads it, so that a malformed one is refused naming the operation by its index: the library's own
// message quotes the whole operation, value included (which may be PHI, or not even UTF-8).
func checkJSONPatch(doc []byte) error {
	var ops []map[string]json.RawMessage
	if err := json.Unmarshal(doc, &ops); err != nil {
		return fhir.Errorf(fhir.ErrInvalid, "structure", "the JSON Patch document is not a JSON array of operation objects")
	}
	str := func(raw json.RawMessage) bool {
		var s string
		return raw != nil && json.Unmarshal(raw, &s) == nil
	}
	for i, op := range ops {
		var name string
		if op == nil || op["op"] == nil || json.Unmarshal(op["op"], &name) != nil {
			return fhir.Errorf(fhir.ErrInvalid, "structure", "JSON Patch operation %d has no op string", i)
		}
		switch name {
		case "add", "remove", "replace", "move", "copy", "test":
		default:
			return fhir.Errorf(fhir.ErrInvalid, "structure", "JSON Patch operation %d: op must be add, remove, replace, move, copy or test", i)
		}
		if !str(op["path"]) {
			return fhir.Errorf(fhir.ErrInvalid, "structure", "JSON Patch operation %d (%s) needs a path string", i, name)
		}
		if (name == "move" || name == "copy") && !str(op["from"]) {
			return fhir.Errorf(fhir.ErrInvalid, "structure", "JSON Patch operation %d (%s) needs a from string", i, name)
		}
		if (name == "add" || name == "replace" || name == "test") && op["value"] == nil {
			return fhir.Errorf(fhir.ErrInvalid, "structure", "JSON Patch operation %d (%s) needs a value", i, name)
		}
	}
	return nil
}
