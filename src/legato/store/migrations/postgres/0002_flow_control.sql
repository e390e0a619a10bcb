-- Flow control shared by every worker (docs/flow-control.md): the token
-- buckets of global rate limits and the slot leases of global concurrency
-- limits. Both tables stay small: rows of buckets that are full again and of
-- leases that expired are purged, since they mean the same as no row.

CREATE TABLE rate_buckets (
    bucket     text             PRIMARY KEY,
    -- Negative while tokens are reserved ahead of the refill (a debt).
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL,
    -- When the bucket is full again if nobody takes from it.
    full_at    timestamptz      NOT NULL
);

CREATE INDEX rate_buckets_full_idx ON rate_buckets (full_at);

CREATE TABLE concurrency_slots (
    bucket      text             NOT NULL,
    slot        integer          NOT NULL,
    holder      text             NOT NULL,
    lease       double precision NOT NULL,
    acquired_at timestamptz      NOT NULL,
    expires_at  timestamptz      NOT NULL,
    PRIMARY KEY (bucket, slot)
);

CREATE INDEX concurrency_slots_expires_idx ON concurrency_slots (expires_at);
