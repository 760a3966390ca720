package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/iambilly/billy/fhir"
)

// WorkerConfig tunes the worker.
type WorkerConfig struct {
	// Redis is where the queue lives.
	Redis asynq.RedisConnOpt
	// Concurrency is how many stages run at once.
	Concurrency int
	// MaxRetry bounds the retries of a stage that fails transiently.
	MaxRetry int
	// ReplayAfter is how long a relayed job may be missing from Redis before it is enqueued again.
	ReplayAfter time.Duration
	// Queue is the asynq queue (DefaultQueue when empty): Billy instances sharing a Redis database
	// need queues of their own.
	Queue string
}

// RunRelay relays the outbox to Redis until ctx ends. Every API process runs one, so a job is
// relayed promptly whichever process wrote it.
func (p *Pipeline) RunRelay(ctx context.Context, cfg WorkerConfig) error {
	client := asynq.NewClient(cfg.Redis)
	defer client.Close()
	insp := asynq.NewInspector(cfg.Redis)
	defer insp.Close()
	r := &Relay{Pool: p.Pool, Client: client, Inspector: insp, Log: p.Log, PollInterval: time.Second, ReplayAfter: cfg.ReplayAfter, MaxRetry: cfg.MaxRetry, Queue: cfg.Queue}
	if r.ReplayAfter == 0 {
		r.ReplayAfter = time.Minute
	}
	if p.Store != nil {
		r.Sweep = func(ctx context.Context) error { return p.sweepStuck(ctx, r) }
	}
	return r.Run(ctx)
}

// RunWorker processes stages until ctx ends, then lets running stages finish (asynq's shutdown
// timeout) and returns. It also runs a relay.
func (p *Pipeline) RunWorker(ctx context.Context, cfg WorkerConfig) error {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	srv := asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency: cfg.Concurrency,
		// asynq polls an empty queue (no blocking pop); its 1 s default made every run on an idle
		// worker wait ~1 s before starting. 50 ms costs ~20 Redis calls a second per idle worker.
		TaskCheckInterval: 50 * time.Millisecond,
		Queues:            map[string]int{cfg.Queue: 1},
		ShutdownTimeout:   20 * time.Second,
		Logger:            asynqLogger{p.Log},
		RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
			return min(time.Duration(1<<min(n, 8))*2*time.Second, 5*time.Minute) // 2 s, 4 s, ... 5 min
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			p.Log.WarnContext(ctx, "pipeline stage failed", "task", t.Type(), "error", err.Error())
		}),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TaskTranscribe, p.finishing("transcription", p.handleTranscribe))
	mux.HandleFunc(TaskCode, p.finishing("coding", p.handleCode))
	for typ, fn := range p.Jobs {
		mux.HandleFunc(typ, p.finishing(typ, func(ctx context.Context, t *asynq.Task) error { return fn(ctx, t.Payload()) }))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.RunRelay(gctx, cfg) })
	g.Go(func() error {
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("asynq: %w", err)
		}
		<-gctx.Done()
		srv.Shutdown()
		return nil
	})
	return g.Wait()
}

// finishing marks a stage's outbox row done when the stage succeeds or fails for good, so a Redis
// replay never runs it again. A transient error on the last attempt fails the run, so no Task
// stays in progress forever. A job whose run is not in this database is dropped, saying so: it
// belongs to another database whose Billy shares the Redis queue, and that Billy's sweep queues it
// again (sweepStuck).
func (p *Pipeline) finishing(stage string, h asynq.HandlerFunc) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		var pl stagePayload
		if json.Unmarshal(t.Payload(), &pl) == nil && pl.Task != "" {
			if _, err := p.Store.Read(ctx, "Task", pl.Task); errors.Is(err, fhir.ErrNotFound) {
				id, _ := asynq.GetTaskID(ctx)
				p.Log.WarnContext(ctx, "pipeline: dropping a job whose run is not in this database; if another Billy database uses the same Redis database, give each its own BILLY_PIPELINE_QUEUE",
					"task", t.Type(), "run", pl.Task, "job", id)
				return fmt.Errorf("run Task/%s is not in this database: %w", pl.Task, asynq.SkipRetry)
			}
		}
		err := h(ctx, t)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if err != nil && !errors.Is(err, asynq.SkipRetry) && retried >= maxRetry && pl.Task != "" {
			err = p.fail(context.WithoutCancel(ctx), pl.Task, stage, fmt.Errorf("gave up after %d attempts: %w", retried+1, err))
		}
		p.auditStage(ctx, stage, pl.Task, err)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			id, _ := asynq.GetTaskID(ctx)
			if merr := markDone(context.WithoutCancel(ctx), p.Pool, id); merr != nil {
				p.Log.ErrorContext(ctx, "outbox: cannot mark a job done", "error", merr.Error())
			}
		}
		return err
	}
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
