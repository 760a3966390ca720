package rest

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// patcher changes a resource tree; it is built from the request before the transaction starts.
type patcher func(tree *jsontree.Value) (*jsontree.Value, error)

// parsePatch reads a PATCH body: JSON Patch (application/json-patch+json) or FHIRPath Patch (a
// Parameters resource in application/fhir+json). In a transaction the patch arrives as the entry's
// resource: Parameters, or a Binary holding the JSON Patch document.
func (s *Server) parsePatch(req *request) (patcher, error) {
	if req.tree != nil {
		switch resource.Type(req.tree) {
		case "Parameters":
			return s.fhirPathPatcher(req.tree)
		case "Binary":
			data, err := binaryData(req.tree)
			if err != nil {
				return nil, err
			}
			return jsonPatcher(data)
		}
		return nil, fhir.Invalid("invalid", "resource", "a PATCH entry carries a Parameters (FHIRPath Patch) or a Binary (JSON Patch) resource")
	}
	if len(req.body) == 0 {
		return nil, fhir.Errorf(fhir.ErrInvalid, "required", "the PATCH has no body")
	}
	mt, _, _ := mime.ParseMediaType(req.contentType)
	if mt == "application/json-patch+json" {
		return jsonPatcher(req.body)
	}
	tree, err := resource.Decode(req.body)
	if err != nil {
		return nil, err
	}
	if resource.Type(tree) != "Parameters" {
		return nil, fhir.Invalid("invalid", "resourceType", "a FHIRPath Patch is a Parameters resource; for JSON Patch send Content-Type application/json-patch+json")
	}
	return s.fhirPathPatcher(tree)
}

func jsonPatcher(doc []byte) (patcher, error) {
	if err := checkJSONPatch(doc); err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(doc)
	if err != nil {
		// Not the library's message: it quotes the operation, values included.
		return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "the JSON Patch document is invalid")
	}
	return func(tree *jsontree.Value) (*jsontree.Value, error) {
		opts := jsonpatch.NewApplyOptions()
		opts.EnsurePathExistsOnAdd = false
		out, err := p.ApplyWithOptions(tree.Marshal(), opts)
		if err != nil {
			return nil, fhir.Errorf(fhir.ErrUnprocessable, "processing", "the JSON Patch cannot be applied: %v", err)
		}
		patched, err := resource.Decode(out)
		if err != nil {
			return nil, unprocessable(err)
		}
		return patched, nil
	}, nil
}

// binaryData decodes Binary.data.
func binaryData(tree *jsontree.Value) ([]byte, error) {
	d := tree.GetString("data")
	if d == "" {
		return nil, fhir.Invalid("required", "Binary.data", "the Binary carrying a JSON Patch has no data")
	}
	b, err := decodeBase64(d)
	if err != nil {
		return nil, fhir.Invalid("value", "Binary.data", "Binary.data is not base64: %v", err)
	}
	return b, nil
}

// unprocessable turns the validation failure of a patched resource into a 422: the request was
// well-formed, its result is not a valid resource.
func unprocessable(err error) error {
	if fe, ok := fhir.AsError(err); ok && errors.Is(err, fhir.ErrInvalid) {
		return &fhir.Error{Kind: fhir.ErrUnprocessable, Issues: fe.Issues}
	}
	return err
}

func (s *Server) patch(ctx context.Context, req *request) (*response, error) {
	p, err := s.parsePatch(req)
	if err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(req.ifMatch)
	if err != nil {
		return nil, err
	}
	var crit *search.Query
	if req.rt.conditional {
		if crit, err = s.criteria(req.rt.typ, req.query, "patch"); err != nil {
			return nil, err
		}
	}
	var resp *response
	err = s.inTx(ctx, func(tx *store.Tx) error {
		var err error
		resp, err = s.applyPatch(ctx, tx, req, p, crit, ifMatch)
		return err
	})
	return resp, err
}

// applyPatch locks the current version, patches it, validates the result and stores it as the next
// version. Validation runs under the row lock here: the input is the stored version.
func (s *Server) applyPatch(ctx context.Context, tx *store.Tx, req *request, p patcher, crit *search.Query, ifMatch int) (*response, error) {
	typ, id := req.rt.typ, req.rt.id
	if crit != nil {
		ref, err := s.matchOne(ctx, tx, crit, req.query)
		if err != nil {
			return nil, err
		}
		if ref == nil {
			return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "no %s matches the criteria of the conditional patch", typ)
		}
		id = ref.ID
	}
	ifNoneMatch, err := parseIfNoneMatch(req.ifNoneMatch)
	if err != nil {
		return nil, err
	}
	cur, err := tx.ReadForUpdate(ctx, typ, id, ifMatch)
	if err != nil {
		return nil, err
	}
	if err := ifNoneMatch.Check(cur); err != nil {
		return nil, err
	}
	if err := s.checkVersion(ctx, tx, cur, PermUpdate); err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(cur.Content)
	if err != nil {
		return nil, err
	}
	patched, err := p(tree)
	if err != nil {
		return nil, err
	}
	if t := resource.Type(patched); t != typ {
		return nil, fhir.Errorf(fhir.ErrUnprocessable, "processing", "the patch changes resourceType to %q", t)
	}
	if pid := patched.GetString("id"); pid != id {
		return nil, fhir.Errorf(fhir.ErrUnprocessable, "processing", "the patch changes the id to %q", pid)
	}
	w, err := s.prepareWrite(ctx, typ, id, patched, nil)
	if err != nil {
		return nil, unprocessable(err)
	}
	if err := s.checkWrite(ctx, tx, typ, id, w.Tree, PermUpdate); err != nil {
		return nil, err
	}
	w.Method = store.MethodPatch
	v, _, err := tx.Update(ctx, w, cur.Version)
	if err != nil {
		return nil, err
	}
	if err := s.claimBinaries(ctx, tx, w); err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, version: v, write: true, info: "patched " + typ + "/" + id + " to version " + strconv.Itoa(v.Version)}, nil
}
