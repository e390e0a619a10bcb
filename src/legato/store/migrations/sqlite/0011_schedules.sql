-- Schedules (docs/events.md): declared in code or created at run time, fired
-- by the durable timers. A schedule's timer is a row of `timers` with no run.

CREATE TABLE schedules (
    name         TEXT    PRIMARY KEY,
    workflow     TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    input        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_tick    REAL    NOT NULL,
    buffered     REAL,
    last_run_id  TEXT,
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL
);

CREATE TABLE schedule_ticks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule     TEXT    NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    outcome      TEXT    NOT NULL,
    nominal      REAL    NOT NULL,
    count        INTEGER NOT NULL,
    run_id       TEXT,
    at           REAL    NOT NULL
);

CREATE INDEX schedule_ticks_schedule_idx ON schedule_ticks (schedule, id);

-- SQLite cannot drop a NOT NULL: the timers table is rebuilt with a nullable
-- run_id and the schedule column.
CREATE TABLE timers_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT    REFERENCES runs (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    purpose      TEXT    NOT NULL,
    seq          INTEGER,
    attempt      INTEGER,
    fire_at      REAL    NOT NULL,
    locked_until REAL,
    schedule     TEXT    REFERENCES schedules (name) ON DELETE CASCADE,
    UNIQUE (run_id, key)
);
INSERT INTO timers_new (id, run_id, key, purpose, seq, attempt, fire_at, locked_until)
    SELECT id, run_id, key, purpose, seq, attempt, fire_at, locked_until FROM timers;
DROP TABLE timers;
ALTER TABLE timers_new RENAME TO timers;
CREATE INDEX timers_fire_at_idx ON timers (fire_at);
CREATE UNIQUE INDEX timers_schedule_idx ON timers (schedule) WHERE schedule IS NOT NULL;
