"""Every SQL statement the Postgres store runs, by name."""

from legato.machine.vocabulary import HistoryKind
from legato.store.rows import RUN_COLUMNS

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number     integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

APPLIED_MIGRATIONS = "SELECT number FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (number, name) VALUES ($1, $2)"

_RUN_COLUMNS = """
    id, workflow, workflow_version, status, version, priority, idempotency_key,
    input, data, machine, current_states, error, trace_context, deadline, sla_met,
    created_at, updated_at, finished_at, search
"""

INSERT_RUN = f"""
INSERT INTO runs ({_RUN_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""


SELECT_RUNS = f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ANY($1::uuid[])"

SELECT_RUN_BY_KEY = f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = $1"

SELECT_RUNS_BY_KEYS = f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = ANY($1::text[])"

# How group creation (creation.py) reads a run's columns from its JSON document:
# timestamps travel as epoch seconds, like the group commit's.
_RUN_TYPES = {
    "id": "uuid", "workflow": "text", "workflow_version": "integer", "status": "text",
    "version": "integer", "priority": "smallint", "idempotency_key": "text", "input": "jsonb",
    "data": "jsonb", "machine": "jsonb", "current_states": "text[]", "error": "jsonb",
    "trace_context": "jsonb", "deadline": "timestamptz", "sla_met": "boolean",
    "created_at": "timestamptz", "updated_at": "timestamptz", "finished_at": "timestamptz",
    "search": "jsonb",
}  # fmt: skip
assert set(_RUN_TYPES) == set(RUN_COLUMNS), "every run column needs its type here"


def _run_value(column: str) -> str:
    return f"to_timestamp(i.{column})" if _RUN_TYPES[column] == "timestamptz" else f"i.{column}"


def _run_field(column: str) -> str:
    kind = _RUN_TYPES[column]
    return f"{column} {'double precision' if kind == 'timestamptz' else kind}"


INSERT_RUNS = f"""
INSERT INTO runs ({", ".join(RUN_COLUMNS)})
SELECT {", ".join(_run_value(c) for c in RUN_COLUMNS)}
FROM jsonb_to_recordset($1::jsonb) AS i({", ".join(_run_field(c) for c in RUN_COLUMNS)})
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""

# Whether any of the keys (with the time each run was created) was retired.
ANY_RETIRED_KEY = """
SELECT EXISTS (
    SELECT 1 FROM retired_keys r
    JOIN unnest($1::text[], $2::timestamptz[]) AS u(key, at) ON r.key = u.key AND r.expires_at > u.at
)
"""

# The run that held a key and was removed by retention (docs/retention.md).
RETIRED_KEY = "SELECT run_id, expires_at FROM retired_keys WHERE key = $1 AND expires_at > $2"

# A decision's history rows and task outbox rows, as the two statements below
# take them: history rows as a JSON document expanded by jsonb_to_recordset (a
# thousand array elements cost the worker a type check each, the server's JSON
# parser next to nothing -- and the worker is the busier of the two), outbox
# rows as column arrays. `{keep}` picks the runs whose rows are written. A row
# carries its run's creation time: the partition key (migration 0017).
_HISTORY = """
    INSERT INTO history (run_id, version, idx, kind, state, attempt, at, actor, detail, run_created_at)
    SELECT h.run_id, h.version, h.idx, h.kind, h.state, h.attempt, to_timestamp(h.at), h.actor, h.detail,
           to_timestamp(h.run_created_at)
    FROM jsonb_to_recordset(${doc}::jsonb) AS h(
        run_id uuid, version integer, idx smallint, kind text, state text, attempt integer,
        at double precision, actor text, detail jsonb, run_created_at double precision)
    WHERE {keep}
"""

_OUTBOX = """
    INSERT INTO outbox (run_id, kind, body, priority, headers, created_at)
    SELECT o.run_id, o.kind, o.body, o.priority, o.headers, o.created_at
    FROM unnest(${0}::uuid[], ${1}::text[], ${2}::bytea[], ${3}::smallint[], ${4}::jsonb[],
                ${5}::timestamptz[])
         AS o(run_id, kind, body, priority, headers, created_at)
    WHERE {keep}
    RETURNING id, run_id, kind, body, priority, headers
"""


_MAP_ITEMS = """
    INSERT INTO map_items (run_id, map_seq, idx, ok, result, error, finished_at)
    SELECT m.run_id, m.map_seq, m.idx, m.ok, m.result, m.error, to_timestamp(m.finished_at)
    FROM jsonb_to_recordset(${doc}::jsonb) AS m(
        run_id uuid, map_seq integer, idx integer, ok boolean, result jsonb, error jsonb,
        finished_at double precision)
    WHERE {keep}
"""


def _outbox(first: int, keep: str) -> str:
    """The outbox rows' part, its six parameters numbered from ``first``."""
    return _OUTBOX.format(*range(first, first + 6), keep=keep)


# Group commit: the common transitions of several runs (step done, next step
# dispatched, a map item recorded) in one statement, one round trip and one commit; also the first
# statement of every other transition (store/postgres/write.py). Each run's
# update is conditional on the version its decision was made on; the rows are
# locked in id order first, so two batches touching the same runs cannot
# deadlock. It also deletes outbox rows published since the last statement. It
# returns one 'run' row per run updated and one 'outbox' row per outbox row
# inserted; a run with no 'run' row lost the race (a conflict) and wrote nothing.
APPLY_BATCH = f"""
WITH i AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
        id uuid, prev integer, status text, version integer, priority smallint, data jsonb, patch jsonb,
        machine jsonb, current_states text[], error jsonb, trace_context jsonb, deadline double precision,
        sla_met boolean, updated_at double precision, finished_at double precision, search jsonb)
), locked AS (
    SELECT r.id FROM runs r JOIN i ON r.id = i.id AND r.version = i.prev
    ORDER BY r.id
    FOR UPDATE OF r
), upd AS (
    UPDATE runs r SET
        status = i.status, version = i.version, priority = i.priority,
        -- a patch is the keys the transition set (rows.run_document); none keeps the stored value
        data = CASE WHEN i.patch IS NULL THEN i.data WHEN i.patch = '{{}}' THEN r.data ELSE r.data || i.patch END,
        machine = i.machine, current_states = i.current_states, error = i.error,
        trace_context = i.trace_context, deadline = to_timestamp(i.deadline), sla_met = i.sla_met,
        updated_at = to_timestamp(i.updated_at), finished_at = to_timestamp(i.finished_at),
        search = i.search
    FROM i JOIN locked l ON l.id = i.id
    WHERE r.id = i.id AND r.version = i.prev
    RETURNING r.id
), hist AS ({_HISTORY.format(doc=2, keep="h.run_id IN (SELECT id FROM upd)")}), box AS ({_outbox(3, "o.run_id IN (SELECT id FROM upd)")}), sent AS (
    DELETE FROM outbox WHERE id = ANY($9::bigint[])
), items AS ({_MAP_ITEMS.format(doc=10, keep="m.run_id IN (SELECT id FROM upd)")})
SELECT 'run' AS what, id AS run_id, NULL::bigint AS id, NULL::text AS kind, NULL::bytea AS body,
       NULL::smallint AS priority, NULL::jsonb AS headers
FROM upd
UNION ALL
SELECT 'outbox', run_id, id, kind, body, priority, headers FROM box
"""

# The same rows for runs inserted earlier in the transaction (a new run).
INSERT_EFFECTS = f"""
WITH hist AS ({_HISTORY.format(doc=1, keep="true")}), box AS ({_outbox(2, "true")}),
items AS ({_MAP_ITEMS.format(doc=8, keep="true")})
SELECT 'outbox' AS what, run_id, id, kind, body, priority, headers FROM box
"""

INSERT_REJECTION = f"""
INSERT INTO history (run_id, version, idx, kind, at, detail, run_created_at)
VALUES ($1, $2, -1, '{HistoryKind.REJECTED}', $3, $4, $5)
"""

# The run's creation time names the one partition holding its history (run-time
# pruning): one index probe, not one per partition. A run that is gone has none.
SELECT_HISTORY = """
SELECT run_id, version, idx, kind, state, attempt, at, actor, detail
FROM history
WHERE run_id = $1 AND run_created_at = (SELECT created_at FROM runs WHERE id = $1)
ORDER BY id
"""

# Only the filters given are in the statement (store/postgres/runs.py), so the
# planner sees each query's own shape: a search by attribute uses the GIN index.
LIST_RUNS = f"SELECT {_RUN_COLUMNS} FROM runs WHERE {{filters}} ORDER BY created_at DESC LIMIT {{limit}}"

RUN_FILTERS = {
    "status": "status = {}",
    "workflow": "workflow = {}",
    "before": "created_at < {}",
    "since": "created_at >= {}",
    "until": "created_at < {}",
    "key": "idempotency_key = {}",
    "where": "search @> {}::jsonb",
}

COUNT_OF = "SELECT count(*) FROM ({listing}) AS listed"

RUN_IDS_BETWEEN = "SELECT id::text FROM runs WHERE id BETWEEN $1::uuid AND $2::uuid ORDER BY id LIMIT $3"

INSERT_OUTBOX = """
INSERT INTO outbox (run_id, kind, body, priority, headers, created_at)
SELECT $1, u.kind, u.body, u.priority, u.headers, $6
FROM unnest($2::text[], $3::bytea[], $4::smallint[], $5::jsonb[]) AS u(kind, body, priority, headers)
RETURNING id, run_id, kind, body, priority, headers
"""

CLAIM_OUTBOX = """
UPDATE outbox SET claimed_until = $3
WHERE id IN (
    SELECT id FROM outbox
    WHERE created_at <= $1 AND (claimed_until IS NULL OR claimed_until < $2)
    ORDER BY id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING id, run_id, kind, body, priority, headers
"""

DELETE_OUTBOX = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

CLAIM_OUTBOX_ROWS = "UPDATE outbox SET claimed_until = $2 WHERE id = ANY($1::bigint[])"

UPSERT_TIMER = """
INSERT INTO timers (run_id, key, purpose, seq, attempt, fire_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (run_id, key) DO UPDATE SET
    purpose = excluded.purpose, seq = excluded.seq, attempt = excluded.attempt,
    fire_at = excluded.fire_at, locked_until = NULL
"""

DELETE_TIMERS = "DELETE FROM timers WHERE run_id = $1 AND key = ANY($2::text[])"

NOTIFY = "SELECT pg_notify($1, $2)"

CLAIM_TIMERS = """
UPDATE timers SET locked_until = $2
WHERE id IN (
    SELECT id FROM timers
    WHERE fire_at <= $1 AND (locked_until IS NULL OR locked_until < $1)
    ORDER BY fire_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, run_id, key, purpose, seq, attempt, fire_at, schedule
"""

NEXT_TIMER = "SELECT min(fire_at) FROM timers"

CONSUME_TIMER = "DELETE FROM timers WHERE id = $1 RETURNING id"

INSERT_STEP_DEAD_LETTER = """
INSERT INTO dead_letters (source, run_id, workflow, state, seq, attempt, kind, reason, error, attempts, created_at)
VALUES ('step', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id
"""

INSERT_POISON = """
WITH inserted AS (
    INSERT INTO dead_letters (source, reason, created_at, message, fingerprint, run_id, workflow, state, seq, attempt, body)
    VALUES ('message', $1, $2, $3, $4, $5, (SELECT workflow FROM runs WHERE id = $5), $6, $7, $8, $9)
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING id
)
SELECT id FROM inserted
UNION ALL
SELECT id FROM dead_letters WHERE fingerprint = $4
LIMIT 1
"""

_DEAD_LETTER_COLUMNS = """
    id, source, run_id, workflow, state, seq, attempt, kind, reason, error, attempts,
    created_at, status, resolved_at, resolved_by, message, body
"""

LIST_DEAD_LETTERS = f"""
SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters
WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR status = $2)
ORDER BY created_at DESC, id DESC
LIMIT $3 OFFSET $4
"""

GET_DEAD_LETTER = f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1"

# Each grouping: the key column, and the message whose pattern splits the key
# further (store/rows.py dead_letter_groups merges the rows by pattern).
DEAD_LETTER_GROUP_COLUMNS = {
    "error": ("error->>'type'", "coalesce(error->>'message', reason)"),
    "state": ("coalesce(workflow || '.' || state, source)", "NULL::text"),
    "workflow": ("coalesce(workflow, '(message)')", "NULL::text"),
}

GROUP_DEAD_LETTERS = """
SELECT {column} AS key,
       {detail} AS detail,
       count(*) AS count,
       min(created_at) AS first_seen,
       max(created_at) AS last_seen,
       (array_agg(coalesce(error->>'type' || ': ' || (error->>'message'), reason) ORDER BY id DESC))[1] AS sample_error,
       max(id) AS sample_id
FROM dead_letters
WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR status = $2)
GROUP BY 1, 2
"""

RESOLVE_DEAD_LETTER = """
UPDATE dead_letters SET status = $4, resolved_at = $2, resolved_by = $3
WHERE id = $1 AND status = 'open'
RETURNING id
"""

CLOSE_DEAD_LETTERS = """
UPDATE dead_letters SET status = $3, resolved_at = $4, resolved_by = $5
WHERE run_id = $1 AND seq = ANY($2::int[]) AND source = 'step' AND status = 'open'
"""

REOPEN_DEAD_LETTER = (
    "UPDATE dead_letters SET status = 'open', resolved_at = NULL, resolved_by = NULL WHERE id = $1"
)

COUNT_DEAD_LETTERS = """
SELECT count(*) FROM dead_letters
WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR created_at < $3)
"""

PURGE_DEAD_LETTERS = "DELETE FROM dead_letters WHERE $1::timestamptz IS NULL OR created_at < $1"

# -- flow control ------------------------------------------------------------

# Creates the bucket full, or locks the existing row; returns its state either way.
LOCK_BUCKET = """
INSERT INTO rate_buckets (bucket, tokens, updated_at, full_at) VALUES ($1, $2, $3, $3)
ON CONFLICT (bucket) DO UPDATE SET bucket = excluded.bucket
RETURNING tokens, updated_at
"""

UPDATE_BUCKET = "UPDATE rate_buckets SET tokens = $2, updated_at = $3, full_at = $4 WHERE bucket = $1"

# The lowest slot without a live lease, unless `limit` live leases exist already
# (the count also covers slots above a limit that was lowered). Two workers
# racing for the same slot meet in the primary key: one of them gets nothing
# and tries again later.
ACQUIRE_SLOT = """
INSERT INTO concurrency_slots (bucket, slot, holder, lease, acquired_at, expires_at)
SELECT $1, s, $3::text, $6::double precision, $4, $5::timestamptz
FROM generate_series(0, $2 - 1) AS s
WHERE (SELECT count(*) FROM concurrency_slots c WHERE c.bucket = $1 AND c.expires_at > $4) < $2
  AND NOT EXISTS (
      SELECT 1 FROM concurrency_slots c WHERE c.bucket = $1 AND c.slot = s AND c.expires_at > $4
  )
ORDER BY s
LIMIT 1
ON CONFLICT (bucket, slot) DO UPDATE SET
    holder = excluded.holder, lease = excluded.lease,
    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE concurrency_slots.expires_at <= $4
RETURNING slot
"""

RELEASE_SLOT = "DELETE FROM concurrency_slots WHERE bucket = $1 AND slot = $2 AND holder = $3"

RENEW_SLOTS = """
UPDATE concurrency_slots AS s SET expires_at = $2::timestamptz + s.lease * interval '1 second'
FROM unnest($3::text[], $4::integer[]) AS u(bucket, slot)
WHERE s.holder = $1 AND s.bucket = u.bucket AND s.slot = u.slot
RETURNING s.bucket, s.slot
"""

SLOTS_IN_USE = """
SELECT count(*) AS used, min(expires_at) AS soonest
FROM concurrency_slots WHERE bucket = $1 AND expires_at > $2
"""

PURGE_BUCKETS = "DELETE FROM rate_buckets WHERE full_at < $1"

PURGE_SLOTS = "DELETE FROM concurrency_slots WHERE expires_at < $1"

COLLECT_MAP_RESULTS = """
UPDATE runs SET data = jsonb_set(
    data,
    ARRAY[$3::text],
    (SELECT coalesce(jsonb_agg(coalesce(result, 'null'::jsonb) ORDER BY idx), '[]'::jsonb)
     FROM map_items WHERE run_id = $1 AND map_seq = $2)
)
WHERE id = $1
RETURNING data
"""

SET_SEARCH = "UPDATE runs SET search = $2 WHERE id = $1"

MAP_ITEMS = """
SELECT idx, ok, result, error, finished_at FROM map_items
WHERE run_id = $1 AND map_seq = $2 AND idx >= $3
ORDER BY idx LIMIT $4
"""

# Schedules (store/postgres/schedules.py) ------------------------------------

_SCHEDULE_COLUMNS = (
    "s.name, s.workflow, s.spec, s.input, s.source, s.paused, s.next_tick, s.buffered,"
    " s.last_run_id::text AS last_run_id, s.created_at, s.updated_at, t.fire_at AS timer_at"
)

UPSERT_SCHEDULE = """
INSERT INTO schedules (name, workflow, spec, input, source, paused, next_tick, buffered, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (name) DO UPDATE SET
    workflow = excluded.workflow, spec = excluded.spec, input = excluded.input,
    source = excluded.source, paused = excluded.paused, next_tick = excluded.next_tick,
    buffered = excluded.buffered, updated_at = excluded.updated_at
"""

DELETE_SCHEDULE_TIMER = "DELETE FROM timers WHERE schedule = $1"

INSERT_SCHEDULE_TIMER = """
INSERT INTO timers (run_id, key, purpose, fire_at, schedule) VALUES (NULL, 'tick', $2, $3, $1)
"""

SELECT_SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS}
FROM schedules s LEFT JOIN timers t ON t.schedule = s.name
WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR s.workflow = $2)
ORDER BY s.name
"""

DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = $1 RETURNING name"

LOCK_SCHEDULE = "SELECT 1 FROM schedules WHERE name = $1 FOR UPDATE"

UPDATE_SCHEDULE_TICK = """
UPDATE schedules SET next_tick = $2, buffered = $3, updated_at = $4,
    last_run_id = coalesce($5::uuid, last_run_id)
WHERE name = $1
"""

UPDATE_SCHEDULE_LAST_RUN = """
UPDATE schedules SET last_run_id = coalesce($2::uuid, last_run_id) WHERE name = $1
"""

INSERT_SCHEDULE_TICKS = """
INSERT INTO schedule_ticks (schedule, outcome, nominal, count, run_id, at)
SELECT $1, o, n, c, r::uuid, $2
FROM unnest($3::text[], $4::timestamptz[], $5::int[], $6::text[]) AS x (o, n, c, r)
"""

SELECT_SCHEDULE_TICKS = """
SELECT schedule, outcome, nominal, count, run_id::text AS run_id, at
FROM schedule_ticks WHERE schedule = $1 ORDER BY id DESC LIMIT $2
"""


# A child run's parent (migration 0016), set once, with the child's insert.
SET_PARENT = "UPDATE runs SET parent_run_id = $2 WHERE id = $1"

SELECT_CHILDREN = f"SELECT {_RUN_COLUMNS} FROM runs WHERE parent_run_id = $1 ORDER BY created_at, id"
