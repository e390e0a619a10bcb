-- The embedded store mirrors the Postgres schema; JSON is TEXT, time is REAL
-- (seconds since the epoch).

CREATE TABLE runs (
    id               TEXT    PRIMARY KEY,
    workflow         TEXT    NOT NULL,
    workflow_version INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 1,
    idempotency_key  TEXT    UNIQUE,
    input            TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    machine          TEXT    NOT NULL,
    current_states   TEXT    NOT NULL DEFAULT '[]',
    error            TEXT,
    trace_context    TEXT,
    deadline         REAL,
    sla_met          INTEGER,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    finished_at      REAL
);

CREATE INDEX runs_status_updated_idx ON runs (status, updated_at);
CREATE INDEX runs_workflow_created_idx ON runs (workflow, created_at);
CREATE INDEX runs_created_idx ON runs (created_at);
CREATE INDEX runs_finished_idx ON runs (finished_at);

CREATE TABLE history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version  INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    state    TEXT,
    attempt  INTEGER,
    at       REAL    NOT NULL,
    actor    TEXT,
    detail   TEXT    NOT NULL DEFAULT '{}'
);

CREATE UNIQUE INDEX history_transition_idx ON history (run_id, version, idx) WHERE kind <> 'rejected';
CREATE INDEX history_run_idx ON history (run_id, id);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT,
    kind          TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 1,
    headers       TEXT    NOT NULL DEFAULT '{}',
    created_at    REAL    NOT NULL,
    claimed_until REAL
);

CREATE TABLE timers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    purpose      TEXT    NOT NULL,
    seq          INTEGER,
    attempt      INTEGER,
    fire_at      REAL    NOT NULL,
    locked_until REAL,
    UNIQUE (run_id, key)
);

CREATE INDEX timers_fire_at_idx ON timers (fire_at);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,
    run_id      TEXT,
    workflow    TEXT,
    state       TEXT,
    seq         INTEGER,
    attempt     INTEGER,
    kind        TEXT,
    reason      TEXT    NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open',
    resolved_at REAL,
    resolved_by TEXT,
    message     TEXT,
    fingerprint TEXT    UNIQUE
);

CREATE INDEX dead_letters_status_created_idx ON dead_letters (status, created_at);
