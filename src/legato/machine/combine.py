"""Several decisions about one run, committed as one transition.

Events for one run that arrive together (the branches of a parallel state,
the items of a map, finishing at once) are decided one after the other, each
from the run the previous one made, and written in one commit: one version,
one update of the run's row, every history line and message of each. The run
goes from the first decision's previous version to one version higher, and
its document is the last decision's, so a reader sees the same run it would
have after the same events committed one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, pairwise

from legato.machine.commands import Decision


def combine(decisions: Sequence[Decision]) -> Decision:
    """One decision that does what ``decisions`` do, each made from the run the
    one before made: the last run, one version above the first's previous."""
    if not decisions:
        raise ValueError("nothing to combine")
    first, last = decisions[0], decisions[-1]
    if len(decisions) == 1:
        return first
    for before, after in pairwise(decisions):
        if after.previous_version != before.run.version or after.run.id != before.run.id:
            raise ValueError(
                f"decisions of run {first.run.id} do not follow each other: "
                f"v{after.previous_version} of {after.run.id} after v{before.run.version} of {before.run.id}"
            )
    data_set: frozenset[str] | None = frozenset()
    for decision in decisions:
        if decision.data_set is None or data_set is None:
            data_set = None
        else:
            data_set |= decision.data_set
    return Decision(
        last.run.evolve(version=first.previous_version + 1),
        tuple(chain.from_iterable(d.commands for d in decisions)),
        tuple(chain.from_iterable(d.history for d in decisions)),
        first.previous_version,
        tuple(chain.from_iterable(d.children for d in decisions)),
        data_set,
    )
