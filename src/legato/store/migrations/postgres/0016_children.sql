-- Child runs (a child state's run of another workflow): the run that started
-- each, so that `legato runs --parent RUN`, `legato show` and the dashboard
-- find a run's children. The rest of the link (the parent's step and attempt)
-- is in the child's machine document. No foreign key: retention may remove a
-- parent before its children.

ALTER TABLE runs ADD COLUMN parent_run_id uuid;

CREATE INDEX runs_parent_idx ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
