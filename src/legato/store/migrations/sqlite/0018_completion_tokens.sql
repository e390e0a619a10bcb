-- Completion tokens: mirrors the Postgres table (only the token's SHA-256 is kept).
CREATE TABLE completion_tokens (
    digest     TEXT    PRIMARY KEY,
    run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    expires_at REAL,
    settled_at REAL,
    outcome    TEXT,
    settled_by TEXT
);
CREATE INDEX completion_tokens_run_idx ON completion_tokens (run_id, seq, attempt);
