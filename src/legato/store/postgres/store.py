"""The Postgres store (asyncpg): every role, one module per role.

=====================  ==========================================
role                   part
=====================  ==========================================
lifecycle              :mod:`legato.store.postgres.connection`
runs and transitions   :mod:`legato.store.postgres.runs` (writes: :mod:`~legato.store.postgres.write`)
outbox                 :mod:`legato.store.postgres.outbox`
timers                 :mod:`legato.store.postgres.timers`
run watch              :mod:`legato.store.postgres.watch` (LISTEN; migration 0014's trigger)
leases                 :mod:`legato.store.postgres.leases`
dead letters           :mod:`legato.store.postgres.dead_letters`
completion tokens      :mod:`legato.store.postgres.completions` (written with the transition)
flow                   :mod:`legato.store.postgres.flow`
retention              :mod:`legato.store.postgres.retention`
schedules              :mod:`legato.store.postgres.schedules`
insights               :mod:`legato.store.postgres.insights` (a port of its own)
=====================  ==========================================
"""

from __future__ import annotations

from legato.store.postgres.completions import PostgresCompletions
from legato.store.postgres.dead_letters import PostgresDeadLetters
from legato.store.postgres.flow import PostgresFlow
from legato.store.postgres.leases import PostgresLeases
from legato.store.postgres.outbox import PostgresOutbox
from legato.store.postgres.retention import PostgresRetention
from legato.store.postgres.runs import PostgresRuns
from legato.store.postgres.schedules import PostgresSchedules
from legato.store.postgres.timers import PostgresTimers
from legato.store.postgres.watch import PostgresRunWatch


class PostgresStore(
    PostgresSchedules,
    PostgresRuns,
    PostgresOutbox,
    PostgresTimers,
    PostgresRunWatch,
    PostgresLeases,
    PostgresDeadLetters,
    PostgresCompletions,
    PostgresFlow,
    PostgresRetention,
):
    """Every role of :class:`~legato.store.ports.Store` on one pool."""
