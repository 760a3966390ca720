package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg"
)

// DefaultQueue is the asynq queue of pipeline stages unless configured otherwise.
const DefaultQueue = "pipeline"

// enqueue records a stage job in the outbox, in the caller's transaction. dedupeKey, when not
// empty, allows one pending job per key (a second enqueue of the same stage of the same run is a
// no-op). The relay is woken by NOTIFY when the transaction commits.
func enqueue(ctx context.Context, tx pgx.Tx, taskType string, payload any, dedupeKey string) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	var key *string
	if dedupeKey != "" {
		key = &dedupeKey
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (task_type, payload, dedupe_key) VALUES ($1, $2, $3)
		ON CONFLICT (dedupe_key) WHERE done_at IS NULL AND dedupe_key IS NOT NULL DO NOTHING`, taskType, body, key); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify('billy_outbox', '')`)
	return err
}

// Enqueue records a job of another package (taskType, its JSON payload) in the outbox, in the
// caller's transaction: relayed to the pipeline's queue like the stages, and run by the worker's
// handler for taskType (Pipeline.Jobs). dedupeKey, when not empty, allows one pending job per key.
func Enqueue(ctx context.Context, tx pgx.Tx, taskType string, payload any, dedupeKey string) error {
	return enqueue(ctx, tx, taskType, payload, dedupeKey)
}

// taskIDPrefix starts the asynq task id of every outbox row: the prefix and the row's random
// task_id (a UUID), unique across databases, so a fresh or restored database sharing a Redis
// database with an earlier one never collides with the earlier one's tasks.
const taskIDPrefix = "billy-"

// taskID is the asynq task id of an outbox row's task_id: enqueuing a row twice is refused by asynq.
func taskID(rowTaskID string) string { return taskIDPrefix + rowTaskID }

// legacyTaskID reads the ids of rows relayed before migration 012 ("outbox-<row id>"), which may
// still be in Redis after an upgrade.
func legacyTaskID(taskID string) (int64, bool) {
	s, ok := strings.CutPrefix(taskID, "outbox-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// Relay moves outbox rows to Redis: at once when woken by NOTIFY, and every PollInterval anyway. It
// also replays rows whose jobs Redis no longer has (flushed, failed over) while not done.
type Relay struct {
	Pool      *pgxpool.Pool
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Log       *slog.Logger
	// PollInterval bounds the delay when a NOTIFY is missed; ReplayAfter is how long a relayed job
	// may be unknown to Redis before it is enqueued again.
	PollInterval, ReplayAfter time.Duration
	// MaxRetry is asynq's retry count for a stage.
	MaxRetry int
	// Queue is the asynq queue (DefaultQueue when empty).
	Queue string
	// Sweep, when set, runs with each replay: the pipeline's check that no run stays requested.
	Sweep func(ctx context.Context) error
}

func (r *Relay) queue() string {
	if r.Queue == "" {
		return DefaultQueue
	}
	return r.Queue
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	conn, err := r.Pool.Acquire(ctx)
	if err != nil {
		return stopped(ctx, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN billy_outbox`); err != nil {
		return stopped(ctx, err)
	}
	lastReplay := time.Time{}
	for {
		if err := r.relayPending(ctx); err != nil && ctx.Err() == nil {
			r.Log.ErrorContext(ctx, "outbox relay", "error", err.Error())
		}
		if time.Since(lastReplay) > r.ReplayAfter/2 {
			if err := r.replay(ctx); err != nil && ctx.Err() == nil {
				r.Log.ErrorContext(ctx, "outbox replay", "error", err.Error())
			}
			if r.Sweep != nil {
				if err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
					r.Log.ErrorContext(ctx, "pipeline: sweep of requested runs", "error", err.Error())
				}
			}
			lastReplay = time.Now()
		}
		wctx, cancel := context.WithTimeout(ctx, r.PollInterval)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("outbox listen: %w", err)
		}
	}
}

// stopped is err, or nil when ctx ended: a relay stopped while starting did not fail.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// relayPending enqueues every unrelayed row, oldest first, a batch at a time. Rows are claimed
// with SKIP LOCKED so several relays (several processes) share the work.
func (r *Relay) relayPending(ctx context.Context) error {
	for {
		n := 0
		err := pg.InTx(ctx, r.Pool, func(tx pgx.Tx) error {
			jobs, err := readJobs(ctx, tx, `SELECT id, task_id::text, task_type, payload FROM outbox WHERE relayed_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`)
			if err != nil {
				return err
			}
			var done []int64
			for _, j := range jobs {
				if err := r.send(ctx, j); err != nil {
					return err
				}
				done = append(done, j.id)
			}
			n = len(done)
			_, err = tx.Exec(ctx, `UPDATE outbox SET relayed_at = now() WHERE id = ANY($1)`, done)
			return err
		})
		if err != nil || n < 100 {
			return err
		}
	}
}

func (r *Relay) send(ctx context.Context, j job) error {
	_, err := r.Client.EnqueueContext(ctx, asynq.NewTask(j.typ, j.payload), asynq.TaskID(taskID(j.taskID)), asynq.Queue(r.queue()), asynq.MaxRetry(r.MaxRetry))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// Already in Redis: relayed before, by us or another process of this database (the id is
		// the row's own UUID, so no other database has it).
		return nil
	}
	return err
}

// replay re-enqueues rows relayed a while ago, not done, whose task Redis does not know: a Redis
// flush or failover lost it. A job that completed but whose done mark was lost is enqueued again
// too, which the stages tolerate (they are idempotent).
func (r *Relay) replay(ctx context.Context) error {
	jobs, err := readJobs(ctx, r.Pool, `SELECT id, task_id::text, task_type, payload FROM outbox WHERE done_at IS NULL AND relayed_at < $1 ORDER BY id LIMIT 1000`,
		time.Now().Add(-r.ReplayAfter))
	if err != nil {
		return err
	}
	for _, j := range jobs {
		_, err := r.Inspector.GetTaskInfo(r.queue(), taskID(j.taskID))
		if err == nil {
			continue
		}
		if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			return err
		}
		r.Log.WarnContext(ctx, "outbox job missing from the queue; enqueuing it again", "outbox_id", j.id, "task", j.typ)
		if err := r.send(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// job is an outbox row to send.
type job struct {
	id      int64
	taskID  string // the row's task_id (UUID)
	typ     string
	payload []byte
}

func readJobs(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]job, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (job, error) {
		var j job
		err := row.Scan(&j.id, &j.taskID, &j.typ, &j.payload)
		return j, err
	})
}

// markDone records that the job of an outbox row finished (or failed for good), so it is never
// replayed. A task id that is not Billy's, or no row of this database, changes nothing.
func markDone(ctx context.Context, pool *pgxpool.Pool, asynqTaskID string) error {
	if u, ok := strings.CutPrefix(asynqTaskID, taskIDPrefix); ok {
		if _, err := uuid.Parse(u); err != nil {
			return nil
		}
		_, err := pool.Exec(ctx, `UPDATE outbox SET done_at = now() WHERE task_id = $1 AND done_at IS NULL`, u)
		return err
	}
	if id, ok := legacyTaskID(asynqTaskID); ok {
		_, err := pool.Exec(ctx, `UPDATE outbox SET done_at = now() WHERE id = $1 AND done_at IS NULL`, id)
		return err
	}
	return nil
}
