package rest

import (
	"context"
	"net/http"
	"net/url"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// Operation is an operation provided by another package and registered in Config.Operations: the
// pipeline's Media/$transcribe, the code sets' CodeSystem/$lookup. The router binds it by type and
// name; authorization (Perm on the type, and on the target for the instance level) is checked here
// before Run is called, so Run only does the work.
type Operation struct {
	Name       string   // without '$'
	Types      []string // resource types it is defined on
	Definition string   // canonical URL of its OperationDefinition, for the CapabilityStatement
	// TypeLevel and InstanceLevel say where it may be invoked; SystemLevel operations are invoked
	// at the base ([base]/$name) and ignore Types.
	TypeLevel, InstanceLevel, SystemLevel bool
	// ContentType, when set, is what the operation answers instead of FHIR JSON (X12 text): the
	// request's Accept is then not negotiated against FHIR formats.
	ContentType string
	// Safe operations change nothing: they may be invoked with GET and inside transactions.
	Safe bool
	// RawBody marks an operation whose POST body is not FHIR (raw X12): it is passed as
	// OperationInput.Body whatever its Content-Type.
	RawBody bool
	// Perm is what the principal needs on the type (and on the target instance).
	Perm Perm
	Run  func(ctx context.Context, in OperationInput) (*OperationResult, error)
}

// OperationInput is an invocation of a registered Operation.
type OperationInput struct {
	Type, ID string
	// Target is the current version of the instance (instance level); never deleted.
	Target *store.Version
	// Params is the Parameters body of a POST, nil for a GET; Query the URL parameters. Body is
	// the raw body of a POST that is not FHIR JSON (Content-Type other than a FHIR format).
	Params *jsontree.Value
	Query  url.Values
	Body   []byte
	// Access reads and checks as the requester: an operation that reads more than its target, or
	// writes, goes through it so that the requester's scopes and patient reach apply.
	Access Requester
}

// Requester is the requester's view of the store, for registered operations: the same checks the
// interactions apply, so an operation cannot hand out what the requester could not read itself.
type Requester interface {
	// Read returns the current version of typ/id if the requester may read it (403 beyond its
	// reach, 410 for a deletion).
	Read(ctx context.Context, typ, id string) (*store.Version, error)
	// Search returns every match of a search of typ (up to limit) that the requester may see.
	Search(ctx context.Context, typ string, params url.Values, limit int) ([]*store.Version, error)
	// Require fails with 403 unless the requester holds perm on every one of types without
	// restriction (no patient bound, no query constraint): for operations that write, or act on
	// data of many patients at once.
	Require(ctx context.Context, perm Perm, types ...string) error
}

// OperationResult is the answer: a resource (Body), with Status (200 when 0) and, when the
// operation made a resource (a Task), its Location relative to the base.
type OperationResult struct {
	Status   int
	Body     []byte
	Location string
	// ContentType of Body when it is not FHIR JSON.
	ContentType string
}

// parseRoute is parseRoute with the registered operations bound.
func (s *Server) parseRoute(method, path string, hasQuery bool) (route, error) {
	rt, err := parseRoute(method, path, hasQuery)
	if err != nil || rt.interaction != IOperation || rt.level == "" {
		return rt, err
	}
	op := s.ops[rt.typ+"/"+rt.op]
	if op == nil || (rt.level == "type" && !op.TypeLevel) || (rt.level == "instance" && !op.InstanceLevel) || rt.level == "version" ||
		(rt.level == "system" && !op.SystemLevel) {
		if rt.level == "system" {
			return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "system-level operation $%s is not supported", rt.op)
		}
		return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "operation $%s is not supported on %s at %s level", rt.op, rt.typ, rt.level)
	}
	allowed := []string{http.MethodPost}
	if op.Safe {
		allowed = append(allowed, http.MethodGet)
	}
	for _, m := range allowed {
		if m == method || (m == http.MethodGet && method == http.MethodHead) {
			rt.ext = op
			return rt, nil
		}
	}
	return rt, &methodError{allowed: allowed, method: method, path: path}
}

// registeredOperation runs a registered operation.
func (s *Server) registeredOperation(ctx context.Context, req *request) (*response, error) {
	op := req.rt.ext
	in := OperationInput{Type: req.rt.typ, ID: req.rt.id, Query: req.query, Access: requesterAccess{s}}
	if req.method == http.MethodPost && op.RawBody {
		in.Body = req.body
	} else if req.method == http.MethodPost {
		in.Params = req.tree
		if in.Params == nil && len(req.body) > 0 {
			t, err := resource.Decode(req.body)
			if err != nil {
				return nil, err
			}
			in.Params = t
		}
		if in.Params != nil {
			if resource.Type(in.Params) != "Parameters" {
				return nil, fhir.Invalid("invalid", "resourceType", "$%s takes a Parameters resource", op.Name)
			}
			if err := s.validator.Validate(in.Params.Marshal()); err != nil {
				return nil, err
			}
		}
	}
	if req.rt.id != "" {
		v, err := s.store.Read(ctx, req.rt.typ, req.rt.id)
		if err != nil {
			return nil, err
		}
		if v.Deleted() {
			return nil, gone(v)
		}
		if err := s.checkVersion(ctx, s.store, v, op.Perm); err != nil {
			return nil, err
		}
		in.Target = v
	}
	res, err := op.Run(ctx, in)
	if err != nil {
		return nil, err
	}
	st := res.Status
	if st == 0 {
		st = http.StatusOK
	}
	return &response{status: st, body: res.Body, location: res.Location, contentType: res.ContentType}, nil
}

// requesterAccess is the Requester of the principal of the request in ctx.
type requesterAccess struct{ s *Server }

func (a requesterAccess) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if _, err := restriction(ctx, typ, PermRead); err != nil {
		return nil, err
	}
	v, err := a.s.store.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, gone(v)
	}
	if err := a.s.checkVersion(ctx, a.s.store, v, PermRead); err != nil {
		return nil, err
	}
	return v, nil
}

func (a requesterAccess) Search(ctx context.Context, typ string, params url.Values, limit int) ([]*store.Version, error) {
	if _, err := restriction(ctx, typ, PermSearch); err != nil {
		return nil, err
	}
	q, err := search.Parse([]string{typ}, params, a.s.searchOptions(true))
	if err != nil {
		return nil, err
	}
	if err := a.s.restrictQuery(ctx, q, params); err != nil {
		return nil, err
	}
	var out []*store.Version
	for len(out) < limit {
		q.Count = min(maxCount, limit-len(out))
		res, err := a.s.store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Matches...)
		if res.Next == "" {
			break
		}
		q.Page = res.Next
	}
	return out, nil
}

func (a requesterAccess) Require(ctx context.Context, perm Perm, types ...string) error {
	for _, typ := range types {
		r, err := restriction(ctx, typ, perm)
		if err != nil {
			return err
		}
		if !r.none() {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "this operation needs %q on %s without a patient or query restriction (a user- or system-level scope)", string(perm), typ)
		}
	}
	return nil
}
