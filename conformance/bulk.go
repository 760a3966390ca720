package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const bulkSpec = "https://hl7.org/fhir/uv/bulkdata/export.html"

// bulkTypes are the types the shared export asks for.
var bulkTypes = []string{"Patient", "Observation"}

// bulkResult is the shared export: its kick-off, its final status answer and the problem that
// stopped it.
type bulkResult struct {
	kickoff  *Resp
	status   *Resp
	location string
	problem  string
	failed   *Resp
}

func (e *Env) exportDeclared() bool {
	for _, op := range arr(e.restOf()["operation"]) {
		if str(obj(op)["name"]) == "export" {
			return true
		}
	}
	return false
}

func bulkHeaders() http.Header {
	return http.Header{"Prefer": {"respond-async"}, "Accept": {"application/fhir+json"}}
}

// export kicks off one system export of bulkTypes and polls it to its end, once per run.
func (e *Env) export(ctx context.Context) *bulkResult {
	e.bulkOnce.Do(func() {
		b := &e.bulk
		r, err := e.c.do(ctx, req{method: http.MethodGet, path: "$export?_type=" + strings.Join(bulkTypes, ","), header: bulkHeaders()})
		if err != nil {
			b.problem = err.Error()
			return
		}
		b.kickoff = r
		b.location = r.Header.Get("Content-Location")
		if r.Status != 202 || b.location == "" {
			b.problem, b.failed = "kick-off answered "+itoa(r.Status)+" with Content-Location "+strconv.Quote(b.location)+", want 202 with one", r
			return
		}
		deadline := time.Now().Add(e.cfg.BulkTimeout)
		for {
			s, err := e.c.do(ctx, req{method: http.MethodGet, path: b.location, header: http.Header{"Accept": {"application/json"}}})
			if err != nil {
				b.problem = err.Error()
				return
			}
			if s.Status != 202 {
				b.status = s
				return
			}
			if time.Now().After(deadline) {
				b.problem, b.failed = "the export did not finish in "+e.cfg.BulkTimeout.String(), s
				return
			}
			wait := e.cfg.PollInterval
			if ra, err := strconv.Atoi(s.Header.Get("Retry-After")); err == nil && time.Duration(ra)*time.Second < wait {
				wait = time.Duration(ra) * time.Second
			}
			select {
			case <-ctx.Done():
				b.problem = ctx.Err().Error()
				return
			case <-time.After(max(wait, 50*time.Millisecond)):
			}
		}
	})
	return &e.bulk
}

// manifest is the completed export's manifest, or the result that says why there is none.
func (e *Env) manifest(ctx context.Context) (map[string]any, *Resp, *Result) {
	if !e.exportDeclared() {
		r := skip("the CapabilityStatement declares no system $export")
		return nil, nil, &r
	}
	b := e.export(ctx)
	if b.problem != "" {
		r := fail(b.failed, "%s", b.problem)
		return nil, nil, &r
	}
	return b.status.JSON(), b.status, nil
}

// exportKickoffAndCancel kicks off an export at path and cancels it.
func (e *Env) exportKickoffAndCancel(ctx context.Context, path string) Result {
	r, err := e.c.do(ctx, req{method: http.MethodGet, path: path, header: bulkHeaders()})
	if err != nil {
		return errResult(err)
	}
	loc := r.Header.Get("Content-Location")
	if r.Status != 202 || loc == "" {
		return fail(r, "kick-off answered %d with Content-Location %q, want 202 with one", r.Status, loc)
	}
	d, err := e.c.del(ctx, loc)
	if err != nil {
		return errResult(err)
	}
	if d.Status != 202 {
		return fail(d, "cancel answered %d, want 202", d.Status)
	}
	return pass()
}

func bulkChecks() []Check {
	return []Check{
		chk("bulk/kickoff", SHALL, bulkSpec+"#response---success", "$export with Prefer: respond-async answers 202 Accepted with a Content-Location", true, func(ctx context.Context, e *Env) Result {
			if !e.exportDeclared() {
				return skip("the CapabilityStatement declares no system $export")
			}
			b := e.export(ctx)
			if b.kickoff == nil {
				return fail(nil, "%s", b.problem)
			}
			if b.kickoff.Status != 202 || b.location == "" {
				return fail(b.kickoff, "answered %d with Content-Location %q", b.kickoff.Status, b.location)
			}
			return pass()
		}),
		chk("bulk/status-manifest", SHALL, bulkSpec+"#response---complete-status", "The status URL answers 202 while running, then 200 with a manifest: transactionTime, request, requiresAccessToken, output with type and url", true, func(ctx context.Context, e *Env) Result {
			m, r, res := e.manifest(ctx)
			if res != nil {
				return *res
			}
			if r.Status != 200 {
				return fail(r, "the status answered %d, want 200 once complete", r.Status)
			}
			if _, err := time.Parse(time.RFC3339Nano, str(m["transactionTime"])); err != nil || str(m["request"]) == "" || m["requiresAccessToken"] == nil {
				return fail(r, "the manifest lacks transactionTime (an instant), request or requiresAccessToken")
			}
			for _, o := range arr(m["output"]) {
				if str(obj(o)["type"]) == "" || str(obj(o)["url"]) == "" {
					return fail(r, "an output lacks type or url")
				}
			}
			return pass()
		}),
		chk("bulk/download", SHALL, bulkSpec+"#file-request", "Each output file downloads with the token as NDJSON, every line a resource of its output's type among those asked for", true, func(ctx context.Context, e *Env) Result {
			m, r, res := e.manifest(ctx)
			if res != nil {
				return *res
			}
			outs := arr(m["output"])
			if len(outs) == 0 {
				if e.fixtures != nil {
					return fail(r, "the manifest lists no output, but the run's fixtures exist")
				}
				return skip("the export produced no file")
			}
			seen := map[string]bool{}
			for _, o := range outs {
				typ, u := str(obj(o)["type"]), str(obj(o)["url"])
				if !contains(bulkTypes, typ) {
					return fail(r, "an output of type %s, which was not asked for", typ)
				}
				hdr := http.Header{"Accept": {"application/fhir+ndjson"}}
				f, err := e.c.do(ctx, req{method: http.MethodGet, path: u, header: hdr, noAuth: m["requiresAccessToken"] != true})
				if err != nil {
					return errResult(err)
				}
				if f.Status != 200 {
					return fail(f, "the file answered %d", f.Status)
				}
				sc := bufio.NewScanner(bytes.NewReader(f.Body))
				sc.Buffer(nil, 64<<20)
				for sc.Scan() {
					line := bytes.TrimSpace(sc.Bytes())
					if len(line) == 0 {
						continue
					}
					var res struct{ ResourceType, ID string }
					if err := json.Unmarshal(line, &res); err != nil || res.ResourceType != typ {
						return fail(f, "a line is not a %s: %.120s", typ, line)
					}
					seen[typ+"/"+res.ID] = true
				}
			}
			if e.fixtures != nil {
				for _, k := range []string{"patientA", "obsA"} {
					if ref := e.fixtureRef(ctx, k); !seen[ref] {
						return fail(r, "the export lacks the fixture %s", ref)
					}
				}
			}
			return pass()
		}),
		chk("bulk/cancel", SHALL, bulkSpec+"#bulk-data-delete-request", "DELETE on a status URL answers 202 and the status then answers 404", true, func(ctx context.Context, e *Env) Result {
			if !e.exportDeclared() {
				return skip("the CapabilityStatement declares no system $export")
			}
			r, err := e.c.do(ctx, req{method: http.MethodGet, path: "$export?_type=Patient", header: bulkHeaders()})
			if err != nil {
				return errResult(err)
			}
			loc := r.Header.Get("Content-Location")
			if r.Status != 202 || loc == "" {
				return fail(r, "kick-off answered %d", r.Status)
			}
			d, err := e.c.del(ctx, loc)
			if err != nil {
				return errResult(err)
			}
			if d.Status != 202 {
				return fail(d, "cancel answered %d, want 202", d.Status)
			}
			s, err := e.c.get(ctx, loc)
			if err != nil {
				return errResult(err)
			}
			if s.Status != 404 {
				return fail(s, "the status after cancel answered %d, want 404", s.Status)
			}
			return pass()
		}),
	}
}

// All lists the checks for a server: the fixed ones and those its CapabilityStatement generates,
// in report order.
func All(e *Env) []Check {
	cs := capabilityChecks(e)
	cs = append(cs, restChecks()...)
	cs = append(cs, searchChecks()...)
	cs = append(cs, smartChecks()...)
	cs = append(cs, bulkChecks()...)
	sortChecks(cs)
	return cs
}
