"""The examples in examples/ run, and do what their docstrings say."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from examples import approval, order_children, order_lines, payments_saga, signup, tenant_logs
from examples._run import with_worker

from legato import App, Client, Run, RunStatus

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_signup_escalates_suspicious_users_and_welcomes_everyone() -> None:
    signup.SENT.clear()
    ada, bot = await with_worker(signup.app, signup.scenario)
    assert (ada.status, bot.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert "flagged_for_review" not in ada.data
    assert bot.data["flagged_for_review"] is True
    assert [email for _, email in signup.SENT] == ["ada@example.com", "bot@mailinator.com"]


async def test_the_trip_saga_unwinds_in_reverse_when_the_car_fails() -> None:
    payments_saga.LEDGER.clear()
    rome, venice = await with_worker(payments_saga.app, payments_saga.scenario)
    assert rome.status is RunStatus.SUCCEEDED
    assert venice.status is RunStatus.COMPENSATED
    assert [line for line in payments_saga.LEDGER if "T2" in line] == [
        "book flight T2",
        "book hotel T2",
        "cancel hotel T2",
        "cancel flight T2",
    ]


async def test_order_lines_are_reserved_through_a_map_and_released_when_one_has_no_stock() -> None:
    order_lines.LEDGER.clear()
    good, bad = await with_worker(order_lines.app, order_lines.scenario)
    assert good.status is RunStatus.SUCCEEDED
    assert good.data["lines_reserved"] == [
        {"reserved": 2, "sku": "apple", "amount": 6},
        {"reserved": 1, "sku": "pear", "amount": 3},
        {"reserved": 1, "sku": "apple", "amount": 3},
    ]
    assert good.data["charged"] == 12
    assert bad.status is RunStatus.COMPENSATED
    assert bad.error is not None
    assert bad.error.type == "MapFailed"
    assert "charged" not in bad.data
    # Every line reserved for the bad order is released, the last reserved first.
    ledger = order_lines.LEDGER[order_lines.LEDGER.index("charge 12") + 1 :]
    reserved = [entry.split()[1] for entry in ledger if entry.startswith("reserve")]
    released = [entry.split()[1] for entry in ledger if entry.startswith("release")]
    assert sorted(released) == sorted(reserved)
    assert reserved


async def test_order_lines_are_reserved_by_child_runs_and_released_through_their_compensations() -> None:
    order_children.LEDGER.clear()
    result: dict[str, Any] = {}

    async def scenario(client: Client) -> list[Run]:
        runs = await order_children.scenario(client)
        result["children"] = [await client.children(run.id) for run in runs]
        return runs

    good, bad, held = await with_worker(order_children.app, scenario)
    good_children, bad_children, held_children = result["children"]
    assert good.status is RunStatus.SUCCEEDED
    assert good.data["lines_reserved"] == [
        {"sku": "apple", "qty": 2, "reserved": 2, "amount": 6},
        {"sku": "pear", "qty": 1, "reserved": 1, "amount": 3},
        {"sku": "apple", "qty": 1, "reserved": 1, "amount": 3},
    ]
    assert good.data["charged"] == 12
    # One child run per line, each a run of reserve_line that names its parent.
    assert [c.workflow for c in good_children] == ["reserve_line"] * 3
    assert all(c.parent is not None and c.parent.run_id == good.id for c in good_children)
    assert {c.status for c in good_children} == {RunStatus.SUCCEEDED}
    # The plum line failed in two child runs (the order's retry policy), the map
    # failed, and every line reserved was released by compensating its child.
    assert bad.status is RunStatus.COMPENSATED
    statuses = sorted(c.status.value for c in bad_children)
    assert statuses == ["compensated", "compensated", "compensated", "failed", "failed"]
    ledger = order_children.LEDGER[order_children.LEDGER.index("charge 12") + 1 :]
    reserved = sorted(e.split(" ", 1)[1] for e in ledger if e.startswith("reserve"))
    released = sorted(e.split(" ", 1)[1] for e in ledger if e.startswith("release"))
    assert reserved == released
    assert len(reserved) >= 3
    # Cancelling an order cancels the child it waits on, which releases its stock.
    assert held.status is RunStatus.CANCELLED
    [hold] = held_children
    assert hold.status is RunStatus.CANCELLED
    assert f"release pear ({hold.id[:8]})" in order_children.LEDGER


async def test_refunds_are_approved_escalated_or_paid_after_cooling_off() -> None:
    small, large, ignored = await with_worker(approval.app, approval.scenario)
    assert small.data["paid"] == 20
    assert large.data["approved_by"] == "ops:maria"
    assert large.data["paid"] == 500
    assert ignored.data["escalated_to"] == "finance-leads"
    assert "paid" not in ignored.data


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_every_log_line_of_a_step_names_the_tenant_of_its_run() -> None:
    kept = Kept()
    kept.addFilter(tenant_logs.TenantFilter())
    tenant_logs.log.addHandler(kept)
    tenant_logs.log.setLevel(logging.INFO)
    try:
        acme, globex = await with_worker(tenant_logs.app, tenant_logs.scenario)
    finally:
        tenant_logs.log.removeHandler(kept)
    assert (acme.status, globex.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    lines = sorted((r.__dict__["tenant"], r.getMessage()) for r in kept.records)
    assert lines == [
        ("acme", "invoicing 120 for A-1"),
        ("acme", "mailing the invoice for A-1"),
        ("globex", "invoicing 35 for G-7"),
        ("globex", "mailing the invoice for G-7"),
    ]


async def test_the_snippet_in_docs_middleware_runs() -> None:
    snippet = re.search(r"```python\n(.*?)```", (DOCS / "middleware.md").read_text(), re.DOTALL)
    assert snippet is not None
    shop: dict[str, Any] = {"__name__": "shop"}
    exec(compile(snippet.group(1), "docs/middleware.md", "exec"), shop)
    app: App = shop["app"]
    kept = Kept()
    shop["log"].addHandler(kept)
    shop["log"].setLevel(logging.INFO)

    async def scenario(client: Client) -> Run:
        run = await client.start("charge", {"amount": 5})
        return await client.wait(run.id, timeout=30)

    try:
        run = await with_worker(app, scenario)
    finally:
        shop["log"].removeHandler(kept)
    assert run.status is RunStatus.SUCCEEDED
    assert run.data["charged"] == 5
    assert [r.getMessage() for r in kept.records] == ["charge attempt 1: ok"]


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), re.DOTALL)


async def test_the_quickstart_shop_runs_as_written() -> None:
    """docs/quickstart.md's `shop.py`, exactly as printed, welcomes and escalates."""
    shop: dict[str, Any] = {"__name__": "shop"}
    exec(compile(python_blocks("quickstart.md")[0], "docs/quickstart.md", "exec"), shop)
    kept = Kept()
    shop["log"].addHandler(kept)
    shop["log"].setLevel(logging.INFO)

    async def scenario(client: Client) -> list[Run]:
        # "ada@example.com" scores 5 (welcome only); "grace@example.com" scores 7 (escalated first).
        runs = [await client.start("signup", {"email": e}) for e in ("ada@example.com", "grace@example.com")]
        return [await client.wait(r.id, timeout=30) for r in runs]

    try:
        ada, grace = await with_worker(shop["app"], scenario)
    finally:
        shop["log"].removeHandler(kept)
    assert (ada.status, grace.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED), (ada.error, grace.error)
    assert ada.data["welcomed"] is True
    assert grace.data["welcomed"] is True
    messages = sorted(r.getMessage() for r in kept.records)
    assert [m.split(" (key")[0] for m in messages] == [
        "flagged grace@example.com for review",
        "mail 'Welcome!' to ada@example.com",
        "mail 'Welcome!' to grace@example.com",
    ]
