"""The two dialects' schemas, after every migration, side by side: they cannot drift.

Tables, columns (type, nullability), primary keys, unique constraints, foreign
keys and indexes are read from each database's catalog and compared. Types
differ by design, through one mapping (``SQLITE_TYPE``); anything else that
differs on purpose is listed in ``DIFFERENCES``, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore

SQLITE_TYPE = {
    "uuid": "TEXT",
    "text": "TEXT",
    "smallint": "INTEGER",
    "integer": "INTEGER",
    "bigint": "INTEGER",
    "boolean": "INTEGER",
    "double precision": "REAL",
    "timestamp with time zone": "REAL",  # seconds since the epoch
    "jsonb": "TEXT",  # JSON text
    "text[]": "TEXT",  # a JSON array
    "bytea": "BLOB",
}
"""How each Postgres type is kept in SQLite."""

DIFFERENCES: dict[tuple[str, ...], str] = {
    ("column", "schema_migrations", "applied_at"): (
        "bookkeeping only: TEXT (CURRENT_TIMESTAMP) in SQLite, timestamptz (now()) in Postgres"
    ),
    # Postgres partitions history by its run's creation day (migration 0017): the
    # partition key is a column there, part of the primary key and of the
    # transition's unique index; the foreign key to runs went, since retention
    # drops a day's history after removing its runs. SQLite keeps one table.
    ("column", "history", "run_created_at"): "the partition key, Postgres only",
    ("primary key", "history"): "a partitioned table's key includes the partition key",
    ("index", "history_transition_idx"): "a partitioned table's unique index includes the partition key",
    ("foreign key", "history", "run_id"): "history partitions are dropped after their runs (Postgres)",
    ("index", "runs_search_idx"): (
        "a GIN index on the search attributes, Postgres only; SQLite scans (docs/concepts.md)"
    ),
}
"""What differs on purpose, besides the types; keyed as the mismatches below are."""


@dataclass(frozen=True)
class Schema:
    columns: dict[tuple[str, str], tuple[str, bool]]
    """(table, column) -> (type, nullable); Postgres types as SQLite keeps them."""
    primary_keys: dict[str, tuple[str, ...]]
    uniques: set[tuple[str, tuple[str, ...]]]
    """Unique constraints (not unique indexes): (table, columns)."""
    foreign_keys: set[tuple[str, tuple[str, ...], str, tuple[str, ...], str]]
    """(table, columns, referenced table, referenced columns, on delete)."""
    indexes: dict[str, tuple[str, tuple[str, ...], bool, bool]]
    """name -> (table, columns, unique, partial). The columns include Postgres's
    INCLUDE columns: SQLite has no INCLUDE, so its covering index has them as keys."""


async def postgres_schema(store: PostgresStore) -> Schema:
    async with store.pool.acquire() as conn:
        columns = await conn.fetch(
            """
            SELECT c.table_name, c.column_name, c.is_nullable = 'YES' AS nullable,
                   format_type(a.atttypid, a.atttypmod) AS type
            FROM information_schema.columns c
            JOIN pg_attribute a
              ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
             AND a.attname = c.column_name
            JOIN pg_class t ON t.oid = a.attrelid
            WHERE c.table_schema = $1 AND NOT t.relispartition
            """,
            store.schema,
        )
        constraints = await conn.fetch(
            """
            SELECT t.relname AS table_name, k.contype::text AS contype, k.confdeltype::text AS confdeltype,
                   f.relname AS referenced,
                   ARRAY(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute ON attrelid = k.conrelid AND attnum = u.n ORDER BY u.i) AS cols,
                   ARRAY(SELECT attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute ON attrelid = k.confrelid AND attnum = u.n ORDER BY u.i) AS refcols
            FROM pg_constraint k
            JOIN pg_class t ON t.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            LEFT JOIN pg_class f ON f.oid = k.confrelid
            WHERE n.nspname = $1 AND k.contype IN ('p', 'u', 'f') AND NOT t.relispartition
            """,
            store.schema,
        )
        indexes = await conn.fetch(
            """
            SELECT i.relname AS name, t.relname AS table_name, x.indisunique AS unique,
                   x.indpred IS NOT NULL AS partial,
                   ARRAY(SELECT attname FROM unnest(x.indkey) WITH ORDINALITY u(n, o)
                         JOIN pg_attribute ON attrelid = t.oid AND attnum = u.n ORDER BY u.o) AS cols
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = $1 AND NOT t.relispartition
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
            """,
            store.schema,
        )
    on_delete = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
    schema = Schema(
        columns={
            (r["table_name"], r["column_name"]): (_sqlite_type(r["type"]), r["nullable"]) for r in columns
        },
        primary_keys={},
        uniques=set(),
        foreign_keys=set(),
        indexes={r["name"]: (r["table_name"], tuple(r["cols"]), r["unique"], r["partial"]) for r in indexes},
    )
    for r in constraints:
        cols = tuple(r["cols"])
        if r["contype"] == "p":
            schema.primary_keys[r["table_name"]] = cols
        elif r["contype"] == "u":
            schema.uniques.add((r["table_name"], cols))
        else:
            delete = on_delete[r["confdeltype"]]
            schema.foreign_keys.add((r["table_name"], cols, r["referenced"], tuple(r["refcols"]), delete))
    return schema


def _sqlite_type(postgres_type: str) -> str:
    # Types Postgres gives that SQLite has no counterpart for are kept as they are:
    # the comparison then names them.
    return SQLITE_TYPE.get(postgres_type, postgres_type)


async def sqlite_schema(store: SqliteStore) -> Schema:
    db = store.db

    async def rows(sql: str) -> list[Any]:
        cursor = await db.execute(sql)
        return list(await cursor.fetchall())

    tables = [
        r["name"]
        for r in await rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    schema = Schema({}, {}, set(), set(), {})
    for table in tables:
        info = await rows(f"PRAGMA table_info({table})")
        for column in info:
            # A PRIMARY KEY column is NOT NULL in Postgres; SQLite enforces that
            # only for INTEGER PRIMARY KEY, but a key column is never NULL here.
            not_null = bool(column["notnull"]) or column["pk"] > 0
            schema.columns[(table, column["name"])] = (column["type"], not not_null)
        keys = sorted((c["pk"], c["name"]) for c in info if c["pk"] > 0)
        if keys:
            schema.primary_keys[table] = tuple(name for _, name in keys)
        for fk in await rows(f"PRAGMA foreign_key_list({table})"):
            schema.foreign_keys.add((table, (fk["from"],), fk["table"], (fk["to"],), fk["on_delete"]))
        for index in await rows(f"PRAGMA index_list({table})"):
            cols = tuple(c["name"] for c in await rows(f"PRAGMA index_info({index['name']})"))
            if index["origin"] == "u":
                schema.uniques.add((table, cols))
            elif index["origin"] == "c":
                entry = (table, cols, bool(index["unique"]), bool(index["partial"]))
                schema.indexes[index["name"]] = entry
    return schema


def mismatches(postgres: Schema, sqlite: Schema) -> dict[tuple[str, ...], tuple[Any, Any]]:
    found: dict[tuple[str, ...], tuple[Any, Any]] = {}
    for table, column in postgres.columns.keys() | sqlite.columns.keys():
        pg, lite = postgres.columns.get((table, column)), sqlite.columns.get((table, column))
        if pg != lite:
            found[("column", table, column)] = (pg, lite)
    for table in postgres.primary_keys.keys() | sqlite.primary_keys.keys():
        pg_key, lite_key = postgres.primary_keys.get(table), sqlite.primary_keys.get(table)
        if pg_key != lite_key:
            found[("primary key", table)] = (pg_key, lite_key)
    for unique in postgres.uniques ^ sqlite.uniques:
        found[("unique", unique[0], *unique[1])] = (unique in postgres.uniques, unique in sqlite.uniques)
    for fk in postgres.foreign_keys ^ sqlite.foreign_keys:
        found[("foreign key", fk[0], *fk[1])] = (fk in postgres.foreign_keys, fk in sqlite.foreign_keys)
    for name in postgres.indexes.keys() | sqlite.indexes.keys():
        pg_index, lite_index = postgres.indexes.get(name), sqlite.indexes.get(name)
        if pg_index != lite_index:
            found[("index", name)] = (pg_index, lite_index)
    return found


async def test_the_dialects_have_the_same_schema(pg_store: PostgresStore, sqlite_store: SqliteStore) -> None:
    postgres, sqlite = await postgres_schema(pg_store), await sqlite_schema(sqlite_store)
    assert len(postgres.columns) > 50  # the catalogs were read
    assert {table for table, _ in postgres.columns} >= {"runs", "history", "outbox", "timers", "dead_letters"}
    found = mismatches(postgres, sqlite)
    unexplained = {key: values for key, values in found.items() if key not in DIFFERENCES}
    assert unexplained == {}, "the schemas drifted: (postgres, sqlite) by key"
    stale = DIFFERENCES.keys() - found.keys()
    assert not stale, f"listed as different but the same now: {stale}"


async def test_the_comparison_sees_a_drift(pg_store: PostgresStore, sqlite_store: SqliteStore) -> None:
    await sqlite_store.db.execute("CREATE INDEX runs_extra_idx ON runs (workflow)")
    await sqlite_store.db.execute("ALTER TABLE timers ADD COLUMN note TEXT")
    found = mismatches(await postgres_schema(pg_store), await sqlite_schema(sqlite_store))
    assert found[("index", "runs_extra_idx")] == (None, ("runs", ("workflow",), False, False))
    assert found[("column", "timers", "note")] == (None, ("TEXT", True))
