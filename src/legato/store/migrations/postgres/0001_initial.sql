-- legato's schema: runs, their append-only history, the transactional outbox,
-- durable timers and dead letters.

CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    workflow         text        NOT NULL,
    workflow_version integer     NOT NULL,
    status           text        NOT NULL,
    version          integer     NOT NULL,
    priority         smallint    NOT NULL DEFAULT 1,
    idempotency_key  text        UNIQUE,
    input            jsonb       NOT NULL,
    data             jsonb       NOT NULL,
    machine          jsonb       NOT NULL,
    current_states   text[]      NOT NULL DEFAULT '{}',
    error            jsonb,
    trace_context    jsonb,
    deadline         timestamptz,
    sla_met          boolean,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz
);

CREATE INDEX runs_status_updated_idx ON runs (status, updated_at DESC);
CREATE INDEX runs_workflow_created_idx ON runs (workflow, created_at DESC);
CREATE INDEX runs_created_idx ON runs (created_at DESC);
CREATE INDEX runs_finished_idx ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE history (
    id       bigserial   PRIMARY KEY,
    run_id   uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version  integer     NOT NULL,
    idx      smallint    NOT NULL,
    kind     text        NOT NULL,
    state    text,
    attempt  integer,
    at       timestamptz NOT NULL,
    actor    text,
    detail   jsonb       NOT NULL DEFAULT '{}'
);

-- A transition is recorded exactly once: (run, version, idx) is unique.
-- Rejected events are recorded too, at the version they were rejected at.
CREATE UNIQUE INDEX history_transition_idx ON history (run_id, version, idx) WHERE kind <> 'rejected';
CREATE INDEX history_run_idx ON history (run_id, id);

CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    run_id        uuid,
    kind          text        NOT NULL,
    body          bytea       NOT NULL,
    priority      smallint    NOT NULL DEFAULT 1,
    headers       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    claimed_until timestamptz
);

CREATE INDEX outbox_created_idx ON outbox (created_at);

CREATE TABLE timers (
    id           bigserial   PRIMARY KEY,
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key          text        NOT NULL,
    purpose      text        NOT NULL,
    seq          integer,
    attempt      integer,
    fire_at      timestamptz NOT NULL,
    locked_until timestamptz,
    UNIQUE (run_id, key)
);

CREATE INDEX timers_fire_at_idx ON timers (fire_at);

CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL,
    run_id      uuid,
    workflow    text,
    state       text,
    seq         integer,
    attempt     integer,
    kind        text,
    reason      text        NOT NULL,
    error       jsonb,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    status      text        NOT NULL DEFAULT 'open',
    resolved_at timestamptz,
    resolved_by text,
    message     jsonb,
    fingerprint text        UNIQUE
);

CREATE INDEX dead_letters_status_created_idx ON dead_letters (status, created_at);
CREATE INDEX dead_letters_workflow_idx ON dead_letters (workflow, created_at);
