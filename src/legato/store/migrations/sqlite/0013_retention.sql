-- Retention (docs/retention.md): the Postgres migration of the same number,
-- mirrored.

CREATE TABLE retired_keys (
    key         TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    finished_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);

CREATE INDEX retired_keys_expires_idx ON retired_keys (expires_at);

CREATE TABLE maintenance_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);

CREATE INDEX runs_workflow_finished_idx ON runs (workflow, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX dead_letters_run_idx ON dead_letters (run_id) WHERE run_id IS NOT NULL;
