package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/logging"
)

// Auditing: every request through serveHTTP, and every entry of a batch or transaction, makes one
// AuditEvent (fhir/audit). A request that writes appends its event in the write's own transaction
// (inTx), so the write and its audit commit together; every other event (reads, searches,
// refusals, failed writes) is handed to the batched writer before the response is written, and the
// response waits until it is committed: a request is never answered unaudited. If the trail cannot
// be written the request fails with a 500 instead.

// AuditLog records and searches the audit trail; audit.Log is the implementation.
type AuditLog interface {
	// Append appends evs inside a write's transaction.
	Append(ctx context.Context, tx audit.Querier, evs []*audit.Event) ([]string, error)
	// Record appends evs and returns once they are durable.
	Record(ctx context.Context, evs ...*audit.Event) error
	Search(ctx context.Context, q *audit.Query) ([]audit.Record, error)
	Read(ctx context.Context, id string) ([]byte, []string, error)
	AccessLog(ctx context.Context, patient string, since time.Time) ([]audit.Access, error)
}

var _ AuditLog = audit.Log{}

// PurposeOfUseHeader carries the purpose of use of a request (v3 PurposeOfUse codes such as TREAT,
// HPAYMT, HOPERAT; comma-separated), recorded in its AuditEvent.
const PurposeOfUseHeader = "X-Purpose-Of-Use"

// auditRec collects the AuditEvent of one request or Bundle entry while it runs.
type auditRec struct {
	mu       sync.Mutex
	ev       *audit.Event
	stored   bool // appended in a write's transaction, which committed
	children []*auditRec
	base     string
}

type auditKey struct{}

func auditFrom(ctx context.Context) *auditRec {
	r, _ := ctx.Value(auditKey{}).(*auditRec)
	return r
}

// beginAudit starts the AuditEvent of an HTTP request.
func (s *Server) beginAudit(ctx context.Context, r *http.Request) context.Context {
	if s.cfg.Audit == nil {
		return ctx
	}
	ev := &audit.Event{Kind: audit.KindREST, Subtype: "unknown", Action: actionOf(r.Method), RequestID: logging.RequestIDFrom(ctx)}
	if s.cfg.Agent != nil {
		ev.Agent = s.cfg.Agent(ctx)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.Agent.Address = host
	} else {
		ev.Agent.Address = r.RemoteAddr
	}
	ev.PurposeOfUse = purposeOfUse(r.Header.Values(PurposeOfUseHeader))
	return context.WithValue(ctx, auditKey{}, &auditRec{ev: ev, base: s.cfg.Base})
}

// purposeOfUse keeps the header's values that look like codes (nothing else reaches the trail).
func purposeOfUse(hs []string) []string {
	var out []string
	for _, h := range hs {
		for _, c := range strings.Split(h, ",") {
			c = strings.TrimSpace(c)
			if c == "" || len(c) > 32 || strings.ContainsFunc(c, func(r rune) bool {
				return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
			}) {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

func actionOf(method string) string {
	switch method {
	case http.MethodPost:
		return audit.ActionCreate
	case http.MethodPut, http.MethodPatch:
		return audit.ActionUpdate
	case http.MethodDelete:
		return audit.ActionDelete
	}
	return audit.ActionRead
}

// setRoute records what a request or entry asks for, as soon as it is known.
func (r *auditRec) setRoute(rt route, method string, q url.Values) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.ev
	ev.Subtype = rt.interaction
	ev.Action = actionOf(method)
	switch rt.interaction {
	case IRead, IVRead, ISearchType, ISearchSystem, IHistoryInstance, IHistoryType, IHistorySystem, ICapabilities, IExportFile:
		ev.Action = audit.ActionRead
	case IOperation, IBatch, IExportStatus:
		ev.Action = audit.ActionExecute
	}
	if rt.interaction == IOperation {
		ev.Entities = append(ev.Entities, audit.Entity{Type: rt.typ, ID: rt.id, Version: rt.vid, Description: "$" + rt.op})
		if q = withoutFormatting(q); len(q) > 0 {
			ev.Entities = append(ev.Entities, audit.Entity{Type: rt.typ, Query: q.Encode(), Description: "$" + rt.op})
		}
	} else if rt.id != "" && (rt.interaction == IDelete || rt.interaction == IHistoryInstance) {
		ev.Entities = append(ev.Entities, audit.Entity{Type: rt.typ, ID: rt.id})
	}
	if rt.interaction == IExportStatus || rt.interaction == IExportFile {
		ev.Entities = append(ev.Entities, audit.Entity{Type: "Binary", Description: "export " + rt.job + " " + rt.file})
	}
	if rt.typ == "Patient" && rt.id != "" {
		ev.AddPatient(rt.id)
	}
}

// touch records a resource the request read or wrote, and the patients its content names.
func (r *auditRec) touch(typ, id string, version int, content []byte) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev.Entities = append(r.ev.Entities, audit.Entity{Type: typ, ID: id, Version: version})
	audit.PatientsIn(typ, id, content, r.base, r.ev.AddPatient)
}

// touchAll records the patients of resources handed out by a search, history or $everything (the
// query is the entity; the resources are not listed one by one).
func (r *auditRec) touchAll(vs []*store.Version) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		audit.PatientsIn(v.Type, v.ID, v.Content, r.base, r.ev.AddPatient)
	}
}

// query records the query of a search or history.
func (r *auditRec) query(typ string, q url.Values) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev.Entities = append(r.ev.Entities, audit.Entity{Type: typ, Query: withoutFormatting(q).Encode()})
}

// child starts the event of a Bundle entry.
func (r *auditRec) child(rt route, method string, q url.Values) *auditRec {
	if r == nil {
		return nil
	}
	c := &auditRec{ev: &audit.Event{Kind: audit.KindREST, Agent: r.ev.Agent, PurposeOfUse: r.ev.PurposeOfUse, RequestID: r.ev.RequestID}, base: r.base}
	c.setRoute(rt, method, q)
	r.mu.Lock()
	r.children = append(r.children, c)
	r.mu.Unlock()
	return c
}

// pending returns the events of r and its children not yet stored, with the outcome of a request
// answered with status.
func (r *auditRec) pending(status int, stored bool) []*audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*audit.Event
	if !r.stored {
		if status > 0 {
			setOutcome(r.ev, status)
		}
		out = append(out, r.ev)
		if stored {
			r.stored = true
		}
	}
	for _, c := range r.children {
		out = append(out, c.pending(0, stored)...)
	}
	return out
}

func setOutcome(ev *audit.Event, status int) {
	switch {
	case status < 400:
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeSuccess, ""
	case status < 500:
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeMinor, "HTTP "+strconv.Itoa(status)
	default:
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeSerious, "HTTP "+strconv.Itoa(status)
	}
}

// unmark undoes pending(..., true) after the transaction it was appended in rolled back.
func (r *auditRec) unmark(evs []*audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		if ev == r.ev {
			r.stored = false
		}
	}
	for _, c := range r.children {
		c.unmark(evs)
	}
}

// finishAudit records the request's events not yet stored, with its outcome, before the response
// is written. A failure to record is the request's failure.
func (s *Server) finishAudit(ctx context.Context, status int) error {
	rec := auditFrom(ctx)
	if rec == nil {
		return nil
	}
	evs := rec.pending(status, true)
	if err := s.cfg.Audit.Record(context.WithoutCancel(ctx), evs...); err != nil {
		s.log.ErrorContext(ctx, "audit trail not written; the request is refused", "error", err.Error())
		return errors.New("the audit trail cannot be written")
	}
	return nil
}

// appendAudit appends, inside a write's transaction, the events of the request in ctx not yet
// stored (success: the transaction is about to commit). It returns them, to unmark should the
// commit fail.
func (s *Server) appendAudit(ctx context.Context, tx *store.Tx) ([]*audit.Event, error) {
	rec := auditFrom(ctx)
	if rec == nil || s.cfg.Audit == nil {
		return nil, nil
	}
	evs := rec.pending(http.StatusOK, true)
	if _, err := s.cfg.Audit.Append(ctx, tx.PgTx(), evs); err != nil {
		rec.unmark(evs)
		return nil, err
	}
	return evs, nil
}

// AuditHook is the store.WriteHook that notes every resource a request writes (its own and what
// other hooks write because of it) in the request's AuditEvent. Install it on the Store of a
// Server that audits.
type AuditHook struct{}

var _ store.WriteHook = AuditHook{}

// AfterWrite notes c in the AuditEvent of the request in ctx, if any.
func (AuditHook) AfterWrite(ctx context.Context, _ *store.Tx, c store.Change) ([]fhir.Issue, error) {
	auditFrom(ctx).touch(c.Type, c.ID, c.Version, c.Content)
	return nil, nil
}

// The audit trail is served as the AuditEvent type (read, search) when the server audits.

// trailInteraction serves the interactions on AuditEvent from the trail: read and search; the
// trail is written by the server only.
func (s *Server) trailInteraction(ctx context.Context, req *request) (*response, error) {
	if err := requireAudit(ctx); err != nil {
		return nil, err
	}
	switch {
	case req.rt.interaction == IRead || (req.rt.interaction == IVRead && req.rt.vid == 1):
		content, _, err := s.cfg.Audit.Read(ctx, req.rt.id)
		if errors.Is(err, audit.ErrNotFound) {
			return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "AuditEvent/%s is not in the audit trail", req.rt.id)
		}
		if err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: content}, nil
	case req.rt.interaction == ISearchType && req.rt.compartment == "":
		return s.searchTrail(ctx, req)
	}
	if req.method != http.MethodGet {
		return nil, &methodError{allowed: []string{http.MethodGet}, method: req.method, path: req.rt.path}
	}
	return nil, fhir.Errorf(fhir.ErrNotImplemented, "not-supported", "the audit trail serves read and search only (%s)", req.rt.path)
}

// requireAudit refuses principals without an audit scope: the trail is read with a user- or
// system-level scope on AuditEvent, without a patient bound or query constraint (under SMART, only a
// scope that names AuditEvent grants it: smart.policy).
func requireAudit(ctx context.Context) error {
	r, ok := policyFrom(ctx).Allow("AuditEvent", PermRead)
	if !ok || !r.none() {
		return fhir.Errorf(fhir.ErrForbidden, "forbidden", "the audit trail needs a user- or system-level AuditEvent scope (user/AuditEvent.rs or system/AuditEvent.rs)")
	}
	return nil
}

func (s *Server) searchTrail(ctx context.Context, req *request) (*response, error) {
	q, err := audit.ParseQuery(req.query)
	if err != nil {
		return nil, err
	}
	auditFrom(ctx).query("AuditEvent", req.query)
	recs, err := s.cfg.Audit.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	b := newBundleOut("searchset")
	self := url.Values{}
	for k, v := range req.query {
		if k != "_cursor" {
			self[k] = v
		}
	}
	link := func(cursor int64) string {
		p := url.Values{}
		for k, v := range self {
			p[k] = v
		}
		if cursor > 0 {
			p.Set("_cursor", strconv.FormatInt(cursor, 10))
		}
		return s.cfg.Base + "/AuditEvent?" + p.Encode()
	}
	b.link("self", link(q.Before))
	if q.Count > 0 && len(recs) == q.Count {
		b.link("next", link(recs[len(recs)-1].Seq))
	}
	for _, r := range recs {
		tree, err := jsontree.Parse(r.Content)
		if err != nil {
			return nil, err
		}
		b.entry(s.cfg.Base+"/AuditEvent/"+tree.GetString("id"), r.Content, member("search", obj("mode", "match")))
	}
	return &response{status: http.StatusOK, body: b.marshal(s.cfg.Now())}, nil
}

// AccessLogDefinition is the canonical URL of the OperationDefinition of Patient/{id}/$access-log.
const AccessLogDefinition = "https://iambilly.github.io/billy/fhir/OperationDefinition/Patient-access-log"

// accessLogOperation is Patient/{id}/$access-log: who accessed a patient's data, and when.
func (s *Server) accessLogOperation() *Operation {
	return &Operation{Name: "access-log", Types: []string{"Patient"}, Definition: AccessLogDefinition,
		InstanceLevel: true, Safe: true, Perm: PermRead, Run: s.accessLog}
}

func (s *Server) accessLog(ctx context.Context, in OperationInput) (*OperationResult, error) {
	if err := requireAudit(ctx); err != nil {
		return nil, err
	}
	var since time.Time
	raw := in.Query.Get("since")
	if in.Params != nil {
		for _, p := range paramsOf(in.Params) {
			if p.GetString("name") == "since" {
				raw = p.GetString("valueDateTime")
			}
		}
	}
	if raw != "" {
		q, err := audit.ParseQuery(url.Values{"date": {"ge" + raw}})
		if err != nil {
			return nil, fhir.Errorf(fhir.ErrInvalid, "value", "since is not a FHIR date or dateTime with a time zone")
		}
		since = q.From
	}
	lines, err := s.cfg.Audit.AccessLog(ctx, in.ID, since)
	if err != nil {
		return nil, err
	}
	type param struct {
		Name           string            `json:"name"`
		ValueString    string            `json:"valueString,omitempty"`
		ValueCode      string            `json:"valueCode,omitempty"`
		ValueInteger   *int              `json:"valueInteger,omitempty"`
		ValueInstant   string            `json:"valueInstant,omitempty"`
		ValueReference map[string]string `json:"valueReference,omitempty"`
		Part           []param           `json:"part,omitempty"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{ResourceType: "Parameters", Parameter: []param{{Name: "patient", ValueReference: map[string]string{"reference": "Patient/" + in.ID}}}}
	for _, l := range lines {
		var parts []param
		for _, a := range l.Agents {
			switch {
			case strings.HasPrefix(a, "client|"):
				parts = append(parts, param{Name: "client", ValueString: strings.TrimPrefix(a, "client|")})
			case strings.HasPrefix(a, "subject|"):
				parts = append(parts, param{Name: "subject", ValueString: strings.TrimPrefix(a, "subject|")})
			default:
				parts = append(parts, param{Name: "user", ValueString: a})
			}
		}
		count := l.Count
		parts = append(parts, param{Name: "action", ValueCode: l.Action}, param{Name: "interaction", ValueCode: l.Subtype},
			param{Name: "outcome", ValueCode: l.Outcome}, param{Name: "count", ValueInteger: &count},
			param{Name: "first", ValueInstant: l.First.UTC().Format(time.RFC3339Nano)},
			param{Name: "last", ValueInstant: l.Last.UTC().Format(time.RFC3339Nano)})
		out.Parameter = append(out.Parameter, param{Name: "access", Part: parts})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return &OperationResult{Body: body}, nil
}

// paramsOf are the parameter entries of a Parameters resource.
func paramsOf(p *jsontree.Value) []*jsontree.Value {
	if ps := p.Get("parameter"); ps != nil && ps.Kind == jsontree.Array {
		return ps.Items
	}
	return nil
}

// entryAudit starts the AuditEvent of a batch entry, in a context for running it.
func entryAudit(ctx context.Context, e *entry) (context.Context, *auditRec) {
	parent := auditFrom(ctx)
	if parent == nil {
		return ctx, nil
	}
	var rt route
	method := ""
	var q url.Values
	if e.req != nil {
		rt, method, q = e.req.rt, e.req.method, e.req.query
	} else {
		rt.interaction = "unknown"
	}
	c := parent.child(rt, method, q)
	return context.WithValue(ctx, auditKey{}, c), c
}

// outcome sets the outcome of an entry's event.
func (r *auditRec) outcome(status int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	setOutcome(r.ev, status)
}

// auditEntries adds the events of a transaction's entries, which all succeeded, to the request's.
func auditEntries(ctx context.Context, entries []*entry) {
	parent := auditFrom(ctx)
	if parent == nil {
		return
	}
	for _, e := range entries {
		c := parent.child(e.req.rt, e.req.method, e.req.query)
		if e.resp != nil {
			if v := e.resp.version; v != nil {
				c.touch(v.Type, v.ID, v.Version, v.Content)
			}
			c.outcome(max(e.resp.status, http.StatusOK))
		}
	}
}

// trailCapability is the CapabilityStatement entry of AuditEvent when the type is the audit trail:
// read and search, with the parameters audit.ParseQuery takes.
func trailCapability() *jsontree.Value {
	str := jsontree.NewString
	r := jsontree.NewObject()
	r.Set("type", str("AuditEvent"))
	r.Set("documentation", str("The server's audit trail: append-only and hash-chained, written by the server only. "+
		"Needs a user- or system-level scope naming AuditEvent (user/AuditEvent.rs or system/AuditEvent.rs). "+
		"Unsupported search parameters are refused (400); results are newest first."))
	r.Set("interaction", jsontree.NewArray(obj("code", "read"), obj("code", "search-type")))
	var params []*jsontree.Value
	for _, p := range [][2]string{{"patient", "reference"}, {"agent", "reference"}, {"entity", "reference"}, {"date", "date"},
		{"action", "token"}, {"outcome", "token"}, {"subtype", "token"}} {
		params = append(params, obj("name", p[0], "definition", "http://hl7.org/fhir/SearchParameter/AuditEvent-"+p[0], "type", p[1]))
	}
	r.Set("searchParam", jsontree.NewArray(params...))
	return r
}
