package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Spec section bases.
const (
	httpSpec   = "http://hl7.org/fhir/R4/http.html"
	searchSpec = "http://hl7.org/fhir/R4/search.html"
	bundleSpec = "http://hl7.org/fhir/R4/bundle.html"
)

// chk builds a check; its group is the ID's first part.
func chk(id string, level Level, spec, title string, readOnly bool, run func(ctx context.Context, e *Env) Result) Check {
	g, _, _ := strings.Cut(id, "/")
	return Check{ID: id, Group: g, Title: title, Level: level, Spec: spec, ReadOnly: readOnly, Run: run}
}

// errResult is a failure from a transport error.
func errResult(err error) Result { return fail(nil, "request failed: %v", err) }

// scratchPatient creates a Patient of the run's own (not a fixture), with a run-unique identifier.
func (e *Env) scratchPatient(ctx context.Context, suffix string) (map[string]any, *Resp, error) {
	p := map[string]any{"resourceType": "Patient", "gender": "other", "birthDate": "2001-02-03",
		"identifier": []any{map[string]any{"system": IDSystem, "value": e.runID + "-" + suffix}},
		"name":       []any{map[string]any{"family": "Conformance" + e.runID + "Scratch", "given": []any{suffix}}}}
	return e.create(ctx, p)
}

// staleVersion creates a Patient and updates it: it returns the resource as updated and its first
// version, which is then stale (versionIds are opaque: the server chose both).
func (e *Env) staleVersion(ctx context.Context, suffix string) (map[string]any, string, *Resp, error) {
	res, r, err := e.scratchPatient(ctx, suffix)
	if err != nil {
		return nil, "", r, err
	}
	old := versionOf(res)
	res["active"] = true
	r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res)
	if err != nil {
		return nil, "", nil, err
	}
	if r.Status != 200 {
		return nil, "", r, fmt.Errorf("update answered %d", r.Status)
	}
	return r.JSON(), old, r, nil
}

func (e *Env) absent() string { return "conformance-absent-" + e.runID }

// capResource is the CapabilityStatement's entry of a type (nil when it declares none).
func (e *Env) capResource(typ string) map[string]any {
	for _, rest := range arr(e.cap["rest"]) {
		for _, r := range arr(obj(rest)["resource"]) {
			if str(obj(r)["type"]) == typ {
				return obj(r)
			}
		}
	}
	return nil
}

// restOf is the CapabilityStatement's server rest entry.
func (e *Env) restOf() map[string]any {
	for _, rest := range arr(e.cap["rest"]) {
		if str(obj(rest)["mode"]) == "server" {
			return obj(rest)
		}
	}
	return obj(first(arr(e.cap["rest"])))
}

func first(a []any) any {
	if len(a) == 0 {
		return nil
	}
	return a[0]
}

// declares reports whether interactions (of the type, or of the system when typ is "") list code.
func (e *Env) declares(typ, code string) bool {
	var list []any
	if typ == "" {
		list = arr(e.restOf()["interaction"])
	} else {
		list = arr(e.capResource(typ)["interaction"])
	}
	for _, i := range list {
		if str(obj(i)["code"]) == code {
			return true
		}
	}
	return false
}

func versionOf(res map[string]any) string { return str(obj(res["meta"])["versionId"]) }

// restChecks are the crud, conditional, bundle and errors groups.
func restChecks() []Check {
	return []Check{
		chk("crud/create", SHALL, httpSpec+"#create", "POST creates a resource: 201, a Location naming its id, the resource with its id and versionId", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "create")
			if err != nil {
				return fail(r, "%v", err)
			}
			if r.Status != 201 {
				return fail(r, "answered %d, want 201 Created", r.Status)
			}
			loc := r.Header.Get("Location")
			if !strings.Contains(loc, "Patient/"+str(res["id"])) {
				return fail(r, "Location %q does not name Patient/%s", loc, str(res["id"]))
			}
			if versionOf(res) == "" {
				return fail(r, "the stored resource has no meta.versionId")
			}
			return pass()
		}),
		chk("crud/read", SHALL, httpSpec+"#read", "GET [type]/[id] answers the resource with its id and meta.versionId", true, func(ctx context.Context, e *Env) Result {
			ref := e.fixtureRef(ctx, "patientA")
			if ref == "" {
				return skip("no Patient found")
			}
			r, err := e.c.get(ctx, ref)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || r.ResourceType()+"/"+str(r.JSON()["id"]) != ref {
				return fail(r, "answered %d %s/%s, want 200 with %s", r.Status, r.ResourceType(), str(r.JSON()["id"]), ref)
			}
			if versionOf(r.JSON()) == "" {
				return fail(r, "no meta.versionId")
			}
			return pass()
		}),
		chk("crud/content-type", SHALL, httpSpec+"#mime-type", "A read asked for with Accept: application/fhir+json answers Content-Type application/fhir+json", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "metadata")
			if err != nil {
				return errResult(err)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				return fail(r, "Content-Type %q", ct)
			}
			return pass()
		}),
		chk("crud/etag", SHOULD, httpSpec+"#versioning", "A read carries ETag W/\"versionId\" of the version it returns", true, func(ctx context.Context, e *Env) Result {
			ref := e.fixtureRef(ctx, "patientA")
			if ref == "" {
				return skip("no Patient found")
			}
			r, err := e.c.get(ctx, ref)
			if err != nil {
				return errResult(err)
			}
			if et := r.Header.Get("ETag"); et != `W/"`+versionOf(r.JSON())+`"` {
				return fail(r, "ETag %q, meta.versionId %q", et, versionOf(r.JSON()))
			}
			return pass()
		}),
		chk("crud/vread", SHALL, httpSpec+"#vread", "GET [type]/[id]/_history/[vid] answers that version", true, func(ctx context.Context, e *Env) Result {
			f := e.fixture(ctx, "patientA")
			if f == nil {
				return skip("no Patient found")
			}
			v := versionOf(f)
			r, err := e.c.get(ctx, "Patient/"+str(f["id"])+"/_history/"+url.PathEscape(v))
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || versionOf(r.JSON()) != v {
				return fail(r, "answered %d with version %q, want 200 with version %q", r.Status, versionOf(r.JSON()), v)
			}
			return pass()
		}),
		chk("crud/update", SHALL, httpSpec+"#update", "PUT makes a new version (a different, opaque versionId); the old version stays readable", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "update")
			if err != nil {
				return fail(r, "%v", err)
			}
			old := versionOf(res)
			res["gender"] = "unknown"
			r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 {
				return fail(r, "update answered %d, want 200", r.Status)
			}
			nv := versionOf(r.JSON())
			if nv == "" || nv == old {
				return fail(r, "versionId %q after update, was %q", nv, old)
			}
			read, err := e.c.get(ctx, "Patient/"+str(res["id"]))
			if err != nil {
				return errResult(err)
			}
			if str(read.JSON()["gender"]) != "unknown" {
				return fail(read, "the read after the update does not show it")
			}
			v, err := e.c.get(ctx, "Patient/"+str(res["id"])+"/_history/"+url.PathEscape(old))
			if err != nil {
				return errResult(err)
			}
			if v.Status != 200 || str(v.JSON()["gender"]) != "other" {
				return fail(v, "the old version is not readable as it was")
			}
			return pass()
		}),
		chk("crud/update-as-create", MAY, httpSpec+"#upsert", "PUT to an id that does not exist creates the resource with that id (201), when the server declares updateCreate", false, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc != nil && rc["updateCreate"] == false {
				return skip("the CapabilityStatement declares updateCreate false for Patient")
			}
			id := "conformance-" + e.runID + "-upsert"
			e.track("Patient/" + id)
			p := map[string]any{"resourceType": "Patient", "id": id, "meta": e.tagMeta(), "gender": "other"}
			r, err := e.c.put(ctx, "Patient/"+id, p)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 201 {
				return fail(r, "answered %d, want 201 Created", r.Status)
			}
			return pass()
		}),
		chk("crud/delete", SHALL, httpSpec+"#delete", "DELETE answers 200, 202 or 204 and the resource is no longer read", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "delete")
			if err != nil {
				return fail(r, "%v", err)
			}
			r, err = e.c.del(ctx, "Patient/"+str(res["id"]))
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 && r.Status != 202 && r.Status != 204 {
				return fail(r, "answered %d", r.Status)
			}
			read, err := e.c.get(ctx, "Patient/"+str(res["id"]))
			if err != nil {
				return errResult(err)
			}
			if read.Status == 200 {
				return fail(read, "the deleted resource is still read")
			}
			return pass()
		}),
		chk("crud/delete-absent", SHOULD, httpSpec+"#delete", "DELETE of a resource that does not exist answers 200 or 204", false, func(ctx context.Context, e *Env) Result {
			r, err := e.c.del(ctx, "Patient/"+e.absent())
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 && r.Status != 204 {
				return fail(r, "answered %d, want 200 or 204", r.Status)
			}
			return pass()
		}),
		chk("crud/history", SHALL, httpSpec+"#history", "GET [type]/[id]/_history lists every version, newest first, with distinct versionIds", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "history")
			if err != nil {
				return fail(r, "%v", err)
			}
			v1 := versionOf(res)
			res["gender"] = "unknown"
			if r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res); err != nil || r.Status != 200 {
				if err != nil {
					return errResult(err)
				}
				return fail(r, "update answered %d", r.Status)
			}
			v2 := versionOf(r.JSON())
			h, err := e.c.get(ctx, "Patient/"+str(res["id"])+"/_history")
			if err != nil {
				return errResult(err)
			}
			b := h.JSON()
			if h.Status != 200 || str(b["type"]) != "history" {
				return fail(h, "answered %d %s, want a history Bundle", h.Status, str(b["type"]))
			}
			var vs []string
			for _, en := range entries(b) {
				vs = append(vs, versionOf(obj(en["resource"])))
			}
			if len(vs) != 2 || vs[0] != v2 || vs[1] != v1 {
				return fail(h, "versions %v, want [%s %s]", vs, v2, v1)
			}
			return pass()
		}),
		chk("crud/history-deleted", SHALL, httpSpec+"#history", "The history of a deleted resource keeps its versions and shows the deletion (request.method DELETE)", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "history-deleted")
			if err != nil {
				return fail(r, "%v", err)
			}
			if r, err = e.c.del(ctx, "Patient/"+str(res["id"])); err != nil || r.Status >= 300 {
				if err != nil {
					return errResult(err)
				}
				return fail(r, "delete answered %d", r.Status)
			}
			h, err := e.c.get(ctx, "Patient/"+str(res["id"])+"/_history")
			if err != nil {
				return errResult(err)
			}
			es := entries(h.JSON())
			if h.Status != 200 || len(es) != 2 {
				return fail(h, "answered %d with %d entries, want 200 with 2 (the deletion and the version)", h.Status, len(es))
			}
			if m := str(obj(es[0]["request"])["method"]); m != "DELETE" {
				return fail(h, "the newest entry's request.method is %q, want DELETE", m)
			}
			if versionOf(obj(es[1]["resource"])) != versionOf(res) {
				return fail(h, "the created version is not in the history")
			}
			return pass()
		}),
		chk("crud/history-type", SHALL, httpSpec+"#history", "GET [type]/_history answers a history Bundle", true, func(ctx context.Context, e *Env) Result {
			if !e.declares("Patient", "history-type") {
				return skip("the CapabilityStatement does not declare history-type for Patient")
			}
			r, err := e.c.get(ctx, "Patient/_history?_count=5")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || str(r.JSON()["type"]) != "history" {
				return fail(r, "answered %d, want 200 with a history Bundle", r.Status)
			}
			return pass()
		}),

		// conditional
		chk("conditional/if-match-stale", SHALL, httpSpec+"#concurrency", "PUT with an If-Match of another version answers 412 and changes nothing", false, func(ctx context.Context, e *Env) Result {
			res, stale, r, err := e.staleVersion(ctx, "if-match")
			if err != nil {
				return fail(r, "%v", err)
			}
			res["gender"] = "unknown"
			r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res, "If-Match", `W/"`+stale+`"`)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 412 {
				return fail(r, "answered %d, want 412", r.Status)
			}
			read, err := e.c.get(ctx, "Patient/"+str(res["id"]))
			if err == nil && str(read.JSON()["gender"]) != "other" {
				return fail(read, "the refused update was stored")
			}
			return pass()
		}),
		chk("conditional/if-match-current", SHALL, httpSpec+"#concurrency", "PUT with an If-Match of the current version succeeds", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "if-match-ok")
			if err != nil {
				return fail(r, "%v", err)
			}
			res["gender"] = "unknown"
			r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res, "If-Match", `W/"`+versionOf(res)+`"`)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 {
				return fail(r, "answered %d, want 200", r.Status)
			}
			return pass()
		}),
		chk("conditional/create", SHALL, httpSpec+"#ccreate", "POST with If-None-Exist matching one resource creates nothing and answers 200", false, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc == nil || rc["conditionalCreate"] != true {
				return skip("the CapabilityStatement does not declare conditionalCreate for Patient")
			}
			res, r, err := e.scratchPatient(ctx, "ccreate")
			if err != nil {
				return fail(r, "%v", err)
			}
			crit := "identifier=" + q(IDSystem+"|"+e.runID+"-ccreate")
			again := map[string]any{"resourceType": "Patient", "meta": e.tagMeta(), "identifier": res["identifier"]}
			r, err = e.c.post(ctx, "Patient", again, "If-None-Exist", crit)
			if err != nil {
				return errResult(err)
			}
			if id := str(r.JSON()["id"]); id != "" && id != str(res["id"]) {
				e.track("Patient/" + id)
			}
			if r.Status != 200 {
				return fail(r, "answered %d, want 200 (one match)", r.Status)
			}
			s, err := e.c.get(ctx, "Patient?"+crit)
			if err != nil {
				return errResult(err)
			}
			if n := len(refsOf(s.JSON(), "match")); n != 1 {
				return fail(s, "%d Patients match after the conditional create, want 1", n)
			}
			return pass()
		}),
		chk("conditional/update", SHALL, httpSpec+"#cond-update", "PUT [type]?criteria updates the one resource that matches", false, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc == nil || rc["conditionalUpdate"] != true {
				return skip("the CapabilityStatement does not declare conditionalUpdate for Patient")
			}
			res, r, err := e.scratchPatient(ctx, "cupdate")
			if err != nil {
				return fail(r, "%v", err)
			}
			upd := clone(res)
			delete(upd, "id")
			upd["gender"] = "unknown"
			r, err = e.c.put(ctx, "Patient?identifier="+q(IDSystem+"|"+e.runID+"-cupdate"), upd)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || str(r.JSON()["id"]) != str(res["id"]) {
				if id := str(r.JSON()["id"]); id != "" {
					e.track("Patient/" + id)
				}
				return fail(r, "answered %d for id %q, want 200 for %s", r.Status, str(r.JSON()["id"]), str(res["id"]))
			}
			return pass()
		}),
		chk("conditional/delete", SHALL, httpSpec+"#cdelete", "DELETE [type]?criteria deletes the resource that matches", false, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc == nil || str(rc["conditionalDelete"]) == "" || str(rc["conditionalDelete"]) == "not-supported" {
				return skip("the CapabilityStatement does not declare conditionalDelete for Patient")
			}
			res, r, err := e.scratchPatient(ctx, "cdelete")
			if err != nil {
				return fail(r, "%v", err)
			}
			r, err = e.c.del(ctx, "Patient?identifier="+q(IDSystem+"|"+e.runID+"-cdelete"))
			if err != nil {
				return errResult(err)
			}
			if r.Status >= 300 {
				return fail(r, "answered %d", r.Status)
			}
			read, err := e.c.get(ctx, "Patient/"+str(res["id"]))
			if err != nil {
				return errResult(err)
			}
			if read.Status == 200 {
				return fail(read, "the resource is still read after the conditional delete")
			}
			return pass()
		}),
		chk("conditional/read-if-none-match", SHOULD, httpSpec+"#cread", "GET with If-None-Match of the current version answers 304 Not Modified", true, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc != nil && (str(rc["conditionalRead"]) == "" || str(rc["conditionalRead"]) == "not-supported") {
				return skip("the CapabilityStatement does not declare conditionalRead for Patient")
			}
			f := e.fixture(ctx, "patientA")
			if f == nil {
				return skip("no Patient found")
			}
			r, err := e.c.get(ctx, "Patient/"+str(f["id"]), "If-None-Match", `W/"`+versionOf(f)+`"`)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 304 {
				return fail(r, "answered %d, want 304", r.Status)
			}
			return pass()
		}),
		chk("conditional/read-if-modified-since", SHOULD, httpSpec+"#cread", "GET with If-Modified-Since after the last update answers 304 Not Modified", true, func(ctx context.Context, e *Env) Result {
			if rc := e.capResource("Patient"); rc != nil && str(rc["conditionalRead"]) != "modified-since" && str(rc["conditionalRead"]) != "full-support" {
				return skip("the CapabilityStatement does not declare conditionalRead modified-since for Patient")
			}
			f := e.fixture(ctx, "patientA")
			if f == nil {
				return skip("no Patient found")
			}
			lu, err := time.Parse(time.RFC3339Nano, str(obj(f["meta"])["lastUpdated"]))
			if err != nil {
				return skip("the Patient has no meta.lastUpdated")
			}
			r, err := e.c.get(ctx, "Patient/"+str(f["id"]), "If-Modified-Since", lu.Add(time.Hour).UTC().Format(http.TimeFormat))
			if err != nil {
				return errResult(err)
			}
			if r.Status != 304 {
				return fail(r, "answered %d, want 304", r.Status)
			}
			return pass()
		}),

		// bundle
		chk("bundle/batch", SHALL, httpSpec+"#transaction", "A batch runs each entry on its own: a create answers 201 and a read of an absent resource 404, in order", false, func(ctx context.Context, e *Env) Result {
			if !e.declares("", "batch") {
				return skip("the CapabilityStatement does not declare batch")
			}
			p := map[string]any{"resourceType": "Patient", "meta": e.tagMeta(), "gender": "other"}
			b := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
				map[string]any{"resource": p, "request": map[string]any{"method": "POST", "url": "Patient"}},
				map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + e.absent()}},
			}}
			r, err := e.c.post(ctx, "", b)
			if err != nil {
				return errResult(err)
			}
			out := r.JSON()
			es := entries(out)
			for _, en := range es {
				if loc := str(obj(en["response"])["location"]); loc != "" {
					e.track(refFromLocation(loc))
				}
			}
			if r.Status != 200 || str(out["type"]) != "batch-response" || len(es) != 2 {
				return fail(r, "answered %d %s with %d entries, want 200 batch-response with 2", r.Status, str(out["type"]), len(es))
			}
			s1, s2 := str(obj(es[0]["response"])["status"]), str(obj(es[1]["response"])["status"])
			if !strings.HasPrefix(s1, "201") || !strings.HasPrefix(s2, "404") {
				return fail(r, "entry statuses %q and %q, want 201 and 404", s1, s2)
			}
			return pass()
		}),
		chk("bundle/transaction-references", SHALL, httpSpec+"#trules", "A transaction resolves urn:uuid references between its entries to the ids it assigns", false, func(ctx context.Context, e *Env) Result {
			if !e.declares("", "transaction") {
				return skip("the CapabilityStatement does not declare transaction")
			}
			pu, ou := "urn:uuid:"+newUUID(), "urn:uuid:"+newUUID()
			b := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": ou, "resource": map[string]any{"resourceType": "Observation", "meta": e.tagMeta(), "status": "final",
					"code": map[string]any{"text": "conformance"}, "subject": map[string]any{"reference": pu}},
					"request": map[string]any{"method": "POST", "url": "Observation"}},
				map[string]any{"fullUrl": pu, "resource": map[string]any{"resourceType": "Patient", "meta": e.tagMeta(), "gender": "other"},
					"request": map[string]any{"method": "POST", "url": "Patient"}},
			}}
			r, err := e.c.post(ctx, "", b)
			if err != nil {
				return errResult(err)
			}
			es := entries(r.JSON())
			var refs []string
			for _, en := range es {
				ref := refFromLocation(str(obj(en["response"])["location"]))
				refs = append(refs, ref)
			}
			for i := len(refs) - 1; i >= 0; i-- {
				e.track(refs[i])
			}
			if r.Status != 200 || str(r.JSON()["type"]) != "transaction-response" || len(refs) != 2 {
				return fail(r, "answered %d %s with %d entries, want 200 transaction-response with 2", r.Status, str(r.JSON()["type"]), len(es))
			}
			obs, err := e.c.get(ctx, refs[0])
			if err != nil {
				return errResult(err)
			}
			if got := str(obj(obs.JSON()["subject"])["reference"]); got != refs[1] {
				return fail(obs, "the Observation's subject is %q, want %q", got, refs[1])
			}
			return pass()
		}),
		chk("bundle/transaction-atomic", SHALL, httpSpec+"#transaction", "A transaction with one failing entry fails whole: nothing of it is stored", false, func(ctx context.Context, e *Env) Result {
			if !e.declares("", "transaction") {
				return skip("the CapabilityStatement does not declare transaction")
			}
			target, stale, r, err := e.staleVersion(ctx, "atomic-target")
			if err != nil {
				return fail(r, "%v", err)
			}
			ident := e.runID + "-atomic"
			b := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": "urn:uuid:" + newUUID(), "resource": map[string]any{"resourceType": "Patient", "meta": e.tagMeta(),
					"identifier": []any{map[string]any{"system": IDSystem, "value": ident}}},
					"request": map[string]any{"method": "POST", "url": "Patient"}},
				map[string]any{"fullUrl": "Patient/" + str(target["id"]), "resource": target,
					"request": map[string]any{"method": "PUT", "url": "Patient/" + str(target["id"]), "ifMatch": `W/"` + stale + `"`}},
			}}
			r, err = e.c.post(ctx, "", b)
			if err != nil {
				return errResult(err)
			}
			for _, en := range entries(r.JSON()) {
				e.track(refFromLocation(str(obj(en["response"])["location"])))
			}
			if r.Status < 400 {
				return fail(r, "answered %d, want an error (the second entry's If-Match is stale)", r.Status)
			}
			s, err := e.c.get(ctx, "Patient?identifier="+q(IDSystem+"|"+ident))
			if err != nil {
				return errResult(err)
			}
			if got := refsOf(s.JSON(), "match"); len(got) != 0 {
				for _, ref := range got {
					e.track(ref)
				}
				return fail(s, "the failed transaction's create was stored: %v", got)
			}
			return pass()
		}),

		// errors
		chk("errors/not-found", SHALL, httpSpec+"#read", "A read of an unknown id answers 404 with an OperationOutcome", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient/"+e.absent())
			if err != nil {
				return errResult(err)
			}
			if r.Status != 404 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 404 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/gone", SHOULD, httpSpec+"#read", "A read of a deleted resource answers 410 Gone with an OperationOutcome", false, func(ctx context.Context, e *Env) Result {
			res, r, err := e.scratchPatient(ctx, "gone")
			if err != nil {
				return fail(r, "%v", err)
			}
			if r, err = e.c.del(ctx, "Patient/"+str(res["id"])); err != nil {
				return errResult(err)
			}
			r, err = e.c.get(ctx, "Patient/"+str(res["id"]))
			if err != nil {
				return errResult(err)
			}
			if r.Status != 410 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 410 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/bad-search-value", SHALL, searchSpec+"#errors", "A search with a malformed value answers 400 with an OperationOutcome", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient?birthdate=not-a-date")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 400 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 400 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/precondition-failed", SHOULD, httpSpec+"#concurrency", "A 412 carries an OperationOutcome", false, func(ctx context.Context, e *Env) Result {
			res, stale, r, err := e.staleVersion(ctx, "412")
			if err != nil {
				return fail(r, "%v", err)
			}
			r, err = e.c.put(ctx, "Patient/"+str(res["id"]), res, "If-Match", `W/"`+stale+`"`)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 412 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 412 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/not-acceptable", SHOULD, httpSpec+"#mime-type", "A request that accepts only a format the server does not serve answers 406", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient?_count=1", "Accept", "application/pdf")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 406 {
				return fail(r, "answered %d, want 406", r.Status)
			}
			return pass()
		}),
		chk("errors/unsupported-media-type", SHOULD, httpSpec+"#mime-type", "A create with a body in an unsupported format answers 415 with an OperationOutcome", false, func(ctx context.Context, e *Env) Result {
			r, err := e.c.post(ctx, "Patient", "name: nobody", "Content-Type", "text/plain")
			if err != nil {
				return errResult(err)
			}
			if id := str(r.JSON()["id"]); id != "" {
				e.track("Patient/" + id)
			}
			if r.Status != 415 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 415 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/invalid-resource", SHALL, httpSpec+"#create", "A create of an invalid resource answers 400 or 422 with an OperationOutcome and stores nothing", false, func(ctx context.Context, e *Env) Result {
			bad := map[string]any{"resourceType": "Patient", "meta": e.tagMeta(), "gender": "bogus", "birthDate": "not-a-date"}
			r, err := e.c.post(ctx, "Patient", bad)
			if err != nil {
				return errResult(err)
			}
			if id := str(r.JSON()["id"]); id != "" && r.ResourceType() == "Patient" {
				e.track("Patient/" + id)
			}
			if (r.Status != 400 && r.Status != 422) || !isOutcome(r) {
				return fail(r, "answered %d %s, want 400 or 422 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("errors/wrong-type", SHALL, httpSpec+"#create", "A create whose body's resourceType is not the URL's type answers 400 with an OperationOutcome", false, func(ctx context.Context, e *Env) Result {
			r, err := e.c.post(ctx, "Patient", map[string]any{"resourceType": "Organization", "meta": e.tagMeta(), "name": "x"})
			if err != nil {
				return errResult(err)
			}
			if id := str(r.JSON()["id"]); id != "" && r.ResourceType() != "OperationOutcome" {
				e.track(r.ResourceType() + "/" + id)
			}
			if r.Status != 400 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 400 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
	}
}

// refFromLocation is "Type/id" of a Location (absolute or relative, with or without _history).
func refFromLocation(loc string) string {
	loc = strings.Split(loc, "/_history/")[0]
	parts := strings.Split(strings.Trim(loc, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}

// newUUID is a random UUID (version 4), for a transaction's urn:uuid fullUrls.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
