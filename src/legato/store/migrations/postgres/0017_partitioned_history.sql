-- History partitioned by time (docs/retention.md, "Partitioned history").
--
-- The partition key is the creation time of the row's run (run_created_at),
-- by UTC day: all the history of one run lives in one partition. That is what
-- makes dropping a partition safe and cheap to decide: a day's partition can
-- go when no run created that day is left in `runs` -- retention removes only
-- finished runs past their retention without an open dead letter, so the
-- history of an unfinished run (however old) or of a run with an open dead
-- letter is never dropped; its day is kept, and the other runs of that day
-- are removed row by row. It also keeps the transition's uniqueness exact:
-- run_created_at is a function of run_id, so (run_id, version, idx,
-- run_created_at) is as unique as (run_id, version, idx) was.
--
-- The foreign key to runs goes: retention removes a day's runs first and drops
-- their history partition after, and a cascade would delete those rows one by
-- one. Only the store writes history, always with its run, in one transaction.
--
-- Partitions are created ahead of time by the workers (one maintenance task at
-- a time, lifecycle/retention.py); a default partition takes any row no
-- partition covers, so an insert never fails.
--
-- The rows move by a copy, the table locked meanwhile: 14 s per million rows
-- measured on a shared 2-core machine (docs/retention.md, make bench-history).

ALTER TABLE history RENAME TO history_unpartitioned;
ALTER TABLE history_unpartitioned DROP CONSTRAINT history_pkey;
ALTER TABLE history_unpartitioned DROP CONSTRAINT history_run_id_fkey;
DROP INDEX history_transition_idx;
DROP INDEX history_run_idx;
DROP INDEX history_outcomes_idx;
DROP INDEX history_failures_idx;

CREATE TABLE history (
    id             bigint      NOT NULL DEFAULT nextval('history_id_seq'),
    run_id         uuid        NOT NULL,
    version        integer     NOT NULL,
    idx            smallint    NOT NULL,
    kind           text        NOT NULL,
    state          text,
    attempt        integer,
    at             timestamptz NOT NULL,
    actor          text,
    detail         jsonb       NOT NULL DEFAULT '{}',
    run_created_at timestamptz NOT NULL,
    PRIMARY KEY (id, run_created_at)
) PARTITION BY RANGE (run_created_at);

ALTER SEQUENCE history_id_seq OWNED BY history.id;

CREATE TABLE history_default PARTITION OF history DEFAULT;

-- A partition for every day that has runs, and for the next week.
DO $$
DECLARE
    day date;
BEGIN
    FOR day IN
        SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM runs
        UNION
        SELECT generate_series((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 7, interval '1 day')::date
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF history FOR VALUES FROM (%L) TO (%L)',
            'history_' || to_char(day, 'YYYYMMDD'),
            day::timestamp AT TIME ZONE 'UTC',
            (day + 1)::timestamp AT TIME ZONE 'UTC'
        );
    END LOOP;
END
$$;

-- Every row had its run (the foreign key saw to it).
INSERT INTO history (id, run_id, version, idx, kind, state, attempt, at, actor, detail, run_created_at)
SELECT h.id, h.run_id, h.version, h.idx, h.kind, h.state, h.attempt, h.at, h.actor, h.detail, r.created_at
FROM history_unpartitioned h JOIN runs r ON r.id = h.run_id;

DROP TABLE history_unpartitioned;

-- The indexes are built after the copy (faster than maintaining them during it).
CREATE UNIQUE INDEX history_transition_idx ON history (run_id, version, idx, run_created_at)
    WHERE kind <> 'rejected';
CREATE INDEX history_run_idx ON history (run_id, id);
CREATE INDEX history_outcomes_idx ON history (at)
    WHERE kind IN ('step_succeeded', 'step_failed', 'compensation_succeeded', 'compensation_failed');
CREATE INDEX history_failures_idx ON history (at)
    WHERE kind IN ('step_failed', 'compensation_failed');

-- Search attributes (docs/concepts.md, "Search attributes"): the values of the
-- paths a workflow declares, as a JSON object of strings, written by the same
-- statement as the transition that changes the run's data. A search is a
-- containment (search @> '{"customer.id": "42"}') answered by the GIN index;
-- runs of workflows that declare nothing keep NULL and cost the index nothing.
ALTER TABLE runs ADD COLUMN search jsonb;
CREATE INDEX runs_search_idx ON runs USING gin (search jsonb_path_ops) WHERE search IS NOT NULL;
