"""History kinds and timer purposes: their stored spelling, the SQL and the
dashboard script that name them, and a scan of the tree for kinds and purposes
spelled as bare strings outside legato/machine/vocabulary.py."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from legato.machine.commands import HistoryRecord, ScheduleTimer
from legato.machine.run import Phase, RunStatus
from legato.machine.vocabulary import (
    COMPENSATION,
    COMPENSATION_OUTCOMES,
    OPERATOR_ACTIONS,
    PROGRESS,
    STEP_FAILURES,
    STEP_OUTCOMES,
    STEP_SUCCESSES,
    TIMER_FIRINGS,
    TROUBLE,
    HistoryKind,
    TickOutcome,
    TimerPurpose,
)
from legato.store.insights import kinds_sql

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "legato"
DEFINING = SOURCE / "machine" / "vocabulary.py"
SCANNED = (SOURCE, ROOT / "benchmarks", ROOT / "examples")
MIGRATIONS = SOURCE / "store" / "migrations"

KINDS = frozenset(k.value for k in HistoryKind)
PURPOSES = frozenset(p.value for p in TimerPurpose)


def test_the_stored_spelling_of_every_kind_and_purpose_is_pinned() -> None:
    # Rows written by every earlier version hold these strings: renaming a
    # value orphans them (reading them back raises), so a change here needs a
    # migration, not just an edit.
    assert sorted(KINDS) == sorted(
        [
            "run_started",
            "child_started",
            "child_succeeded",
            "child_failed",
            "child_cancelled",
            "child_left",
            "compensation_requested",
            "run_resumed",
            "run_finished",
            "sla_missed",
            "step_scheduled",
            "step_succeeded",
            "step_failed",
            "retry_scheduled",
            "retry_started",
            "lease_expired",
            "dead_lettered",
            "suspended",
            "choice_made",
            "parallel_started",
            "branch_completed",
            "joined",
            "map_started",
            "item_succeeded",
            "item_failed",
            "item_stopped",
            "map_failing",
            "waiting",
            "wait_elapsed",
            "awaiting_signal",
            "signal_received",
            "signal_buffered",
            "step_interrupted",
            "approval_timed_out",
            "state_reached",
            "compensation_started",
            "compensation_scheduled",
            "compensation_succeeded",
            "compensation_failed",
            "operator_retry",
            "operator_skip",
            "operator_cancel",
            "operator_pause",
            "operator_resume",
            "step_held",
            "completion_awaited",
            "completion_received",
            "completion_timed_out",
            "rejected",
        ]
    )
    assert sorted(PURPOSES) == [
        "approval",
        "completion",
        "deadline",
        "heartbeat",
        "retry",
        "schedule",
        "wait",
    ]
    assert sorted(o.value for o in TickOutcome) == [
        "buffered",
        "cancelled_other",
        "missed",
        "skipped_overlap",
        "started",
        "triggered",
    ]


def test_the_named_sets_fit_together() -> None:
    assert STEP_OUTCOMES == STEP_SUCCESSES | STEP_FAILURES
    assert not STEP_SUCCESSES & STEP_FAILURES
    assert {HistoryKind.COMPENSATION_SUCCEEDED, HistoryKind.COMPENSATION_FAILED} == COMPENSATION_OUTCOMES
    assert COMPENSATION_OUTCOMES <= COMPENSATION
    # A wait already due never had a timer; a schedule's timer belongs to no run.
    assert set(TIMER_FIRINGS.values()) == set(TimerPurpose) - {TimerPurpose.WAIT, TimerPurpose.SCHEDULE}
    assert not PROGRESS & TROUBLE


def test_members_encode_as_their_plain_strings() -> None:
    # History rows go to Postgres as JSON (group commit: orjson) or as text
    # parameters, and out through the CLI and the dashboard (json).
    record = HistoryRecord(HistoryKind.STEP_SUCCEEDED, 1.0)
    timer = ScheduleTimer("retry:1", 2.0, TimerPurpose.RETRY)
    row = {"kind": record.kind, "purpose": timer.purpose}
    assert orjson.loads(orjson.dumps(row)) == {"kind": "step_succeeded", "purpose": "retry"}
    assert json.loads(json.dumps(row)) == {"kind": "step_succeeded", "purpose": "retry"}
    assert f"{timer.purpose}:1" == "retry:1"


def _index_predicates(dialect: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((MIGRATIONS / dialect).glob("*.sql")):
        for name, predicate in re.findall(
            r"CREATE (?:UNIQUE )?INDEX (\w+) ON history \([^)]*\)\s+WHERE ([^;]+);", path.read_text()
        ):
            found[name] = " ".join(predicate.split())
    return found


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_the_partial_indexes_of_the_history_name_the_sets_the_queries_use(dialect: str) -> None:
    # The insights queries build ``kind IN (...)`` with kinds_sql; an index
    # serves them only when its predicate is implied (SQLite: repeated exactly).
    predicates = _index_predicates(dialect)
    assert predicates["history_outcomes_idx"] == f"kind IN ({kinds_sql(STEP_OUTCOMES)})"
    assert predicates["history_failures_idx"] == f"kind IN ({kinds_sql(STEP_FAILURES)})"
    assert predicates["history_transition_idx"] == f"kind <> '{HistoryKind.REJECTED.value}'"


def test_the_dashboard_script_colours_only_known_kinds_and_every_failure_and_action() -> None:
    script = (SOURCE / "http" / "dashboard" / "static" / "app.js").read_text()
    lists = {
        name: set(json.loads(items))
        for name, items in re.findall(r"^const (GOOD|BAD|OPERATOR) = (\[[^\]]*\]);$", script, re.M)
    }
    assert set(lists) == {"GOOD", "BAD", "OPERATOR"}
    for kinds in lists.values():
        assert kinds <= KINDS
    assert lists["BAD"] >= STEP_FAILURES | TROUBLE
    assert set(OPERATOR_ACTIONS) <= lists["OPERATOR"]


# -- the scan ------------------------------------------------------------------
#
# A literal is flagged where it is used *as* a kind or a purpose, not wherever
# the word occurs: "retry" is also a CLI command and an outcome, "rejected" a
# state of the demo workflow, "suspended" a run status. Kinds: compared, matched,
# passed to note()/HistoryRecord/HistoryEntry or as kind=, assigned to a name
# that says kind, gathered with another kind in a literal collection, or quoted
# in SQL (and any ``kind LIKE``). Purposes: compared with or matched against
# something named purpose, passed as a purpose (purpose=, ScheduleTimer,
# TimerFired, DueTimer, schedule()), assigned to a name that says purpose, a key
# looked up by a purpose, or compared with the purpose column in SQL.

_KIND_CALLS = {"note", "HistoryRecord", "HistoryEntry"}
_PURPOSE_CALLS = {"ScheduleTimer", "TimerFired", "DueTimer", "schedule"}
_KEYWORDS = {"kind": KINDS, "purpose": PURPOSES}
_SHARED = frozenset(s.value for s in (*RunStatus, *Phase)) & KINDS
"""Words that are also run statuses or token phases: quoted alone in SQL they
are taken for those (``status = 'suspended'``)."""
_COMPARED = r"\s*(?:=|<>|!=|\bin\s*\(|\blike\b|\bnot\b)\s*'"
_SQL_KIND = re.compile(r"'(?:" + "|".join(sorted(KINDS - _SHARED)) + r")'|\bkind" + _COMPARED, re.I)
_SQL_PURPOSE = re.compile(r"\bpurpose" + _COMPARED, re.I)


def _names(node: ast.AST) -> Iterator[str]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            yield inner.id
        elif isinstance(inner, ast.Attribute):
            yield inner.attr
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) and inner.value.isidentifier():
            yield inner.value  # row["purpose"]


def _mentions(node: ast.AST, word: str) -> bool:
    return any(word in name.lower() for name in _names(node))


def _strings(node: ast.AST | None) -> Iterator[str]:
    """The string literals of an operand: itself, a conditional's branches, a collection's items."""
    match node:
        case ast.Constant(value=str() as value):
            yield value
        case ast.IfExp():
            yield from _strings(node.body)
            yield from _strings(node.orelse)
        case ast.Tuple() | ast.List() | ast.Set():
            for item in node.elts:
                yield from _strings(item)
        case ast.Dict():
            for key in node.keys:
                yield from _strings(key)
        case ast.Call(func=ast.Name(id="frozenset" | "set" | "tuple" | "list"), args=[inner]):
            yield from _strings(inner)
        case _:
            return


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


class _Scan(ast.NodeVisitor):
    """Collects (line, literal) of the kinds and purposes a module spells out."""

    def __init__(self) -> None:
        self.found: set[tuple[int, str]] = set()

    def flag(self, node: ast.expr | None, words: frozenset[str]) -> None:
        for value in _strings(node):
            if value in words and node is not None:
                self.found.add((node.lineno, value))

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for operand in operands:
            self.flag(operand, KINDS)
            if any(_mentions(other, "purpose") for other in operands if other is not operand):
                self.flag(operand, PURPOSES)
        self.generic_visit(node)

    def visit_Match(self, node: ast.Match) -> None:
        words = KINDS | PURPOSES if _mentions(node.subject, "purpose") else KINDS
        for case in node.cases:
            for pattern in ast.walk(case.pattern):
                if isinstance(pattern, ast.MatchValue):
                    self.flag(pattern.value, words)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        callee = _callee(node)
        if callee in _KIND_CALLS or callee in ("count", "index"):
            for arg in node.args:
                self.flag(arg, KINDS)
        if callee in _PURPOSE_CALLS:
            for arg in node.args:
                self.flag(arg, PURPOSES)
        if callee == "get" and isinstance(node.func, ast.Attribute) and _mentions(node, "purpose"):
            self.flag(node.func.value, PURPOSES)
        for keyword in node.keywords:
            self.flag(keyword.value, _KEYWORDS.get(keyword.arg or "", frozenset()))
        self.generic_visit(node)

    def _assigned(self, targets: list[ast.expr], value: ast.expr | None) -> None:
        if any(_mentions(target, "kind") for target in targets):
            self.flag(value, KINDS)
        if any(_mentions(target, "purpose") for target in targets):
            self.flag(value, PURPOSES)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node.targets, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned([node.target], node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned([node.target], node.value)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._assigned([node.target], node.value)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _mentions(node.slice, "purpose"):
            self.flag(node.value, PURPOSES)
        self.generic_visit(node)

    def _collection(self, node: ast.Tuple | ast.List | ast.Set | ast.Dict) -> None:
        if len(set(_strings(node)) & KINDS) >= 2:
            self.flag(node, KINDS)
        self.generic_visit(node)

    visit_Tuple = visit_List = visit_Set = visit_Dict = _collection

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            for pattern in (_SQL_KIND, _SQL_PURPOSE):
                self.found.update((node.lineno, match.group(0)) for match in pattern.finditer(node.value))


def bare_vocabulary(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every kind or purpose spelled as a bare string in ``source``."""
    scan = _Scan()
    scan.visit(ast.parse(source))
    return sorted(scan.found)


def _scanned_files() -> Iterator[Path]:
    for root in SCANNED:
        for path in sorted(root.rglob("*.py")):
            if path != DEFINING:
                yield path


def test_no_kind_or_purpose_is_spelled_as_a_bare_string_outside_the_vocabulary() -> None:
    # tests/ is left out on purpose: its literals pin the stored spelling
    # (a history read back must still say "step_succeeded").
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {literal!r}"
        for path in _scanned_files()
        for line, literal in bare_vocabulary(path.read_text())
    ]
    assert offences == [], "name the member of HistoryKind / TimerPurpose instead:\n" + "\n".join(offences)


@pytest.mark.parametrize(
    "source",
    [
        'if record.kind == "retry_scheduled": pass',
        'if "joined" in kinds: pass',
        'ok = entry.kind in ("step_succeeded", "joined")',
        'match kind:\n    case "dead_lettered": pass',
        'tx.note("waiting", name)',
        'HistoryRecord("run_started", 1.0)',
        'kind = "compensation_failed" if c else "step_failed"',
        '_OPERATOR_KINDS = {"operator_retry": "retry"}',
        'GOOD = ["step_succeeded", "joined"]',
        "n = [e.kind for e in history].count('joined')",
        "SQL = \"SELECT * FROM history WHERE kind IN ('step_failed', 'x')\"",
        "SQL = \"SELECT CASE WHEN kind LIKE 'compensation%' THEN 1 END\"",
        'if event.purpose == "deadline": pass',
        'if timer.purpose in ("retry", "wait"): pass',
        'match event.purpose:\n    case "approval": pass',
        'ScheduleTimer("deadline", at, "deadline")',
        'TimerFired(key, "retry", seq, attempt)',
        'tx.schedule(token, "wait", wake_at)',
        'purpose = "wait" if waiting else "approval"',
        'expected = {"retry": 1, "wait": 2}.get(event.purpose)',
        'phase = {"retry": 1}[timer.purpose]',
        "SQL = \"DELETE FROM timers WHERE purpose = 'retry'\"",
        "SQL = \"INSERT INTO history (kind) VALUES ('rejected')\"",
        "SQL = \"SELECT * FROM history WHERE kind <> 'suspended'\"",
    ],
)
def test_the_scan_finds_a_bare_kind_or_purpose(source: str) -> None:
    assert bare_vocabulary(source), source


@pytest.mark.parametrize(
    "source",
    [
        '@click.command("retry")\ndef retry() -> None: pass',
        'client.retry(run_id, actor="cli", outcome="retry")',
        'states = {"review": Approval("approve", on_timeout="rejected"), "rejected": Fail("No")}',
        'class RunStatus(StrEnum):\n    SUSPENDED = "suspended"',
        'DEADLINE_TIMER = "deadline"',
        'totals["sla_missed"] += bucket.sla_missed',
        'names = {RetryRequested: "retry", SkipRequested: "skip"}',
        "if kind is HistoryKind.JOINED: pass",
        "SQL = \"SELECT * FROM runs WHERE status = 'suspended'\"",
        'SQL = f"SELECT * FROM history WHERE kind IN ({kinds_sql(STEP_FAILURES)})"',
    ],
)
def test_the_scan_leaves_other_uses_of_the_same_words_alone(source: str) -> None:
    assert bare_vocabulary(source) == [], source
