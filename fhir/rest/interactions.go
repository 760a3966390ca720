package rest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// reads is what the read-only interactions need; the Store (outside transactions) and a store.Tx
// (GET entries of a transaction) both offer it.
type reads interface {
	Read(ctx context.Context, typ, id string) (*store.Version, error)
	VRead(ctx context.Context, typ, id string, vid int) (*store.Version, error)
	History(ctx context.Context, q store.HistoryQuery) ([]*store.Version, error)
	CountHistory(ctx context.Context, rid int64) (int, error)
	Match(ctx context.Context, q *search.Query, limit int) ([]store.Ref, error)
	Search(ctx context.Context, q *search.Query) (*store.Result, error)
	Include(ctx context.Context, matches []*store.Version, incs, revs []search.Include) ([]*store.Version, bool, error)
	Everything(ctx context.Context, q store.EverythingQuery) ([]*store.Version, string, error)
	BlobOf(ctx context.Context, v *store.Version) (*store.Blob, error)
	AnyMember(ctx context.Context, patient string, refs []search.Reference) (bool, error)
}

var (
	_ reads = (*store.Store)(nil)
	_ reads = (*store.Tx)(nil)
)

// do runs one interaction outside any transaction.
func (s *Server) do(ctx context.Context, req *request) (*response, error) {
	if req.rt.typ == "AuditEvent" && s.cfg.Audit != nil {
		return s.trailInteraction(ctx, req)
	}
	switch req.rt.interaction {
	case ICapabilities:
		return &response{status: http.StatusOK, body: s.capJSON}, nil
	case ICreate:
		return s.create(ctx, req)
	case IUpdate:
		return s.update(ctx, req)
	case IPatch:
		return s.patch(ctx, req)
	case IDelete:
		return s.delete(ctx, req)
	case IBatch:
		return s.bundle(ctx, req)
	case IOperation:
		return s.operation(ctx, req)
	case IExportStatus:
		return s.exportStatus(ctx, req)
	case IExportFile:
		return s.exportFile(ctx, req)
	}
	return s.readOnly(ctx, func(ctx context.Context, rd reads) (*response, error) { return s.doRead(ctx, rd, req) })
}

// doRead runs the interactions that only read.
func (s *Server) doRead(ctx context.Context, rd reads, req *request) (*response, error) {
	switch req.rt.interaction {
	case IRead:
		return s.read(ctx, rd, req)
	case IVRead:
		return s.vread(ctx, rd, req)
	case IHistoryInstance, IHistoryType, IHistorySystem:
		return s.history(ctx, rd, req)
	case ISearchType, ISearchSystem:
		return s.search(ctx, rd, req)
	}
	return nil, fhir.Errorf(fhir.ErrMethodNotAllowed, "not-supported", "%s is not a read interaction", req.rt.interaction)
}

func (s *Server) read(ctx context.Context, rd reads, req *request) (*response, error) {
	v, err := rd.Read(ctx, req.rt.typ, req.rt.id)
	return s.versionResponse(ctx, rd, req, v, err)
}

func (s *Server) vread(ctx context.Context, rd reads, req *request) (*response, error) {
	v, err := rd.VRead(ctx, req.rt.typ, req.rt.id, req.rt.vid)
	return s.versionResponse(ctx, rd, req, v, err)
}

// versionResponse answers a read of one version: 410 for a deletion, 403 beyond the token's reach,
// 304 when the client's copy is current, else the stored bytes (or their _summary/_elements subset).
func (s *Server) versionResponse(ctx context.Context, rd reads, req *request, v *store.Version, err error) (*response, error) {
	switch {
	case err != nil:
		return nil, err
	case v.Deleted():
		return nil, gone(v)
	}
	if err := s.checkVersion(ctx, rd, v, PermRead); err != nil {
		return nil, err
	}
	auditFrom(ctx).touch(v.Type, v.ID, v.Version, v.Content)
	if notModified(req, v) {
		return &response{status: http.StatusNotModified, version: v}, nil
	}
	if v.Type == "Binary" {
		return s.binaryResponse(ctx, rd, req, v)
	}
	if sub := newSubsetter(req.query.Get("_summary"), splitElements(req.query.Get("_elements"))); sub.active() {
		return &response{status: http.StatusOK, version: v, body: sub.apply(v)}, nil
	}
	return &response{status: http.StatusOK, version: v}, nil
}

func splitElements(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func gone(v *store.Version) error {
	return fhir.Errorf(fhir.ErrGone, "deleted", "%s/%s was deleted (version %d, %s)", v.Type, v.ID, v.Version, resource.FormatInstant(v.LastUpdated))
}

// notModified applies If-None-Match (which wins when present) and If-Modified-Since.
func notModified(req *request, v *store.Version) bool {
	if req.ifNoneMatch != "" {
		for _, tag := range strings.Split(req.ifNoneMatch, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			if n, ok := parseETag(tag); ok && n == v.Version {
				return true
			}
		}
		return false
	}
	if req.ifModifiedSince != "" {
		since, err := http.ParseTime(req.ifModifiedSince)
		if err == nil && !v.LastUpdated.Truncate(time.Second).After(since) {
			return true
		}
	}
	return false
}

// decodeResource returns the body of a create or update as a tree of the route's type.
func (s *Server) decodeResource(req *request) (*jsontree.Value, error) {
	tree := req.tree
	if tree == nil {
		if len(req.body) == 0 {
			return nil, fhir.Errorf(fhir.ErrInvalid, "required", "the request has no body; send a %s resource", req.rt.typ)
		}
		var err error
		if tree, err = resource.Decode(req.body); err != nil {
			return nil, err
		}
	}
	if t := resource.Type(tree); t != req.rt.typ {
		return nil, fhir.Invalid("invalid", "resourceType", "the body is a %s but the URL addresses %s", t, req.rt.typ)
	}
	return tree, nil
}

// prepareWrite validates tree as a resource of typ stored under id and computes its index values:
// the CPU-heavy phase of a write, done outside any transaction where possible. Binary content goes
// to the blob store (blob is that of a raw upload, already there), a Media's inline content into a
// companion Binary.
func (s *Server) prepareWrite(ctx context.Context, typ, id string, tree *jsontree.Value, blob *store.Blob) (*store.Write, error) {
	if typ == "Binary" {
		securityContextFor(ctx, tree)
	}
	w, err := store.Prepare(s.validator.Validate, s.cfg.Base, typ, id, tree)
	if err != nil {
		return nil, err
	}
	w.Blob = blob
	switch typ {
	case "Binary":
		if blob == nil {
			if w.Blob, err = s.binaryData(ctx, tree); err != nil {
				return nil, err
			}
		}
	case "Media":
		c, err := s.mediaCompanion(ctx, tree)
		if err != nil {
			return nil, err
		}
		if c != nil {
			w.Companions = append(w.Companions, c)
			w.Index = search.Extract(typ, tree, s.cfg.Base) // content.url changed
		}
	}
	return w, nil
}

// validateTree validates a resource as it would be stored under id (server meta stripped).
func (s *Server) validateTree(id string, tree *jsontree.Value) error {
	resource.StripServerMeta(tree)
	resource.SetID(tree, id)
	return s.validator.Validate(tree.Marshal())
}

// criteria parses the search criteria of a conditional interaction. They are always strict: an
// ignored parameter would widen the match and touch resources the client did not mean.
func (s *Server) criteria(typ string, params url.Values, what string) (*search.Query, error) {
	params = withoutFormatting(params)
	if len(params) == 0 {
		return nil, fhir.Errorf(fhir.ErrInvalid, "required", "the criteria of a conditional %s are empty", what)
	}
	q, err := search.Parse([]string{typ}, params, s.searchOptions(true))
	if err != nil {
		return nil, err
	}
	if len(q.Clauses) == 0 {
		return nil, fhir.Errorf(fhir.ErrInvalid, "required", "the criteria of a conditional %s select nothing: give search parameters", what)
	}
	return q, nil
}

// withoutFormatting drops _format and _pretty, which shape the response, not the match.
func withoutFormatting(params url.Values) url.Values {
	if params.Has("_format") || params.Has("_pretty") {
		p := url.Values{}
		for k, v := range params {
			if k != "_format" && k != "_pretty" {
				p[k] = v
			}
		}
		return p
	}
	return params
}

// matchOne resolves conditional criteria to at most one resource, after taking a transaction lock
// on the criteria so that concurrent conditional requests with the same criteria run one at a time.
// No match is (nil, nil); more than one is 412.
func (s *Server) matchOne(ctx context.Context, tx *store.Tx, q *search.Query, raw url.Values) (*store.Ref, error) {
	// The criteria see only what the principal may reach: a match beyond it would be refused, and
	// the refusal would tell the principal that it exists.
	if err := s.reachOf(ctx, q, 0); err != nil {
		return nil, err
	}
	if err := tx.Lock(ctx, q.Type()+"?"+withoutFormatting(raw).Encode()); err != nil {
		return nil, err
	}
	refs, err := tx.Match(ctx, q, 2)
	if err != nil {
		return nil, err
	}
	switch len(refs) {
	case 0:
		return nil, nil
	case 1:
		return &refs[0], nil
	}
	return nil, fhir.Errorf(fhir.ErrPreconditionFailed, "multiple-matches", "the criteria %s?%s match more than one resource", q.Type(), withoutFormatting(raw).Encode())
}

// parseIfNoneMatch reads the If-None-Match of a write: "*" or a list of version ETags. An
// unreadable one is an error: ignoring it would write what the client said not to.
func parseIfNoneMatch(h string) (*store.NoneMatch, error) {
	if strings.TrimSpace(h) == "" {
		return nil, nil
	}
	n := &store.NoneMatch{}
	for _, tag := range strings.Split(h, ",") {
		if tag = strings.TrimSpace(tag); tag == "*" {
			n.Any = true
			continue
		}
		v, ok := parseETag(tag)
		if !ok {
			return nil, fhir.Errorf(fhir.ErrInvalid, "value", "If-None-Match %q is not * or a list of version ETags such as W/\"3\"", h)
		}
		n.Versions = append(n.Versions, v)
	}
	return n, nil
}

func parseIfMatch(h string) (int, error) {
	if h == "" {
		return 0, nil
	}
	n, ok := parseETag(h)
	if !ok {
		return 0, fhir.Errorf(fhir.ErrInvalid, "value", "If-Match %q is not a version ETag such as W/\"3\"", h)
	}
	return n, nil
}

// ifNoneExist parses the If-None-Exist header: a query string without the '?'.
func (s *Server) ifNoneExist(typ, h string) (*search.Query, url.Values, error) {
	if h == "" {
		return nil, nil, nil
	}
	raw, err := parseQuery(strings.TrimPrefix(h, "?"), "If-None-Exist")
	if err != nil {
		return nil, nil, err
	}
	q, err := s.criteria(typ, raw, "create")
	return q, raw, err
}

func (s *Server) create(ctx context.Context, req *request) (*response, error) {
	tree, err := s.decodeResource(req)
	if err != nil {
		return nil, err
	}
	w, err := s.prepareWrite(ctx, req.rt.typ, resource.NewID(), tree, req.blob)
	if err != nil {
		return nil, err
	}
	if err := s.checkWrite(ctx, s.store, w.Type, w.ID, w.Tree, PermCreate); err != nil {
		return nil, err
	}
	crit, raw, err := s.ifNoneExist(req.rt.typ, req.ifNoneExist)
	if err != nil {
		return nil, err
	}
	var resp *response
	err = s.inTx(ctx, func(tx *store.Tx) error {
		var err error
		resp, err = s.applyCreate(ctx, tx, w, crit, raw)
		return err
	})
	return resp, err
}

// applyCreate stores a prepared create, or finds the existing match of its If-None-Exist.
func (s *Server) applyCreate(ctx context.Context, tx *store.Tx, w *store.Write, crit *search.Query, raw url.Values) (*response, error) {
	if crit != nil {
		ref, err := s.matchOne(ctx, tx, crit, raw)
		if err != nil {
			return nil, err
		}
		if ref != nil {
			v, err := tx.Read(ctx, w.Type, ref.ID)
			if err != nil {
				return nil, err
			}
			if err := s.checkVersion(ctx, tx, v, PermRead); err != nil {
				return nil, err
			}
			return &response{status: http.StatusOK, version: v, write: true, location: w.Type + "/" + ref.ID,
				info: "matched the existing " + w.Type + "/" + ref.ID + "; nothing was created"}, nil
		}
	}
	vs, err := tx.Create(ctx, []*store.Write{w})
	if err != nil {
		return nil, err
	}
	if err := s.claimBinaries(ctx, tx, w); err != nil {
		return nil, err
	}
	return created(vs[0]), nil
}

func created(v *store.Version) *response {
	return &response{status: http.StatusCreated, version: v, write: true, location: versionPath(v),
		info: "created " + v.Type + "/" + v.ID}
}

func versionPath(v *store.Version) string {
	return v.Type + "/" + v.ID + "/_history/" + strconv.Itoa(v.Version)
}

func (s *Server) update(ctx context.Context, req *request) (*response, error) {
	tree, err := s.decodeResource(req)
	if err != nil {
		return nil, err
	}
	bodyID := tree.GetString("id")
	id := req.rt.id
	var crit *search.Query
	if req.rt.conditional {
		if crit, err = s.criteria(req.rt.typ, req.query, "update"); err != nil {
			return nil, err
		}
		id = bodyID
		if id == "" {
			id = resource.NewID() // validated with a stand-in; the match decides the real id
		}
	} else if err := checkBodyID(bodyID, req.rt.id); err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(req.ifMatch)
	if err != nil {
		return nil, err
	}
	ifNoneMatch, err := parseIfNoneMatch(req.ifNoneMatch)
	if err != nil {
		return nil, err
	}
	w, err := s.prepareWrite(ctx, req.rt.typ, id, tree, req.blob)
	if err != nil {
		return nil, err
	}
	w.IfNoneMatch = ifNoneMatch
	if err := s.checkWrite(ctx, s.store, w.Type, w.ID, w.Tree, PermUpdate); err != nil {
		return nil, err
	}
	var resp *response
	err = s.inTx(ctx, func(tx *store.Tx) error {
		var err error
		resp, err = s.applyUpdate(ctx, tx, w, bodyID, crit, req.query, ifMatch)
		return err
	})
	return resp, err
}

// checkBodyID enforces http.html#update: the body's id must be present and equal the URL's.
func checkBodyID(bodyID, urlID string) error {
	if bodyID == "" {
		return fhir.Invalid("required", "id", "the resource has no id; an update must carry the id of its URL (%s)", urlID)
	}
	if bodyID != urlID {
		return fhir.Invalid("invalid", "id", "the resource id %q differs from the id %q in the URL", bodyID, urlID)
	}
	return nil
}

// applyUpdate stores a prepared update; for a conditional update crit decides which resource
// (http.html#cond-update: no match creates, one match updates, several are 412).
func (s *Server) applyUpdate(ctx context.Context, tx *store.Tx, w *store.Write, bodyID string, crit *search.Query, raw url.Values, ifMatch int) (*response, error) {
	if crit != nil {
		ref, err := s.matchOne(ctx, tx, crit, raw)
		if err != nil {
			return nil, err
		}
		switch {
		case ref != nil && bodyID != "" && bodyID != ref.ID:
			return nil, fhir.Invalid("invalid", "id", "the resource id %q differs from the id %q of the resource the criteria match", bodyID, ref.ID)
		case ref != nil:
			w.ID = ref.ID
		case bodyID != "":
			if v, err := tx.Read(ctx, w.Type, bodyID); err == nil && !v.Deleted() {
				return nil, fhir.Errorf(fhir.ErrConflict, "conflict", "nothing matches the criteria, but %s/%s exists and does not match them", w.Type, bodyID)
			} else if err != nil && !errors.Is(err, fhir.ErrNotFound) {
				return nil, err
			}
		}
	}
	if err := s.checkCurrent(ctx, tx, w.Type, w.ID, PermUpdate); err != nil {
		return nil, err
	}
	v, isNew, err := tx.Update(ctx, w, ifMatch)
	if err != nil {
		return nil, err
	}
	if err := s.claimBinaries(ctx, tx, w); err != nil {
		return nil, err
	}
	if isNew {
		return created(v), nil
	}
	return &response{status: http.StatusOK, version: v, write: true, info: "updated " + v.Type + "/" + v.ID + " to version " + strconv.Itoa(v.Version)}, nil
}

func (s *Server) delete(ctx context.Context, req *request) (*response, error) {
	ifMatch, err := parseIfMatch(req.ifMatch)
	if err != nil {
		return nil, err
	}
	var crit *search.Query
	if req.rt.conditional {
		if crit, err = s.criteria(req.rt.typ, req.query, "delete"); err != nil {
			return nil, err
		}
	}
	var resp *response
	err = s.inTx(ctx, func(tx *store.Tx) error {
		var err error
		resp, err = s.applyDelete(ctx, tx, req.rt.typ, req.rt.id, crit, req.query, ifMatch)
		return err
	})
	return resp, err
}

// applyDelete deletes one resource. Deleting what does not exist or is already deleted succeeds
// without effect (http.html#delete); conditional delete with no match is an ordinary delete of
// nothing, with several matches 412.
func (s *Server) applyDelete(ctx context.Context, tx *store.Tx, typ, id string, crit *search.Query, raw url.Values, ifMatch int) (*response, error) {
	if crit != nil {
		ref, err := s.matchOne(ctx, tx, crit, raw)
		if err != nil {
			return nil, err
		}
		if ref == nil {
			return &response{status: http.StatusNoContent, write: true, info: "nothing matched; nothing was deleted"}, nil
		}
		id = ref.ID
	}
	if err := s.checkCurrent(ctx, tx, typ, id, PermDelete); err != nil {
		return nil, err
	}
	v, changed, err := tx.Delete(ctx, typ, id, ifMatch)
	if errors.Is(err, fhir.ErrNotFound) {
		return &response{status: http.StatusNoContent, write: true, info: typ + "/" + id + " does not exist; nothing was deleted"}, nil
	}
	if err != nil {
		return nil, err
	}
	info := "deleted " + typ + "/" + id
	if !changed {
		info = typ + "/" + id + " was already deleted"
	}
	return &response{status: http.StatusNoContent, version: v, write: true, info: info}, nil
}

// checkCurrent enforces the restriction on the current version of a resource about to be replaced
// or deleted: a patient-scoped token may not overwrite another patient's data by writing over it.
func (s *Server) checkCurrent(ctx context.Context, tx *store.Tx, typ, id string, perm Perm) error {
	r, err := restriction(ctx, typ, perm)
	if err != nil || r.none() {
		return err
	}
	cur, err := tx.Read(ctx, typ, id)
	if errors.Is(err, fhir.ErrNotFound) {
		return nil
	}
	if err != nil || cur.Deleted() {
		return err
	}
	return s.checkVersion(ctx, tx, cur, perm)
}
