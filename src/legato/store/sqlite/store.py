"""The embedded store: SQLite through aiosqlite, every role, one module per role.

For trying legato and for development: one file, no server. It mirrors the
Postgres schema (tests/contract/test_schemas.py holds the two side by side)
and passes the same contract suites.

=====================  ==========================================
role                   part
=====================  ==========================================
lifecycle              :mod:`legato.store.sqlite.connection`
runs and transitions   :mod:`legato.store.sqlite.runs` (with the decision's write-out)
outbox                 :mod:`legato.store.sqlite.outbox`
timers                 :mod:`legato.store.sqlite.timers`
run watch              :mod:`legato.store.sqlite.watch` (in-process only)
leases                 :mod:`legato.store.sqlite.leases`
dead letters           :mod:`legato.store.sqlite.dead_letters`
completion tokens      :mod:`legato.store.sqlite.completions` (written with the transition)
flow                   :mod:`legato.store.sqlite.flow`
retention              :mod:`legato.store.sqlite.retention`
schedules              :mod:`legato.store.sqlite.schedules`
insights               :mod:`legato.store.sqlite.insights` (a port of its own)
=====================  ==========================================
"""

from __future__ import annotations

from legato.store.sqlite.completions import SqliteCompletions
from legato.store.sqlite.dead_letters import SqliteDeadLetters
from legato.store.sqlite.flow import SqliteFlow
from legato.store.sqlite.leases import SqliteLeases
from legato.store.sqlite.outbox import SqliteOutbox
from legato.store.sqlite.retention import SqliteRetention
from legato.store.sqlite.runs import SqliteRuns
from legato.store.sqlite.schedules import SqliteSchedules
from legato.store.sqlite.timers import SqliteTimers
from legato.store.sqlite.watch import SqliteRunWatch


class SqliteStore(
    SqliteSchedules,
    SqliteRuns,
    SqliteOutbox,
    SqliteTimers,
    SqliteRunWatch,
    SqliteLeases,
    SqliteDeadLetters,
    SqliteCompletions,
    SqliteFlow,
    SqliteRetention,
):
    """Every role of :class:`~legato.store.ports.Store` on one connection."""
