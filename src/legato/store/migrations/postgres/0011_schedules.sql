-- Schedules (docs/events.md): declared in code or created at run time, fired
-- by the durable timers. A schedule's timer is a row of `timers` with no run.

CREATE TABLE schedules (
    name         text        PRIMARY KEY,
    workflow     text        NOT NULL,
    spec         jsonb       NOT NULL,
    input        jsonb       NOT NULL,
    source       text        NOT NULL,
    paused       boolean     NOT NULL DEFAULT false,
    next_tick    timestamptz NOT NULL,
    buffered     timestamptz,
    last_run_id  uuid,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE schedule_ticks (
    id           bigserial   PRIMARY KEY,
    schedule     text        NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    outcome      text        NOT NULL,
    nominal      timestamptz NOT NULL,
    count        integer     NOT NULL,
    run_id       uuid,
    at           timestamptz NOT NULL
);

CREATE INDEX schedule_ticks_schedule_idx ON schedule_ticks (schedule, id);

ALTER TABLE timers ALTER COLUMN run_id DROP NOT NULL;
ALTER TABLE timers ADD COLUMN schedule text REFERENCES schedules (name) ON DELETE CASCADE;
-- One timer per schedule: the next tick's.
CREATE UNIQUE INDEX timers_schedule_idx ON timers (schedule) WHERE schedule IS NOT NULL;
