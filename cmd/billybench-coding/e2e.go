package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
)

// runSample is one transcript coded end to end. Client stamps (this process's clock) and server
// stamps (Billy's: the meta.lastUpdated of each Task version, which is the start of the transaction
// that wrote it, and the outbox row's relayed_at) are compared directly: they are the same machine's
// clock.
type runSample struct {
	caseName  string
	doc, task string // ids
	// Client: before the POST, after it, and when a read first found the Task completed.
	start, posted, seen time.Time
	// Server: the Task written (the DocumentReference's transaction: queued), the stage job relayed
	// from the outbox to Redis, the coding stage's first transaction (in-progress) and its last
	// (completed, which also writes the Claim and its Provenance).
	queued, relayed, inProgress, completed time.Time
}

func (s runSample) post() time.Duration      { return s.posted.Sub(s.start) }
func (s runSample) queueWait() time.Duration { return s.inProgress.Sub(s.queued) }
func (s runSample) relay() time.Duration     { return s.relayed.Sub(s.queued) }
func (s runSample) pickup() time.Duration    { return s.inProgress.Sub(s.relayed) }
func (s runSample) coding() time.Duration    { return s.completed.Sub(s.inProgress) }
func (s runSample) finish() time.Duration    { return s.seen.Sub(s.completed) }
func (s runSample) server() time.Duration    { return s.completed.Sub(s.queued) }
func (s runSample) total() time.Duration     { return s.seen.Sub(s.start) }

// phaseResult is the end-to-end runs at one client count.
type phaseResult struct {
	clients int
	elapsed time.Duration
	samples []runSample
	coder   time.Duration // the in-process coder's mean time over the same transcripts
	raw     rawResult
}

func (r phaseResult) perMinute() float64 { return float64(len(r.samples)) / r.elapsed.Minutes() }

func (r phaseResult) stage(f func(runSample) time.Duration) latencies {
	l := make(latencies, len(r.samples))
	for i, s := range r.samples {
		l[i] = f(s)
	}
	return l
}

// e2eResult is the whole end-to-end measure.
type e2eResult struct {
	cold, coldCoding time.Duration // the first run, which builds the coder (code sets and knowledge base)
	phases           []phaseResult
	rawRows          rawShape
}

// subject is one development case's patient and encounter in Billy.
type subject struct {
	patient, encounter string
}

// runner drives transcripts through Billy.
type runner struct {
	b        *billy
	client   *http.Client
	cases    []devCase
	docs     [][]byte // the DocumentReference of each case, ready to POST
	subjects []subject
	poll     time.Duration
}

func measureEndToEnd(ctx context.Context, env *benchEnv, cases []devCase, o options) (*e2eResult, error) {
	b, err := startBilly(ctx, o, env.dbURL)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	conns := 4 * max(o.clients[0], o.clients[len(o.clients)-1])
	r := &runner{b: b, cases: cases, poll: o.poll, client: &http.Client{
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns},
		Timeout:   2 * time.Minute,
	}}
	if err := r.setUp(ctx); err != nil {
		return nil, fmt.Errorf("set up patients: %w", err)
	}
	res := &e2eResult{}
	// The first run builds the worker's coder: it loads the code sets and the knowledge base's
	// vectors. It is reported apart; a few more warm the rest up.
	s, err := r.one(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("first run: %w", err)
	}
	res.cold, res.coldCoding = s.total(), s.coding()
	fmt.Printf("  first run (the worker builds its coder: code sets and %d knowledge-base vectors): %s, of which coding stage %s\n",
		env.kb.Len(), benchkit.Ms(res.cold), benchkit.Ms(res.coldCoding))
	for i := range 4 {
		if _, err := r.one(ctx, i+1); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	var all []runSample
	for i, c := range o.clients {
		var prof chan error
		if o.profile != "" && i == len(o.clients)-1 {
			prof = make(chan error, 1)
			go func() { prof <- b.profile(ctx, 15*time.Second, o.profile) }()
		}
		p, err := r.phase(ctx, c, o.runs)
		if err != nil {
			return nil, err
		}
		if err := relayTimes(ctx, env, p.samples); err != nil {
			return nil, err
		}
		var sum time.Duration
		for _, s := range p.samples {
			sum += env.coderTimes[s.caseName]
		}
		p.coder = sum / time.Duration(len(p.samples))
		total := p.stage(runSample.total)
		fmt.Printf("  %d client(s): %d transcripts in %s = %.0f claims/min; POST → Task completed p50 %s, p95 %s; coding stage p50 %s\n",
			c, len(p.samples), p.elapsed.Round(100*time.Millisecond), p.perMinute(), benchkit.Ms(total.P(50)), benchkit.Ms(total.P(95)), benchkit.Ms(p.stage(runSample.coding).P(50)))
		if prof != nil {
			if err := <-prof; err != nil {
				fmt.Fprintf(os.Stderr, "  profile: %v\n", err)
			} else {
				fmt.Printf("  CPU profile of Billy (15 s from the start of this phase): %s\n", o.profile)
			}
		}
		res.phases = append(res.phases, p)
		all = append(all, p.samples...)
	}
	b.stop()

	fmt.Println("\nraw PostgreSQL: the same rows written by the run's four transactions, one round trip each:")
	shape, err := newRawBench(ctx, env, all)
	if err != nil {
		return nil, fmt.Errorf("raw baseline: %w", err)
	}
	defer shape.drop(context.WithoutCancel(ctx))
	res.rawRows = shape.rawShape
	for i := range res.phases {
		p := &res.phases[i]
		if p.raw, err = shape.run(ctx, p.clients, o.runs); err != nil {
			return nil, fmt.Errorf("raw baseline: %w", err)
		}
		fmt.Printf("  %d client(s): %d runs, %.0f runs/min; per run p50 %s, p95 %s\n", p.clients, len(p.raw.lat), p.raw.perMinute(), benchkit.Ms(p.raw.lat.P(50)), benchkit.Ms(p.raw.lat.P(95)))
	}
	if err := shape.check(ctx); err != nil {
		return nil, fmt.Errorf("raw baseline: %w", err)
	}
	return res, nil
}

func ref(s string) map[string]any { return map[string]any{"reference": s} }

// setUp creates what a coding run needs for each development case, as an EMR would have it: the
// patient (its sex and birth date feed the coder's edits), an earlier encounter when the case is an
// established patient, the coded encounter with its practitioner, an active Coverage; and a fee
// schedule for the office E/M codes.
func (r *runner) setUp(ctx context.Context) error {
	doctor, err := r.create(ctx, "Practitioner", map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"family": "Bench", "given": []any{"Coding"}}}})
	if err != nil {
		return err
	}
	for _, em := range emLevels {
		price := 50 + 25*float64(em.minutes/10)
		if _, err := r.create(ctx, "ChargeItemDefinition", map[string]any{"resourceType": "ChargeItemDefinition", "url": "http://example.org/fees/" + em.code, "status": "active",
			"identifier":    []any{map[string]any{"system": "urn:billy:fee-schedule", "value": em.code}},
			"propertyGroup": []any{map[string]any{"priceComponent": []any{map[string]any{"type": "base", "amount": map[string]any{"value": price, "currency": "USD"}}}}}}); err != nil {
			return err
		}
	}
	amb := map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
	for i, c := range r.cases {
		day, err := time.Parse(time.DateOnly, c.ServiceDate)
		if err != nil {
			return fmt.Errorf("%s: serviceDate: %w", c.Name, err)
		}
		patient, err := r.create(ctx, "Patient", map[string]any{"resourceType": "Patient", "gender": c.Patient.Sex, "birthDate": c.Patient.BirthDate,
			"name": []any{map[string]any{"family": fmt.Sprintf("Case%02d", i+1)}}})
		if err != nil {
			return err
		}
		if c.Established {
			if _, err := r.create(ctx, "Encounter", map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient),
				"period": map[string]any{"start": day.AddDate(-1, 0, 0).Format(time.DateOnly) + "T09:00:00Z"}}); err != nil {
				return err
			}
		}
		enc, err := r.create(ctx, "Encounter", map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient),
			"period":      map[string]any{"start": c.ServiceDate + "T10:00:00Z", "end": c.ServiceDate + "T10:30:00Z"},
			"participant": []any{map[string]any{"individual": ref(doctor)}}})
		if err != nil {
			return err
		}
		if _, err := r.create(ctx, "Coverage", map[string]any{"resourceType": "Coverage", "status": "active", "beneficiary": ref(patient),
			"payor": []any{map[string]any{"display": payers[i%len(payers)]}}}); err != nil {
			return err
		}
		r.subjects = append(r.subjects, subject{patient: patient, encounter: enc})
		doc, err := json.Marshal(map[string]any{"resourceType": "DocumentReference", "status": "current", "subject": ref(patient),
			"type":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "34109-9", "display": "Note"}}},
			"date":    c.ServiceDate + "T10:30:00Z",
			"context": map[string]any{"encounter": []any{ref(enc)}},
			"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain; charset=utf-8",
				"data": base64.StdEncoding.EncodeToString([]byte(c.Text))}}}})
		if err != nil {
			return err
		}
		r.docs = append(r.docs, doc)
	}
	return nil
}

// phase codes n transcripts, cycling the development set, on clients concurrent loops.
func (r *runner) phase(ctx context.Context, clients, n int) (phaseResult, error) {
	res := phaseResult{clients: clients}
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s, err := r.one(ctx, i)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
				res.samples = append(res.samples, s)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	return res, nil
}

// one posts the transcript of case i mod len(cases) and follows its coding run to completed.
func (r *runner) one(ctx context.Context, i int) (runSample, error) {
	k := i % len(r.cases)
	s := runSample{caseName: r.cases[k].Name}
	s.start = time.Now()
	doc, err := r.post(ctx, "DocumentReference", r.docs[k])
	if err != nil {
		return s, err
	}
	s.posted = time.Now()
	s.doc = doc
	run, err := benchkit.FollowTask(ctx, r.client, r.b.Base, "DocumentReference/"+doc, "urn:billy:pipeline|code", r.poll)
	s.task, s.seen = run.Task.ID, run.Seen
	s.queued, s.inProgress, s.completed = run.Requested, run.InProgress, run.Completed
	switch {
	case err != nil:
		return s, fmt.Errorf("%s: %w", s.caseName, err)
	case len(run.Task.Output) == 0:
		return s, fmt.Errorf("Task/%s (%s) completed without a Claim", s.task, s.caseName)
	case s.queued.IsZero():
		return s, fmt.Errorf("Task/%s: its history lacks a requested version", s.task)
	}
	return s, nil
}

// relayTimes reads when each run's coding job left the outbox for Redis: Billy's outbox table
// (migrations/004), whose relayed_at is the relay transaction's start, just before the enqueue.
func relayTimes(ctx context.Context, env *benchEnv, samples []runSample) error {
	keys := make([]string, len(samples))
	for i, s := range samples {
		keys[i] = "code:" + s.task
	}
	rows, err := env.pool.Query(ctx, `SELECT dedupe_key, min(relayed_at) FROM outbox WHERE dedupe_key = ANY($1) AND relayed_at IS NOT NULL GROUP BY dedupe_key`, keys)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	relayed := map[string]time.Time{}
	for rows.Next() {
		var k string
		var at time.Time
		if err := rows.Scan(&k, &at); err != nil {
			rows.Close()
			return fmt.Errorf("outbox: %w", err)
		}
		relayed[k] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	for i := range samples {
		at, ok := relayed["code:"+samples[i].task]
		if !ok {
			return fmt.Errorf("outbox: no relayed coding job for Task/%s", samples[i].task)
		}
		samples[i].relayed = at
	}
	return nil
}

// create posts a resource and returns its reference (Type/id).
func (r *runner) create(ctx context.Context, typ string, v map[string]any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	id, err := r.post(ctx, typ, b)
	return typ + "/" + id, err
}

// post creates a resource and returns its id.
func (r *runner) post(ctx context.Context, typ string, body []byte) (string, error) {
	return benchkit.Post(ctx, r.client, r.b.Base, typ, "application/fhir+json", body)
}

func (r *runner) get(ctx context.Context, path string, into any) error {
	return benchkit.GetJSON(ctx, r.client, r.b.Base+"/"+path, into)
}

var errNoTemplate = errors.New("no completed run to copy rows from")
