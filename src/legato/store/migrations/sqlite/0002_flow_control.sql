-- Flow control shared by every worker: token buckets of global rate limits
-- and slot leases of global concurrency limits (mirrors Postgres).

CREATE TABLE rate_buckets (
    bucket     TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at REAL NOT NULL,
    full_at    REAL NOT NULL
);

CREATE INDEX rate_buckets_full_idx ON rate_buckets (full_at);

CREATE TABLE concurrency_slots (
    bucket      TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    lease       REAL    NOT NULL,
    acquired_at REAL    NOT NULL,
    expires_at  REAL    NOT NULL,
    PRIMARY KEY (bucket, slot)
);

CREATE INDEX concurrency_slots_expires_idx ON concurrency_slots (expires_at);
