package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The raw baseline writes what one coding run writes, as plain SQL with no FHIR work: the same
// resource rows (the run's own DocumentReference, Task versions, Claim and Provenance, byte for
// byte), the same search-index rows and the outbox row, into scratch copies of Billy's tables (same
// columns, indexes, storage and compression). The writes are grouped into the run's four
// transactions, each sent as one pipelined batch (one round trip, one commit):
//
//  1. intake: the DocumentReference and the Task (version 1) with their index rows, the outbox row;
//  2. relay: the outbox row marked relayed;
//  3. stage start: the Task locked, its version moved to history, version 2 written with its index rows;
//  4. stage end: the Task locked, the Claim and Provenance with their index rows, the Task's
//     version 3 (history, index rows), the outbox row marked done.
//
// It leaves out what no raw writer needs: reads (the patient, encounter, coverage, fee schedule),
// validation, search-parameter extraction, JSON, HTTP and the queue. The Task's old index rows are
// not deleted (Billy deletes them by value), so the raw side is, if anything, too cheap.

// rawPrefix names the scratch tables; they are dropped after the run.
const rawPrefix = "rawbench_"

// rows of one table, as JSON objects (row_to_json), numbers kept exact.
type tableRows map[string][]map[string]any

// rawTemplate is the rows of one completed run.
type rawTemplate struct {
	intake   tableRows // resources: DocumentReference, Task v1; index rows of both
	taskIdx  tableRows // the Task's index rows (written again by each update)
	finish   tableRows // resources: Claim, Provenance; their index rows
	v2, v3   []byte    // the Task's later contents
	outbox   map[string]any
	bytes    int // resource content bytes written by the run (history included)
	idxRows  int // index rows written by the run
	resRows  int // resource and history rows written by the run
	taskRows int
}

// rawShape describes the average run the raw baseline writes.
type rawShape struct {
	runs                  int // distinct runs read back
	resRows, idx, content float64
}

// rawBench holds the templates and the scratch tables.
type rawBench struct {
	rawShape
	pool      *pgxpool.Pool
	tables    []string // search-index tables
	templates []rawTemplate
	next      atomic.Int64
}

type rawResult struct {
	lat     latencies
	elapsed time.Duration
}

func (r rawResult) perMinute() float64 { return float64(len(r.lat)) / r.elapsed.Minutes() }

// newRawBench reads one completed run of each development case back from the database and creates
// the scratch tables.
func newRawBench(ctx context.Context, env *benchEnv, samples []runSample) (*rawBench, error) {
	rb := &rawBench{pool: env.pool}
	rows, err := env.pool.Query(ctx, `SELECT DISTINCT table_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = 'rid' AND table_name LIKE 'search\_%' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	if rb.tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := len(samples) - 1; i >= 0; i-- {
		s := samples[i]
		if seen[s.caseName] {
			continue
		}
		seen[s.caseName] = true
		t, err := rb.template(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("rows of Task/%s: %w", s.task, err)
		}
		rb.templates = append(rb.templates, t)
		rb.resRows += float64(t.resRows)
		rb.idx += float64(t.idxRows)
		rb.content += float64(t.bytes)
	}
	if len(rb.templates) == 0 {
		return nil, errNoTemplate
	}
	n := float64(len(rb.templates))
	rb.runs = len(rb.templates)
	rb.resRows, rb.idx, rb.content = rb.resRows/n, rb.idx/n, rb.content/n
	fmt.Printf("  rows of %d runs (one per transcript) read back; per run on average %.1f resource and history rows (%.1f KB of content), %.0f index rows, 1 outbox row\n",
		len(rb.templates), rb.resRows, rb.content/1e3, rb.idx)

	rb.drop(ctx)
	for _, t := range append([]string{"resources", "resource_history", "outbox"}, rb.tables...) {
		if _, err := env.pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{rawPrefix + t}.Sanitize()+" (LIKE "+pgx.Identifier{t}.Sanitize()+" INCLUDING ALL)"); err != nil {
			rb.drop(ctx)
			return nil, fmt.Errorf("scratch copy of %s: %w", t, err)
		}
	}
	return rb, nil
}

// check makes sure the raw runs wrote what they claim: four resource rows and two history rows
// per run.
func (rb *rawBench) check(ctx context.Context) error {
	var res, hist int64
	if err := rb.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+rawPrefix+"resources), (SELECT count(*) FROM "+rawPrefix+"resource_history)").Scan(&res, &hist); err != nil {
		return err
	}
	if n := rb.next.Load(); res != 4*n || hist != 2*n {
		return fmt.Errorf("raw runs wrote %d resource and %d history rows for %d runs, want %d and %d", res, hist, n, 4*n, 2*n)
	}
	return nil
}

func (rb *rawBench) drop(ctx context.Context) {
	for _, t := range append([]string{"resources", "resource_history", "outbox"}, rb.tables...) {
		_, _ = rb.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{rawPrefix + t}.Sanitize())
	}
}

// template reads the rows a run wrote.
func (rb *rawBench) template(ctx context.Context, s runSample) (rawTemplate, error) {
	t := rawTemplate{intake: tableRows{}, taskIdx: tableRows{}, finish: tableRows{}}
	rid := func(typ, id string) (int64, error) {
		var r int64
		err := rb.pool.QueryRow(ctx, `SELECT rid FROM resources WHERE type = $1 AND id = $2`, typ, id).Scan(&r)
		if err != nil {
			err = fmt.Errorf("%s/%s: %w", typ, id, err)
		}
		return r, err
	}
	// The Claim and its Provenance take the run's id.
	docRID, err := rid("DocumentReference", s.doc)
	if err != nil {
		return t, err
	}
	taskRID, err := rid("Task", s.task)
	if err != nil {
		return t, err
	}
	claimRID, err := rid("Claim", s.task)
	if err != nil {
		return t, err
	}
	provRID, err := rid("Provenance", s.task)
	if err != nil {
		return t, err
	}
	resource := func(rid int64) (map[string]any, error) {
		var js string
		if err := rb.pool.QueryRow(ctx, `SELECT row_to_json(r)::text FROM resources r WHERE rid = $1`, rid).Scan(&js); err != nil {
			return nil, err
		}
		var m []map[string]any
		err := decode("["+js+"]", &m)
		return m[0], err
	}
	index := func(dst tableRows, rid int64) error {
		for _, tab := range rb.tables {
			var js string
			if err := rb.pool.QueryRow(ctx, "SELECT coalesce(json_agg(x), '[]')::text FROM "+pgx.Identifier{tab}.Sanitize()+" x WHERE rid = $1", rid).Scan(&js); err != nil {
				return err
			}
			var m []map[string]any
			if err := decode(js, &m); err != nil {
				return err
			}
			dst[tab] = append(dst[tab], m...)
		}
		return nil
	}
	doc, err := resource(docRID)
	if err != nil {
		return t, err
	}
	task, err := resource(taskRID)
	if err != nil {
		return t, err
	}
	hrows, err := rb.pool.Query(ctx, `SELECT content FROM resource_history WHERE rid = $1 ORDER BY version`, taskRID)
	if err != nil {
		return t, err
	}
	versions, err := pgx.CollectRows(hrows, pgx.RowTo[[]byte])
	if err != nil {
		return t, err
	}
	if len(versions) != 2 {
		return t, fmt.Errorf("Task/%s has %d earlier versions, want 2", s.task, len(versions))
	}
	v3, err := unhex(task["content"])
	if err != nil {
		return t, err
	}
	t.v2, t.v3 = versions[1], v3
	task["content"], task["version"] = `\x`+hex.EncodeToString(versions[0]), 1
	t.intake["resources"] = []map[string]any{doc, task}
	if err := index(t.intake, docRID); err != nil {
		return t, err
	}
	if err := index(t.taskIdx, taskRID); err != nil {
		return t, err
	}
	for tab, rs := range t.taskIdx {
		t.intake[tab] = append(t.intake[tab], rs...)
	}
	claim, err := resource(claimRID)
	if err != nil {
		return t, err
	}
	prov, err := resource(provRID)
	if err != nil {
		return t, err
	}
	t.finish["resources"] = []map[string]any{claim, prov}
	if err := index(t.finish, claimRID); err != nil {
		return t, err
	}
	if err := index(t.finish, provRID); err != nil {
		return t, err
	}
	var ob string
	if err := rb.pool.QueryRow(ctx, `SELECT row_to_json(o)::text FROM outbox o WHERE dedupe_key = $1 ORDER BY id LIMIT 1`, "code:"+s.task).Scan(&ob); err != nil {
		return t, fmt.Errorf("outbox: %w", err)
	}
	var obs []map[string]any
	if err := decode("["+ob+"]", &obs); err != nil {
		return t, err
	}
	t.outbox = obs[0]

	for _, r := range []map[string]any{doc, claim, prov} {
		b, _ := unhex(r["content"])
		t.bytes += len(b)
	}
	t.bytes += len(versions[0]) + 2*len(t.v2) + len(t.v3) // v2 is written, then copied to history
	t.resRows = 4 + 2 + 2                                 // four resources, two Task updates with their history rows
	for _, tab := range rb.tables {
		t.idxRows += len(t.intake[tab]) + 2*len(t.taskIdx[tab]) + len(t.finish[tab])
	}
	return t, nil
}

func decode(js string, into any) error {
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	return d.Decode(into)
}

func unhex(v any) ([]byte, error) {
	s, _ := v.(string)
	if !strings.HasPrefix(s, `\x`) {
		return nil, fmt.Errorf("content %.20q is not hex bytea", s)
	}
	return hex.DecodeString(s[2:])
}

// rawRun is one run's four batches, ready to send.
type rawRun struct {
	batches [4]*pgx.Batch
}

// prepare builds the batches of a run from template t with fresh row ids, so that every run
// inserts new rows.
func (rb *rawBench) prepare(t rawTemplate) (rawRun, error) {
	n := rb.next.Add(1)
	base := int64(1)<<40 + n*8
	ids := map[string]int64{} // original rid → fresh rid
	fresh := func(rows []map[string]any, isResource bool) (string, error) {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, r := range rows {
			c := make(map[string]any, len(r))
			for k, v := range r {
				c[k] = v
			}
			old := fmt.Sprint(r["rid"])
			nr, ok := ids[old]
			if !ok {
				nr = base + int64(len(ids))
				ids[old] = nr
			}
			c["rid"] = nr
			if isResource {
				c["id"] = fmt.Sprintf("raw-%d-%d", n, nr-base)
			}
			b, err := json.Marshal(c)
			if err != nil {
				return "", err
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(b)
		}
		buf.WriteByte(']')
		return buf.String(), nil
	}
	insert := func(b *pgx.Batch, rows tableRows) error {
		for _, tab := range append([]string{"resources"}, rb.tables...) {
			rs := rows[tab]
			if len(rs) == 0 {
				continue
			}
			js, err := fresh(rs, tab == "resources")
			if err != nil {
				return err
			}
			name := pgx.Identifier{rawPrefix + tab}.Sanitize()
			over := ""
			if tab == "resources" {
				over = " OVERRIDING SYSTEM VALUE"
			}
			b.Queue("INSERT INTO "+name+over+" SELECT * FROM json_populate_recordset(NULL::"+name+", $1::json)", js)
		}
		return nil
	}
	var run rawRun
	for i := range run.batches {
		run.batches[i] = &pgx.Batch{}
	}
	// Map the Task's rid first, so that its index rows follow it everywhere.
	resources := t.intake["resources"]
	taskOld := fmt.Sprint(resources[1]["rid"])
	ids[taskOld] = base
	taskRID := base
	outboxID := base
	ob := make(map[string]any, len(t.outbox))
	for k, v := range t.outbox {
		ob[k] = v
	}
	ob["id"], ob["dedupe_key"], ob["relayed_at"], ob["done_at"] = outboxID, fmt.Sprintf("code:raw-%d", n), nil, nil
	obJS, err := json.Marshal([]any{ob})
	if err != nil {
		return run, err
	}

	b := run.batches[0]
	if err := insert(b, t.intake); err != nil {
		return run, err
	}
	b.Queue("INSERT INTO "+rawPrefix+"outbox OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::"+rawPrefix+"outbox, $1::json)", string(obJS))

	run.batches[1].Queue("UPDATE "+rawPrefix+"outbox SET relayed_at = now() WHERE id = $1", outboxID)

	update := func(b *pgx.Batch, content []byte) error {
		b.Queue("SELECT version FROM "+rawPrefix+"resources WHERE rid = $1 FOR UPDATE", taskRID)
		b.Queue("INSERT INTO "+rawPrefix+"resource_history (rid, version, type, id, last_updated, method, content) "+
			"SELECT rid, version, type, id, last_updated, method, content FROM "+rawPrefix+"resources WHERE rid = $1", taskRID)
		b.Queue("UPDATE "+rawPrefix+"resources SET version = version + 1, last_updated = now(), method = 'PUT', content = $2 WHERE rid = $1", taskRID, content)
		return insert(b, t.taskIdx)
	}
	if err := update(run.batches[2], t.v2); err != nil {
		return run, err
	}
	b = run.batches[3]
	if err := update(b, t.v3); err != nil {
		return run, err
	}
	if err := insert(b, t.finish); err != nil {
		return run, err
	}
	b.Queue("UPDATE "+rawPrefix+"outbox SET done_at = now() WHERE id = $1", outboxID)
	return run, nil
}

// run times n raw runs on clients connections, cycling the templates. A batch without BEGIN runs
// as one implicit transaction: one round trip and one commit each.
func (rb *rawBench) run(ctx context.Context, clients, n int) (rawResult, error) {
	// Prepare first, so the timed loop only sends.
	runs := make([]rawRun, n+4*clients)
	for i := range runs {
		var err error
		if runs[i], err = rb.prepare(rb.templates[i%len(rb.templates)]); err != nil {
			return rawResult{}, err
		}
	}
	var res rawResult
	var mu sync.Mutex
	var next atomic.Int64
	var firstErr error
	var wg sync.WaitGroup
	// Warm-up: four runs per connection, which also caches the statements.
	warm := make(chan struct{})
	var ready sync.WaitGroup
	var start time.Time
	for c := range clients {
		ready.Add(1)
		wg.Go(func() {
			conn, err := rb.pool.Acquire(ctx)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				ready.Done()
				return
			}
			defer conn.Release()
			send := func(r rawRun) error {
				for _, b := range r.batches {
					if err := conn.SendBatch(ctx, b).Close(); err != nil {
						return err
					}
				}
				return nil
			}
			for i := range 4 {
				if err := send(runs[n+4*c+i]); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
			ready.Done()
			<-warm
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				err := send(runs[i])
				d := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.lat = append(res.lat, d)
				mu.Unlock()
				if err != nil {
					next.Store(int64(n))
					return
				}
			}
		})
	}
	ready.Wait()
	start = time.Now()
	close(warm)
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, firstErr
}
