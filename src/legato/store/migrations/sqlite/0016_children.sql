-- Child runs: the run that started each (see the Postgres migration 0016).

ALTER TABLE runs ADD COLUMN parent_run_id TEXT;

CREATE INDEX runs_parent_idx ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
