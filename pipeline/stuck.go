package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
)

// maxDeliveries is how often the sweep lets a run's stage be queued before it fails the run: a
// stage that was delivered this often and never started its run will not start it next time.
const maxDeliveries = 3

// sweepStuck makes every run that is still requested ReplayAfter after it was queued move: no run
// stays requested forever. The replay already resends a stage Redis lost; what is left here is a
// stage that Redis still holds, or that ended, without ever starting its run:
//
//   - the stage waits in the queue (pending, scheduled, retrying): nothing to do but to say so,
//     once per sweep, since the usual cause is that no worker runs;
//   - the stage ended (archived, completed) or its row is done, yet the run never started: a worker
//     of another database sharing the Redis queue took it, or the run's write was lost. The stage is
//     queued again, with a new task id, up to maxDeliveries times; then the run fails, saying why.
func (p *Pipeline) sweepStuck(ctx context.Context, r *Relay) error {
	cutoff := p.now().Add(-r.ReplayAfter)
	q, err := searchQuery("Task", url.Values{
		"status":       {"requested"},
		"code":         {stageSystem + "|transcribe," + stageSystem + "|code"},
		"_lastUpdated": {"lt" + resource.FormatInstant(cutoff)},
	}, p.Base)
	if err != nil {
		return err
	}
	refs, err := p.Store.Match(ctx, q, 100)
	if err != nil {
		return fmt.Errorf("requested runs: %w", err)
	}
	waiting := 0
	for _, ref := range refs {
		w, err := p.unstick(ctx, r, ref.ID)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.Log.ErrorContext(ctx, "pipeline: cannot move a requested run", "run", ref.ID, "error", err.Error())
			continue
		}
		if w {
			waiting++
		}
	}
	if waiting > 0 {
		p.Log.WarnContext(ctx, "pipeline: runs wait in the queue longer than BILLY_PIPELINE_REPLAY_AFTER; is a worker running (billy serve without --worker=false, or billy worker) on this queue?",
			"runs", waiting, "queue", r.queue(), "replay_after", r.ReplayAfter.String())
	}
	return nil
}

// stageRow is an outbox row of a run's stage.
type stageRow struct {
	id            int64
	taskID        string
	relayed, done bool
}

// unstick looks at one requested run, in a transaction holding its Task, and queues its stage
// again or fails it. It reports whether the run simply waits in the queue.
func (p *Pipeline) unstick(ctx context.Context, r *Relay, id string) (waiting bool, err error) {
	err = p.Store.InTx(ctx, func(tx *store.Tx) error {
		run, err := p.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if run.task["status"] != "requested" {
			return nil // it moved meanwhile
		}
		kind := runKind(run.task)
		if kind == "" {
			return nil
		}
		key := kind + ":" + id
		rows, err := tx.PgTx().Query(ctx, `SELECT id, task_id::text, relayed_at IS NOT NULL, done_at IS NOT NULL FROM outbox WHERE dedupe_key = $1 ORDER BY id`, key)
		if err != nil {
			return err
		}
		stages, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stageRow, error) {
			var s stageRow
			err := row.Scan(&s.id, &s.taskID, &s.relayed, &s.done)
			return s, err
		})
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		lastErr := ""
		if n := len(stages); n > 0 && !stages[n-1].done {
			last := stages[n-1]
			if !last.relayed {
				return nil // the relay sends it (and logs why when it cannot)
			}
			info, err := r.Inspector.GetTaskInfo(r.queue(), taskID(last.taskID))
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				return nil // Redis lost it: the replay sends it again
			case err != nil:
				return fmt.Errorf("queue: %w", err)
			case info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted:
				waiting = true
				return nil
			}
			// The stage ended without starting the run.
			lastErr = info.LastErr
			if _, err := tx.PgTx().Exec(ctx, `UPDATE outbox SET done_at = now() WHERE id = $1`, last.id); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		age := p.now().Sub(run.version.LastUpdated).Round(time.Second)
		if len(stages) >= maxDeliveries {
			reason := fmt.Sprintf("the run stayed requested for %s: its stage was queued %d times and never started it", age, len(stages))
			if lastErr != "" {
				reason += " (last error: " + lastErr + ")"
			}
			reason += "; if another Billy database uses the same Redis database, give each its own BILLY_PIPELINE_QUEUE"
			p.Log.WarnContext(ctx, "pipeline: failing a run that never started", "run", id, "deliveries", len(stages))
			return p.setStatus(ctx, tx, run, "failed", stageName[kind]+" failed", reason)
		}
		p.Log.WarnContext(ctx, "pipeline: a run is still requested after BILLY_PIPELINE_REPLAY_AFTER and its stage is not queued; queuing it again",
			"run", id, "requested_for", age.String(), "delivery", len(stages)+1, "last_error", lastErr)
		return enqueue(ctx, tx.PgTx(), stageTask[kind], stagePayload{Task: id}, key)
	})
	return waiting, err
}

// stageName and stageTask are the stage of a run kind, for messages and for the queue.
var (
	stageName = map[string]string{"transcribe": "transcription", "code": "coding"}
	stageTask = map[string]string{"transcribe": TaskTranscribe, "code": TaskCode}
)

// runKind is the stage kind of a run's Task (its code in stageSystem).
func runKind(task map[string]any) string {
	code, _ := task["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	for _, c := range codings {
		c, _ := c.(map[string]any)
		if c["system"] == stageSystem {
			k, _ := c["code"].(string)
			if _, ok := stageTask[k]; ok {
				return k
			}
		}
	}
	return ""
}
