package emr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
)

// SyncTypes are the types pulled, in an order where referenced types come first.
var SyncTypes = []string{"Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "Coverage", "Encounter"}

// IdentifierSystem is the identifier system under which Billy keeps the EMR's ids.
func IdentifierSystem(emr string) string { return "urn:billy:emr:" + emr }

// idNamespace derives Billy ids of EMR resources.
var idNamespace = uuid.MustParse("0b6f1c2e-6d7a-5e2b-9a53-1b0d3c6e9e11")

// LocalID is Billy's id of an EMR's resource: the same for the same EMR, type and EMR id.
func LocalID(emr, typ, remoteID string) string {
	return uuid.NewSHA1(idNamespace, []byte(emr+"|"+typ+"|"+remoteID)).String()
}

// Counts are what a sync did.
type Counts struct {
	Created, Updated, Skipped, Failed int
}

func (c *Counts) add(o Counts) {
	c.Created += o.Created
	c.Updated += o.Updated
	c.Skipped += o.Skipped
	c.Failed += o.Failed
}

// SyncOptions tune a sync.
type SyncOptions struct {
	// Since, when set, replaces the stored high-water marks (resources updated at or after it).
	Since *time.Time
	// Types limits the types synced (default SyncTypes).
	Types []string
	// PageSize replaces the profile's page size when not 0.
	PageSize int
	// Progress, when set, is called after each page.
	Progress func(typ string, total Counts)
}

// Sync pulls the EMR's resources updated since each type's high-water mark. It commits page by page
// and advances the mark with each page, so a sync that dies resumes where it stopped; what it
// re-reads is skipped as unchanged.
func (s *Service) Sync(ctx context.Context, name string, opt SyncOptions) (Counts, error) {
	c, prof, err := s.Client(ctx, name)
	if err != nil {
		return Counts{}, err
	}
	types := opt.Types
	if len(types) == 0 {
		types = SyncTypes
	}
	var total Counts
	for _, typ := range types {
		if !slices.Contains(SyncTypes, typ) {
			return total, fmt.Errorf("emr sync: %s is not a synced type", typ)
		}
		if err := s.syncType(ctx, c, prof, typ, opt, &total); err != nil {
			return total, fmt.Errorf("emr sync %s %s: %w", name, typ, err)
		}
	}
	return total, nil
}

func (s *Service) syncType(ctx context.Context, c *Client, prof *Profile, typ string, opt SyncOptions, total *Counts) error {
	var hwm *time.Time
	if opt.Since != nil {
		hwm = opt.Since
	} else if err := s.Registry.Pool.QueryRow(ctx, `SELECT high_water FROM emr_sync_state WHERE emr = $1 AND type = $2`, c.sys.Name, typ).Scan(&hwm); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	size := prof.PageSize
	if opt.PageSize > 0 {
		size = opt.PageSize
	}
	q := url.Values{"_count": {strconv.Itoa(size)}}
	if hwm != nil {
		q.Set("_lastUpdated", "ge"+hwm.UTC().Format(time.RFC3339Nano))
	}
	if prof.SortLastUpdated {
		q.Set("_sort", "_lastUpdated")
	}
	for _, inc := range prof.Include[typ] {
		q.Add("_include", inc)
	}
	next := typ + "?" + q.Encode()
	var maxSeen time.Time
	for next != "" {
		resp, err := c.Do(ctx, "sync", http.MethodGet, next, nil, nil)
		if err != nil {
			return err
		}
		bundle, err := jsontree.Parse(resp.Body)
		if err != nil || bundle.GetString("resourceType") != "Bundle" {
			return errors.New("the EMR's search answer is not a Bundle")
		}
		var page []*jsontree.Value
		var pageMax time.Time
		if e := bundle.Get("entry"); e != nil {
			for _, ent := range e.Items {
				res := ent.Get("resource")
				if res == nil || !slices.Contains(SyncTypes, res.GetString("resourceType")) {
					continue
				}
				page = append(page, res)
				if res.GetString("resourceType") == typ {
					if t, ok := lastUpdated(res); ok && t.After(pageMax) {
						pageMax = t
					}
				}
			}
		}
		n, err := s.applyPage(ctx, c, page, 0)
		total.add(n)
		if err != nil {
			return err
		}
		if pageMax.After(maxSeen) {
			maxSeen = pageMax
		}
		if prof.SortLastUpdated && !maxSeen.IsZero() {
			if err := s.setHighWater(ctx, c.sys.Name, typ, maxSeen); err != nil {
				return err
			}
		}
		if opt.Progress != nil {
			opt.Progress(typ, *total)
		}
		next = link(bundle, "next")
	}
	if !maxSeen.IsZero() {
		if err := s.setHighWater(ctx, c.sys.Name, typ, maxSeen); err != nil {
			return err
		}
	}
	_, err := s.Registry.Pool.Exec(ctx, `INSERT INTO emr_sync_state (emr, type, synced_at) VALUES ($1, $2, $3)
		ON CONFLICT (emr, type) DO UPDATE SET synced_at = EXCLUDED.synced_at`, c.sys.Name, typ, c.now())
	return err
}

func (s *Service) setHighWater(ctx context.Context, emr, typ string, t time.Time) error {
	_, err := s.Registry.Pool.Exec(ctx, `INSERT INTO emr_sync_state (emr, type, high_water) VALUES ($1, $2, $3)
		ON CONFLICT (emr, type) DO UPDATE SET high_water = GREATEST(emr_sync_state.high_water, EXCLUDED.high_water)`, emr, typ, t)
	return err
}

func lastUpdated(res *jsontree.Value) (time.Time, bool) {
	m := res.Get("meta")
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m.GetString("lastUpdated"))
	return t, err == nil
}

func link(bundle *jsontree.Value, rel string) string {
	if l := bundle.Get("link"); l != nil {
		for _, it := range l.Items {
			if it.GetString("relation") == rel {
				return it.GetString("url")
			}
		}
	}
	return ""
}

// SyncOne pulls one resource now (a Subscription notification).
func (s *Service) SyncOne(ctx context.Context, name, typ, id string) (Counts, error) {
	if !slices.Contains(SyncTypes, typ) {
		return Counts{}, fhir.Errorf(fhir.ErrInvalid, "not-supported", "%s is not a synced type", sanitizeType(typ))
	}
	c, _, err := s.Client(ctx, name)
	if err != nil {
		return Counts{}, err
	}
	res, err := s.fetch(ctx, c, typ, id)
	if err != nil {
		return Counts{}, err
	}
	return s.applyPage(ctx, c, []*jsontree.Value{res}, 0)
}

func (s *Service) fetch(ctx context.Context, c *Client, typ, id string) (*jsontree.Value, error) {
	resp, err := c.Do(ctx, "sync", http.MethodGet, typ+"/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return nil, err
	}
	res, err := jsontree.Parse(resp.Body)
	if err != nil || res.GetString("resourceType") != typ || res.GetString("id") != id {
		return nil, fmt.Errorf("the EMR's %s/%s is not that resource", typ, id)
	}
	return res, nil
}

// maxRefDepth bounds how far fetching referenced resources recurses.
const maxRefDepth = 3

// applyPage upserts resources in one transaction, after fetching (and applying) the resources of
// synced types they reference that Billy has not seen.
func (s *Service) applyPage(ctx context.Context, c *Client, page []*jsontree.Value, depth int) (Counts, error) {
	var n Counts
	inPage := map[string]bool{}
	for _, r := range page {
		inPage[r.GetString("resourceType")+"/"+r.GetString("id")] = true
	}
	if depth < maxRefDepth {
		missing, err := s.missingRefs(ctx, c, page, inPage)
		if err != nil {
			return n, err
		}
		var fetched []*jsontree.Value
		for _, ref := range missing {
			typ, id, _ := strings.Cut(ref, "/")
			res, err := s.fetch(ctx, c, typ, id)
			var he *HTTPError
			if errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusGone || he.Status == http.StatusForbidden) {
				continue // the reference stays unresolved (absolute on the EMR)
			}
			if err != nil {
				return n, err
			}
			fetched = append(fetched, res)
		}
		if len(fetched) > 0 {
			m, err := s.applyPage(ctx, c, fetched, depth+1)
			n.add(m)
			if err != nil {
				return n, err
			}
		}
	}
	err := s.Store.InTx(ctx, func(tx *store.Tx) error {
		pc, err := s.applyAll(ctx, tx, c.sys, page)
		n.add(pc)
		return err
	})
	return n, err
}

// missingRefs are the references (Type/id) of page to synced types that are neither in the page
// nor linked already.
func (s *Service) missingRefs(ctx context.Context, c *Client, page []*jsontree.Value, inPage map[string]bool) ([]string, error) {
	byType := map[string][]string{}
	seen := map[string]bool{}
	for _, res := range page {
		walkRefs(res, func(ref *jsontree.Value) {
			typ, id, ok := relativeRef(ref.Str, c.sys.Base)
			if !ok || !slices.Contains(SyncTypes, typ) {
				return
			}
			k := typ + "/" + id
			if inPage[k] || seen[k] {
				return
			}
			seen[k] = true
			byType[typ] = append(byType[typ], id)
		})
	}
	var out []string
	for typ, ids := range byType {
		rows, err := s.Registry.Pool.Query(ctx, `SELECT remote_id FROM emr_links WHERE emr = $1 AND type = $2 AND remote_id = ANY($3)`, c.sys.Name, typ, ids)
		if err != nil {
			return nil, err
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !slices.Contains(have, id) {
				out = append(out, typ+"/"+id)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// relativeRef splits a literal reference to the EMR ("Type/id", "Type/id/_history/n", or absolute
// on the EMR's base).
func relativeRef(ref, base string) (typ, id string, ok bool) {
	if rest, abs := strings.CutPrefix(ref, base+"/"); abs {
		ref = rest
	} else if strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") {
		return "", "", false
	}
	parts := strings.Split(ref, "/")
	if len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history") {
		return "", "", false
	}
	if parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// walkRefs calls fn with every Reference.reference string of v.
func walkRefs(v *jsontree.Value, fn func(ref *jsontree.Value)) {
	switch v.Kind {
	case jsontree.Object:
		for _, m := range v.Members {
			if m.Key == "reference" && m.Value.Kind == jsontree.String {
				fn(m.Value)
				continue
			}
			if m.Key == "contained" {
				continue
			}
			walkRefs(m.Value, fn)
		}
	case jsontree.Array:
		for _, it := range v.Items {
			walkRefs(it, fn)
		}
	}
}

// applyAll upserts a page of EMR resources in tx: the links of the page read in one query, the
// resources Billy does not have yet created in one statement, the changed ones updated, the links
// written in one statement. An unchanged resource (same content hash as last applied) is skipped.
func (s *Service) applyAll(ctx context.Context, tx *store.Tx, sys *System, page []*jsontree.Value) (Counts, error) {
	var n Counts
	types, ids := make([]string, 0, len(page)), make([]string, 0, len(page))
	for _, res := range page {
		types, ids = append(types, res.GetString("resourceType")), append(ids, res.GetString("id"))
	}
	rows, err := tx.PgTx().Query(ctx, `SELECT l.type, l.remote_id, l.hash FROM unnest($2::text[], $3::text[]) AS k(type, remote_id)
		JOIN emr_links l ON l.emr = $1 AND l.type = k.type AND l.remote_id = k.remote_id`, sys.Name, types, ids)
	if err != nil {
		return n, err
	}
	hashes := map[string][]byte{}
	for rows.Next() {
		var typ, id string
		var h []byte
		if err := rows.Scan(&typ, &id, &h); err != nil {
			rows.Close()
			return n, err
		}
		hashes[typ+"/"+id] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return n, err
	}
	var writes []*store.Write
	var lTypes, lRemote, lLocal []string
	var lHash [][]byte
	seen := map[string]bool{}
	for _, res := range page {
		typ, remoteID := res.GetString("resourceType"), res.GetString("id")
		if remoteID == "" {
			n.Failed++
			continue
		}
		if seen[typ+"/"+remoteID] {
			continue // _include brought it twice
		}
		seen[typ+"/"+remoteID] = true
		t := res.Clone()
		t.Delete("meta")
		sum := sha256.Sum256(t.Marshal())
		if bytes.Equal(hashes[typ+"/"+remoteID], sum[:]) {
			n.Skipped++
			continue
		}
		local := LocalID(sys.Name, typ, remoteID)
		setIdentifier(t, IdentifierSystem(sys.Name), remoteID)
		walkRefs(t, func(ref *jsontree.Value) {
			rt, rid, ok := relativeRef(ref.Str, sys.Base)
			switch {
			case !ok:
			case slices.Contains(SyncTypes, rt):
				ref.Str = rt + "/" + LocalID(sys.Name, rt, rid)
			default:
				ref.Str = sys.Base + "/" + rt + "/" + rid
			}
		})
		w, err := store.Prepare(s.Validate, s.Base, typ, local, t)
		if err != nil {
			if s.Log != nil {
				// Not the validator's message: it may quote values.
				s.Log.Warn("emr sync: resource refused by validation", "emr", sys.Name, "type", typ, "emr_id", remoteID)
			}
			n.Failed++
			continue
		}
		writes = append(writes, w)
		lTypes, lRemote, lLocal, lHash = append(lTypes, typ), append(lRemote, remoteID), append(lLocal, local), append(lHash, sum[:])
	}
	keys := make([]store.Key, len(writes))
	for i, w := range writes {
		keys[i] = store.Key{Type: w.Type, ID: w.ID}
	}
	existing, err := tx.ReadMany(ctx, keys)
	if err != nil {
		return n, err
	}
	var creates []*store.Write
	for _, w := range writes {
		if existing[store.Key{Type: w.Type, ID: w.ID}] == nil {
			creates = append(creates, w)
			continue
		}
		if _, created, err := tx.Update(ctx, w, 0); err != nil {
			return n, err
		} else if created {
			n.Created++ // it was deleted in Billy
		} else {
			n.Updated++
		}
	}
	if _, err := tx.Create(ctx, creates); err != nil {
		return n, err
	}
	n.Created += len(creates)
	if len(lTypes) > 0 {
		if _, err := tx.PgTx().Exec(ctx, `INSERT INTO emr_links (emr, type, remote_id, local_id, hash, updated_at)
			SELECT $1, t, r, l, h, $6 FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[]) AS u(t, r, l, h)
			ON CONFLICT (emr, type, remote_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = EXCLUDED.updated_at`,
			sys.Name, lTypes, lRemote, lLocal, lHash, tx.Now()); err != nil {
			return n, err
		}
	}
	return n, nil
}

// setIdentifier makes t carry exactly one identifier of system with value.
func setIdentifier(t *jsontree.Value, system, value string) {
	ids := t.Get("identifier")
	if ids == nil || ids.Kind != jsontree.Array {
		ids = jsontree.NewArray()
	}
	kept := ids.Items[:0]
	for _, it := range ids.Items {
		if it.GetString("system") != system {
			kept = append(kept, it)
		}
	}
	id := jsontree.NewObject()
	id.Set("system", jsontree.NewString(system))
	id.Set("value", jsontree.NewString(value))
	ids.Items = append(kept, id)
	t.Set("identifier", ids)
}

// sanitizeType keeps an unknown type name printable and short for an error message.
func sanitizeType(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
