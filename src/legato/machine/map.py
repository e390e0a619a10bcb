"""A map state's items: start them, finish them, join once.

A map is one token in ``JOINING`` phase holding a :class:`MapProgress`, and
one token per *running* item (``parent`` = the map's seq, ``branch`` = the
item's index). Items start in index order, at most ``max_concurrency`` at a
time; each finished item is one ``RecordMapItem`` command (a row of its own
in the store), so no transition writes more than its own items, and the join
is one ``CollectMapResults``: the store gathers the rows into the run's data.

The join is exactly once for the same reason a parallel join is: an item
finishes only through the transition that consumes its token, and the join
happens in the transition where the last one finishes, found from counters
that only those transitions change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from legato.machine.commands import CollectMapResults, RecordMapItem
from legato.machine.errors import ErrorInfo
from legato.machine.policies import OnFailure
from legato.machine.run import MapProgress, Phase, Run, Token
from legato.machine.states import Map, tolerated
from legato.machine.values import JSON, lookup
from legato.machine.vocabulary import HistoryKind

if TYPE_CHECKING:
    from legato.machine.definition import Workflow
    from legato.machine.transition import Transition


def enter_map(tx: Transition, name: str, state: Map, parent: int | None, branch: int | None) -> None:
    found, items = lookup(tx.current_data, state.items)
    if not isinstance(items, list):
        what = type(items).__name__ if found else "nothing"
        tx.fail_run(
            ErrorInfo.of(
                "MapItemsNotList",
                f"map {name!r}: the data at {state.items!r} must be a list of items, found {what}",
            )
        )
        return
    holder = tx.new_token(name, Phase.JOINING, parent, branch, map=MapProgress(total=len(items)))
    tx.note(
        HistoryKind.MAP_STARTED,
        name,
        seq=holder.seq,
        items=len(items),
        max_concurrency=state.max_concurrency,
        tolerated=tolerated(state, len(items)),
    )
    _settle(tx, holder)


def holder_of(tx: Transition, token: Token) -> Token | None:
    """The map token ``token`` is an item of, if it is one."""
    if token.parent is None:
        return None
    holder = tx.tokens.get(token.parent)
    return holder if holder is not None and holder.map is not None else None


def carry(tx: Transition, item: Token, holder: Token, output: JSON, key: str | None) -> None:
    """An item's step returned ``output``: keep it with the item, not in the run's data."""
    holder = tx.tokens[holder.seq]
    progress = holder.map
    assert progress is not None
    assert item.branch is not None
    if output is None and key is None:
        return
    kept = dict(progress.carry.get(item.branch) or {})
    if key is not None:
        kept[key] = output
    elif isinstance(output, Mapping):
        kept.update(output)
    else:
        kept["result"] = output
    tx.put(replace(holder, map=replace(progress, carry={**progress.carry, item.branch: kept})))


def item_done(
    tx: Transition, holder: Token, index: int, error: ErrorInfo | None = None, stopped: bool = False
) -> None:
    """Item ``index`` reached the end of the iterator (no ``error``), failed for good,
    or was ``stopped`` after its step because the map is failing."""
    holder = tx.tokens[holder.seq]  # the item's last step may have just changed it
    progress = holder.map
    assert progress is not None
    state = tx.workflow.map(holder.state)
    result = progress.carry.get(index)
    rest = {i: v for i, v in progress.carry.items() if i != index}
    if stopped:
        progress = replace(progress, stopped=progress.stopped + 1, carry=rest)
        error = ErrorInfo.of("MapDrained", f"map {holder.state!r} failed while this item ran")
        kind = HistoryKind.ITEM_STOPPED
    elif error is None:
        progress = replace(progress, succeeded=progress.succeeded + 1, carry=rest)
        kind = HistoryKind.ITEM_SUCCEEDED
    else:
        progress = replace(progress, failed=progress.failed + 1, carry=rest)
        kind = HistoryKind.ITEM_FAILED
    tx.commands.append(RecordMapItem(holder.seq, index, error is None, result, error))
    tx.note(
        kind,
        holder.state,
        index=index,
        succeeded=progress.succeeded,
        failed=progress.failed,
        of=progress.total,
    )
    allowed = tolerated(state, progress.total)
    holder = tx.put(replace(holder, map=progress))
    if progress.failed > allowed and not progress.failing:
        holder = _start_failing(tx, holder, allowed)
    _settle(tx, holder)


def failing(tx: Transition, token: Token) -> bool:
    """True when ``token`` is an item of a map that is failing: it must not go on."""
    holder = holder_of(tx, token)
    return holder is not None and holder.map is not None and holder.map.failing


def _start_failing(tx: Transition, holder: Token, allowed: int) -> Token:
    """One failure too many: start no more items; those waiting for a retry stop;
    those running finish (drain) and are recorded."""
    progress = holder.map
    assert progress is not None
    waiting = [t for t in tx.tokens.values() if t.parent == holder.seq and t.phase is not Phase.RUNNING]
    for token in waiting:
        tx.drop(token)
    progress = replace(progress, failing=True, stopped=progress.stopped + len(waiting))
    tx.note(
        HistoryKind.MAP_FAILING,
        holder.state,
        failed=progress.failed,
        tolerated=allowed,
        running=progress.running,
        stopped=len(waiting),
    )
    return tx.put(replace(holder, map=progress))


def _settle(tx: Transition, holder: Token) -> None:
    """Start items while there is room; join or fail once nothing runs and nothing may start."""
    state = tx.workflow.map(holder.state)
    progress = holder.map
    assert progress is not None
    while (
        not progress.failing
        and progress.started < progress.total
        and progress.running < state.max_concurrency
    ):
        progress = replace(progress, started=progress.started + 1)
        holder = tx.put(replace(holder, map=progress))
        tx.start_item(state.iterator.start, holder.seq, progress.started - 1)
    if progress.running:
        return
    if progress.failing:
        _failed(tx, holder, state)
    elif progress.started == progress.total:
        tx.note(HistoryKind.JOINED, holder.state, seq=holder.seq, items=progress.total)
        tx.commands.append(CollectMapResults(holder.seq, state.output_key))
        tx.advance(holder, None)


def _failed(tx: Transition, holder: Token, state: Map) -> None:
    progress = holder.map
    assert progress is not None
    error = ErrorInfo.of(
        "MapFailed",
        f"map {holder.state!r}: {progress.failed} of {progress.total} items failed, "
        f"{tolerated(state, progress.total)} tolerated",
    )
    tx.drop(holder)
    # A map is no step: there is nothing to retry or suspend, so the run
    # compensates (its default failure path) unless it is set to just fail.
    tx.fail_run(error, compensate=tx.workflow.on_failure is not OnFailure.FAIL)


def item_data(workflow: Workflow, run: Run, token: Token) -> Mapping[str, JSON] | None:
    """What an item's step sees: the item, its index, what its earlier steps returned.

    None when ``token`` is no item of a map (its step sees the run's data)."""
    placement = workflow.placement(token.state)
    if placement.map is None or token.branch is None:
        return None
    state = workflow.map(placement.map)
    _, items = lookup(run.data, state.items)
    index = token.branch
    item = items[index] if isinstance(items, list) and index < len(items) else None
    holder = run.token(token.parent) if token.parent is not None else None
    kept = holder.map.carry.get(index) if holder is not None and holder.map is not None else None
    return {"item": item, "index": index, **(kept if isinstance(kept, Mapping) else {})}


def scope_data(tx: Transition, token: Token) -> Mapping[str, JSON]:
    """What ``token``'s state sees in the middle of a transition: the item's data
    for an item of a map (as :func:`item_data`), the run's data otherwise."""
    data = tx.current_data
    placement = tx.workflow.placement(token.state)
    holder = holder_of(tx, token)
    if placement.map is None or token.branch is None or holder is None or holder.map is None:
        return data
    _, items = lookup(data, tx.workflow.map(placement.map).items)
    index = token.branch
    item = items[index] if isinstance(items, list) and index < len(items) else None
    kept = holder.map.carry.get(index)
    return {"item": item, "index": index, **(kept if isinstance(kept, Mapping) else {})}


def progress(run: Run) -> list[dict[str, JSON]]:
    """Each map the run is in: done, failed, running and pending items of the total."""
    found: list[dict[str, JSON]] = []
    for token in run.tokens:
        counts = token.map
        if counts is None:
            continue
        found.append(
            {
                "state": token.state,
                "seq": token.seq,
                "total": counts.total,
                "done": counts.succeeded,
                "failed": counts.failed,
                "running": counts.running,
                "pending": counts.pending,
                "failing": counts.failing,
            }
        )
    return found


def progress_line(entry: Mapping[str, JSON]) -> str:
    line = (
        f"map {entry['state']}: {entry['done']} done, {entry['failed']} failed, "
        f"{entry['running']} running, {entry['pending']} pending of {entry['total']}"
    )
    return line + " (failing: draining)" if entry["failing"] else line
