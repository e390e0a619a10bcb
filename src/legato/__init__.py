"""legato: event-driven workflow orchestration on RabbitMQ and Postgres.

Define a workflow as a state machine, register it on an :class:`App`, run
``legato worker module:app``, and start runs from your code with
``async with legato.connect(app=app) as client`` (or ``legato.connect_sync``)::

    from legato import App, Workflow, Task, Choice, Field, Succeed

    app = App()
    app.register(Workflow(
        "greet",
        start="hello",
        triggers=("user.signed_up",),
        states={
            "hello": Task(say_hello, next="done"),
            "done": Succeed(),
        },
    ))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legato.app import App, load_app
    from legato.client import Client
    from legato.completion import CompleteLater
    from legato.connection import SyncClient, connect, connect_sync
    from legato.context import StepContext
    from legato.errors import (
        AmbiguousRunId,
        BrokerError,
        ConfigurationError,
        DefinitionError,
        LegatoError,
        NonRetryableError,
        OperationRefused,
        RetryAfter,
        RunNotFound,
        StoreError,
    )
    from legato.machine.conditions import Condition, Field
    from legato.machine.definition import Priority, Workflow
    from legato.machine.limits import ConcurrencyLimit, RateLimit
    from legato.machine.policies import OnDeadline, OnFailure, ParentClose, RetryPolicy
    from legato.machine.run import Run, RunStatus
    from legato.machine.schedules import Cron, Every, Overlap
    from legato.machine.states import (
        Approval,
        Branch,
        Child,
        Choice,
        Fail,
        Map,
        Parallel,
        Rule,
        Succeed,
        Task,
        Wait,
    )
    from legato.machine.vocabulary import HistoryKind
    from legato.worker.execute import StepOutcome
    from legato.worker.middleware import Middleware, Next, StepCall

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunId",
    "App",
    "Approval",
    "Branch",
    "BrokerError",
    "Child",
    "Choice",
    "Client",
    "CompleteLater",
    "ConcurrencyLimit",
    "Condition",
    "ConfigurationError",
    "Cron",
    "DefinitionError",
    "Every",
    "Fail",
    "Field",
    "HistoryKind",
    "LegatoError",
    "Map",
    "Middleware",
    "Next",
    "NonRetryableError",
    "OnDeadline",
    "OnFailure",
    "OperationRefused",
    "Overlap",
    "Parallel",
    "ParentClose",
    "Priority",
    "RateLimit",
    "RetryAfter",
    "RetryPolicy",
    "Rule",
    "Run",
    "RunNotFound",
    "RunStatus",
    "StepCall",
    "StepContext",
    "StepOutcome",
    "StoreError",
    "Succeed",
    "SyncClient",
    "Task",
    "Wait",
    "Workflow",
    "connect",
    "connect_sync",
    "load_app",
]

# Each name is loaded from its module on first use (PEP 562): a program that
# imports one part of legato -- a CLI command, the worker's supervisor, a
# store -- does not load the rest, the client and the worker among it.
_WHERE = {
    "AmbiguousRunId": "legato.errors",
    "App": "legato.app",
    "Approval": "legato.machine.states",
    "Branch": "legato.machine.states",
    "BrokerError": "legato.errors",
    "Child": "legato.machine.states",
    "Choice": "legato.machine.states",
    "Client": "legato.client",
    "CompleteLater": "legato.completion",
    "ConcurrencyLimit": "legato.machine.limits",
    "Condition": "legato.machine.conditions",
    "ConfigurationError": "legato.errors",
    "Cron": "legato.machine.schedules",
    "DefinitionError": "legato.errors",
    "Every": "legato.machine.schedules",
    "Fail": "legato.machine.states",
    "Field": "legato.machine.conditions",
    "HistoryKind": "legato.machine.vocabulary",
    "LegatoError": "legato.errors",
    "Map": "legato.machine.states",
    "Middleware": "legato.worker.middleware",
    "Next": "legato.worker.middleware",
    "NonRetryableError": "legato.errors",
    "OnDeadline": "legato.machine.policies",
    "OnFailure": "legato.machine.policies",
    "OperationRefused": "legato.errors",
    "Overlap": "legato.machine.schedules",
    "Parallel": "legato.machine.states",
    "ParentClose": "legato.machine.policies",
    "Priority": "legato.machine.definition",
    "RateLimit": "legato.machine.limits",
    "RetryAfter": "legato.errors",
    "RetryPolicy": "legato.machine.policies",
    "Rule": "legato.machine.states",
    "Run": "legato.machine.run",
    "RunNotFound": "legato.errors",
    "RunStatus": "legato.machine.run",
    "StepCall": "legato.worker.middleware",
    "StepContext": "legato.context",
    "StepOutcome": "legato.worker.execute",
    "StoreError": "legato.errors",
    "Succeed": "legato.machine.states",
    "SyncClient": "legato.connection",
    "Task": "legato.machine.states",
    "Wait": "legato.machine.states",
    "Workflow": "legato.machine.definition",
    "connect": "legato.connection",
    "connect_sync": "legato.connection",
    "load_app": "legato.app",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'legato' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # once: later uses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
