-- Why: jobs triggered by a write (pipeline stages) are recorded in the same transaction as the write
-- and relayed to the queue (asynq on Redis) afterwards, so no job is lost when a process dies between
-- commit and enqueue, and none is duplicated when the relay runs twice (the row id is the queue's
-- task id). Rows stay after relaying until their job is done, so a lost Redis can be replayed.

CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_type  text        NOT NULL,
    payload    jsonb       NOT NULL,
    -- at most one pending job per key (a stage of a run, say)
    dedupe_key text,
    created_at timestamptz NOT NULL DEFAULT now(),
    relayed_at timestamptz,
    done_at    timestamptz
);
CREATE INDEX outbox_unrelayed ON outbox (id) WHERE relayed_at IS NULL;
CREATE INDEX outbox_undone ON outbox (id) WHERE done_at IS NULL;
CREATE UNIQUE INDEX outbox_dedupe ON outbox (dedupe_key) WHERE done_at IS NULL AND dedupe_key IS NOT NULL;
