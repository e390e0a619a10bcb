-- Completion from outside: a step whose handler handed its completion to a
-- token (CompleteLater) waits until the token is completed or failed (legato
-- complete / fail, the client, POST /tokens/{token}/...) or its timeout fires.
-- Only the token's SHA-256 is kept: a database read does not yield a token
-- that completes a step. The row is written in the transaction that records
-- the wait, and settled in the one that ends it (exactly one of: completed,
-- failed, timed_out), so a token is single-use and a second try can be told
-- what became of the first.
CREATE TABLE completion_tokens (
    digest     text        PRIMARY KEY,
    run_id     uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        integer     NOT NULL,
    attempt    integer     NOT NULL,
    state      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    settled_at timestamptz,
    outcome    text,
    settled_by text
);
CREATE INDEX completion_tokens_run_idx ON completion_tokens (run_id, seq, attempt);
