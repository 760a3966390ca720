package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// entry is one Bundle entry of a batch or transaction on its way through.
type entry struct {
	i       int // position in the request Bundle
	fullURL string
	req     *request

	// Filled in by the transaction phases.
	crit        *search.Query // If-None-Exist (POST) or the criteria of a conditional PUT/PATCH/DELETE
	ifMatch     int
	ifNoneMatch *store.NoneMatch // of a PUT
	bodyID      string           // the id in a PUT's resource
	write       *store.Write
	patch       patcher
	matched     bool   // a conditional create found its match: nothing to create
	target      string // "Type/id" the entry resolved to
	resp        *response
}

// bundle is POST [base]: a batch or a transaction Bundle.
func (s *Server) bundle(ctx context.Context, req *request) (*response, error) {
	tree := req.tree
	if tree == nil {
		if len(req.body) == 0 {
			return nil, fhir.Errorf(fhir.ErrInvalid, "required", "POST to the base needs a batch or transaction Bundle")
		}
		var err error
		if tree, err = resource.Decode(req.body); err != nil {
			return nil, err
		}
	}
	if t := resource.Type(tree); t != "Bundle" {
		return nil, fhir.Invalid("invalid", "resourceType", "POST to the base takes a Bundle, not a %s", t)
	}
	kind := tree.GetString("type")
	if kind != "batch" && kind != "transaction" {
		return nil, fhir.Invalid("value", "Bundle.type", "Bundle.type is %q; POST to the base processes batch and transaction Bundles (store other Bundles with POST /Bundle)", kind)
	}
	var items []*jsontree.Value
	if e := tree.Get("entry"); e != nil {
		if e.Kind != jsontree.Array {
			return nil, fhir.Invalid("structure", "Bundle.entry", "Bundle.entry must be an array")
		}
		items = e.Items
	}
	if len(items) > s.cfg.MaxBundleEntries {
		return nil, fhir.Errorf(fhir.ErrTooLarge, "too-costly", "the Bundle has %d entries; the limit is %d", len(items), s.cfg.MaxBundleEntries)
	}
	entries := make([]*entry, len(items))
	for i, it := range items {
		e, err := s.parseEntry(i, it, req.prefer)
		if err != nil {
			err = prefixErr(err, i, it.GetString("fullUrl"))
			if kind == "transaction" {
				return nil, err
			}
			e = &entry{i: i, resp: errorResponse(ctx, err)}
		}
		entries[i] = e
	}
	if kind == "batch" {
		return s.batch(ctx, entries, req.prefer)
	}
	return s.transaction(ctx, entries, req.prefer)
}

// parseEntry checks an entry's request and builds the interaction it asks for.
func (s *Server) parseEntry(i int, it *jsontree.Value, pref prefer) (*entry, error) {
	at := func(path string) string { return fmt.Sprintf("Bundle.entry[%d]%s", i, path) }
	if it.Kind != jsontree.Object {
		return nil, fhir.Invalid("structure", at(""), "an entry must be an object")
	}
	r := it.Get("request")
	if r == nil || r.Kind != jsontree.Object {
		return nil, fhir.Invalid("required", at(".request"), "the entry has no request")
	}
	method := r.GetString("method")
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
	default:
		return nil, fhir.Invalid("value", at(".request.method"), "request.method %q is not GET, HEAD, POST, PUT, PATCH or DELETE", method)
	}
	rawURL := r.GetString("url")
	if rawURL == "" {
		return nil, fhir.Invalid("required", at(".request.url"), "the entry has no request.url")
	}
	rel := strings.TrimPrefix(rawURL, s.cfg.Base+"/")
	if strings.Contains(rel, "://") {
		return nil, fhir.Invalid("value", at(".request.url"), "request.url %q is not on this server", rawURL)
	}
	path, rawQuery, _ := strings.Cut(rel, "?")
	query, err := parseQuery(rawQuery, "the query of request.url")
	if err != nil {
		if fe, ok := fhir.AsError(err); ok {
			for k := range fe.Issues {
				fe.Issues[k].Expression = []string{at(".request.url")} // the diagnostics name the parameter
			}
		}
		return nil, err
	}
	rt, err := s.parseRoute(method, path, rawQuery != "")
	if err != nil {
		return nil, err
	}
	// Nor what answers something other than FHIR JSON (X12, NDJSON files) or runs asynchronously.
	if rt.typ == "AuditEvent" && s.cfg.Audit != nil {
		return nil, fhir.Invalid("not-supported", at(".request.url"), "the audit trail (AuditEvent) cannot be read or written in a Bundle; search it directly")
	}
	if rt.interaction == IBatch || rt.interaction == ICapabilities || rt.interaction == IExportStatus || rt.interaction == IExportFile ||
		rt.op == "export" || (rt.ext != nil && (rt.ext.ContentType != "" || rt.ext.RawBody)) {
		return nil, fhir.Invalid("not-supported", at(".request.url"), "%s %s cannot be nested in a Bundle", method, rawURL)
	}
	e := &entry{i: i, fullURL: it.GetString("fullUrl"), req: &request{
		method: method, rt: rt, query: query, prefer: pref,
		ifMatch: r.GetString("ifMatch"), ifNoneExist: r.GetString("ifNoneExist"),
		ifNoneMatch: r.GetString("ifNoneMatch"), ifModifiedSince: r.GetString("ifModifiedSince"),
		tree: it.Get("resource"),
	}}
	needsBody := method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
	if needsBody && e.req.tree == nil && rt.interaction != IOperation {
		return nil, fhir.Invalid("required", at(".resource"), "a %s needs a resource", method)
	}
	return e, nil
}

// prefixErr names the failing entry in every issue of err, and re-roots issue expressions at the
// entry's resource ("Patient.birthDate" -> "Bundle.entry[3].resource.birthDate").
func prefixErr(err error, i int, fullURL string) error {
	fe, ok := fhir.AsError(err)
	if !ok {
		return fmt.Errorf("Bundle.entry[%d]: %w", i, err)
	}
	name := fmt.Sprintf("Bundle.entry[%d]", i)
	if fullURL != "" {
		name += " (" + fullURL + ")"
	}
	out := &fhir.Error{Kind: fe.Kind, Issues: make([]fhir.Issue, len(fe.Issues))}
	for k, is := range fe.Issues {
		is.Diagnostics = name + ": " + is.Diagnostics
		exprs := make([]string, len(is.Expression))
		for j, x := range is.Expression {
			switch {
			case strings.HasPrefix(x, "Bundle.entry["):
				exprs[j] = x
			case x == "" || !resource.IsType(strings.SplitN(x, ".", 2)[0]):
				exprs[j] = fmt.Sprintf("Bundle.entry[%d].resource.%s", i, x)
			default:
				_, rest, _ := strings.Cut(x, ".")
				exprs[j] = strings.TrimSuffix(fmt.Sprintf("Bundle.entry[%d].resource.%s", i, rest), ".")
			}
		}
		is.Expression = exprs
		out.Issues[k] = is
	}
	if len(out.Issues) > 0 && len(out.Issues[0].Expression) == 0 {
		out.Issues[0].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
	}
	return out
}

// batch runs every entry on its own, as if it were a separate request; failures become the entry's
// response.
func (s *Server) batch(ctx context.Context, entries []*entry, pref prefer) (*response, error) {
	for _, e := range entries {
		if e.resp != nil {
			continue
		}
		ectx, rec := entryAudit(ctx, e)
		if err := authorizeEntry(ctx, e); err != nil {
			e.resp = errorResponse(ctx, prefixErr(err, e.i, e.fullURL))
			rec.outcome(e.resp.status)
			continue
		}
		resp, err := s.do(ectx, e.req)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			resp = errorResponse(ctx, err)
		}
		e.resp = resp
		rec.outcome(resp.status)
	}
	for _, e := range entries {
		if e.req == nil { // the entry did not parse
			_, rec := entryAudit(ctx, e)
			rec.outcome(e.resp.status)
		}
	}
	return s.bundleResponse("batch-response", entries, pref), nil
}

// errorResponse is the entry response of a failed batch entry: its status and an OperationOutcome.
func errorResponse(ctx context.Context, err error) *response {
	status, issues := errorStatus(ctx, err)
	return &response{status: status, body: outcomeJSON(issues), info: "error"}
}

// transaction runs every entry in one database transaction, in the order of http.html#trules:
// DELETE, POST, PUT and PATCH, then GET/HEAD. Any failure rolls everything back and the response is
// the failing entry's error, naming it.
func (s *Server) transaction(ctx context.Context, entries []*entry, pref prefer) (*response, error) {
	var deletes, posts, puts, patches, gets []*entry
	for _, e := range entries {
		if err := authorizeEntry(ctx, e); err != nil {
			return nil, prefixErr(err, e.i, e.fullURL)
		}
		switch e.req.method {
		case http.MethodDelete:
			deletes = append(deletes, e)
		case http.MethodPost:
			if e.req.rt.interaction == IOperation {
				gets = append(gets, e) // $validate and friends change nothing
			} else {
				posts = append(posts, e)
			}
		case http.MethodPut:
			puts = append(puts, e)
		case http.MethodPatch:
			patches = append(patches, e)
		default:
			gets = append(gets, e)
		}
	}
	refs := map[string]string{}                               // fullUrl -> Type/id
	needDB := len(deletes) > 0                                // deletes change what conditional matches see
	withBody := append(append([]*entry{}, posts...), puts...) // the entries whose resource is stored
	for _, e := range withBody {
		if err := s.decodeEntry(e); err != nil {
			return nil, prefixErr(err, e.i, e.fullURL)
		}
		if e.crit != nil || len(resource.ConditionalReferences(e.req.tree)) > 0 {
			needDB = true
		}
	}
	for _, e := range patches {
		if err := s.decodeEntry(e); err != nil {
			return nil, prefixErr(err, e.i, e.fullURL)
		}
		if e.crit != nil {
			needDB = true
		}
	}
	// Identities known without the database: server-assigned ids of plain creates, ids of plain updates.
	for _, e := range posts {
		if e.crit == nil {
			e.target = e.req.rt.typ + "/" + resource.NewID()
		}
	}
	for _, e := range puts {
		if e.crit == nil {
			e.target = e.req.rt.typ + "/" + e.req.rt.id
		}
	}
	prepare := func() error {
		for _, e := range withBody {
			if e.fullURL != "" && e.target != "" {
				refs[e.fullURL] = e.target
			}
		}
		return s.prepareEntries(ctx, withBody, refs)
	}
	if !needDB {
		// The common case (all plain creates and updates): validate everything, in parallel, before
		// the transaction starts, so no lock is held during the CPU-heavy part.
		if err := prepare(); err != nil {
			return nil, err
		}
	}
	err := s.inTx(ctx, func(tx *store.Tx) error {
		for _, e := range deletes {
			resp, err := s.txDelete(ctx, tx, e)
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			e.resp = resp
		}
		if needDB {
			if err := s.resolveConditionals(ctx, tx, posts, puts, patches); err != nil {
				return err
			}
			if err := s.resolveConditionalReferences(ctx, tx, withBody); err != nil {
				return err
			}
			if err := prepare(); err != nil {
				return err
			}
		}
		if err := checkDistinctTargets(entries); err != nil {
			return err
		}
		var creates []*store.Write
		var createEntries []*entry
		for _, e := range posts {
			if !e.matched {
				creates = append(creates, e.write)
				createEntries = append(createEntries, e)
			}
		}
		vs, err := tx.Create(ctx, creates)
		if err != nil {
			if len(createEntries) == 1 {
				return prefixErr(err, createEntries[0].i, createEntries[0].fullURL)
			}
			return err
		}
		for k, v := range vs {
			createEntries[k].resp = created(v)
		}
		if err := s.claimBinaries(ctx, tx, creates...); err != nil {
			return err
		}
		for _, e := range puts {
			e.write.IfNoneMatch = e.ifNoneMatch
			resp, err := s.applyUpdate(ctx, tx, e.write, "", nil, nil, e.ifMatch)
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			e.resp = resp
		}
		for _, e := range patches {
			e.req.rt.id = strings.TrimPrefix(e.target, e.req.rt.typ+"/")
			resp, err := s.applyPatch(ctx, tx, e.req, e.patch, nil, e.ifMatch)
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			e.resp = resp
		}
		for _, e := range gets {
			var resp *response
			var err error
			if e.req.rt.interaction == IOperation {
				if op := e.req.rt.ext; op != nil && !op.Safe {
					return prefixErr(fhir.Errorf(fhir.ErrInvalid, "not-supported", "$%s cannot run inside a transaction (it is not undone on rollback); use a batch", op.Name), e.i, e.fullURL)
				}
				resp, err = s.operation(ctx, e.req)
			} else {
				resp, err = s.doRead(ctx, tx, e.req)
			}
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			e.resp = resp
		}
		auditEntries(ctx, entries)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.bundleResponse("transaction-response", entries, pref), nil
}

// decodeEntry reads what a write entry carries that does not need the database: criteria, If-Match,
// the patch document, the resource's type and id.
func (s *Server) decodeEntry(e *entry) error {
	var err error
	req := e.req
	if e.ifMatch, err = parseIfMatch(req.ifMatch); err != nil {
		return err
	}
	if req.method == http.MethodPut {
		if e.ifNoneMatch, err = parseIfNoneMatch(req.ifNoneMatch); err != nil {
			return err
		}
	}
	switch req.method {
	case http.MethodPost:
		if e.crit, _, err = s.ifNoneExist(req.rt.typ, req.ifNoneExist); err != nil {
			return err
		}
	case http.MethodPut, http.MethodPatch:
		if req.rt.conditional {
			if e.crit, err = s.criteria(req.rt.typ, req.query, strings.ToLower(req.method)); err != nil {
				return err
			}
		}
	}
	if req.method == http.MethodPatch {
		e.patch, err = s.parsePatch(req)
		if err != nil {
			return err
		}
		if !req.rt.conditional {
			e.target = req.rt.typ + "/" + req.rt.id
		}
		return nil
	}
	if _, err := s.decodeResource(req); err != nil {
		return err
	}
	e.bodyID = req.tree.GetString("id")
	if req.method == http.MethodPut && !req.rt.conditional {
		return checkBodyID(e.bodyID, req.rt.id)
	}
	return nil
}

// resolveConditionals decides, inside the transaction, which resource each conditional entry means.
func (s *Server) resolveConditionals(ctx context.Context, tx *store.Tx, posts, puts, patches []*entry) error {
	for _, e := range posts {
		if e.crit == nil {
			continue
		}
		ref, err := s.matchOne(ctx, tx, e.crit, mustQuery(e.req.ifNoneExist))
		if err != nil {
			return prefixErr(err, e.i, e.fullURL)
		}
		if ref == nil {
			e.target = e.req.rt.typ + "/" + resource.NewID()
			continue
		}
		e.matched = true
		e.target = e.req.rt.typ + "/" + ref.ID
		v, err := tx.Read(ctx, e.req.rt.typ, ref.ID)
		if err != nil {
			return prefixErr(err, e.i, e.fullURL)
		}
		e.resp = &response{status: http.StatusOK, version: v, write: true, location: e.target, info: "matched the existing " + e.target}
	}
	for _, e := range append(append([]*entry{}, puts...), patches...) {
		if e.crit == nil {
			continue
		}
		ref, err := s.matchOne(ctx, tx, e.crit, e.req.query)
		if err != nil {
			return prefixErr(err, e.i, e.fullURL)
		}
		switch {
		case ref != nil && e.bodyID != "" && e.bodyID != ref.ID:
			return prefixErr(fhir.Invalid("invalid", "id", "the resource id %q differs from the id %q of the resource the criteria match", e.bodyID, ref.ID), e.i, e.fullURL)
		case ref != nil:
			e.target = e.req.rt.typ + "/" + ref.ID
		case e.req.method == http.MethodPatch:
			return prefixErr(fhir.Errorf(fhir.ErrNotFound, "not-found", "no %s matches the criteria of the conditional patch", e.req.rt.typ), e.i, e.fullURL)
		case e.bodyID != "":
			if v, err := tx.Read(ctx, e.req.rt.typ, e.bodyID); err == nil && !v.Deleted() {
				return prefixErr(fhir.Errorf(fhir.ErrConflict, "conflict", "nothing matches the criteria, but %s/%s exists and does not match them", e.req.rt.typ, e.bodyID), e.i, e.fullURL)
			}
			e.target = e.req.rt.typ + "/" + e.bodyID
		default:
			e.target = e.req.rt.typ + "/" + resource.NewID()
		}
	}
	return nil
}

func mustQuery(h string) url.Values {
	q, _ := url.ParseQuery(strings.TrimPrefix(h, "?"))
	return q
}

// resolveConditionalReferences replaces references such as "Patient?identifier=x|1" by the one
// resource they match (http.html#trules); zero or several matches fail the transaction.
func (s *Server) resolveConditionalReferences(ctx context.Context, tx *store.Tx, entries []*entry) error {
	for _, e := range entries {
		if e.matched {
			continue
		}
		for _, cr := range resource.ConditionalReferences(e.req.tree) {
			params, err := parseQuery(cr.Query, "conditional reference "+strconv.Quote(search.Printable(cr.Value.Str)))
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			q, err := s.criteria(cr.Type, params, "reference")
			if err == nil {
				err = s.reachOf(ctx, q, PermRead)
			}
			if err != nil {
				return prefixErr(err, e.i, e.fullURL)
			}
			refs, err := tx.Match(ctx, q, 2)
			if err != nil {
				return err
			}
			if len(refs) != 1 {
				return prefixErr(fhir.Errorf(fhir.ErrPreconditionFailed, "not-found",
					"conditional reference %q matches %d resources; it must match exactly one", cr.Value.Str, len(refs)), e.i, e.fullURL)
			}
			cr.Value.Str = cr.Type + "/" + refs[0].ID
		}
	}
	return nil
}

// prepareEntries rewrites references to the Bundle's fullUrls and validates every resource of a
// create or update, in parallel.
func (s *Server) prepareEntries(ctx context.Context, entries []*entry, refs map[string]string) error {
	var mu sync.Mutex
	var firstErr error
	firstIdx := len(entries)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(entries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				e := entries[k]
				if e.matched {
					continue
				}
				resource.RewriteReferences(e.req.tree, refs)
				_, id, _ := strings.Cut(e.target, "/")
				w, err := s.prepareWrite(ctx, e.req.rt.typ, id, e.req.tree, nil)
				if err == nil {
					err = s.checkWrite(ctx, s.store, w.Type, w.ID, w.Tree, permOf(e.req.rt))
				}
				if err != nil {
					mu.Lock()
					if k < firstIdx {
						firstIdx, firstErr = k, prefixErr(err, e.i, e.fullURL)
					}
					mu.Unlock()
					continue
				}
				e.write = w
			}
		}()
	}
	for k := range entries {
		work <- k
	}
	close(work)
	wg.Wait()
	return firstErr
}

func (s *Server) txDelete(ctx context.Context, tx *store.Tx, e *entry) (*response, error) {
	ifMatch, err := parseIfMatch(e.req.ifMatch)
	if err != nil {
		return nil, err
	}
	var crit *search.Query
	if e.req.rt.conditional {
		if crit, err = s.criteria(e.req.rt.typ, e.req.query, "delete"); err != nil {
			return nil, err
		}
	}
	resp, err := s.applyDelete(ctx, tx, e.req.rt.typ, e.req.rt.id, crit, e.req.query, ifMatch)
	if err == nil && resp.version != nil {
		e.target = resp.version.Type + "/" + resp.version.ID
	} else if err == nil && !e.req.rt.conditional {
		e.target = e.req.rt.typ + "/" + e.req.rt.id
	}
	return resp, err
}

// checkDistinctTargets enforces that no two writes of a transaction address the same resource.
func checkDistinctTargets(entries []*entry) error {
	seen := map[string]int{}
	for _, e := range entries {
		if e.target == "" || e.req.method == http.MethodGet || e.req.method == http.MethodHead {
			continue
		}
		if j, dup := seen[e.target]; dup {
			return prefixErr(fhir.Errorf(fhir.ErrInvalid, "duplicate", "entries %d and %d both change %s", j, e.i, e.target), e.i, e.fullURL)
		}
		seen[e.target] = e.i
	}
	return nil
}

// bundleResponse builds a batch-response or transaction-response. Write entries carry the
// resource only when Prefer: return=representation asks for it (return=OperationOutcome gives an
// outcome instead); reads always carry what they read. A write the hooks warned about carries the
// warnings in response.outcome.
func (s *Server) bundleResponse(kind string, entries []*entry, pref prefer) *response {
	b := newBundleOut(kind)
	for _, e := range entries {
		r := e.resp
		var res []byte
		switch {
		case r.info == "error":
			res = nil
		case r.write && pref.ret == "representation" && r.version != nil:
			res = r.version.Content
		case r.write && pref.ret == "OperationOutcome":
			res = outcomeJSON(writeOutcome(r))
		case !r.write && r.status != http.StatusNotModified:
			res = r.body
			if res == nil && r.version != nil {
				res = r.version.Content
			}
		}
		status := strconv.Itoa(r.status) + " " + http.StatusText(r.status)
		rr := obj("status", status, "location", r.location)
		if v := r.version; v != nil {
			rr.Set("etag", jsontree.NewString(etag(v.Version)))
			rr.Set("lastModified", jsontree.NewString(resource.FormatInstant(v.LastUpdated)))
		}
		if r.info == "error" {
			oo, _ := jsontree.Parse(r.body)
			rr.Set("outcome", oo)
		} else if w := warningsOf(r); len(w) > 0 {
			// Bundle.entry.response.outcome: "hints and warnings produced as part of processing this
			// entry", whatever the Prefer header asks for the resource.
			rr.Set("outcome", fhir.Outcome(w))
		}
		fullURL := ""
		if r.version != nil && !r.version.Deleted() && res != nil {
			fullURL = s.cfg.Base + "/" + r.version.Type + "/" + r.version.ID
		}
		b.entry(fullURL, res, member("response", rr))
	}
	return &response{status: http.StatusOK, body: b.marshal(s.cfg.Now())}
}

// Transaction processes a batch or transaction Bundle outside HTTP (billy seed) and returns the
// response Bundle. Authorization is the Server's.
func (s *Server) Transaction(ctx context.Context, body []byte) ([]byte, error) {
	req := &request{method: http.MethodPost, rt: route{interaction: IBatch}, body: body}
	policy, err := s.auth.Authorize(ctx, Access{Interaction: IBatch})
	if err != nil {
		return nil, err
	}
	resp, err := s.bundle(withPolicy(ctx, policy), req)
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}
