"""When a supervisor restarts a worker process that died, and when it gives up.

Pure: it is given the time of each death and answers with a delay or a refusal.
A process that dies once is restarted at once; one that keeps dying waits
longer each time (exponential backoff, capped), so that a crash loop does not
hammer the database; and a slot whose process died ``give_up_after`` times
within ``window`` seconds is a deployment problem no restart fixes: the
supervisor stops and exits non-zero, so that the orchestrator sees it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Restart:
    delay: float
    deaths: int
    """Deaths within the window, this one included."""


@dataclass(frozen=True)
class GiveUp:
    deaths: int
    window: float


@dataclass
class RestartPolicy:
    first_delay: float = 0.5
    max_delay: float = 10.0
    give_up_after: int = 5
    window: float = 60.0
    _deaths: deque[float] = field(default_factory=deque, repr=False)

    def died(self, at: float) -> Restart | GiveUp:
        """A process of this slot died at ``at`` (monotonic seconds)."""
        self._deaths.append(at)
        while self._deaths and self._deaths[0] <= at - self.window:
            self._deaths.popleft()
        deaths = len(self._deaths)
        if deaths >= self.give_up_after:
            return GiveUp(deaths, self.window)
        if deaths == 1:
            return Restart(0.0, deaths)
        return Restart(min(self.max_delay, self.first_delay * 2 ** (deaths - 2)), deaths)
