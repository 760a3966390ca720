package conformance

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const capSpec = "http://hl7.org/fhir/R4/capabilitystatement.html"

// fixtureKey is the fixture of each fixture type the capability checks exercise.
var fixtureKey = map[string]string{"Patient": "patientA", "Observation": "obsA", "RiskAssessment": "risk", "Organization": "org"}

// probe says where a fixture holds a search parameter's value and what kind of value it is.
type probe struct{ kind, path string }

// probes maps "Type.code" (or "*.code") to where the fixtures hold the value.
var probes = map[string]probe{
	"*._id": {"id", ""}, "*._lastUpdated": {"lastUpdated", ""}, "*._tag": {"tag", ""},
	"*.identifier": {"identifier", "identifier"}, "*.status": {"code", "status"}, "*.active": {"code", "active"},
	"*.subject": {"reference", "subject"}, "*.patient": {"reference", "subject"},
	"Patient.family": {"string", "name.family"}, "Patient.given": {"string", "name.given"}, "Patient.name": {"string", "name.family"},
	"Patient.gender": {"code", "gender"}, "Patient.birthdate": {"date", "birthDate"}, "Patient.organization": {"reference", "managingOrganization"},
	"Patient.email": {"contact", "email"}, "Patient.phone": {"contact", "phone"}, "Patient.telecom": {"contact", ""},
	"Patient.address": {"string", "address.city"}, "Patient.address-city": {"string", "address.city"},
	"Patient.address-postalcode": {"string", "address.postalCode"}, "Patient.address-country": {"string", "address.country"},
	"Patient.patient":  {"id", ""},
	"Observation.code": {"codeable", "code"}, "Observation.combo-code": {"codeable", "code"}, "Observation.category": {"codeable", "category"},
	"Observation.date": {"date", "effectiveDateTime"}, "Observation.value-quantity": {"quantity", "valueQuantity"},
	"Observation.combo-value-quantity": {"quantity", "valueQuantity"},
	"RiskAssessment.probability":       {"number", "prediction.probabilityDecimal"},
	"Organization.name":                {"string", "name"},
}

func probeOf(typ, code string) (probe, bool) {
	if p, ok := probes[typ+"."+code]; ok {
		return p, true
	}
	p, ok := probes["*."+code]
	return p, ok
}

// values are the leaves at a dotted path (arrays are walked through).
func values(v any, path string) []any {
	if path == "" {
		return []any{v}
	}
	head, rest, _ := strings.Cut(path, ".")
	var out []any
	switch x := v.(type) {
	case map[string]any:
		if c, ok := x[head]; ok {
			if a, isArr := c.([]any); isArr {
				for _, el := range a {
					out = append(out, values(el, rest)...)
				}
			} else {
				out = append(out, values(c, rest)...)
			}
		}
	case []any:
		for _, el := range x {
			out = append(out, values(el, path)...)
		}
	}
	return out
}

// probeValues gives a value of res that must match the parameter and one that must not; ok is
// false when res holds none.
func (e *Env) probeValues(typ string, p probe, res map[string]any) (pos, neg string, ok bool) {
	var vs []any
	if p.kind != "contact" {
		vs = values(res, p.path)
	}
	switch p.kind {
	case "id":
		return str(res["id"]), e.absent(), str(res["id"]) != ""
	case "lastUpdated":
		lu := str(obj(res["meta"])["lastUpdated"])
		return "ge" + lu[:min(10, len(lu))], "lt1900-01-01", len(lu) >= 10
	case "tag":
		for _, t := range arr(obj(res["meta"])["tag"]) {
			if s, c := str(obj(t)["system"]), str(obj(t)["code"]); s != "" && c != "" {
				return s + "|" + c, s + "|" + c + "zq", true
			}
		}
		return "", "", false
	}
	if p.kind == "contact" { // telecom of a system ("" for any)
		for _, t := range arr(res["telecom"]) {
			if v := str(obj(t)["value"]); v != "" && (p.path == "" || str(obj(t)["system"]) == p.path) {
				return v, v + "zq", true
			}
		}
		return "", "", false
	}
	if len(vs) == 0 {
		return "", "", false
	}
	v := vs[0]
	switch p.kind {
	case "string":
		s := str(v)
		return s, "zq" + s, s != ""
	case "code":
		switch b := v.(type) {
		case bool:
			return strconv.FormatBool(b), strconv.FormatBool(!b), true
		case string:
			return b, b + "zq", b != ""
		}
	case "identifier":
		s, val := str(obj(v)["system"]), str(obj(v)["value"])
		return s + "|" + val, s + "|" + val + "zq", s != "" && val != ""
	case "codeable":
		c := obj(first(arr(obj(v)["coding"])))
		s, code := str(c["system"]), str(c["code"])
		return s + "|" + code, s + "|" + code + "zq", s != "" && code != ""
	case "reference":
		r := str(obj(v)["reference"])
		t, _, _ := strings.Cut(r, "/")
		return r, t + "/" + e.absent(), strings.Contains(r, "/")
	case "date":
		s := str(v)
		if len(s) < 10 {
			return "", "", false
		}
		return s[:10], "lt1900-01-01", true
	case "quantity":
		m := obj(v)
		f, isNum := m["value"].(float64)
		unit := "|" + str(m["system"]) + "|" + str(m["code"])
		return strconv.FormatFloat(f, 'f', -1, 64) + unit, strconv.FormatFloat(f+1000, 'f', -1, 64) + unit, isNum
	case "number":
		f, isNum := v.(float64)
		return strconv.FormatFloat(f, 'f', -1, 64), strconv.FormatFloat(f+1000, 'f', -1, 64), isNum
	}
	return "", "", false
}

// scratchOf creates a copy of a fixture type's fixture (no identifiers), for write interactions.
func (e *Env) scratchOf(ctx context.Context, typ string) (map[string]any, *Resp, error) {
	refs := map[string]string{}
	for k := range e.fixtures {
		refs[k] = e.fixtureRef(ctx, k)
	}
	t := e.template(fixtureKey[typ], refs)
	delete(t, "identifier")
	return e.create(ctx, t)
}

// capabilityChecks are generated from the CapabilityStatement.
func capabilityChecks(e *Env) []Check {
	out := []Check{chk("capability/metadata", SHALL, "http://hl7.org/fhir/R4/http.html#capabilities",
		"GET /metadata answers a CapabilityStatement for FHIR 4.0 with JSON among its formats and a server rest entry", true,
		func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "metadata")
			if err != nil {
				return errResult(err)
			}
			m := r.JSON()
			json := false
			for _, f := range arr(m["format"]) {
				json = json || str(f) == "json" || strings.Contains(str(f), "json")
			}
			if r.Status != 200 || !strings.HasPrefix(str(m["fhirVersion"]), "4.0") || !json || str(e.restOf()["mode"]) != "server" {
				return fail(r, "answered %d, fhirVersion %q, formats %v", r.Status, str(m["fhirVersion"]), m["format"])
			}
			return pass()
		})}
	for _, rr := range arr(e.restOf()["resource"]) {
		rc := obj(rr)
		typ := str(rc["type"])
		if typ == "" {
			continue
		}
		if _, ok := fixtureKey[typ]; ok {
			out = append(out, fixtureTypeChecks(e, typ, rc)...)
		} else {
			out = append(out, otherTypeChecks(typ, rc)...)
		}
	}
	for _, op := range arr(e.restOf()["operation"]) {
		name := str(obj(op)["name"])
		out = append(out, chk("capability/system/operation/"+name, SHALL, capSpec+"#CapabilityStatement.rest.operation",
			"The declared system operation $"+name+" answers", true, func(ctx context.Context, e *Env) Result {
				if name != "export" {
					return skip("no exercise known for $%s", name)
				}
				return e.exportKickoffAndCancel(ctx, "$export?_type=Patient")
			}))
	}
	return out
}

func declaredCodes(rc map[string]any, field string) []string {
	var out []string
	for _, x := range arr(rc[field]) {
		switch v := x.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			if c := str(v["code"]); c != "" {
				out = append(out, c)
			} else if n := str(v["name"]); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// fixtureTypeChecks exercise every claim about a type the fixtures have.
func fixtureTypeChecks(e *Env, typ string, rc map[string]any) []Check {
	key := fixtureKey[typ]
	base := "capability/" + typ + "/"
	var out []Check
	have := func(ctx context.Context, e *Env) (map[string]any, string, *Result) {
		f := e.fixture(ctx, key)
		if f == nil {
			r := skip("no %s found", typ)
			return nil, "", &r
		}
		return f, typ + "/" + str(f["id"]), nil
	}
	for _, code := range declaredCodes(rc, "interaction") {
		spec := httpSpec + "#" + map[string]string{"history-instance": "history", "history-type": "history", "search-type": "search"}[code]
		if strings.HasSuffix(spec, "#") {
			spec += code
		}
		title := "The declared " + code + " interaction on " + typ + " works"
		var run func(ctx context.Context, e *Env) Result
		ro := true
		switch code {
		case "read", "vread", "history-instance", "search-type":
			run = func(ctx context.Context, e *Env) Result {
				f, ref, sk := have(ctx, e)
				if sk != nil {
					return *sk
				}
				// What to ask, and what must answer: the resource's type or a Bundle's type.
				ask := map[string][2]string{
					"read": {ref, typ}, "vread": {ref + "/_history/" + versionOf(f), typ},
					"history-instance": {ref + "/_history", "history"}, "search-type": {typ + "?_id=" + q(str(f["id"])), "searchset"},
				}[code]
				path, wantType := ask[0], ask[1]
				r, err := e.c.get(ctx, path)
				if err != nil {
					return errResult(err)
				}
				got := r.ResourceType()
				if got == "Bundle" {
					got = str(r.JSON()["type"])
				}
				if r.Status != 200 || got != wantType {
					return fail(r, "answered %d %s, want 200 %s", r.Status, got, wantType)
				}
				if code != "read" && code != "vread" && !contains(refsOf(r.JSON(), ""), ref) {
					return fail(r, "%s is not in the Bundle", ref)
				}
				return pass()
			}
		case "history-type":
			run = func(ctx context.Context, e *Env) Result {
				r, err := e.c.get(ctx, typ+"/_history?_count=1")
				if err != nil {
					return errResult(err)
				}
				if r.Status != 200 || str(r.JSON()["type"]) != "history" {
					return fail(r, "answered %d, want a history Bundle", r.Status)
				}
				return pass()
			}
		case "create", "update", "patch", "delete":
			ro = false
			run = func(ctx context.Context, e *Env) Result {
				if e.fixtures == nil {
					return skip("no fixture")
				}
				res, r, err := e.scratchOf(ctx, typ)
				if err != nil {
					return fail(r, "%v", err)
				}
				ref := typ + "/" + str(res["id"])
				switch code {
				case "create":
					if r.Status != 201 {
						return fail(r, "answered %d, want 201", r.Status)
					}
					return pass()
				case "update":
					res["language"] = "en-US"
					r, err = e.c.put(ctx, ref, res)
				case "patch":
					r, err = e.c.do(ctx, req{method: http.MethodPatch, path: ref, body: `[{"op":"add","path":"/language","value":"en-US"}]`,
						header: http.Header{"Content-Type": {"application/json-patch+json"}}})
				case "delete":
					r, err = e.c.del(ctx, ref)
				}
				if err != nil {
					return errResult(err)
				}
				if r.Status != 200 && !(code == "delete" && (r.Status == 202 || r.Status == 204)) {
					return fail(r, "answered %d", r.Status)
				}
				if code != "delete" {
					if rd, err := e.c.get(ctx, ref); err != nil || str(rd.JSON()["language"]) != "en-US" {
						return fail(rd, "the %s is not stored", code)
					}
				}
				return pass()
			}
		default:
			run = func(context.Context, *Env) Result { return skip("no exercise known for the %s interaction", code) }
		}
		out = append(out, chk(base+code, SHALL, spec, title, ro, run))
	}

	var unprobed []map[string]any
	for _, sp := range arr(rc["searchParam"]) {
		sp := obj(sp)
		code := str(sp["name"])
		if code == "" {
			continue
		}
		p, ok := probeOf(typ, code)
		if !ok {
			unprobed = append(unprobed, sp)
			continue
		}
		out = append(out, chk(base+"search/"+code, SHALL, searchSpec+"#"+str(sp["type"]),
			"The declared search parameter "+code+" of "+typ+" matches a fixture's value and not another value", true,
			func(ctx context.Context, e *Env) Result {
				f, ref, sk := have(ctx, e)
				if sk != nil {
					return *sk
				}
				pos, neg, ok := e.probeValues(typ, p, f)
				if !ok {
					return skip("the %s found has no value for %s", typ, code)
				}
				prefix := typ + "?_id=" + q(str(f["id"])) + "&"
				if code == "_id" {
					prefix = typ + "?"
				}
				return e.expectAll(ctx, ref, []expectation{{prefix + code + "=" + q(pos), true}, {prefix + code + "=" + q(neg), false}})
			}))
	}
	if len(unprobed) > 0 {
		out = append(out, searchClaimsCheck(base+"search-other", typ, unprobed, nil, nil))
	}

	for _, inc := range declaredCodes(rc, "searchInclude") {
		src, param, _ := strings.Cut(inc, ":")
		out = append(out, chk(base+"include/"+inc, SHALL, searchSpec+"#include",
			"The declared _include="+inc+" adds what the fixture references", true, func(ctx context.Context, e *Env) Result {
				f, _, sk := have(ctx, e)
				if sk != nil {
					return *sk
				}
				var want []string
				for k := range probes {
					if p := probes[k]; p.kind == "reference" && (inc == "*" || k == typ+"."+param || (k == "*."+param && src == typ)) {
						if pos, _, ok := e.probeValues(typ, p, f); ok {
							want = append(want, pos)
						}
					}
				}
				if len(want) == 0 {
					return skip("the %s found references nothing through %s", typ, inc)
				}
				r, err := e.c.get(ctx, typ+"?_id="+q(str(f["id"]))+"&_include="+q(inc))
				if err != nil {
					return errResult(err)
				}
				got := refsOf(r.JSON(), "include")
				for _, w := range want {
					if contains(got, w) {
						return pass()
					}
				}
				return fail(r, "none of %v is included", want)
			}))
	}

	var otherRevs []string
	for _, rev := range declaredCodes(rc, "searchRevInclude") {
		src, param, _ := strings.Cut(rev, ":")
		srcKey, isFix := fixtureKey[src]
		p, ok := probeOf(src, param)
		if !isFix || !ok || p.kind != "reference" {
			otherRevs = append(otherRevs, rev)
			continue
		}
		out = append(out, chk(base+"revinclude/"+rev, SHALL, searchSpec+"#revinclude",
			"The declared _revinclude="+rev+" adds the fixtures that point at the match", true, func(ctx context.Context, e *Env) Result {
				s := e.fixture(ctx, srcKey)
				if s == nil {
					return skip("no %s found", src)
				}
				target, _, ok := e.probeValues(src, p, s)
				if !ok || !strings.HasPrefix(target, typ+"/") {
					return skip("the %s found does not point at a %s through %s", src, typ, param)
				}
				r, err := e.c.get(ctx, typ+"?_id="+q(strings.TrimPrefix(target, typ+"/"))+"&_revinclude="+q(rev))
				if err != nil {
					return errResult(err)
				}
				if want := src + "/" + str(s["id"]); !contains(refsOf(r.JSON(), "include"), want) {
					return fail(r, "%s is not included", want)
				}
				return pass()
			}))
	}
	if len(otherRevs) > 0 {
		out = append(out, searchClaimsCheck(base+"revinclude-other", typ, nil, nil, otherRevs))
	}

	for _, name := range declaredCodes(rc, "operation") {
		ro := name != "meta-add" && name != "meta-delete"
		out = append(out, chk(base+"operation/"+name, SHALL, capSpec+"#CapabilityStatement.rest.resource.operation",
			"The declared operation $"+name+" on "+typ+" answers", ro, func(ctx context.Context, e *Env) Result {
				return e.operation(ctx, typ, name, have)
			}))
	}
	return out
}

// operation exercises a declared type-level operation.
func (e *Env) operation(ctx context.Context, typ, name string, have func(context.Context, *Env) (map[string]any, string, *Result)) Result {
	f, ref, sk := have(ctx, e)
	if sk != nil {
		return *sk
	}
	var r *Resp
	var err error
	want := ""
	switch name {
	case "validate":
		body := clone(f)
		delete(body, "id")
		delete(body, "meta")
		r, err = e.c.post(ctx, typ+"/$validate", body)
		want = "OperationOutcome"
	case "meta":
		r, err = e.c.get(ctx, ref+"/$meta")
		want = "Parameters"
	case "meta-add", "meta-delete":
		res, cr, cerr := e.scratchOf(ctx, typ)
		if cerr != nil {
			return fail(cr, "%v", cerr)
		}
		tag := map[string]any{"system": TagSystem, "code": e.runID + "-extra"}
		params := map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "meta", "valueMeta": map[string]any{"tag": []any{tag}}}}}
		r, err = e.c.post(ctx, typ+"/"+str(res["id"])+"/$"+name, params)
		want = "Parameters"
		if err == nil && r.Status == 200 {
			rd, _ := e.c.get(ctx, typ+"/"+str(res["id"]))
			has := rd != nil && strings.Contains(string(rd.Body), e.runID+"-extra")
			if has != (name == "meta-add") {
				return fail(rd, "$%s answered 200 but the tag is %s", name, map[bool]string{true: "there", false: "missing"}[has])
			}
		}
	case "everything":
		r, err = e.c.get(ctx, ref+"/$everything")
		want = "Bundle"
		if err == nil && r.Status == 200 && !contains(refsOf(r.JSON(), ""), ref) {
			return fail(r, "%s is not in its $everything", ref)
		}
	case "export":
		return e.exportKickoffAndCancel(ctx, typ+"/$export")
	default:
		return skip("no exercise known for $%s", name)
	}
	if err != nil {
		return errResult(err)
	}
	if r.Status != 200 || r.ResourceType() != want {
		return fail(r, "answered %d %s, want 200 %s", r.Status, r.ResourceType(), want)
	}
	return pass()
}

// otherTypeChecks cover a type the fixtures lack: what can be read, and whether the declared
// search parameters, includes and revincludes are accepted.
func otherTypeChecks(typ string, rc map[string]any) []Check {
	base := "capability/" + typ + "/"
	ints := declaredCodes(rc, "interaction")
	out := []Check{chk(base+"read-interactions", SHALL, httpSpec+"#read", "The declared read interactions on "+typ+" (search-type, history-type, and read, vread and history-instance on a resource found) work", true,
		func(ctx context.Context, e *Env) Result {
			var done []string
			if slices.Contains(ints, "search-type") {
				r, err := e.c.get(ctx, typ+"?_count=1")
				if err != nil {
					return errResult(err)
				}
				if r.Status != 200 || str(r.JSON()["type"]) != "searchset" {
					return fail(r, "search-type answered %d", r.Status)
				}
				done = append(done, "search-type")
			}
			if slices.Contains(ints, "history-type") {
				r, err := e.c.get(ctx, typ+"/_history?_count=1")
				if err != nil {
					return errResult(err)
				}
				if r.Status != 200 || str(r.JSON()["type"]) != "history" {
					return fail(r, "history-type answered %d", r.Status)
				}
				done = append(done, "history-type")
			}
			if f := e.firstOf(ctx, typ); f != nil {
				ref := typ + "/" + str(f["id"])
				for _, c := range [][2]string{{"read", ref}, {"vread", ref + "/_history/" + versionOf(f)}, {"history-instance", ref + "/_history"}} {
					if !slices.Contains(ints, c[0]) {
						continue
					}
					r, err := e.c.get(ctx, c[1])
					if err != nil {
						return errResult(err)
					}
					if r.Status != 200 {
						return fail(r, "%s answered %d", c[0], r.Status)
					}
					done = append(done, c[0])
				}
			}
			if len(done) == 0 {
				return skip("nothing to read")
			}
			return Result{Status: Pass, Reason: "checked " + strings.Join(done, ", ") + "; writes need a fixture of this type"}
		})}
	if ops := declaredCodes(rc, "operation"); len(ops) > 0 {
		out = append(out, chk(base+"operation/type-level", SHALL, capSpec+"#CapabilityStatement.rest.resource.operation",
			"The declared operations of "+typ+" that can run without writing ($validate, $meta, $everything) answer", true,
			func(ctx context.Context, e *Env) Result { return e.otherTypeOperations(ctx, typ, ops) }))
	}
	var params []map[string]any
	for _, sp := range arr(rc["searchParam"]) {
		params = append(params, obj(sp))
	}
	incs, revs := declaredCodes(rc, "searchInclude"), declaredCodes(rc, "searchRevInclude")
	if len(params)+len(incs)+len(revs) > 0 {
		out = append(out, searchClaimsCheck(base+"search-claims", typ, params, incs, revs))
	}
	return out
}

// dummy is a well-formed value for a search parameter type ("" for the types not probed).
func dummy(typ string) string {
	switch typ {
	case "string", "token":
		return "conformance"
	case "date":
		return "2000-01-01"
	case "number", "quantity":
		return "1"
	case "reference":
		return "conformance-absent"
	case "uri":
		return "urn:conformance"
	}
	return ""
}

// searchClaimsCheck asks, with Prefer: handling=strict, whether the server accepts every declared
// search parameter, _include and _revinclude of a type it has no fixture for: a claim the server
// refuses is a claim it cannot keep. One request per kind; a refusal is narrowed to the culprits.
func searchClaimsCheck(id, typ string, params []map[string]any, incs, revs []string) Check {
	var probesList [][2]string // parameter, value
	guard := ""                // _id=<absent> keeps the answers empty, when the type declares _id
	for _, sp := range params {
		if str(sp["name"]) == "_id" {
			guard = "_id="
		}
		if v := dummy(str(sp["type"])); v != "" && str(sp["name"]) != "" {
			probesList = append(probesList, [2]string{str(sp["name"]), v})
		}
	}
	for _, i := range incs {
		probesList = append(probesList, [2]string{"_include", i})
	}
	for _, r := range revs {
		probesList = append(probesList, [2]string{"_revinclude", r})
	}
	return chk(id, SHALL, searchSpec+"#errors", "Every declared search parameter, _include and _revinclude of "+typ+" is accepted under Prefer: handling=strict", true,
		func(ctx context.Context, e *Env) Result {
			if len(probesList) == 0 {
				return skip("nothing declared that can be probed")
			}
			ask := func(ps [][2]string) (*Resp, error) {
				var b strings.Builder
				b.WriteString(typ + "?")
				if guard != "" {
					b.WriteString(guard + e.absent() + "&")
				}
				for i, p := range ps {
					if i > 0 {
						b.WriteString("&")
					}
					b.WriteString(q(p[0]) + "=" + q(p[1]))
				}
				return e.c.get(ctx, b.String(), "Prefer", "handling=strict")
			}
			var first *Resp
			var refused []string
			var walk func(ps [][2]string) error
			walk = func(ps [][2]string) error {
				r, err := ask(ps)
				if err != nil {
					return err
				}
				if r.Status == 200 {
					return nil
				}
				if len(ps) == 1 {
					if first == nil {
						first = r
					}
					refused = append(refused, ps[0][0]+"="+ps[0][1])
					return nil
				}
				if err := walk(ps[:len(ps)/2]); err != nil {
					return err
				}
				return walk(ps[len(ps)/2:])
			}
			for i := 0; i < len(probesList); i += 40 {
				if err := walk(probesList[i:min(i+40, len(probesList))]); err != nil {
					return errResult(err)
				}
			}
			if len(refused) > 0 {
				return fail(first, "%d of %d declared claims refused: %s", len(refused), len(probesList), strings.Join(refused[:min(10, len(refused))], ", "))
			}
			return pass()
		})
}

// otherTypeOperations runs the declared operations of a type without fixtures that need no write:
// $validate of an empty resource (an OperationOutcome, whatever it finds), and $meta and
// $everything on a resource found. The others are named in the result as not exercised.
func (e *Env) otherTypeOperations(ctx context.Context, typ string, ops []string) Result {
	var done, left []string
	for _, name := range ops {
		var r *Resp
		var err error
		want := ""
		switch name {
		case "validate":
			r, err = e.c.post(ctx, typ+"/$validate", map[string]any{"resourceType": typ})
			want = "OperationOutcome"
		case "meta", "everything":
			// Instance level: the levels an OperationDefinition allows are not all a server's duty.
			f := e.firstOf(ctx, typ)
			if f == nil {
				left = append(left, "$"+name)
				continue
			}
			r, err = e.c.get(ctx, typ+"/"+str(f["id"])+"/$"+name)
			want = map[string]string{"meta": "Parameters", "everything": "Bundle"}[name]
		default:
			left = append(left, "$"+name)
			continue
		}
		if err != nil {
			return errResult(err)
		}
		ok := r.ResourceType() == want && (r.Status == 200 || (name == "validate" && r.Status < 500 && r.Status != 404 && r.Status != 405))
		if !ok {
			return fail(r, "$%s answered %d %s, want %s", name, r.Status, r.ResourceType(), want)
		}
		done = append(done, "$"+name)
	}
	if len(done) == 0 {
		return skip("none of %v can run without writing or a resource of this type", left)
	}
	reason := "checked " + strings.Join(done, ", ")
	if len(left) > 0 {
		reason += "; not exercised: " + strings.Join(left, ", ")
	}
	return Result{Status: Pass, Reason: reason}
}
