"""The SQLite store's connection and schema: the lifecycle role, and the
state every other role's part shares (:class:`SqliteConnection`).

One connection per process. Writes take SQLite's write lock up front
(``BEGIN IMMEDIATE``) so that a CLI process and a worker can share the file
safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import orjson

from legato.errors import StoreError
from legato.machine.run import RunStatus
from legato.store.migrations import migrations
from legato.store.sqlite import sql as q


def dumps(value: Any) -> str | None:
    """A JSON column's text (SQLite keeps JSON as text)."""
    return None if value is None else orjson.dumps(value).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


class SqliteConnection:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._timer_watchers: list[Callable[[float], None]] = []
        self._run_watchers: list[Callable[[str, RunStatus], None]] = []
        self._users = 0

    async def open(self) -> None:
        """Connect; every open() is matched by a close(), the last one closes."""
        self._users += 1
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA busy_timeout=10000")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            self._users -= 1
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc

    async def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time, holding SQLite's write lock."""
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            # Shielded: a cancellation between BEGIN and COMMIT/ROLLBACK would
            # leave the connection inside a transaction for the next caller.
            try:
                yield db
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await db.execute("ROLLBACK")
                raise
            else:
                with anyio.CancelScope(shield=True):
                    await db.execute("COMMIT")

    async def _read(self, sql: str, *args: Any) -> list[aiosqlite.Row]:
        async with self._lock:
            cursor = await self.db.execute(sql, args)
            return list(await cursor.fetchall())

    async def ping(self) -> None:
        await self._read("SELECT 1")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._write() as db:
            await db.execute(q.CREATE_MIGRATIONS_TABLE)
            cursor = await db.execute(q.APPLIED_MIGRATIONS)
            done = {row[0] for row in await cursor.fetchall()}
            for migration in migrations("sqlite"):
                if migration.number in done:
                    continue
                for statement in _statements(migration.sql):
                    await db.execute(statement)
                await db.execute(q.RECORD_MIGRATION, (migration.number, migration.name))
                applied.append(migration.name)
        return applied


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
