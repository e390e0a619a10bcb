"""The application: the set of workflow definitions a worker serves."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from legato.broker.base import APP_NAME, DEFAULT_APP
from legato.errors import ConfigurationError, DefinitionError, LegatoError
from legato.machine.definition import Workflow
from legato.machine.limits import ConcurrencyLimit, Limit, RateLimit, kind_of_limit
from legato.machine.run import StepKind
from legato.machine.states import Handler, Task, handler_name
from legato.machine.validation import check_children, check_limit_uses

if TYPE_CHECKING:
    from legato.worker.middleware import Middleware


@dataclass(frozen=True)
class ResolvedHandler:
    name: str
    function: Callable[..., Any]
    is_async: bool


class UnknownWorkflow(LegatoError):
    def __init__(self, name: str, version: int | None, known: list[str]) -> None:
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        hint = f"; registered: {', '.join(known)}" if known else "; no workflow is registered"
        super().__init__(f"unknown workflow {which}{hint}")


class App:
    """Holds workflow definitions, their handlers, the flow-control limits they use
    and the middleware around their steps.

    There is no global app: build one, register workflows, and point
    ``legato worker module:attribute`` at it. Limits (:class:`RateLimit`,
    :class:`ConcurrencyLimit`) are declared before the workflows that use them.
    ``middleware`` wraps every step attempt of every worker serving the app,
    the first listed outermost (docs/middleware.md).

    ``name`` names the app's event queue (``NAMESPACE.app.NAME``): apps that
    share a namespace need names of their own, and every version of one app
    keeps its name, so that a rolling deploy shares the queue (docs/operations.md).
    """

    def __init__(
        self,
        workflows: Iterable[Workflow] = (),
        limits: Iterable[Limit] = (),
        middleware: Iterable[Middleware] = (),
        name: str = DEFAULT_APP,
    ) -> None:
        if not isinstance(name, str) or not APP_NAME.fullmatch(name):
            raise ConfigurationError(
                f"app name {name!r} must be 1-100 letters, digits, '_' or '-', starting with a letter or digit"
            )
        self.name = name
        self._versions: dict[str, dict[int, Workflow]] = {}
        self._handlers: dict[tuple[str, int, str, StepKind], ResolvedHandler] = {}
        self._limits: dict[str, Limit] = {}
        self._middleware = tuple(_check_middleware(layer) for layer in middleware)
        for limit in limits:
            self.declare(limit)
        for workflow in workflows:
            self.register(workflow)

    def declare(self, limit: Limit) -> Limit:
        """Add a rate or concurrency limit; refuse illegal ones and duplicate names."""
        if not isinstance(limit, RateLimit | ConcurrencyLimit):
            raise DefinitionError(
                repr(limit), None, "declare() takes a RateLimit or a ConcurrencyLimit", what="limit"
            )
        problems = limit.problems()
        if problems:
            raise DefinitionError(str(limit.name), None, "; ".join(problems), what=kind_of_limit(limit))
        if limit.name in self._limits:
            raise DefinitionError(limit.name, None, "a limit of this name is already declared", what="limit")
        self._limits[limit.name] = limit
        return limit

    @property
    def limits(self) -> Mapping[str, Limit]:
        return MappingProxyType(self._limits)

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The step middleware, outermost first."""
        return self._middleware

    def with_limits(self, overrides: Mapping[str, Mapping[str, Any]]) -> App:
        """A copy whose limits have some fields replaced (``{"payments": {"rate": 80}}``).

        How operators change a quota without a deploy (the ``[limits.NAME]``
        section of the configuration). Unknown names and fields are refused.
        """
        copy = App(limits=(), middleware=self._middleware, name=self.name)
        copy._versions = dict(self._versions)
        copy._handlers = dict(self._handlers)
        unknown = sorted(set(overrides) - set(self._limits))
        if unknown:
            known = ", ".join(sorted(self._limits)) or "none"
            raise ConfigurationError(
                f"[limits] names undeclared limits {', '.join(unknown)}; declared: {known}"
            )
        for name, limit in self._limits.items():
            fields = dict(overrides.get(name, {}))
            if "name" in fields:
                raise ConfigurationError(f"[limits.{name}] cannot rename the limit")
            try:
                changed = replace(limit, **fields)
            except TypeError as exc:
                raise ConfigurationError(f"[limits.{name}]: {exc}") from None
            problems = changed.problems()
            if problems:
                raise ConfigurationError(f"[limits.{name}]: {'; '.join(problems)}")
            copy._limits[name] = changed
        return copy

    def register(self, workflow: Workflow) -> Workflow:
        """Add a workflow; refuse duplicates, handlers that cannot be found and undeclared limits."""
        if not isinstance(workflow, Workflow):
            raise DefinitionError(repr(workflow), None, "register() takes a Workflow")
        versions = self._versions.get(workflow.name, {})
        if workflow.version in versions:
            raise DefinitionError(workflow.name, None, f"version {workflow.version} is already registered")
        check_limit_uses(workflow, self._limits)
        check_children(
            workflow,
            {**{n: list(v) for n, v in self._versions.items()}, workflow.name: [*versions, workflow.version]},
        )
        resolved: dict[tuple[str, int, str, StepKind], ResolvedHandler] = {}
        for name in workflow.state_names():
            state = workflow.state(name)
            if not isinstance(state, Task):
                continue
            resolved[(workflow.name, workflow.version, name, StepKind.STEP)] = _resolve(
                workflow, name, state.handler
            )
            if state.compensate is not None:
                resolved[(workflow.name, workflow.version, name, StepKind.COMPENSATION)] = _resolve(
                    workflow, name, state.compensate
                )
        self._versions[workflow.name] = {**versions, workflow.version: workflow}
        self._handlers.update(resolved)
        return workflow

    def workflow(self, name: str, version: int | None = None) -> Workflow:
        versions = self._versions.get(name)
        if not versions or (version is not None and version not in versions):
            raise UnknownWorkflow(name, version, self.names())
        return versions[version if version is not None else max(versions)]

    def names(self) -> list[str]:
        return sorted(self._versions)

    def workflows(self) -> list[Workflow]:
        """The newest version of every workflow."""
        return [self.workflow(name) for name in self.names()]

    def all_versions(self) -> list[Workflow]:
        return [wf for versions in self._versions.values() for wf in versions.values()]

    def triggered_by(self, event: str) -> list[Workflow]:
        """Workflows whose newest version starts on ``event``."""
        return [wf for wf in self.workflows() if event in wf.triggers]

    def events(self) -> frozenset[str]:
        """Every event name a workflow's newest version starts on: the app queue's bindings."""
        return frozenset(event for wf in self.workflows() for event in wf.triggers)

    def handler(self, workflow: Workflow, state: str, kind: StepKind) -> ResolvedHandler:
        return self._handlers[(workflow.name, workflow.version, state, kind)]


def _resolve(workflow: Workflow, state: str, handler: Handler) -> ResolvedHandler:
    function: Any = handler
    if isinstance(handler, str):
        function = import_object(handler, what=f"handler of {workflow.name}.{state}", error=DefinitionError)
    if not callable(function):
        raise DefinitionError(workflow.name, state, f"handler {handler_name(handler)} is not callable")
    target = getattr(function, "__call__", function)  # noqa: B004 - objects with async __call__
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(target)
    return ResolvedHandler(handler_name(handler), function, is_async)


def _check_middleware(layer: Middleware) -> Middleware:
    # An object counts by its class's __call__; a class itself (an instance forgotten) does not.
    method = None if isinstance(layer, type) else getattr(type(layer), "__call__", None)  # noqa: B004
    if not (inspect.iscoroutinefunction(layer) or inspect.iscoroutinefunction(method)):
        raise DefinitionError(
            getattr(layer, "__qualname__", None) or type(layer).__qualname__,
            None,
            "must be an async function (or an object with an async __call__) taking "
            "(call, call_next) and returning the attempt's StepOutcome",
            what="middleware",
        )
    return layer


def import_object(spec: str, what: str = "object", error: type[Exception] = ConfigurationError) -> Any:
    """Import ``module:attribute`` (``module.attribute`` also works)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise _error(error, f"{what} {spec!r} must look like 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _error(error, f"cannot import module {module_name!r} for {what} {spec!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _error(error, f"module {module_name!r} has no attribute {attribute!r} ({what})") from None
    return target


def _error(kind: type[Exception], message: str) -> Exception:
    if kind is DefinitionError:
        return DefinitionError("?", None, message)
    return kind(message)


def load_app(spec: str) -> App:
    """Load the :class:`App` named by ``module:attribute`` (like uvicorn)."""
    target = import_object(spec, what="app")
    if callable(target) and not isinstance(target, App):
        target = target()
    if not isinstance(target, App):
        raise ConfigurationError(f"{spec!r} is a {type(target).__name__}, not a legato App")
    return target
