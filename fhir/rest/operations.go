package rest

import (
	"context"
	"errors"
	"net/http"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

func (s *Server) operation(ctx context.Context, req *request) (*response, error) {
	if req.rt.ext != nil {
		return s.registeredOperation(ctx, req)
	}
	switch req.rt.op {
	case "validate":
		return s.validate(ctx, req)
	case "meta":
		return s.meta(ctx, req)
	case "everything":
		return s.readOnly(ctx, func(ctx context.Context, rd reads) (*response, error) { return s.everything(ctx, rd, req) })
	case "meta-add", "meta-delete":
		return s.metaChange(ctx, req)
	case "export":
		return s.exportKickoff(ctx, req)
	}
	return nil, fhir.Errorf(fhir.ErrNotFound, "not-supported", "operation $%s is not supported", req.rt.op)
}

// validate is $validate (resource-operation-validate): it checks a resource as a create, update or
// delete would, stores nothing, and answers 200 with an OperationOutcome listing the problems (an
// invalid resource is a successful validation with error issues). A body that is not JSON at all is
// a 400: there is nothing to validate.
func (s *Server) validate(ctx context.Context, req *request) (*response, error) {
	mode := req.query.Get("mode")
	tree := req.tree
	if tree == nil {
		if len(req.body) == 0 && mode != "delete" {
			return nil, fhir.Errorf(fhir.ErrInvalid, "required", "$validate needs a resource in the body")
		}
		if len(req.body) > 0 {
			var err error
			if tree, err = resource.Decode(req.body); err != nil {
				if errors.Is(err, fhir.ErrInvalid) && !isSyntaxError(err) {
					return validationResult(err), nil
				}
				return nil, err
			}
		}
	}
	if tree != nil && resource.Type(tree) == "Parameters" && req.rt.typ != "Parameters" {
		var res *jsontree.Value
		for _, p := range parameters(tree) {
			switch p.GetString("name") {
			case "resource":
				res = p.Get("resource")
			case "mode":
				mode = p.GetString("valueCode")
			}
		}
		tree = res
	}
	switch mode {
	case "", "create", "update", "delete":
	default:
		return nil, fhir.Invalid("value", "mode", "mode %q is not one of create, update, delete", mode)
	}
	if mode == "delete" {
		if req.rt.id == "" {
			return nil, fhir.Errorf(fhir.ErrInvalid, "required", "$validate with mode=delete is invoked on an instance: [type]/[id]/$validate")
		}
		v, err := s.store.Read(ctx, req.rt.typ, req.rt.id)
		if err == nil && v.Deleted() {
			err = gone(v)
		}
		if err != nil {
			return validationResult(err), nil
		}
		return validationResult(nil), nil
	}
	if tree == nil {
		return nil, fhir.Errorf(fhir.ErrInvalid, "required", "the Parameters of $validate have no resource")
	}
	if t := resource.Type(tree); t != req.rt.typ {
		return validationResult(fhir.Invalid("invalid", "resourceType", "the resource is a %s but $validate was invoked on %s", t, req.rt.typ)), nil
	}
	id := tree.GetString("id")
	if mode == "update" || req.rt.id != "" {
		if err := checkBodyID(id, firstNonEmpty(req.rt.id, id)); err != nil {
			return validationResult(err), nil
		}
	}
	if mode == "" || mode == "create" {
		id = resource.NewID() // a create ignores the client's id
	}
	return validationResult(s.validateTree(id, tree.Clone())), nil
}

func isSyntaxError(err error) bool {
	fe, ok := fhir.AsError(err)
	return ok && len(fe.Issues) == 1 && fe.Issues[0].Code == "structure" && len(fe.Issues[0].Expression) == 0
}

// validationResult is the 200 OperationOutcome of $validate.
func validationResult(err error) *response {
	if err == nil {
		return &response{status: http.StatusOK, body: outcomeJSON([]fhir.Issue{{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: "validation successful: no issues found"}})}
	}
	issues := []fhir.Issue{{Severity: fhir.SeverityError, Code: "processing", Diagnostics: err.Error()}}
	if fe, ok := fhir.AsError(err); ok {
		issues = fe.Issues
	}
	return &response{status: http.StatusOK, body: outcomeJSON(issues)}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parameters returns the parameter entries of a Parameters resource.
func parameters(tree *jsontree.Value) []*jsontree.Value {
	p := tree.Get("parameter")
	if p == nil || p.Kind != jsontree.Array {
		return nil
	}
	return p.Items
}

// metaOf returns the version's meta as a Parameters {return: valueMeta} body.
func metaParameters(meta *jsontree.Value) []byte {
	if meta == nil {
		meta = jsontree.NewObject()
	}
	param := jsontree.NewObject()
	param.Set("name", jsontree.NewString("return"))
	param.Set("valueMeta", meta)
	out := jsontree.NewObject()
	out.Set("resourceType", jsontree.NewString("Parameters"))
	out.Set("parameter", jsontree.NewArray(param))
	return out.Marshal()
}

// meta is $meta on an instance or a version.
func (s *Server) meta(ctx context.Context, req *request) (*response, error) {
	v, err := s.metaTarget(ctx, s.store, req)
	if err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: metaParameters(tree.Get("meta"))}, nil
}

func (s *Server) metaTarget(ctx context.Context, rd reads, req *request) (*store.Version, error) {
	var v *store.Version
	var err error
	if req.rt.vid != 0 {
		v, err = rd.VRead(ctx, req.rt.typ, req.rt.id, req.rt.vid)
	} else {
		v, err = rd.Read(ctx, req.rt.typ, req.rt.id)
	}
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, gone(v)
	}
	perm := PermRead
	if req.rt.op != "meta" {
		perm = PermUpdate
	}
	if err := s.checkVersion(ctx, rd, v, perm); err != nil {
		return nil, err
	}
	return v, nil
}

// metaChange is $meta-add and $meta-delete: profiles, tags and security labels are sets (tags and
// labels identified by system+code, profiles by URL), changed in place without a new version.
func (s *Server) metaChange(ctx context.Context, req *request) (*response, error) {
	in := req.tree
	if in == nil {
		var err error
		if in, err = resource.Decode(req.body); err != nil {
			return nil, err
		}
	}
	if resource.Type(in) != "Parameters" {
		return nil, fhir.Invalid("invalid", "resourceType", "$%s takes a Parameters resource", req.rt.op)
	}
	if err := s.validator.Validate(in.Marshal()); err != nil {
		return nil, err
	}
	var change *jsontree.Value
	for _, p := range parameters(in) {
		if p.GetString("name") == "meta" {
			change = p.Get("valueMeta")
		}
	}
	if change == nil {
		return nil, fhir.Invalid("required", "Parameters.parameter", "$%s needs a parameter named meta with a valueMeta", req.rt.op)
	}
	var out []byte
	err := s.inTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.ReadForUpdate(ctx, req.rt.typ, req.rt.id, 0)
		if err != nil {
			return err
		}
		v, err := s.metaTarget(ctx, tx, req)
		if err != nil {
			return err
		}
		tree, err := jsontree.Parse(v.Content)
		if err != nil {
			return err
		}
		meta := tree.Get("meta")
		for _, field := range []string{"profile", "tag", "security"} {
			changeMetaSet(meta, field, change.Get(field), req.rt.op == "meta-add")
		}
		var w *store.Write
		if v.Version == cur.Version {
			w = &store.Write{Type: v.Type, ID: v.ID, Tree: tree, Index: search.Extract(v.Type, tree, s.cfg.Base)}
		}
		if err := tx.SetMeta(ctx, v, tree.Marshal(), w); err != nil {
			return err
		}
		out = metaParameters(meta)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: out}, nil
}

// changeMetaSet adds the items of from to meta[field], or removes them, treating the array as a set.
func changeMetaSet(meta *jsontree.Value, field string, from *jsontree.Value, add bool) {
	if from == nil || from.Kind != jsontree.Array {
		return
	}
	cur := meta.Get(field)
	var items []*jsontree.Value
	if cur != nil {
		items = cur.Items
	}
	key := func(v *jsontree.Value) string {
		if v.Kind == jsontree.String {
			return v.Str
		}
		return v.GetString("system") + "|" + v.GetString("code")
	}
	for _, it := range from.Items {
		k := key(it)
		idx := -1
		for i, have := range items {
			if key(have) == k {
				idx = i
				break
			}
		}
		switch {
		case add && idx < 0:
			items = append(items, it)
		case !add && idx >= 0:
			items = append(items[:idx], items[idx+1:]...)
		}
	}
	if len(items) == 0 {
		meta.Delete(field)
		return
	}
	meta.Set(field, jsontree.NewArray(items...))
}
