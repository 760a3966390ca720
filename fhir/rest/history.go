package rest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// History page sizes.
const (
	defaultCount = 20
	maxCount     = 1000
)

// history serves instance, type and system history: newest first, paged by a keyset cursor so
// that pages stay consistent while resources are written (new versions only ever appear before the
// first page).
func (s *Server) history(ctx context.Context, rd reads, req *request) (*response, error) {
	q := store.HistoryQuery{Type: req.rt.typ, ID: req.rt.id, Count: defaultCount}
	params := req.query
	if v := params.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fhir.Invalid("value", "_count", "_count=%q is not a non-negative integer", v)
		}
		q.Count = min(n, maxCount)
	}
	if v := params.Get("_since"); v != "" {
		lo, _, ok := search.ParseDateRange(v)
		if !ok {
			return nil, fhir.Invalid("value", "_since", "_since=%q is not a FHIR instant", v)
		}
		q.Since = lo
	}
	if v := params.Get("_at"); v != "" {
		lo, hi, ok := search.ParseDateRange(v)
		if !ok {
			return nil, fhir.Invalid("value", "_at", "_at=%q is not a FHIR date or dateTime", v)
		}
		q.AtLo, q.AtHi = lo, hi
	}
	if v := params.Get("_page"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return nil, fhir.Invalid("value", "_page", "_page is not a cursor this server issued")
		}
		q.Before = c
	}
	if req.rt.id == "" {
		// Type and system history look only at resources the principal may read now; each
		// version is still judged below, as a resource may have been another patient's.
		types := []string{req.rt.typ}
		if req.rt.typ == "" {
			types = schema.ResourceTypes()
		}
		q.Reach = readReach(ctx, types)
	}
	// One more than asked tells whether there is a next page.
	page := q
	page.Count = q.Count + 1
	b := newBundleOut("history")
	if req.rt.id != "" {
		// The history of a resource the principal may read: judged by its current version.
		cur, err := rd.Read(ctx, req.rt.typ, req.rt.id)
		if err != nil {
			return nil, err
		}
		if !cur.Deleted() {
			if err := s.checkVersion(ctx, rd, cur, PermRead); err != nil {
				return nil, err
			}
		} else if r, err := restriction(ctx, cur.Type, PermRead); err != nil || !r.none() {
			return nil, outside(cur.Type, cur.ID)
		}
		// Earlier versions are judged one by one (below): one may have belonged to another
		// patient. The total would count those too, so a restricted principal gets none.
		if r, _ := restriction(ctx, cur.Type, PermRead); q.Since.IsZero() && q.AtHi.IsZero() && r.none() {
			if b.total, err = rd.CountHistory(ctx, cur.RID); err != nil {
				return nil, err
			}
		}
	}
	vs, err := rd.History(ctx, page)
	if err != nil {
		return nil, err
	}
	self := s.historyURL(req, params, "")
	b.link("self", self)
	switch {
	case q.Count == 0:
		vs = nil // _count=0: the total (of an instance's history) and no entries
	case len(vs) > q.Count:
		vs = vs[:q.Count]
		last := vs[len(vs)-1]
		b.link("next", s.historyURL(req, params, encodeCursor(&store.Cursor{LastUpdated: last.LastUpdated, RID: last.RID, Version: last.Version})))
	}
	// Only the versions the principal may read (a page may come out shorter than _count; the next
	// link still continues after the last version looked at).
	if vs, err = s.filterVersions(ctx, rd, vs, PermRead); err != nil {
		return nil, err
	}
	auditFrom(ctx).query(req.rt.typ, req.query)
	auditFrom(ctx).touchAll(vs)
	for _, v := range vs {
		b.entry(s.cfg.Base+"/"+v.Type+"/"+v.ID, v.Content, historyParts(v)...)
	}
	return &response{status: http.StatusOK, body: b.marshal(s.cfg.Now())}, nil
}

// historyParts are the request and response of a history entry: what made the version.
func historyParts(v *store.Version) []jsontree.Member {
	method, url, status := v.Method, v.Type+"/"+v.ID, "200 OK"
	switch v.Method {
	case store.MethodCreate:
		url, status = v.Type, "201 Created"
	case store.MethodDelete:
		status = "204 No Content"
	case store.MethodPatch:
		method = http.MethodPatch
	}
	if v.Version == 1 && v.Method != store.MethodCreate && v.Method != store.MethodDelete {
		status = "201 Created" // update-as-create
	}
	return []jsontree.Member{
		member("request", obj("method", method, "url", url)),
		member("response", obj("status", status, "etag", etag(v.Version), "lastModified", resource.FormatInstant(v.LastUpdated))),
	}
}

// historyURL is the link to a history page; the cursor replaces any earlier one.
func (s *Server) historyURL(req *request, params url.Values, cursor string) string {
	path := "_history"
	switch {
	case req.rt.id != "":
		path = req.rt.typ + "/" + req.rt.id + "/_history"
	case req.rt.typ != "":
		path = req.rt.typ + "/_history"
	}
	keep := url.Values{}
	for _, k := range []string{"_count", "_since", "_at"} {
		if v := params.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	if cursor != "" {
		keep.Set("_page", cursor)
	}
	if len(keep) == 0 {
		return s.cfg.Base + "/" + path
	}
	return s.cfg.Base + "/" + path + "?" + keep.Encode()
}

func encodeCursor(c *store.Cursor) string {
	raw := fmt.Sprintf("%d.%d.%d", c.LastUpdated.UnixMicro(), c.RID, c.Version)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (*store.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("cursor has %d parts", len(parts))
	}
	us, err1 := strconv.ParseInt(parts[0], 10, 64)
	rid, err2 := strconv.ParseInt(parts[1], 10, 64)
	ver, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, fmt.Errorf("cursor is malformed")
	}
	return &store.Cursor{LastUpdated: time.UnixMicro(us).UTC(), RID: rid, Version: ver}, nil
}
