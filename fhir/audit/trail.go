package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir/resource"
)

// Trail is the audit trail in PostgreSQL.
type Trail struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns the trail on pool; now is the clock events are recorded by (nil: time.Now).
func New(pool *pgxpool.Pool, now func() time.Time) *Trail {
	if now == nil {
		now = time.Now
	}
	return &Trail{pool: pool, now: now}
}

// row is one audit_log row.
type row struct {
	seq                       int64
	id                        string
	recorded                  time.Time
	action, outcome, subtype  string
	agents, patients, entites []string
	content                   string
	prevHash, hash            []byte
}

// Hash is the chain hash of a row: SHA-256 over the previous row's hash and every column of the
// row, each length-prefixed, so no two different rows hash alike.
func (r *row) computeHash() []byte {
	h := sha256.New()
	var n [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	list := func(ss []string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(ss)))
		h.Write(n[:])
		for _, s := range ss {
			str(s)
		}
	}
	h.Write(r.prevHash)
	binary.BigEndian.PutUint64(n[:], uint64(r.seq))
	h.Write(n[:])
	str(r.id)
	str(formatInstant(r.recorded))
	str(r.action)
	str(r.outcome)
	str(r.subtype)
	list(r.agents)
	list(r.patients)
	list(r.entites)
	str(r.content)
	return h.Sum(nil)
}

// rowJSON is a row as jsonb_populate_recordset reads it.
type rowJSON struct {
	Seq      int64    `json:"seq"`
	ID       string   `json:"id"`
	Recorded string   `json:"recorded"`
	Action   string   `json:"action"`
	Outcome  string   `json:"outcome"`
	Subtype  string   `json:"subtype"`
	Agents   []string `json:"agents"`
	Patients []string `json:"patients"`
	Entities []string `json:"entities"`
	Content  string   `json:"content"`
	PrevHash string   `json:"prev_hash"`
	Hash     string   `json:"hash"`
}

// Querier is what Append needs of a transaction (a pgx.Tx, or the store's).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Append appends evs to the chain inside tx: they commit or roll back with it. Moving the head of
// the chain locks it until tx ends, so call it last in a transaction (a READ COMMITTED one: when
// another appender moved the head meanwhile, it reads the head again and retries). It sets each
// event's Recorded (when zero) and returns their ids.
func (t *Trail) Append(ctx context.Context, tx Querier, evs []*Event) ([]string, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		var h head
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&h.seq, &h.hash); err != nil {
			return nil, fmt.Errorf("audit: head: %w", err)
		}
		b := &pgx.Batch{}
		ids, _, _ := t.queue(b, evs, h.seq, h.hash)
		br := tx.SendBatch(ctx, b)
		tag, err := br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("audit: append: %w", err)
		}
		if tag.RowsAffected() == int64(len(evs)) {
			return ids, nil
		}
		if attempt >= maxAttempts {
			return nil, errors.New("audit: append: the head of the chain keeps moving")
		}
	}
}

// maxAttempts bounds the retries of an append whose head moved.
const maxAttempts = 50

// queue queues the statement that appends evs after the head (seq, prev), and returns the events'
// ids and the new head.
func (t *Trail) queue(b *pgx.Batch, evs []*Event, seq int64, prev []byte) ([]string, int64, []byte) {
	first, firstPrev := seq, prev
	now := t.now().UTC().Truncate(time.Microsecond)
	ids := make([]string, len(evs))
	// One statement for the whole batch: the rows travel as one JSON array, which PostgreSQL turns
	// into audit_log rows (bytea columns as "\\x..." hex, recorded as an RFC 3339 instant).
	rows := make([]rowJSON, len(evs))
	for i, e := range evs {
		if e.Recorded.IsZero() {
			e.Recorded = now
		}
		e.Recorded = e.Recorded.UTC().Truncate(time.Microsecond)
		id := resource.NewID()
		seq++
		r := row{seq: seq, id: id, recorded: e.Recorded, action: e.Action, outcome: e.Outcome, subtype: e.Subtype,
			agents: nonNil(e.agents()), patients: nonNil(e.Patients), entites: nonNil(e.entities()),
			content: string(e.Resource(id)), prevHash: prev}
		r.hash = r.computeHash()
		rows[i] = rowJSON{Seq: r.seq, ID: r.id, Recorded: r.recorded.Format(time.RFC3339Nano), Action: r.action, Outcome: r.outcome,
			Subtype: r.subtype, Agents: r.agents, Patients: r.patients, Entities: r.entites, Content: r.content,
			PrevHash: `\x` + hex.EncodeToString(r.prevHash), Hash: `\x` + hex.EncodeToString(r.hash)}
		prev = r.hash
		ids[i] = id
	}
	doc, _ := json.Marshal(rows) // strings and numbers only: cannot fail
	// The head moves only if it is still where the hashes were computed from; otherwise nothing is
	// inserted (the caller sees fewer rows than events, and retries from the new head). Its row
	// lock serialises appenders until their transactions end.
	b.Queue(`WITH moved AS (UPDATE audit_head SET seq = $2, hash = $3 WHERE seq = $4 AND hash = $5 RETURNING 1)
		INSERT INTO audit_log (seq, id, recorded, action, outcome, subtype, agents, patients, entities, content, prev_hash, hash)
		SELECT seq, id, recorded, action, outcome, subtype, agents, patients, entities, content, prev_hash, hash
		FROM jsonb_populate_recordset(NULL::audit_log, $1::jsonb) WHERE EXISTS (SELECT FROM moved)`, string(doc), seq, prev, first, firstPrev)
	return ids, seq, prev
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Record appends evs in a transaction of their own.
func (t *Trail) Record(ctx context.Context, evs ...*Event) error {
	var h head
	return t.appendAt(ctx, &h, true, evs)
}

// head is where a writer believes the chain ends.
type head struct {
	known bool
	seq   int64
	hash  []byte
}

// appendAt appends evs in one round trip, as one implicit transaction: insert them after h and move
// the head, if the chain still ends at h. When another appender moved the head meanwhile (a write
// transaction, another process), it reads the head and tries again. Without syncCommit the
// transaction's COMMIT does not wait for the WAL flush (see NewWriter).
func (t *Trail) appendAt(ctx context.Context, h *head, syncCommit bool, evs []*Event) error {
	for attempt := 0; ; attempt++ {
		if !h.known {
			if err := t.readHead(ctx, h); err != nil {
				return err
			}
		}
		b, next := t.prepare(*h, syncCommit, evs)
		ok, err := t.send(ctx, b, syncCommit, len(evs))
		switch {
		case err != nil:
			h.known = false
			return err
		case ok:
			*h = next
			return nil
		}
		h.known = false
		if attempt >= maxAttempts {
			return errors.New("audit: append: the head of the chain keeps moving")
		}
	}
}

func (t *Trail) readHead(ctx context.Context, h *head) error {
	if err := t.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&h.seq, &h.hash); err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	h.known = true
	return nil
}

// prepare builds the batch appending evs after h, and the head it leaves.
func (t *Trail) prepare(h head, syncCommit bool, evs []*Event) (*pgx.Batch, head) {
	b := &pgx.Batch{}
	if !syncCommit {
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	}
	_, seq, hash := t.queue(b, evs, h.seq, h.hash)
	return b, head{known: true, seq: seq, hash: hash}
}

// send runs a prepared batch of n events; false (and no error) when the head had moved, so nothing
// was appended.
func (t *Trail) send(ctx context.Context, b *pgx.Batch, syncCommit bool, n int) (bool, error) {
	br := t.pool.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	var err error
	if !syncCommit {
		_, err = br.Exec()
	}
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("audit: append: %w", err)
	}
	return tag.RowsAffected() == int64(n), nil
}

// Problem is the first place the chain does not verify.
type Problem struct {
	// Kind is changed, removed or inserted.
	Kind string
	// Seq is the row at fault (changed, inserted), or the first row missing (removed); ID its id
	// when it is there.
	Seq    int64
	ID     string
	Detail string
}

func (p *Problem) String() string {
	if p.ID != "" {
		return fmt.Sprintf("row %d (AuditEvent/%s) %s: %s", p.Seq, p.ID, p.Kind, p.Detail)
	}
	return fmt.Sprintf("row %d %s: %s", p.Seq, p.Kind, p.Detail)
}

// Report is the result of Verify.
type Report struct {
	Rows     int64
	HeadSeq  int64
	HeadHash string // hex
	// Problem is the first break of the chain; nil when it verifies.
	Problem *Problem
}

// Verify walks the whole chain in order and reports the first row that was changed, removed or
// inserted since it was appended.
func (t *Trail) Verify(ctx context.Context) (*Report, error) {
	tx, err := t.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	rep := &Report{}
	var headHash []byte
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&rep.HeadSeq, &headHash); err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	rep.HeadHash = hex.EncodeToString(headHash)
	rows, err := tx.Query(ctx, `SELECT seq, id, recorded, action, outcome, subtype, agents, patients, entities, content, prev_hash, hash
		FROM audit_log ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	prevSeq, prevHash := int64(0), make([]byte, sha256.Size)
	// suspect is a row that does not verify; the row after it tells whether it was inserted (the
	// chain goes on from the row before it, skipping it) or changed.
	var suspect *row
	verdict := func(next *row) (*Report, error) {
		kind, detail := "changed", "its content no longer matches its hash"
		switch {
		case next != nil && bytes.Equal(next.prevHash, prevHash):
			kind, detail = "inserted", "the chain goes from the row before it to the row after it"
		case !bytes.Equal(suspect.prevHash, prevHash):
			detail = "it does not chain to the row before it"
		}
		rep.Problem = &Problem{Kind: kind, Seq: suspect.seq, ID: suspect.id, Detail: detail}
		return rep, nil
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.id, &r.recorded, &r.action, &r.outcome, &r.subtype, &r.agents, &r.patients, &r.entites, &r.content, &r.prevHash, &r.hash); err != nil {
			return nil, fmt.Errorf("audit: verify: %w", err)
		}
		rep.Rows++
		if suspect != nil {
			return verdict(&r)
		}
		switch {
		case r.seq > rep.HeadSeq || r.seq <= prevSeq:
			rep.Problem = &Problem{Kind: "inserted", Seq: r.seq, ID: r.id, Detail: fmt.Sprintf("its number is outside the chain (1..%d)", rep.HeadSeq)}
			return rep, nil
		case r.seq != prevSeq+1:
			rep.Problem = &Problem{Kind: "removed", Seq: prevSeq + 1,
				Detail: fmt.Sprintf("rows %d..%d are missing before row %d (AuditEvent/%s)", prevSeq+1, r.seq-1, r.seq, r.id)}
			return rep, nil
		}
		if !bytes.Equal(r.prevHash, prevHash) || !bytes.Equal(r.computeHash(), r.hash) {
			suspect = &r
			continue
		}
		prevSeq, prevHash = r.seq, r.hash
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	if suspect != nil {
		return verdict(nil)
	}
	switch {
	case prevSeq < rep.HeadSeq:
		rep.Problem = &Problem{Kind: "removed", Seq: prevSeq + 1, Detail: fmt.Sprintf("rows %d..%d are missing at the end of the chain", prevSeq+1, rep.HeadSeq)}
	case !bytes.Equal(prevHash, headHash):
		rep.Problem = &Problem{Kind: "changed", Seq: prevSeq, Detail: "the last row's hash differs from the head of the chain"}
	}
	return rep, nil
}

// Export writes every AuditEvent recorded at or after since, in chain order, as NDJSON.
func (t *Trail) Export(ctx context.Context, since time.Time, w io.Writer) (int, error) {
	rows, err := t.pool.Query(ctx, `SELECT content FROM audit_log WHERE recorded >= $1 ORDER BY seq`, since)
	if err != nil {
		return 0, fmt.Errorf("audit: export: %w", err)
	}
	defer rows.Close()
	n := 0
	var content []byte
	for rows.Next() {
		if err := rows.Scan(&content); err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		if _, err := w.Write(append(content, '\n')); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// ErrNotFound is the answer of Read for an id not in the trail.
var ErrNotFound = errors.New("audit: no such AuditEvent")

// Read returns the AuditEvent with id, and the patients it touched.
func (t *Trail) Read(ctx context.Context, id string) (content []byte, patients []string, err error) {
	err = t.pool.QueryRow(ctx, `SELECT content, patients FROM audit_log WHERE id = $1`, id).Scan(&content, &patients)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit: read: %w", err)
	}
	return content, patients, nil
}
