"""Prometheus metrics of one process, served at ``/metrics``.

Counters and histograms are fed by the two worker hooks: :class:`StepMetrics`
(step middleware: attempts, durations, queue lag, in-flight steps) and
:class:`MetricsObserver` (committed transitions: runs started and finished,
retries, dead letters, SLA, operator actions; conflicts, rejections and
rate-limit waits). Labels are bounded: workflow, state, status, outcome,
priority, limit name -- never a run id.

Every :class:`Metrics` has its own registry: no global state, and two workers
in one process (tests) do not mix their numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from legato.machine.commands import DEADLINE_TIMER, CancelTimer, Decision, HistoryRecord
from legato.machine.definition import Priority
from legato.machine.vocabulary import OPERATOR_ACTIONS, HistoryKind, TickOutcome
from legato.observe import (
    AppliedInput,
    ConflictInput,
    Observer,
    PoisonedInput,
    RateLimitWaitedInput,
    RejectedInput,
    RetentionRanInput,
    ScheduleFiredInput,
)
from legato.worker.execute import StepOutcome
from legato.worker.middleware import Next, StepCall

CONTENT_TYPE = CONTENT_TYPE_LATEST

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RUN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs_started = Counter("legato_runs_started", "Runs started.", ["workflow"], registry=r)
        self.runs_finished = Counter(
            "legato_runs_finished", "Runs that reached a final status.", ["workflow", "status"], registry=r
        )
        self.run_duration = Histogram(
            "legato_run_duration_seconds",
            "From a run's start to its final status.",
            ["workflow", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.step_attempts = Counter(
            "legato_step_attempts",
            "Step and compensation attempts run by this process, by outcome.",
            ["workflow", "state", "kind", "outcome"],
            registry=r,
        )
        self.step_duration = Histogram(
            "legato_step_duration_seconds",
            "How long a step attempt's handler ran.",
            ["workflow", "state", "kind"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.queue_lag = Histogram(
            "legato_step_queue_lag_seconds",
            "From a step's dispatch to its handler starting (queueing and scheduling).",
            ["workflow", "priority"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "legato_steps_in_flight", "Step attempts running in this process now.", ["workflow"], registry=r
        )
        self.retries = Counter(
            "legato_step_retries",
            "Failed attempts that were scheduled for a retry.",
            ["workflow", "state"],
            registry=r,
        )
        self.dead_letters = Counter(
            "legato_dead_letters",
            "Dead letters: steps whose retries ran out (source=step), messages that could not be processed (source=message).",
            ["workflow", "source"],
            registry=r,
        )
        self.rate_limit_wait = Histogram(
            "legato_rate_limit_wait_seconds",
            "Time steps waited for a rate-limit token.",
            ["limit"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.conflicts = Counter(
            "legato_conflicts", "Optimistic-lock conflicts (the run moved on; decided again).", registry=r
        )
        self.rejections = Counter(
            "legato_rejections",
            "Events refused by a run (stale tasks, illegal actions).",
            ["event"],
            registry=r,
        )
        self.sla = Counter(
            "legato_sla", "Runs whose SLA was decided, met or missed.", ["workflow", "outcome"], registry=r
        )
        self.operator_actions = Counter(
            "legato_operator_actions",
            "Operator actions and signals applied.",
            ["workflow", "action"],
            registry=r,
        )
        self.map_items = Counter(
            "legato_map_items",
            "Map items: how many maps were given (outcome=given), and how each finished.",
            ["workflow", "state", "outcome"],
            registry=r,
        )
        self.webhook_refusals = Counter(
            "legato_webhook_refusals",
            "Webhook deliveries refused for their signature (missing, malformed, mismatch, expired).",
            ["source", "reason"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "legato_webhook_deliveries",
            "Verified webhook deliveries, accepted (runs started or found) or ignored (no workflow takes the event).",
            ["source", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("legato_queue_depth", "Messages ready in each queue.", ["queue"], registry=r)
        self.retention_removed = Counter(
            "legato_retention_removed_rows",
            "Rows removed by retention passes of this process, by table (docs/retention.md).",
            ["table"],
            registry=r,
        )
        self.retention_duration = Histogram(
            "legato_retention_duration_seconds",
            "How long a retention pass of this process took.",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.schedule_next_fire = Gauge(
            "legato_schedule_next_fire_timestamp_seconds",
            "When each schedule's timer fires next (read from the store at scrape time).",
            ["schedule"],
            registry=r,
        )
        self.schedule_lag = Histogram(
            "legato_schedule_lag_seconds",
            "From a tick's nominal time to its run's start (jitter and catch-up included).",
            ["schedule"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.schedule_ticks = Counter(
            "legato_schedule_ticks",
            "Schedule ticks by outcome (started, missed, skipped_overlap, buffered, ...).",
            ["schedule", "outcome"],
            registry=r,
        )
        self.schedule_misses = Counter(
            "legato_schedule_misses",
            "Ticks found due beyond the catch-up window, never fired.",
            ["schedule"],
            registry=r,
        )

    def observer(self) -> MetricsObserver:
        return MetricsObserver(self)

    def middleware(self) -> StepMetrics:
        return StepMetrics(self)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class StepMetrics:
    """Middleware: attempts, durations, queue lag and in-flight steps."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        m = self.metrics
        ctx = call.ctx
        in_flight = m.in_flight.labels(ctx.workflow)
        in_flight.inc()
        try:
            outcome = await call_next(call)
        finally:
            in_flight.dec()
        kind = ctx.kind.value
        m.step_attempts.labels(ctx.workflow, ctx.state, kind, "succeeded" if outcome.ok else "failed").inc()
        m.step_duration.labels(ctx.workflow, ctx.state, kind).observe(
            max(0.0, outcome.finished_at - outcome.started_at)
        )
        token = call.run.token(ctx.seq)
        if token is not None:
            m.queue_lag.labels(ctx.workflow, _priority(ctx.priority)).observe(
                max(0.0, outcome.started_at - token.since)
            )
        return outcome


def _priority(level: int) -> str:
    try:
        return Priority(level).name.lower()
    except ValueError:
        return str(level)


class MetricsObserver(Observer):
    """Observer: what committed transitions say about runs."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def applied(self, applied: AppliedInput) -> None:
        decision = applied.decision
        if applied.created:
            self.metrics.runs_started.labels(decision.run.workflow).inc()
        for record in decision.history:
            count = _COUNTS[record.kind]
            if count is not None:
                count(self, decision, record)

    def _retry(self, decision: Decision, record: HistoryRecord) -> None:
        self.metrics.retries.labels(decision.run.workflow, record.state or "").inc()

    def _dead_letter(self, decision: Decision, record: HistoryRecord) -> None:
        self.metrics.dead_letters.labels(decision.run.workflow, "step").inc()

    def _sla_missed(self, decision: Decision, record: HistoryRecord) -> None:
        self.metrics.sla.labels(decision.run.workflow, "missed").inc()

    def _operator(self, decision: Decision, record: HistoryRecord) -> None:
        self.metrics.operator_actions.labels(decision.run.workflow, OPERATOR_ACTIONS[record.kind]).inc()

    def _map_started(self, decision: Decision, record: HistoryRecord) -> None:
        items = record.detail.get("items")
        if isinstance(items, int) and items:
            self.metrics.map_items.labels(decision.run.workflow, record.state or "", "given").inc(items)

    def _map_item(self, decision: Decision, record: HistoryRecord) -> None:
        outcome = _ITEM_OUTCOMES[record.kind]
        self.metrics.map_items.labels(decision.run.workflow, record.state or "", outcome).inc()

    def _finished(self, decision: Decision, record: HistoryRecord) -> None:
        m = self.metrics
        run = decision.run
        status = run.status.value
        m.runs_finished.labels(run.workflow, status).inc()
        end = run.finished_at if run.finished_at is not None else run.updated_at
        m.run_duration.labels(run.workflow, status).observe(max(0.0, end - run.created_at))
        # The SLA is decided by this transition only when it cancels the deadline
        # timer; a deadline that fired earlier was counted as missed then.
        decided_now = any(isinstance(c, CancelTimer) and c.key == DEADLINE_TIMER for c in decision.commands)
        if decided_now and run.sla_met is not None:
            m.sla.labels(run.workflow, "met" if run.sla_met else "missed").inc()

    def rejected(self, rejected: RejectedInput) -> None:
        self.metrics.rejections.labels(rejected.event).inc()

    def conflict(self, conflict: ConflictInput) -> None:
        self.metrics.conflicts.inc()

    def poisoned(self, poisoned: PoisonedInput) -> None:
        self.metrics.dead_letters.labels("", "message").inc()

    def rate_limit_waited(self, waited: RateLimitWaitedInput) -> None:
        self.metrics.rate_limit_wait.labels(waited.limit).observe(waited.seconds)

    def retention_ran(self, ran: RetentionRanInput) -> None:
        for table, rows in ran.removed.items():
            self.metrics.retention_removed.labels(table).inc(rows)
        self.metrics.retention_duration.observe(ran.seconds)

    def schedule_fired(self, fired: ScheduleFiredInput) -> None:
        m = self.metrics
        if fired.lag is not None:
            m.schedule_lag.labels(fired.schedule).observe(max(0.0, fired.lag))
        for line in fired.lines:
            m.schedule_ticks.labels(fired.schedule, line.outcome.value).inc(line.count)
            if line.outcome is TickOutcome.MISSED:
                m.schedule_misses.labels(fired.schedule).inc(line.count)


Count = Callable[[MetricsObserver, Decision, HistoryRecord], None]

_ITEM_OUTCOMES = {
    HistoryKind.ITEM_SUCCEEDED: "succeeded",
    HistoryKind.ITEM_FAILED: "failed",
    HistoryKind.ITEM_STOPPED: "stopped",
}


def _count_for(kind: HistoryKind) -> Count | None:
    """What a history line of ``kind`` counts, if anything. Exhaustive, so a new
    kind is a decision here; looked up through ``_COUNTS`` per line."""
    match kind:
        case HistoryKind.RETRY_SCHEDULED:
            return MetricsObserver._retry
        case HistoryKind.DEAD_LETTERED:
            return MetricsObserver._dead_letter
        case HistoryKind.SLA_MISSED:
            return MetricsObserver._sla_missed
        case HistoryKind.RUN_FINISHED:
            return MetricsObserver._finished
        case HistoryKind.MAP_STARTED:
            return MetricsObserver._map_started
        case HistoryKind.ITEM_SUCCEEDED | HistoryKind.ITEM_FAILED | HistoryKind.ITEM_STOPPED:
            return MetricsObserver._map_item
        case (
            HistoryKind.OPERATOR_RETRY
            | HistoryKind.OPERATOR_SKIP
            | HistoryKind.OPERATOR_CANCEL
            | HistoryKind.OPERATOR_PAUSE
            | HistoryKind.OPERATOR_RESUME
            | HistoryKind.SIGNAL_RECEIVED
            | HistoryKind.COMPLETION_RECEIVED
        ):
            return MetricsObserver._operator
        case (
            HistoryKind.RUN_STARTED  # counted from ``created``: a start is its transition
            | HistoryKind.RUN_RESUMED
            | HistoryKind.STEP_SCHEDULED
            | HistoryKind.STEP_SUCCEEDED  # attempts are counted by StepMetrics, where they run
            | HistoryKind.STEP_FAILED
            | HistoryKind.RETRY_STARTED
            | HistoryKind.LEASE_EXPIRED  # its step_failed is counted
            | HistoryKind.COMPLETION_TIMED_OUT  # its step_failed is counted
            | HistoryKind.SUSPENDED
            | HistoryKind.CHOICE_MADE
            | HistoryKind.PARALLEL_STARTED
            | HistoryKind.BRANCH_COMPLETED
            | HistoryKind.JOINED
            | HistoryKind.WAITING
            | HistoryKind.WAIT_ELAPSED
            | HistoryKind.AWAITING_SIGNAL
            | HistoryKind.APPROVAL_TIMED_OUT
            | HistoryKind.STATE_REACHED
            | HistoryKind.COMPENSATION_STARTED
            | HistoryKind.COMPENSATION_SCHEDULED
            | HistoryKind.COMPENSATION_SUCCEEDED
            | HistoryKind.COMPENSATION_FAILED
            | HistoryKind.MAP_FAILING  # the items that failed are counted
            | HistoryKind.REJECTED  # counted by the ``rejected`` hook
            | HistoryKind.SIGNAL_BUFFERED  # counted (drawn) once taken, as signal_received
            | HistoryKind.STEP_INTERRUPTED  # the attempt's own outcome follows
            | HistoryKind.STEP_HELD  # the pause is counted (drawn) as an operator action
            | HistoryKind.COMPLETION_AWAITED  # its attempt is counted (drawn) where it ran
            | HistoryKind.CHILD_STARTED  # the child is a run of its own, counted as one
            | HistoryKind.CHILD_SUCCEEDED
            | HistoryKind.CHILD_FAILED
            | HistoryKind.CHILD_CANCELLED
            | HistoryKind.CHILD_LEFT
            | HistoryKind.COMPENSATION_REQUESTED
        ):
            return None
        case _:
            assert_never(kind)


_COUNTS = {kind: _count_for(kind) for kind in HistoryKind}
