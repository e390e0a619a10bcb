"""Every SQL statement the SQLite store runs, by name."""

from legato.machine.vocabulary import HistoryKind

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number     INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""

APPLIED_MIGRATIONS = "SELECT number FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (number, name) VALUES (?, ?)"

_RUN_COLUMNS = """
    id, workflow, workflow_version, status, version, priority, idempotency_key,
    input, data, machine, current_states, error, trace_context, deadline, sla_met,
    created_at, updated_at, finished_at, search
"""

INSERT_RUN = f"""
INSERT INTO runs ({_RUN_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) DO NOTHING
"""

SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?"

SELECT_RUN_BY_KEY = f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = ?"

# The run that held a key and was removed by retention (docs/retention.md).
RETIRED_KEY = "SELECT run_id, expires_at FROM retired_keys WHERE key = ? AND expires_at > ?"

UPDATE_RUN = """
UPDATE runs SET
    status = ?, version = ?, priority = ?, data = ?, machine = ?, current_states = ?,
    error = ?, trace_context = ?, deadline = ?, sla_met = ?, updated_at = ?, finished_at = ?,
    search = ?
WHERE id = ? AND version = ?
"""

INSERT_HISTORY = """
INSERT INTO history (run_id, version, idx, kind, state, attempt, at, actor, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_REJECTION = f"""
INSERT INTO history (run_id, version, idx, kind, at, detail)
VALUES (?, ?, -1, '{HistoryKind.REJECTED}', ?, ?)
"""

SELECT_HISTORY = """
SELECT run_id, version, idx, kind, state, attempt, at, actor, detail
FROM history WHERE run_id = ? ORDER BY id
"""

COUNT_OF = "SELECT count(*) FROM ({listing})"

RUN_IDS_BETWEEN = "SELECT id FROM runs WHERE id BETWEEN ?1 AND ?2 ORDER BY id LIMIT ?3"

LIST_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM runs
WHERE (?1 IS NULL OR status = ?1)
  AND (?2 IS NULL OR workflow = ?2)
  AND (?3 IS NULL OR created_at < ?3)
  AND (?4 IS NULL OR created_at >= ?4)
  AND (?5 IS NULL OR created_at < ?5)
  AND (?6 IS NULL OR idempotency_key = ?6)
  {{where}}
ORDER BY created_at DESC
LIMIT ?7
"""

# One per search attribute asked for, numbered after LIMIT's; the path (checked
# by RunQuery) is a parameter too.
WHERE_SEARCH = "AND json_extract(search, ?{}) = ?{}"


INSERT_OUTBOX = """
INSERT INTO outbox (run_id, kind, body, priority, headers, created_at)
VALUES (?, ?, ?, ?, ?, ?)
"""

CLAIM_OUTBOX = """
UPDATE outbox SET claimed_until = ?1
WHERE id IN (
    SELECT id FROM outbox
    WHERE created_at <= ?2 AND (claimed_until IS NULL OR claimed_until < ?3)
    ORDER BY id LIMIT ?4
)
RETURNING id, run_id, kind, body, priority, headers
"""

DELETE_OUTBOX = "DELETE FROM outbox WHERE id = ?"

CLAIM_OUTBOX_ROW = "UPDATE outbox SET claimed_until = ? WHERE id = ?"

UPSERT_TIMER = """
INSERT INTO timers (run_id, key, purpose, seq, attempt, fire_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, key) DO UPDATE SET
    purpose = excluded.purpose, seq = excluded.seq, attempt = excluded.attempt,
    fire_at = excluded.fire_at, locked_until = NULL
"""

DELETE_TIMER = "DELETE FROM timers WHERE run_id = ? AND key = ?"

CLAIM_TIMERS = """
UPDATE timers SET locked_until = ?1
WHERE id IN (
    SELECT id FROM timers
    WHERE fire_at <= ?2 AND (locked_until IS NULL OR locked_until < ?3)
    ORDER BY fire_at LIMIT ?4
)
RETURNING id, run_id, key, purpose, seq, attempt, fire_at, schedule
"""

NEXT_TIMER = "SELECT min(fire_at) FROM timers"

CONSUME_TIMER = "DELETE FROM timers WHERE id = ?"

INSERT_STEP_DEAD_LETTER = """
INSERT INTO dead_letters (source, run_id, workflow, state, seq, attempt, kind, reason, error, attempts, created_at)
VALUES ('step', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_POISON = """
INSERT INTO dead_letters (source, reason, created_at, message, fingerprint, run_id, workflow, state, seq, attempt, body)
VALUES ('message', ?1, ?2, ?3, ?4, ?5, (SELECT workflow FROM runs WHERE id = ?5), ?6, ?7, ?8, ?9)
ON CONFLICT (fingerprint) DO NOTHING
"""

POISON_BY_FINGERPRINT = "SELECT id FROM dead_letters WHERE fingerprint = ?"

_DEAD_LETTER_COLUMNS = """
    id, source, run_id, workflow, state, seq, attempt, kind, reason, error, attempts,
    created_at, status, resolved_at, resolved_by, message, body
"""

LIST_DEAD_LETTERS = f"""
SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters
WHERE (? IS NULL OR workflow = ?) AND (? IS NULL OR status = ?)
ORDER BY created_at DESC, id DESC
LIMIT ? OFFSET ?
"""

GET_DEAD_LETTER = f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = ?"

# Each grouping: the key column, and the message whose pattern splits the key
# further (store/rows.py dead_letter_groups merges the rows by pattern).
DEAD_LETTER_GROUP_COLUMNS = {
    "error": ("json_extract(error, '$.type')", "coalesce(json_extract(error, '$.message'), reason)"),
    "state": ("coalesce(workflow || '.' || state, source)", "NULL"),
    "workflow": ("coalesce(workflow, '(message)')", "NULL"),
}

# SQLite picks the bare columns of the row holding max(id): the newest sample.
GROUP_DEAD_LETTERS = """
SELECT {column} AS key,
       {detail} AS detail,
       count(*) AS count,
       min(created_at) AS first_seen,
       max(created_at) AS last_seen,
       coalesce(json_extract(error, '$.type') || ': ' || json_extract(error, '$.message'), reason) AS sample_error,
       max(id) AS sample_id
FROM dead_letters
WHERE (? IS NULL OR workflow = ?) AND (? IS NULL OR status = ?)
GROUP BY 1, 2
"""

RESOLVE_DEAD_LETTER = """
UPDATE dead_letters SET status = ?, resolved_at = ?, resolved_by = ?
WHERE id = ? AND status = 'open'
"""

CLOSE_DEAD_LETTERS = """
UPDATE dead_letters SET status = ?, resolved_at = ?, resolved_by = ?
WHERE run_id = ? AND seq = ? AND source = 'step' AND status = 'open'
"""

REOPEN_DEAD_LETTER = (
    "UPDATE dead_letters SET status = 'open', resolved_at = NULL, resolved_by = NULL WHERE id = ?"
)

COUNT_DEAD_LETTERS = """
SELECT count(*) FROM dead_letters
WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2)
  AND (?3 IS NULL OR created_at < ?3)
"""

PURGE_DEAD_LETTERS = "DELETE FROM dead_letters WHERE ?1 IS NULL OR created_at < ?1"

# -- flow control (one writer at a time: BEGIN IMMEDIATE serialises these) ----

CREATE_BUCKET = """
INSERT INTO rate_buckets (bucket, tokens, updated_at, full_at) VALUES (?, ?, ?, ?)
ON CONFLICT (bucket) DO NOTHING
"""

SELECT_BUCKET = "SELECT tokens, updated_at FROM rate_buckets WHERE bucket = ?"

UPDATE_BUCKET = "UPDATE rate_buckets SET tokens = ?, updated_at = ?, full_at = ? WHERE bucket = ?"

LIVE_SLOTS = "SELECT slot FROM concurrency_slots WHERE bucket = ? AND expires_at > ?"

UPSERT_SLOT = """
INSERT INTO concurrency_slots (bucket, slot, holder, lease, acquired_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (bucket, slot) DO UPDATE SET
    holder = excluded.holder, lease = excluded.lease,
    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
"""

RELEASE_SLOT = "DELETE FROM concurrency_slots WHERE bucket = ? AND slot = ? AND holder = ?"

RENEW_SLOT = """
UPDATE concurrency_slots SET expires_at = ? + lease
WHERE bucket = ? AND slot = ? AND holder = ?
"""

SLOTS_IN_USE = """
SELECT count(*) AS used, min(expires_at) AS soonest
FROM concurrency_slots WHERE bucket = ? AND expires_at > ?
"""

PURGE_BUCKETS = "DELETE FROM rate_buckets WHERE full_at < ?"

PURGE_SLOTS = "DELETE FROM concurrency_slots WHERE expires_at < ?"

INSERT_MAP_ITEM = """
INSERT INTO map_items (run_id, map_seq, idx, ok, result, error, finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

# The ordered subquery feeds json_group_array in item order (SQLite 3.40 has no
# ORDER BY inside an aggregate).
COLLECT_MAP_RESULTS = """
UPDATE runs SET data = json_set(
    data,
    '$."' || ?3 || '"',
    (SELECT json_group_array(json(coalesce(result, 'null')))
     FROM (SELECT result FROM map_items WHERE run_id = ?1 AND map_seq = ?2 ORDER BY idx))
)
WHERE id = ?1
RETURNING data
"""

SET_SEARCH = "UPDATE runs SET search = ? WHERE id = ?"

MAP_ITEMS = """
SELECT idx, ok, result, error, finished_at FROM map_items
WHERE run_id = ? AND map_seq = ? AND idx >= ?
ORDER BY idx LIMIT ?
"""

# Schedules (store/sqlite/schedules.py) --------------------------------------

UPSERT_SCHEDULE = """
INSERT INTO schedules (name, workflow, spec, input, source, paused, next_tick, buffered, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    workflow = excluded.workflow, spec = excluded.spec, input = excluded.input,
    source = excluded.source, paused = excluded.paused, next_tick = excluded.next_tick,
    buffered = excluded.buffered, updated_at = excluded.updated_at
"""

DELETE_SCHEDULE_TIMER = "DELETE FROM timers WHERE schedule = ?"

INSERT_SCHEDULE_TIMER = """
INSERT INTO timers (run_id, key, purpose, fire_at, schedule) VALUES (NULL, 'tick', ?2, ?3, ?1)
"""

SELECT_SCHEDULES = """
SELECT s.name, s.workflow, s.spec, s.input, s.source, s.paused, s.next_tick, s.buffered,
       s.last_run_id, s.created_at, s.updated_at, t.fire_at AS timer_at
FROM schedules s LEFT JOIN timers t ON t.schedule = s.name
WHERE (?1 IS NULL OR s.name = ?1) AND (?2 IS NULL OR s.workflow = ?2)
ORDER BY s.name
"""

DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = ?"

UPDATE_SCHEDULE_TICK = """
UPDATE schedules SET next_tick = ?2, buffered = ?3, updated_at = ?4,
    last_run_id = coalesce(?5, last_run_id)
WHERE name = ?1
"""

UPDATE_SCHEDULE_LAST_RUN = "UPDATE schedules SET last_run_id = coalesce(?2, last_run_id) WHERE name = ?1"

INSERT_SCHEDULE_TICK = """
INSERT INTO schedule_ticks (schedule, outcome, nominal, count, run_id, at) VALUES (?, ?, ?, ?, ?, ?)
"""

SELECT_SCHEDULE_TICKS = """
SELECT schedule, outcome, nominal, count, run_id, at
FROM schedule_ticks WHERE schedule = ? ORDER BY id DESC LIMIT ?
"""


# A child run's parent (migration 0016), set once, with the child's insert.
SET_PARENT = "UPDATE runs SET parent_run_id = ? WHERE id = ?"

SELECT_CHILDREN = f"SELECT {_RUN_COLUMNS} FROM runs WHERE parent_run_id = ? ORDER BY created_at, id"
