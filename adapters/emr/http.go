package emr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
)

// NotifyHandler serves the Subscription rest-hook endpoint of each EMR, /emr/{name}/notify. The EMR
// authenticates with the bearer token Billy gave when the EMR was added (its Subscription's
// channel.header); anything else is refused with 401, an unknown EMR too (no way to tell the two
// apart from outside). Three forms are accepted:
//
//	PUT  /emr/NAME/notify/Type/id   FHIR R4 rest-hook with payload: the resource named is synced
//	POST /emr/NAME/notify           a notification Bundle (R4B/R5 backport): each focus is synced
//	POST /emr/NAME/notify           an empty body (R4 rest-hook without payload): an incremental sync
//
// Billy never trusts the content it is handed: it reads each resource from the EMR itself.
func (s *Service) NotifyHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /emr/{name}/notify/{type}/{id}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.notifyAuth(w, r)
		if !ok {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 16<<20))
		n, err := s.SyncOne(r.Context(), name, r.PathValue("type"), r.PathValue("id"))
		writeResult(w, n, err)
	})
	mux.HandleFunc("POST /emr/{name}/notify", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.notifyAuth(w, r)
		if !ok {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "the body cannot be read")
			return
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			n, err := s.Sync(r.Context(), name, SyncOptions{})
			writeResult(w, n, err)
			return
		}
		b, err := jsontree.Parse(body)
		if err != nil || b.GetString("resourceType") != "Bundle" {
			writeError(w, http.StatusBadRequest, "invalid", "a notification is a Bundle")
			return
		}
		var total Counts
		for _, ref := range notificationFocuses(b) {
			typ, id, ok := relativeRef(ref, "")
			if !ok {
				continue
			}
			n, err := s.SyncOne(r.Context(), name, typ, id)
			total.add(n)
			if err != nil {
				writeResult(w, total, err)
				return
			}
		}
		writeResult(w, total, nil)
	})
	return mux
}

// notificationFocuses are the resources a notification Bundle is about: SubscriptionStatus
// notificationEvent.focus references and the fullUrl/ids of the other entries.
func notificationFocuses(b *jsontree.Value) []string {
	var out []string
	e := b.Get("entry")
	if e == nil {
		return nil
	}
	for _, ent := range e.Items {
		res := ent.Get("resource")
		if res == nil {
			continue
		}
		switch res.GetString("resourceType") {
		case "SubscriptionStatus", "Parameters":
			walkRefs(res, func(ref *jsontree.Value) {
				if !strings.HasPrefix(ref.Str, "Subscription/") {
					out = append(out, ref.Str)
				}
			})
		default:
			if id := res.GetString("id"); id != "" {
				out = append(out, res.GetString("resourceType")+"/"+id)
			}
		}
	}
	return out
}

func (s *Service) notifyAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		if sys, err := s.Registry.Get(r.Context(), name); err == nil && sys.CheckNotifyToken(tok) {
			return name, true
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="billy-emr"`)
	writeError(w, http.StatusUnauthorized, "login", "unknown sender")
	return "", false
}

func writeResult(w http.ResponseWriter, n Counts, err error) {
	if err != nil {
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, fhir.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, fhir.ErrInvalid):
			status = http.StatusBadRequest
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		}
		writeError(w, status, "exception", "the sync failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"created": n.Created, "updated": n.Updated, "skipped": n.Skipped, "failed": n.Failed})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}}})
}

// addBody is the admin API's registration of an EMR.
type addBody struct {
	Name      string `json:"name"`
	Base      string `json:"base"`
	ClientID  string `json:"client_id"`
	Profile   string `json:"profile"`
	Scope     string `json:"scope"`
	KeyPEM    string `json:"key_pem"`
	Writeback *bool  `json:"writeback"`
	// WritebackClaims also writes Claims back when they become active.
	WritebackClaims bool `json:"writeback_claims"`
}

// AdminHandler serves the admin API under /admin/emr (the caller authenticates administrators):
//
//	GET    /admin/emr                 the registered EMRs
//	POST   /admin/emr                 register one (JSON: name, base, client_id, profile, scope, key_pem)
//	GET    /admin/emr/NAME            one EMR and its sync state
//	DELETE /admin/emr/NAME            forget it
//	POST   /admin/emr/NAME/sync       sync now (?since=RFC 3339 instant)
//	GET    /admin/emr/NAME/calls      the latest recorded calls
//	GET    /admin/emr/NAME/jwks       the public keys to register at the EMR
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/emr", func(w http.ResponseWriter, r *http.Request) {
		l, err := s.Registry.List(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "exception", "the EMRs cannot be listed")
			return
		}
		writeJSON(w, http.StatusOK, l)
	})
	mux.HandleFunc("POST /admin/emr", func(w http.ResponseWriter, r *http.Request) {
		var b addBody
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "the body is not a registration: "+err.Error())
			return
		}
		wb := b.Writeback == nil || *b.Writeback
		sys, token, err := s.Registry.Add(r.Context(), AddRequest{Name: b.Name, Base: b.Base, ClientID: b.ClientID, Profile: b.Profile, Scope: b.Scope, KeyPEM: []byte(b.KeyPEM), Writeback: wb, WritebackClaims: b.WritebackClaims})
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"emr": sys, "notify_token": token, "notify_url": "/emr/" + sys.Name + "/notify"})
	})
	mux.HandleFunc("GET /admin/emr/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context(), r.PathValue("name"))
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("DELETE /admin/emr/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Registry.Remove(r.Context(), r.PathValue("name")); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/emr/{name}/sync", func(w http.ResponseWriter, r *http.Request) {
		var opt SyncOptions
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid", "since is not an RFC 3339 instant")
				return
			}
			opt.Since = &t
		}
		n, err := s.Sync(r.Context(), r.PathValue("name"), opt)
		writeResult(w, n, err)
	})
	mux.HandleFunc("GET /admin/emr/{name}/calls", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Registry.Get(r.Context(), r.PathValue("name")); err != nil {
			adminError(w, err)
			return
		}
		calls, err := s.Calls(r.Context(), r.PathValue("name"), 200)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, calls)
	})
	mux.HandleFunc("GET /admin/emr/{name}/jwks", func(w http.ResponseWriter, r *http.Request) {
		sys, err := s.Registry.Get(r.Context(), r.PathValue("name"))
		if err != nil {
			adminError(w, err)
			return
		}
		b, err := s.Registry.JWKS(sys)
		if err != nil {
			adminError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return mux
}

func adminError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fhir.ErrNotFound):
		writeError(w, http.StatusNotFound, "not-found", err.Error())
	case errors.Is(err, fhir.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, fhir.ErrConflict):
		writeError(w, http.StatusConflict, "duplicate", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "exception", "internal error")
	}
}

// TypeState is the sync state of one type.
type TypeState struct {
	Type      string     `json:"type"`
	HighWater *time.Time `json:"high_water,omitempty"`
	SyncedAt  *time.Time `json:"synced_at,omitempty"`
	Linked    int        `json:"linked"`
}

// State is an EMR with its sync state and write-back counts.
type State struct {
	*System
	Types      []TypeState    `json:"types"`
	Writebacks map[string]int `json:"writebacks"`
}

// Status returns an EMR's registration and sync state.
func (s *Service) Status(ctx context.Context, name string) (*State, error) {
	sys, err := s.Registry.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	st := &State{System: sys, Writebacks: map[string]int{}}
	for _, typ := range SyncTypes {
		ts := TypeState{Type: typ}
		_ = s.Registry.Pool.QueryRow(ctx, `SELECT high_water, synced_at FROM emr_sync_state WHERE emr = $1 AND type = $2`, name, typ).Scan(&ts.HighWater, &ts.SyncedAt)
		if err := s.Registry.Pool.QueryRow(ctx, `SELECT count(*) FROM emr_links WHERE emr = $1 AND type = $2`, name, typ).Scan(&ts.Linked); err != nil {
			return nil, err
		}
		st.Types = append(st.Types, ts)
	}
	rows, err := s.Registry.Pool.Query(ctx, `SELECT status, count(*) FROM emr_writebacks WHERE emr = $1 GROUP BY status`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		st.Writebacks[k] = n
	}
	return st, rows.Err()
}
