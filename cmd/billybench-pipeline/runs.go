package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
)

var errNoSamples = errors.New("no run completed")

// runner drives runs through intake → transcript against one Billy.
type runner struct {
	base               string // FHIR base URL
	client             *http.Client
	pool               *pgxpool.Pool // the benchmark's database, for the outbox
	wav                []byte
	stub               *sttStub
	patient, encounter string
	o                  options
}

func newRunner(ctx context.Context, base string, pool *pgxpool.Pool, wav []byte, stub *sttStub, o options) (*runner, error) {
	conns := 2 * maxInt(o.clients)
	r := &runner{base: base, pool: pool, wav: wav, stub: stub, o: o, client: &http.Client{
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns},
		Timeout:   2 * time.Minute,
	}}
	var err error
	if r.patient, err = r.create(ctx, "Patient", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Bench"}}}); err != nil {
		return nil, err
	}
	r.encounter, err = r.create(ctx, "Encounter", map[string]any{"resourceType": "Encounter", "status": "finished",
		"class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": ref(r.patient)})
	return r, err
}

func maxInt(ns []int) int {
	m := 0
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}

func ref(s string) map[string]any { return map[string]any{"reference": s} }

// runSample is what one run measured: the client's clock around its requests, and the server's
// stamps of the run (Task authoredOn, meta.lastUpdated of its versions, and the relay time of its
// outbox row). They are compared directly: they are the same machine's clock.
type runSample struct {
	task string // Task id
	// Client clock: before the Binary POST, before the Media POST, after it, and when a poll first
	// read the completed Task.
	start, media, created, seen time.Time
	// Server stamps: the run's Task written (in the Media's transaction), its outbox row relayed to
	// Redis (the relay's transaction start, just before the enqueue), the transcription stage's
	// first transaction (in-progress) and its last (completed).
	authored, relayed, inProgress, completed time.Time
}

func (s runSample) binaryPOST() time.Duration  { return s.media.Sub(s.start) }
func (s runSample) mediaPOST() time.Duration   { return s.created.Sub(s.media) }
func (s runSample) queueWait() time.Duration   { return s.inProgress.Sub(s.authored) }
func (s runSample) relay() time.Duration       { return s.relayed.Sub(s.authored) }
func (s runSample) pickup() time.Duration      { return s.inProgress.Sub(s.relayed) }
func (s runSample) transcribe() time.Duration  { return s.completed.Sub(s.inProgress) }
func (s runSample) total() time.Duration       { return s.completed.Sub(s.start) }
func (s runSample) mediaToDone() time.Duration { return s.completed.Sub(s.media) }
func (s runSample) observed() time.Duration    { return s.seen.Sub(s.media) }

// warmUp does two runs that are not counted: connections, the engine's Device, first-use paths.
func (r *runner) warmUp(ctx context.Context) error {
	for range 2 {
		if _, err := r.one(ctx); err != nil {
			return err
		}
	}
	r.stub.take()
	return nil
}

// runsResult is one timed phase at a client count.
type runsResult struct {
	clients  int
	elapsed  time.Duration
	samples  []runSample
	stub     latencies // the stub's time per answer
	overhead latencies // per run: total less the stub's time per run
}

func (r runsResult) perMinute() float64 { return float64(len(r.samples)) / r.elapsed.Minutes() }

// stubPerRun is the stub's own time per run (its answers' total over the runs).
func (r runsResult) stubPerRun() time.Duration {
	var sum time.Duration
	for _, d := range r.stub {
		sum += d
	}
	if len(r.samples) == 0 {
		return 0
	}
	return sum / time.Duration(len(r.samples))
}

func (r runsResult) stage(f func(runSample) time.Duration) latencies {
	l := make(latencies, len(r.samples))
	for i, s := range r.samples {
		l[i] = f(s)
	}
	return l
}

func (r runsResult) summary() string {
	done := r.stage(runSample.mediaToDone)
	return fmt.Sprintf("%d runs in %s = %.0f runs/min; Media → transcript p50 %s p95 %s; overhead p50 %s",
		len(r.samples), r.elapsed.Round(100*time.Millisecond), r.perMinute(), benchkit.Ms(done.P(50)), benchkit.Ms(done.P(95)), benchkit.Ms(r.overhead.P(50)))
}

// phase runs clients loops for the duration; a run started before the end is finished and counted,
// and the rate is over the time until the last one finished.
func (r *runner) phase(ctx context.Context, clients int, cfg billyConfig) (runsResult, error) {
	// The previous phase's coding stages (one per run) must not land in this one.
	if err := queueIdle(ctx, cfg.redisURL, cfg.queue, time.Minute); err != nil {
		return runsResult{}, err
	}
	r.stub.take()
	res := runsResult{clients: clients}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(r.o.duration)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) && ctx.Err() == nil {
				s, err := r.one(ctx)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				res.samples = append(res.samples, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(res.samples) == 0 {
		return res, errNoSamples
	}
	var bad int
	res.stub, bad = r.stub.take()
	if bad > 0 {
		return res, fmt.Errorf("the speech-to-text stub got %d requests it could not read", bad)
	}
	if err := r.relayTimes(ctx, res.samples); err != nil {
		return res, err
	}
	per := res.stubPerRun()
	for _, s := range res.samples {
		res.overhead = append(res.overhead, s.total()-per)
	}
	return res, nil
}

// relayTimes reads when each run's transcription job left the outbox for Redis. The outbox is
// Billy's table (migrations/004); its relayed_at is the relay transaction's start, taken just before
// the job is enqueued, which splits the queue wait into the relay's share and asynq's.
func (r *runner) relayTimes(ctx context.Context, samples []runSample) error {
	keys := make([]string, len(samples))
	for i, s := range samples {
		keys[i] = "transcribe:" + s.task
	}
	rows, err := r.pool.Query(ctx, `SELECT dedupe_key, relayed_at FROM outbox WHERE dedupe_key = ANY($1) AND relayed_at IS NOT NULL`, keys)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	relayed := map[string]time.Time{}
	for rows.Next() {
		var k string
		var at time.Time
		if err := rows.Scan(&k, &at); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if prev, ok := relayed[k]; !ok || at.Before(prev) {
			relayed[k] = at
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	for i := range samples {
		at, ok := relayed["transcribe:"+samples[i].task]
		if !ok {
			return fmt.Errorf("outbox: no relayed transcription job for Task/%s", samples[i].task)
		}
		samples[i].relayed = at
	}
	return nil
}

// one is a run: upload the audio, create the Media, wait for its transcription Task to complete,
// then read the Task's history for the server's stamps.
func (r *runner) one(ctx context.Context) (runSample, error) {
	var s runSample
	s.start = time.Now()
	bin, err := r.post(ctx, "Binary", "audio/wav", r.wav)
	if err != nil {
		return s, err
	}
	s.media = time.Now()
	media, err := r.create(ctx, "Media", map[string]any{
		"resourceType": "Media", "status": "completed",
		"type":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "audio"}}},
		"subject": ref(r.patient), "encounter": ref(r.encounter),
		"content": map[string]any{"contentType": "audio/wav", "url": bin, "size": len(r.wav)},
	})
	if err != nil {
		return s, err
	}
	s.created = time.Now()

	run, err := benchkit.FollowTask(ctx, r.client, r.base, media, "urn:billy:pipeline|transcribe", r.o.poll)
	s.task, s.seen = run.Task.ID, run.Seen
	s.authored, s.inProgress, s.completed = run.Authored, run.InProgress, run.Completed
	return s, err
}

// create posts a resource and returns its reference (Type/id).
func (r *runner) create(ctx context.Context, typ string, v map[string]any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return r.post(ctx, typ, "application/fhir+json", b)
}

// post creates a resource (or uploads a Binary) and returns its reference.
func (r *runner) post(ctx context.Context, typ, contentType string, body []byte) (string, error) {
	id, err := benchkit.Post(ctx, r.client, r.base, typ, contentType, body)
	return typ + "/" + id, err
}

func (r *runner) get(ctx context.Context, path string, into any) error {
	return benchkit.GetJSON(ctx, r.client, r.base+"/"+path, into)
}
