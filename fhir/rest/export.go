package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/bulk"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
)

// Bulk Data Access (IG v2): the kick-off ($export at system, Patient and Group level), the status
// URL (poll, cancel) and the files. The jobs run in fhir/bulk; this side authorizes them. A job
// exports what its requester may read at kick-off, decided by the rule searches apply (readReach,
// and the query constraints as filters), and its status and files answer only the same requester.

// exportFormats are the _outputFormat values accepted (all NDJSON).
var exportFormats = map[string]bool{"application/fhir+ndjson": true, "application/ndjson": true, "ndjson": true}

// exportParams are the kick-off parameters Billy reads; others are refused unless lenient.
var exportParams = map[string]bool{"_outputFormat": true, "_since": true, "_type": true, "_typeFilter": true, "_format": true, "_pretty": true}

var (
	exportFileName = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}-[0-9]{1,9}\.ndjson$`)
	// filterStart splits a _typeFilter list at the commas that start another Type?query.
	filterStart = regexp.MustCompile(`,([A-Z][A-Za-z]+\?)`)
)

func validJob(id string) bool          { return bulk.ValidID(id) }
func validExportFile(name string) bool { return exportFileName.MatchString(name) }

// compartmentTypes are Patient and the types of the R4 patient compartment: what a patient- or
// group-level export covers.
func compartmentTypes() []string {
	out := []string{"Patient"}
	for _, t := range schema.ResourceTypes() {
		if codes, ok := searchparam.PatientCompartment(t); ok && len(codes) > 0 && t != "Patient" {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) requester(ctx context.Context) string {
	if s.cfg.Requester == nil {
		return ""
	}
	return s.cfg.Requester(ctx)
}

// exportKickoff is GET [base]/$export, [base]/Patient/$export and [base]/Group/{id}/$export.
func (s *Server) exportKickoff(ctx context.Context, req *request) (*response, error) {
	if s.cfg.Exports == nil {
		return nil, fhir.Errorf(fhir.ErrNotImplemented, "not-supported", "this server runs no Bulk Data exports")
	}
	if !req.prefer.async {
		return nil, fhir.Invalid("required", "Prefer", "$export runs asynchronously: send Prefer: respond-async")
	}
	lenient := req.prefer.lenient
	var problems []fhir.Issue
	problem := func(code, expr, format string, args ...any) error {
		e := fhir.Invalid(code, expr, format, args...)
		if !lenient {
			return e
		}
		is := e.Issues[0]
		is.Severity = fhir.SeverityWarning
		problems = append(problems, is)
		return nil
	}
	names := make([]string, 0, len(req.query))
	for k := range req.query {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !exportParams[k] {
			if err := problem("not-supported", k, "$export parameter %s is not supported (handling=lenient ignores it)", k); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range req.query["_outputFormat"] {
		if !exportFormats[f] {
			return nil, fhir.Invalid("not-supported", "_outputFormat", "_outputFormat %q: Billy writes application/fhir+ndjson only", f)
		}
	}
	r := bulk.Request{Owner: s.requester(ctx), Level: bulk.LevelSystem, Filters: map[string][]string{}}
	switch {
	case req.rt.typ == "Patient":
		r.Level = bulk.LevelPatient
	case req.rt.typ == "Group":
		r.Level = bulk.LevelGroup
		members, err := s.groupMembers(ctx, req.rt.id)
		if err != nil {
			return nil, err
		}
		r.Patients = members
	}
	if v := req.query.Get("_since"); v != "" {
		lo, _, ok := search.ParseDateRange(v)
		if !ok || !strings.Contains(v, "T") {
			return nil, fhir.Invalid("value", "_since", "_since=%q is not a FHIR instant (such as 2026-03-01T00:00:00Z)", v)
		}
		r.Since = lo
	}
	allowed := func(typ string) bool { return true }
	if r.Level != bulk.LevelSystem {
		ct := compartmentTypes()
		allowed = func(typ string) bool { return slices.Contains(ct, typ) }
	}
	explicit := false
	for _, list := range req.query["_type"] {
		for _, t := range strings.Split(list, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
			case !schema.IsResourceType(t):
				if err := problem("value", "_type", "_type: %q is not a resource type", t); err != nil {
					return nil, err
				}
			case !allowed(t):
				if err := problem("value", "_type", "_type: %s is not in the patient compartment, so a %s-level export has none", t, r.Level); err != nil {
					return nil, err
				}
			case !slices.Contains(r.Types, t):
				r.Types, explicit = append(r.Types, t), true
			}
		}
	}
	for _, list := range req.query["_typeFilter"] {
		for _, f := range strings.Split(filterStart.ReplaceAllString(list, "\x00$1"), "\x00") {
			typ, raw, ok := strings.Cut(f, "?")
			if !ok || !schema.IsResourceType(typ) {
				if err := problem("value", "_typeFilter", "_typeFilter %q is not Type?query", f); err != nil {
					return nil, err
				}
				continue
			}
			if explicit && !slices.Contains(r.Types, typ) || !allowed(typ) {
				if err := problem("value", "_typeFilter", "_typeFilter %q names a type the export does not include", f); err != nil {
					return nil, err
				}
				continue
			}
			params, err := parseQuery(raw, "the _typeFilter "+typ+" query")
			if err != nil {
				return nil, err
			}
			r.Filters[typ] = append(r.Filters[typ], params.Encode())
		}
	}
	if !explicit {
		var candidates []string
		if r.Level == bulk.LevelSystem {
			var err error
			if candidates, err = s.store.ExportTypes(ctx); err != nil {
				return nil, err
			}
		} else {
			candidates = compartmentTypes()
		}
		for _, t := range candidates {
			if _, ok := policyFrom(ctx).Allow(t, PermRead); ok {
				r.Types = append(r.Types, t)
			}
		}
		if len(r.Types) == 0 {
			return nil, fhir.Errorf(fhir.ErrForbidden, "forbidden", "the token's scopes allow reading none of the types to export")
		}
	}
	if err := s.authorizeExport(ctx, &r); err != nil {
		return nil, err
	}
	r.Problems = problems
	r.URL = s.cfg.Base + "/" + strings.TrimPrefix(req.rt.path, "/")
	if q := req.query.Encode(); q != "" {
		r.URL += "?" + q
	}
	id, err := s.cfg.Exports.Kickoff(ctx, r)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Location", s.cfg.Base+"/"+exportPath+"/"+id)
	info := []fhir.Issue{{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: "export " + id + " accepted; poll the Content-Location for its status"}}
	return &response{status: http.StatusAccepted, header: h, body: outcomeJSON(append(info, problems...))}, nil
}

// authorizeExport bounds an export to what the requester may read, as a search is bounded: the
// reach of every type exported or looked through by a filter (readReach), and the requester's
// query constraints, which become filters (a resource must match one of them as well as one of
// the requested filters).
func (s *Server) authorizeExport(ctx context.Context, r *bulk.Request) error {
	all := slices.Clone(r.Types)
	for _, typ := range r.Types {
		rs, ok := policyFrom(ctx).Allow(typ, PermRead)
		if !ok {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "the token's scopes do not allow reading %s", typ)
		}
		if len(rs.Constraints) > 0 {
			var combined []string
			base := r.Filters[typ]
			if len(base) == 0 {
				base = []string{""}
			}
			for _, f := range base {
				fv, _ := url.ParseQuery(f)
				for _, c := range rs.Constraints {
					m := url.Values{}
					for k, vs := range fv {
						m[k] = append(m[k], vs...)
					}
					for k, vs := range c {
						m[k] = append(m[k], vs...)
					}
					combined = append(combined, m.Encode())
				}
			}
			r.Filters[typ] = combined
		}
		for _, f := range r.Filters[typ] {
			params, _ := url.ParseQuery(f)
			q, err := search.Parse([]string{typ}, params, s.searchOptions(true))
			if err != nil {
				if fe, ok := fhir.AsError(err); ok {
					return fe.At("_typeFilter")
				}
				return err
			}
			for _, t := range q.Touched() {
				rs, ok := policyFrom(ctx).Allow(t, PermRead)
				if ok && len(rs.Constraints) > 0 {
					return fhir.Errorf(fhir.ErrForbidden, "forbidden", "_typeFilter cannot look through %s: the token's scopes limit it by a query", t)
				}
				if !slices.Contains(all, t) {
					all = append(all, t)
				}
			}
		}
	}
	r.Reach = readReach(ctx, all)
	return nil
}

// groupMembers returns the Patients a Group names as active members, once the requester may read
// the Group.
func (s *Server) groupMembers(ctx context.Context, id string) ([]string, error) {
	v, err := s.store.Read(ctx, "Group", id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, gone(v)
	}
	if err := s.checkVersion(ctx, s.store, v, PermRead); err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return nil, err
	}
	out := []string{}
	if ms := tree.Get("member"); ms != nil && ms.Kind == jsontree.Array {
		for _, m := range ms.Items {
			if in := m.Get("inactive"); in != nil && in.Kind == jsontree.Bool && in.Str == "true" {
				continue
			}
			ref := strings.TrimPrefix(m.Get("entity").GetString("reference"), s.cfg.Base+"/")
			if typ, pid, ok := resource.ParseReference(ref); ok && typ == "Patient" && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// manifest is the body of a completed export's status (IG v2, "Response - Complete Status").
type manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	Output              []manifestFile `json:"output"`
	Error               []manifestFile `json:"error"`
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count,omitempty"`
}

// exportStatus is GET (poll) and DELETE (cancel) on an export's status URL.
func (s *Server) exportStatus(ctx context.Context, req *request) (*response, error) {
	if s.cfg.Exports == nil {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "this server runs no Bulk Data exports")
	}
	owner := s.requester(ctx)
	if req.method == http.MethodDelete {
		if err := s.cfg.Exports.Cancel(ctx, req.rt.job, owner); err != nil {
			return nil, err
		}
		info := []fhir.Issue{{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: "export " + req.rt.job + " cancelled and its files deleted"}}
		return &response{status: http.StatusAccepted, body: outcomeJSON(info)}, nil
	}
	j, err := s.cfg.Exports.Job(ctx, req.rt.job, owner)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	switch j.Status {
	case bulk.StatusQueued, bulk.StatusRunning:
		h.Set("X-Progress", j.Progress())
		h.Set("Retry-After", "2")
		return &response{status: http.StatusAccepted, header: h}, nil
	case bulk.StatusFailed:
		// The job failed, not the poll: a 5xx with the reason, as the IG asks.
		issues := []fhir.Issue{{Severity: fhir.SeverityError, Code: "exception", Diagnostics: "the export failed: " + j.Error}}
		return &response{status: http.StatusInternalServerError, body: outcomeJSON(issues)}, nil
	}
	m := manifest{TransactionTime: resource.FormatInstant(j.TransactionTime), Request: j.Request, RequiresAccessToken: true,
		Output: []manifestFile{}, Error: []manifestFile{}}
	for _, f := range j.Files {
		mf := manifestFile{Type: f.Type, URL: s.cfg.Base + "/" + exportPath + "/" + j.ID + "/" + f.Name, Count: f.Count}
		if f.Kind == "error" {
			m.Error = append(m.Error, mf)
		} else {
			m.Output = append(m.Output, mf)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h.Set("Expires", j.ExpiresAt.UTC().Format(http.TimeFormat))
	return &response{status: http.StatusOK, header: h, body: body, contentType: "application/json"}, nil
}

// exportFile streams one NDJSON file of an export, decrypted (Range requests honoured).
func (s *Server) exportFile(ctx context.Context, req *request) (*response, error) {
	if s.cfg.Exports == nil {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "this server runs no Bulk Data exports")
	}
	obj, f, err := s.cfg.Exports.Open(ctx, req.rt.job, s.requester(ctx), req.rt.file)
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, size: f.Size, stream: func(w http.ResponseWriter, r *http.Request) error {
		defer obj.Close()
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.Header().Set("Accept-Ranges", "bytes")
		http.ServeContent(w, r, "", time.Time{}, obj)
		return nil
	}}, nil
}
