-- Two indexes Postgres has had since 0001 and the embedded store lacked
-- (found by tests/contract/test_schemas.py): the relay's claim of old outbox
-- rows, and dead letters listed by workflow.

CREATE INDEX outbox_created_idx ON outbox (created_at);
CREATE INDEX dead_letters_workflow_idx ON dead_letters (workflow, created_at);
