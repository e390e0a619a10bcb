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

from legato.app import App, load_app
from legato.client import Client
from legato.completion import CompleteLater
from legato.connect import SyncClient, connect, connect_sync
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
