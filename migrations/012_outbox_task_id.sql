-- Why: a row's asynq task id was "outbox-<row id>", so a fresh or restored database sharing a Redis
-- database (and queue) with an earlier one reused the earlier database's ids: asynq refused the
-- enqueue as a duplicate (ErrTaskIDConflict), the relay took that for "already relayed", and the
-- run's Task stayed requested forever with nothing logged. Each row now carries a random UUID that
-- names its task, unique across databases. Existing rows get one too.

ALTER TABLE outbox ADD COLUMN task_id uuid NOT NULL DEFAULT gen_random_uuid();
-- The worker marks a job done by its task id.
CREATE INDEX outbox_task_id_undone ON outbox (task_id) WHERE done_at IS NULL;
