package rest

import (
	"context"
	"net/http"
	"net/url"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
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
	// TypeLevel and InstanceLevel say where it may be invoked.
	TypeLevel, InstanceLevel bool
	// Safe operations change nothing: they may be invoked with GET and inside transactions.
	Safe bool
	// Perm is what the principal needs on the type (and on the target instance).
	Perm Perm
	Run  func(ctx context.Context, in OperationInput) (*OperationResult, error)
}

// OperationInput is an invocation of a registered Operation.
type OperationInput struct {
	Type, ID string
	// Target is the current version of the instance (instance level); never deleted.
	Target *store.Version
	// Params is the Parameters body of a POST, nil for a GET; Query the URL parameters.
	Params *jsontree.Value
	Query  url.Values
}

// OperationResult is the answer: a resource (Body), with Status (200 when 0) and, when the
// operation made a resource (a Task), its Location relative to the base.
type OperationResult struct {
	Status   int
	Body     []byte
	Location string
}

// parseRoute is parseRoute with the registered operations bound.
func (s *Server) parseRoute(method, path string, hasQuery bool) (route, error) {
	rt, err := parseRoute(method, path, hasQuery)
	if err != nil || rt.interaction != IOperation || rt.level == "" {
		return rt, err
	}
	op := s.ops[rt.typ+"/"+rt.op]
	if op == nil || (rt.level == "type" && !op.TypeLevel) || (rt.level == "instance" && !op.InstanceLevel) || rt.level == "version" {
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
	in := OperationInput{Type: req.rt.typ, ID: req.rt.id, Query: req.query}
	if req.method == http.MethodPost {
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
	return &response{status: st, body: res.Body, location: res.Location}, nil
}
