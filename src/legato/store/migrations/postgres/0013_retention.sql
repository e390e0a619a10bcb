-- Retention (docs/retention.md). Finished runs older than their workflow's
-- retention period are removed with their history, timers, outbox rows and
-- resolved dead letters; their idempotency keys stay here until expires_at,
-- so a redelivered event or a repeated start key cannot start a second run.

CREATE TABLE retired_keys (
    key         text        PRIMARY KEY,
    run_id      uuid        NOT NULL,
    workflow    text        NOT NULL,
    finished_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX retired_keys_expires_idx ON retired_keys (expires_at);

-- Maintenance every worker may do but only one at a time does (retention):
-- a lease per task, taken while free or expired.
CREATE TABLE maintenance_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Retention finds the finished runs of a workflow by age, and the dead
-- letters of the runs it removes. The outbox gets no index on run_id: it is
-- small (rows go when published) and every transition inserts into it.
CREATE INDEX runs_workflow_finished_idx ON runs (workflow, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX dead_letters_run_idx ON dead_letters (run_id) WHERE run_id IS NOT NULL;
