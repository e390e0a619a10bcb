"""What the chaos suite checks at the end, from the database and the handlers' records."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from legato.machine.run import TERMINAL_STATUSES, RunStatus
from tests.chaos.app import FAILING_STATE
from tests.chaos.faults import FaultLog

EXPLAINED_WITHIN = 15.0
"""Seconds around a fault in which a step's first execution may be repeated: its
worker died, or its commit or ack met the outage (at least once, by design)."""


@dataclass
class Verdict:
    problems: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)

    CHECKS = (
        "lost events",
        "duplicate runs",
        "doubled transitions",
        "stuck runs",
        "wrong outcomes",
        "unexplained re-executions",
        "dead letters",
        "workers that exited on their own",
    )

    def add(self, check: str, found: list[str]) -> None:
        self.problems[check] = found

    @property
    def ok(self) -> bool:
        return not any(self.problems.get(check) for check in self.CHECKS)

    def table(self) -> str:
        lines = ["| check | found |", "| --- | ---: |"]
        for check in self.CHECKS:
            found = self.problems.get(check, [])
            lines.append(f"| {check} | {len(found)} |")
        lines += ["", "| figure | value |", "| --- | ---: |"]
        lines += [f"| {name} | {value} |" for name, value in self.figures.items()]
        for check in self.CHECKS:
            for example in self.problems.get(check, [])[:5]:
                lines.append(f"  {check}: {example}")
        return "\n".join(lines)


async def judge(
    dsn: str, schema: str, published: set[str], doomed: set[str], records: Path, faults: FaultLog
) -> Verdict:
    verdict = Verdict()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        runs = await conn.fetch("SELECT id::text, idempotency_key, status, version FROM runs")
        keys = collections.Counter(event_of(r) for r in runs)
        verdict.add("lost events", sorted(published - set(keys)))
        verdict.add(
            "duplicate runs",
            sorted(k for k, n in keys.items() if n > 1) + sorted(set(keys) - published),
        )
        verdict.add("doubled transitions", await _doubled(conn))
        terminal = {s.value for s in TERMINAL_STATUSES}
        verdict.add("stuck runs", [f"{r['id']} {r['status']}" for r in runs if r["status"] not in terminal])
        verdict.add("wrong outcomes", _wrong_outcomes(runs, doomed, terminal))
        letters = await conn.fetch("SELECT source, state, reason, run_id::text AS run FROM dead_letters")
        doomed_runs = {r["id"] for r in runs if event_of(r) in doomed}
        expected = [
            d
            for d in letters
            if d["source"] == "step" and d["state"] == FAILING_STATE and d["run"] in doomed_runs
        ]
        verdict.add(
            "dead letters",
            [
                f"{d['source']} {d['state']} {d['run']}: {d['reason'][:120]}"
                for d in letters
                if d not in expected
            ],
        )
        verdict.figures["runs"] = len(runs)
        verdict.figures["doomed runs (compensated by design)"] = len(doomed_runs)
        verdict.figures["expected dead letters (doomed runs)"] = len(expected)
    finally:
        await conn.close()
    repeated, explained = _re_executions(records, faults)
    verdict.add("unexplained re-executions", [k for k in repeated if k not in explained])
    verdict.figures["step executions"] = sum(1 for _ in _lines(records))
    verdict.figures["re-executions (all during a fault)"] = len(explained)
    return verdict


def event_of(run: asyncpg.Record) -> str:
    """The event id a run was started by (its key is ``workflow:event id``)."""
    return str(run["idempotency_key"]).partition(":")[2]


async def _doubled(conn: asyncpg.Connection) -> list[str]:
    gaps = await conn.fetch(
        """
        SELECT r.id::text AS run FROM runs r
        JOIN (SELECT run_id, count(DISTINCT version) AS n, max(version) AS m, min(version) AS lo
              FROM history WHERE kind <> 'rejected' GROUP BY run_id) h ON h.run_id = r.id
        WHERE h.n <> r.version OR h.m <> r.version OR h.lo <> 1
        """
    )
    twice = await conn.fetch(
        """
        SELECT run_id::text AS run, kind, state, count(*) AS n FROM history
        WHERE kind IN ('step_succeeded', 'joined', 'run_finished')
        GROUP BY run_id, kind, state, detail->>'seq' HAVING count(*) > 1
        """
    )
    return [f"{g['run']}: versions do not follow 1..n" for g in gaps] + [
        f"{t['run']}: {t['kind']} {t['state']} x{t['n']}" for t in twice
    ]


def _wrong_outcomes(runs: list[asyncpg.Record], doomed: set[str], terminal: set[str]) -> list[str]:
    wrong = []
    for run in runs:
        want = RunStatus.COMPENSATED if event_of(run) in doomed else RunStatus.SUCCEEDED
        if run["status"] in terminal and run["status"] != want.value:
            wrong.append(f"{run['id']}: {run['status']}, expected {want.value}")
    return wrong


def _lines(records: Path) -> list[tuple[float, str]]:
    found = []
    for path in records.glob("*.log"):
        for line in path.read_text().splitlines():
            at, _, key = line.partition(" ")
            if key:
                found.append((float(at), key))
    return found


def _re_executions(records: Path, faults: FaultLog) -> tuple[list[str], set[str]]:
    first: dict[str, float] = {}
    repeated: list[str] = []
    for at, key in sorted(_lines(records)):
        if key in first:
            repeated.append(key)
        else:
            first[key] = at
    explained = {k for k in repeated if faults.covers(first[k], EXPLAINED_WITHIN)}
    return repeated, explained
