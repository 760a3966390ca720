package rest

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
)

// Interaction names, as in CapabilityStatement.rest.resource.interaction.code (plus operation,
// batch and transaction). They label metrics and authorization requests.
const (
	IRead            = "read"
	IVRead           = "vread"
	IUpdate          = "update"
	IPatch           = "patch"
	IDelete          = "delete"
	IHistoryInstance = "history-instance"
	IHistoryType     = "history-type"
	IHistorySystem   = "history-system"
	ICreate          = "create"
	ISearchType      = "search-type"
	ISearchSystem    = "search-system"
	ICapabilities    = "capabilities"
	IBatch           = "batch" // batch or transaction; the Bundle's type tells which
	IOperation       = "operation"
	// IExportStatus is the status URL of a Bulk Data export (GET polls, DELETE cancels) and
	// IExportFile one of its files.
	IExportStatus = "export-status"
	IExportFile   = "export-file"
)

// exportPath is the first segment of the status and file URLs of Bulk Data exports:
// bulkdata/{job} and bulkdata/{job}/{file}.
const exportPath = "bulkdata"

// route is what a method and path under the FHIR base address.
type route struct {
	interaction string
	typ, id     string
	vid         int    // vread, or an operation on a version
	op          string // operation name without '$': validate, meta, meta-add, meta-delete, everything
	conditional bool   // update, patch or delete addressed by search criteria
	// compartment is the type searched in the compartment of typ/id ("Observation", or "*").
	compartment string
	// ext is the registered operation (Config.Operations) an IOperation route names, if any; level
	// is where it was invoked: "system", "type", "instance" or "version".
	ext   *Operation
	level string
	// job and file name an export's status URL and files (IExportStatus, IExportFile).
	job, file string
	// path is the path under the base, as requested.
	path string
}

// operations lists the operations served, with where they may be invoked.
var operations = map[string]struct{ typeLevel, instanceLevel, versionLevel bool }{
	"validate":    {typeLevel: true, instanceLevel: true},
	"meta":        {instanceLevel: true, versionLevel: true},
	"meta-add":    {instanceLevel: true, versionLevel: true},
	"meta-delete": {instanceLevel: true, versionLevel: true},
	"everything":  {instanceLevel: true},
	"export":      {typeLevel: true, instanceLevel: true}, // Patient/$export, Group/{id}/$export; also system level
}

// parseRoute maps a method and a path relative to the FHIR base ("Patient/1/_history/2") to an
// interaction. It is used for HTTP requests and for Bundle entries alike.
func parseRoute(method, path string, hasQuery bool) (route, error) {
	path = strings.Trim(path, "/")
	var seg []string
	if path != "" {
		seg = strings.Split(path, "/")
	}
	rt := route{path: path}
	allow := func(methods ...string) error {
		for _, m := range methods {
			if m == method || (m == http.MethodGet && method == http.MethodHead) {
				return nil
			}
		}
		return &methodError{allowed: methods, method: method, path: path}
	}
	if len(seg) == 0 {
		switch method {
		case http.MethodPost:
			rt.interaction = IBatch
		default:
			rt.interaction = ISearchSystem
			return rt, allow(http.MethodGet, http.MethodPost)
		}
		return rt, nil
	}
	switch seg[0] {
	case "metadata":
		if len(seg) == 1 {
			rt.interaction = ICapabilities
			return rt, allow(http.MethodGet)
		}
	case "_history":
		if len(seg) == 1 {
			rt.interaction = IHistorySystem
			return rt, allow(http.MethodGet)
		}
	}
	if strings.HasPrefix(seg[0], "$") && len(seg) == 1 {
		rt.interaction, rt.op, rt.level = IOperation, seg[0][1:], "system"
		if rt.op == "export" {
			rt.level = ""
			return rt, allow(http.MethodGet)
		}
		return rt, nil // perhaps a registered one: bound (or refused) by Server.parseRoute
	}
	if seg[0] == exportPath && (len(seg) == 2 || len(seg) == 3) {
		rt.job = seg[1]
		if !validJob(rt.job) {
			return rt, fhir.Errorf(fhir.ErrNotFound, "not-found", "%q is not an export id", rt.job)
		}
		if len(seg) == 2 {
			rt.interaction = IExportStatus
			return rt, allow(http.MethodGet, http.MethodDelete)
		}
		rt.file = seg[2]
		if !validExportFile(rt.file) {
			return rt, fhir.Errorf(fhir.ErrNotFound, "not-found", "%q is not a file of an export", rt.file)
		}
		rt.interaction = IExportFile
		return rt, allow(http.MethodGet)
	}
	if strings.HasPrefix(seg[0], "$") {
		return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "no FHIR interaction at %q", path)
	}
	rt.typ = seg[0]
	if !resource.IsType(rt.typ) {
		return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "%q is not an R4 resource type", rt.typ)
	}
	if len(seg) == 1 {
		switch method {
		case http.MethodGet, http.MethodHead:
			rt.interaction = ISearchType
		case http.MethodPost:
			rt.interaction = ICreate
		case http.MethodPut, http.MethodDelete, http.MethodPatch:
			if !hasQuery {
				return rt, fhir.Errorf(fhir.ErrInvalid, "required", "%s on %s needs search criteria (a conditional %s) or an id in the URL", method, rt.typ, method)
			}
			rt.conditional = true
			rt.interaction = map[string]string{http.MethodPut: IUpdate, http.MethodDelete: IDelete, http.MethodPatch: IPatch}[method]
		default:
			return rt, allow(http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete)
		}
		return rt, nil
	}
	second := seg[1]
	switch {
	case second == "_search" && len(seg) == 2:
		rt.interaction = ISearchType
		return rt, allow(http.MethodPost)
	case second == "_history" && len(seg) == 2:
		rt.interaction = IHistoryType
		return rt, allow(http.MethodGet)
	case strings.HasPrefix(second, "$") && len(seg) == 2:
		return operationRoute(rt, second[1:], "type", allow)
	}
	rt.id = second
	if !resource.ValidID(rt.id) {
		return rt, fhir.Errorf(fhir.ErrInvalid, "value", "%q is not a valid resource id ([A-Za-z0-9-.]{1,64})", rt.id)
	}
	switch {
	case len(seg) == 2:
		switch method {
		case http.MethodGet, http.MethodHead:
			rt.interaction = IRead
		case http.MethodPut:
			rt.interaction = IUpdate
		case http.MethodPatch:
			rt.interaction = IPatch
		case http.MethodDelete:
			rt.interaction = IDelete
		default:
			return rt, allow(http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete)
		}
		return rt, nil
	case len(seg) == 3 && seg[2] == "_history":
		rt.interaction = IHistoryInstance
		return rt, allow(http.MethodGet)
	case len(seg) == 3 && strings.HasPrefix(seg[2], "$"):
		return operationRoute(rt, seg[2][1:], "instance", allow)
	case len(seg) == 3 && (seg[2] == "*" || resource.IsType(seg[2])):
		rt.interaction, rt.compartment = ISearchType, seg[2]
		return rt, allow(http.MethodGet)
	case (len(seg) == 4 || len(seg) == 5) && seg[2] == "_history":
		vid, err := strconv.Atoi(seg[3])
		if err != nil || vid < 1 {
			return rt, fhir.Errorf(fhir.ErrNotFound, "not-found", "%q is not a version id", seg[3])
		}
		rt.vid = vid
		if len(seg) == 5 {
			if !strings.HasPrefix(seg[4], "$") {
				break
			}
			return operationRoute(rt, seg[4][1:], "version", allow)
		}
		rt.interaction = IVRead
		return rt, allow(http.MethodGet)
	}
	return rt, fhir.Errorf(fhir.ErrNotFound, "not-found", "no FHIR interaction at %q", path)
}

func operationRoute(rt route, op, level string, allow func(...string) error) (route, error) {
	def, ok := operations[op]
	if !ok {
		// Perhaps a registered operation: bound (or refused) by Server.bindOperation.
		rt.interaction, rt.op, rt.level = IOperation, op, level
		return rt, nil
	}
	if (level == "type" && !def.typeLevel) || (level == "instance" && !def.instanceLevel) || (level == "version" && !def.versionLevel) {
		return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "operation $%s is not supported at %s level", op, level)
	}
	rt.interaction, rt.op = IOperation, op
	if op == "everything" && rt.typ != "Patient" && rt.typ != "Encounter" {
		return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "$everything is supported on Patient and Encounter, not %s", rt.typ)
	}
	if op == "export" {
		if (level == "type" && rt.typ != "Patient") || (level == "instance" && rt.typ != "Group") {
			return rt, fhir.Errorf(fhir.ErrNotFound, "not-supported", "$export is served at /$export, /Patient/$export and /Group/{id}/$export, not on %s at %s level", rt.typ, level)
		}
		return rt, allow(http.MethodGet)
	}
	if op == "meta" || op == "everything" {
		return rt, allow(http.MethodGet, http.MethodPost)
	}
	return rt, allow(http.MethodPost)
}

// methodError is a 405 that carries the Allow header.
type methodError struct {
	allowed      []string
	method, path string
}

func (e *methodError) Error() string {
	return "method " + e.method + " is not allowed on " + e.path + " (allowed: " + strings.Join(e.allowed, ", ") + ")"
}

func (e *methodError) Unwrap() error { return fhir.ErrMethodNotAllowed }

// Route is one kind of request the FHIR API serves: a method and a path pattern under the base.
// Patterns name their variable segments {type} (a resource type), {id}, {vid} (a version),
// {compartment} (a resource type or *), {op} (an operation the type, or the system, serves at that
// level: the built-in ones and Config.Operations, as the CapabilityStatement lists them), {job} (a
// Bulk Data export) and {file} (one of its files).
type Route struct {
	Method      string
	Pattern     string
	Interaction string
	// Conditional marks routes that address resources by search criteria (a query is required).
	Conditional bool
}

// Routes lists every route the API serves. Tests generate requests from it (every route with every
// kind of principal), and a test checks that parseRoute accepts nothing this table does not list,
// so a new route cannot escape them. HEAD is served wherever GET is.
var Routes = []Route{
	{http.MethodGet, "", ISearchSystem, false},
	{http.MethodPost, "", IBatch, false},
	{http.MethodGet, "${op}", IOperation, false},
	{http.MethodPost, "${op}", IOperation, false},
	{http.MethodGet, "bulkdata/{job}", IExportStatus, false},
	{http.MethodDelete, "bulkdata/{job}", IExportStatus, false},
	{http.MethodGet, "bulkdata/{job}/{file}", IExportFile, false},
	{http.MethodGet, "metadata", ICapabilities, false},
	{http.MethodGet, "_history", IHistorySystem, false},
	{http.MethodGet, "{type}", ISearchType, false},
	{http.MethodPost, "{type}", ICreate, false},
	{http.MethodPut, "{type}", IUpdate, true},
	{http.MethodPatch, "{type}", IPatch, true},
	{http.MethodDelete, "{type}", IDelete, true},
	{http.MethodPost, "{type}/_search", ISearchType, false},
	{http.MethodGet, "{type}/_history", IHistoryType, false},
	{http.MethodGet, "{type}/${op}", IOperation, false},
	{http.MethodPost, "{type}/${op}", IOperation, false},
	{http.MethodGet, "{type}/{id}", IRead, false},
	{http.MethodPut, "{type}/{id}", IUpdate, false},
	{http.MethodPatch, "{type}/{id}", IPatch, false},
	{http.MethodDelete, "{type}/{id}", IDelete, false},
	{http.MethodGet, "{type}/{id}/_history", IHistoryInstance, false},
	{http.MethodGet, "{type}/{id}/${op}", IOperation, false},
	{http.MethodPost, "{type}/{id}/${op}", IOperation, false},
	{http.MethodGet, "{type}/{id}/{compartment}", ISearchType, false},
	{http.MethodGet, "{type}/{id}/_history/{vid}", IVRead, false},
	{http.MethodGet, "{type}/{id}/_history/{vid}/${op}", IOperation, false},
	{http.MethodPost, "{type}/{id}/_history/{vid}/${op}", IOperation, false},
}
