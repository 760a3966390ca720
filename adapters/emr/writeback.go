package emr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
)

// TaskWriteback is the job that writes one Billy resource back to an EMR.
const TaskWriteback = "emr:writeback"

// WritebackSystem is the identifier system of documents Billy writes to an EMR: the value is
// Billy's id, what a conditional create (If-None-Exist) keys on.
const WritebackSystem = "urn:billy:writeback"

// WritebackPayload names what to write back where.
type WritebackPayload struct {
	EMR  string `json:"emr"`
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Hook queues, in the writing transaction (store.WriteHook), the write-back of new
// DocumentReferences (transcripts) about a patient or encounter synced from an EMR that takes
// write-backs, and of Claims that become active about a patient of an EMR that takes Claims.
type Hook struct{ S *Service }

var _ store.WriteHook = Hook{}

// AfterWrite is called inside the writing transaction.
func (h Hook) AfterWrite(ctx context.Context, tx *store.Tx, c store.Change) ([]fhir.Issue, error) {
	if c.Content == nil || h.S == nil || h.S.Enqueue == nil {
		return nil, nil
	}
	switch {
	case c.Type == "DocumentReference" && c.Version == 1:
	case c.Type == "Claim":
		return nil, h.claim(ctx, tx, c)
	default:
		return nil, nil
	}
	tree, err := jsontree.Parse(c.Content)
	if err != nil {
		return nil, err
	}
	var linkType, linkID string
	if enc := firstRef(tree.Get("context"), "encounter"); strings.HasPrefix(enc, "Encounter/") {
		linkType, linkID = "Encounter", strings.TrimPrefix(enc, "Encounter/")
	} else if subj := tree.Get("subject"); subj != nil && strings.HasPrefix(subj.GetString("reference"), "Patient/") {
		linkType, linkID = "Patient", strings.TrimPrefix(subj.GetString("reference"), "Patient/")
	} else {
		return nil, nil
	}
	rows, err := tx.PgTx().Query(ctx, `SELECT l.emr FROM emr_links l JOIN emr_systems s ON s.name = l.emr
		WHERE l.type = $1 AND l.local_id = $2 AND s.writeback ORDER BY l.emr`, linkType, linkID)
	if err != nil {
		return nil, err
	}
	emrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, emr := range emrs {
		if _, err := tx.PgTx().Exec(ctx, `INSERT INTO emr_writebacks (emr, type, local_id, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, emr, c.Type, c.ID, tx.Now()); err != nil {
			return nil, err
		}
		p := WritebackPayload{EMR: emr, Type: c.Type, ID: c.ID}
		if err := h.S.Enqueue(ctx, tx.PgTx(), TaskWriteback, p, "emr-writeback:"+emr+":"+c.Type+":"+c.ID); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// claim queues an active Claim's write-back, once per Claim.
func (h Hook) claim(ctx context.Context, tx *store.Tx, c store.Change) error {
	tree, err := jsontree.Parse(c.Content)
	if err != nil {
		return err
	}
	patient, ok := strings.CutPrefix(tree.Get("patient").GetString("reference"), "Patient/")
	if tree.GetString("status") != "active" || !ok {
		return nil
	}
	rows, err := tx.PgTx().Query(ctx, `SELECT l.emr FROM emr_links l JOIN emr_systems s ON s.name = l.emr
		WHERE l.type = 'Patient' AND l.local_id = $1 AND s.writeback_claims ORDER BY l.emr`, patient)
	if err != nil {
		return err
	}
	emrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, emr := range emrs {
		tag, err := tx.PgTx().Exec(ctx, `INSERT INTO emr_writebacks (emr, type, local_id, updated_at) VALUES ($1, 'Claim', $2, $3) ON CONFLICT DO NOTHING`, emr, c.ID, tx.Now())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			continue // queued when it first became active
		}
		if err := h.S.Enqueue(ctx, tx.PgTx(), TaskWriteback, WritebackPayload{EMR: emr, Type: "Claim", ID: c.ID}, "emr-writeback:"+emr+":Claim:"+c.ID); err != nil {
			return err
		}
	}
	return nil
}

func firstRef(v *jsontree.Value, key string) string {
	if v == nil {
		return ""
	}
	a := v.Get(key)
	if a == nil || a.Kind != jsontree.Array || len(a.Items) == 0 {
		return ""
	}
	return a.Items[0].GetString("reference")
}

// RunWriteback is the job handler of TaskWriteback.
func (s *Service) RunWriteback(ctx context.Context, payload []byte) error {
	var p WritebackPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	_, err := s.Writeback(ctx, p)
	return err
}

// Writeback writes one Billy DocumentReference to the EMR and returns the EMR's id of it. A
// write-back already done returns the stored remote id without calling the EMR; otherwise the POST
// is conditional on Billy's identifier (If-None-Exist) or, for an EMR that does not honour it,
// preceded by a search on that identifier, so a retry never makes a second document.
func (s *Service) Writeback(ctx context.Context, p WritebackPayload) (string, error) {
	var remote *string
	err := s.Registry.Pool.QueryRow(ctx, `SELECT remote_id FROM emr_writebacks WHERE emr = $1 AND type = $2 AND local_id = $3`, p.EMR, p.Type, p.ID).Scan(&remote)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	if remote != nil && *remote != "" {
		return *remote, nil
	}
	c, prof, err := s.Client(ctx, p.EMR)
	if errors.Is(err, fhir.ErrNotFound) {
		return "", fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return "", err
	}
	v, err := s.Store.Read(ctx, p.Type, p.ID)
	if err != nil || v.Deleted() {
		return "", s.failWriteback(ctx, p, "the resource is gone from Billy")
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return "", err
	}
	var doc *jsontree.Value
	var reason string
	switch p.Type {
	case "DocumentReference":
		doc, reason, err = s.remoteDocument(ctx, c.sys, prof, p.ID, tree)
	case "Claim":
		doc, reason, err = s.remoteClaim(ctx, c.sys, p.ID, tree)
	default:
		return "", fmt.Errorf("write-back of %s: %w", p.Type, asynq.SkipRetry)
	}
	if err != nil {
		return "", err
	}
	if reason != "" {
		return "", s.failWriteback(ctx, p, reason)
	}
	ident := url.Values{"identifier": {WritebackSystem + "|" + p.ID}}.Encode()
	hdr := http.Header{}
	if prof.Writeback.ConditionalCreate {
		hdr.Set("If-None-Exist", ident)
	} else if id, err := s.findRemote(ctx, c, p.Type, ident); err != nil {
		return "", err
	} else if id != "" {
		return id, s.doneWriteback(ctx, p, id)
	}
	resp, err := c.Do(ctx, "writeback", http.MethodPost, p.Type, doc.Marshal(), hdr)
	var he *HTTPError
	if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 {
		return "", s.failWriteback(ctx, p, fmt.Sprintf("the EMR refused it (HTTP %d)", he.Status))
	}
	if err != nil {
		return "", err
	}
	id := remoteID(resp, p.Type)
	if id == "" {
		return "", fmt.Errorf("the EMR's answer names no %s id", p.Type)
	}
	return id, s.doneWriteback(ctx, p, id)
}

func (s *Service) findRemote(ctx context.Context, c *Client, typ, ident string) (string, error) {
	resp, err := c.Do(ctx, "writeback", http.MethodGet, typ+"?"+ident, nil, nil)
	if err != nil {
		return "", err
	}
	b, err := jsontree.Parse(resp.Body)
	if err != nil {
		return "", err
	}
	if e := b.Get("entry"); e != nil && len(e.Items) > 0 {
		if r := e.Items[0].Get("resource"); r != nil {
			return r.GetString("id"), nil
		}
	}
	return "", nil
}

func remoteID(resp *Response, typ string) string {
	if loc := resp.Header.Get("Location"); loc != "" {
		if i := strings.Index(loc, typ+"/"); i >= 0 {
			id, _, _ := strings.Cut(loc[i+len(typ)+1:], "/")
			return id
		}
	}
	if t, err := jsontree.Parse(resp.Body); err == nil && t.GetString("resourceType") == typ {
		return t.GetString("id")
	}
	return ""
}

func (s *Service) doneWriteback(ctx context.Context, p WritebackPayload, remote string) error {
	_, err := s.Registry.Pool.Exec(ctx, `INSERT INTO emr_writebacks (emr, type, local_id, remote_id, status, updated_at) VALUES ($1,$2,$3,$4,'done',$5)
		ON CONFLICT (emr, type, local_id) DO UPDATE SET remote_id = EXCLUDED.remote_id, status = 'done', error = NULL, updated_at = EXCLUDED.updated_at`,
		p.EMR, p.Type, p.ID, remote, s.Registry.now())
	return err
}

// failWriteback records a permanent failure (no retry: the document would be refused again).
func (s *Service) failWriteback(ctx context.Context, p WritebackPayload, reason string) error {
	if _, err := s.Registry.Pool.Exec(ctx, `INSERT INTO emr_writebacks (emr, type, local_id, status, error, updated_at) VALUES ($1,$2,$3,'failed',$4,$5)
		ON CONFLICT (emr, type, local_id) DO UPDATE SET status = 'failed', error = EXCLUDED.error, updated_at = EXCLUDED.updated_at`,
		p.EMR, p.Type, p.ID, reason, s.Registry.now()); err != nil {
		return err
	}
	return fmt.Errorf("write-back of %s/%s to %s: %s: %w", p.Type, p.ID, p.EMR, reason, asynq.SkipRetry)
}

// remoteDocument builds the DocumentReference the EMR receives, by the profile's rules: Billy's
// identifier, the EMR's ids in references, only the attachments the EMR takes. A non-empty reason
// says why the document cannot be written back.
func (s *Service) remoteDocument(ctx context.Context, sys *System, prof *Profile, localID string, src *jsontree.Value) (*jsontree.Value, string, error) {
	doc := jsontree.NewObject()
	doc.Set("resourceType", jsontree.NewString("DocumentReference"))
	setIdentifier(doc, WritebackSystem, localID)
	doc.Set("status", jsontree.NewString("current"))
	if ds := src.GetString("docStatus"); ds != "" {
		doc.Set("docStatus", jsontree.NewString(ds))
	}
	if nt := prof.Writeback.NoteType; nt != nil {
		b, _ := json.Marshal(map[string]any{"coding": []Coding{*nt}})
		t, _ := jsontree.Parse(b)
		doc.Set("type", t)
	} else if t := src.Get("type"); t != nil {
		doc.Set("type", t.Clone())
	}
	if subj := src.Get("subject"); subj != nil {
		ref, err := s.remoteRef(ctx, sys, subj.GetString("reference"))
		if err != nil {
			return nil, "", err
		}
		if ref == "" {
			return nil, "the subject is not a patient of this EMR", nil
		}
		doc.Set("subject", refValue(ref))
	}
	if d := src.GetString("date"); d != "" {
		doc.Set("date", jsontree.NewString(d))
	}
	if d := src.GetString("description"); d != "" {
		doc.Set("description", jsontree.NewString(d))
	}
	var content []*jsontree.Value
	if cs := src.Get("content"); cs != nil {
		for _, ct := range cs.Items {
			att := ct.Get("attachment")
			if att == nil || att.GetString("data") == "" || !prof.Writeback.allows(att.GetString("contentType")) {
				continue
			}
			a := jsontree.NewObject()
			a.Set("contentType", jsontree.NewString(att.GetString("contentType")))
			a.Set("data", jsontree.NewString(att.GetString("data")))
			if t := att.GetString("title"); t != "" {
				a.Set("title", jsontree.NewString(t))
			}
			e := jsontree.NewObject()
			e.Set("attachment", a)
			content = append(content, e)
			if prof.Writeback.SingleAttachment {
				break
			}
		}
	}
	if len(content) == 0 {
		return nil, "no attachment of a content type the EMR takes (" + strings.Join(prof.Writeback.ContentTypes, ", ") + ")", nil
	}
	doc.Set("content", jsontree.NewArray(content...))
	enc, err := s.remoteRef(ctx, sys, firstRef(src.Get("context"), "encounter"))
	if err != nil {
		return nil, "", err
	}
	if enc == "" && prof.Writeback.RequireEncounter {
		return nil, "the profile needs an Encounter of this EMR", nil
	}
	if enc != "" {
		cx := jsontree.NewObject()
		cx.Set("encounter", jsontree.NewArray(refValue(enc)))
		doc.Set("context", cx)
	}
	return doc, "", nil
}

// remoteClaim is the Claim the EMR receives: Billy's Claim with Billy's identifier and every
// reference as the EMR's id. A reference to something the EMR does not have (a Billy-only
// Organization, say) cannot be sent: the reason says which.
func (s *Service) remoteClaim(ctx context.Context, sys *System, localID string, src *jsontree.Value) (*jsontree.Value, string, error) {
	t := src.Clone()
	for _, k := range []string{"id", "meta", "text", "contained"} {
		t.Delete(k)
	}
	setIdentifier(t, WritebackSystem, localID)
	var missing string
	var ferr error
	walkRefs(t, func(ref *jsontree.Value) {
		if ferr != nil || missing != "" || strings.Contains(ref.Str, ":") || strings.HasPrefix(ref.Str, "#") {
			return
		}
		remote, err := s.remoteRef(ctx, sys, ref.Str)
		if err != nil {
			ferr = err
			return
		}
		if remote == "" {
			missing = ref.Str
			return
		}
		ref.Str = remote
	})
	if ferr != nil {
		return nil, "", ferr
	}
	if missing != "" {
		return nil, "the Claim refers to " + missing + ", which did not come from this EMR", nil
	}
	return t, "", nil
}

func refValue(ref string) *jsontree.Value {
	v := jsontree.NewObject()
	v.Set("reference", jsontree.NewString(ref))
	return v
}

// remoteRef maps a Billy reference (Type/id) to the EMR's, "" when the EMR does not have it.
func (s *Service) remoteRef(ctx context.Context, sys *System, ref string) (string, error) {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok {
		return "", nil
	}
	var remote string
	err := s.Registry.Pool.QueryRow(ctx, `SELECT remote_id FROM emr_links WHERE emr = $1 AND type = $2 AND local_id = $3`, sys.Name, typ, id).Scan(&remote)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return typ + "/" + remote, nil
}
