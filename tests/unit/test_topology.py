"""The names of the routed topology: app queues, task queues, and replaying to them."""

from __future__ import annotations

import pytest

from legato import App, Task, Workflow
from legato.broker.base import Topology
from legato.errors import ConfigurationError
from legato.priority import Priority


def test_an_app_given_no_name_keeps_the_task_queues_of_legato_0x() -> None:
    topology = Topology("ns")
    assert topology.app == "default"
    assert topology.task_queues == ("ns.tasks.high", "ns.tasks.normal", "ns.tasks.low")
    assert topology.task_key(Priority.HIGH) == "high"
    assert topology.event_queues == ("ns.app.default", "ns.signals", "ns.unrouted")


def test_a_named_app_has_queues_of_its_own() -> None:
    topology = Topology("ns").serving("billing", {"invoice.due"})
    assert topology.task_queues == ("ns.app.billing.high", "ns.app.billing.normal", "ns.app.billing.low")
    assert topology.task_key(Priority.LOW) == "billing.low"
    assert topology.app_queue == "ns.app.billing"
    assert topology.events == frozenset({"invoice.due"})
    # Another app's queue and key, for a message that app's engine made.
    assert topology.task_queue(Priority.NORMAL, "shipping") == "ns.app.shipping.normal"
    assert topology.task_key(Priority.NORMAL, "default") == "normal"


@pytest.mark.parametrize(
    ("queue", "route"),
    [
        ("ns.tasks.high", ("default", Priority.HIGH)),
        ("ns.app.billing.low", ("billing", Priority.LOW)),
        ("ns.app.ship-ping_2.normal", ("ship-ping_2", Priority.NORMAL)),
        ("ns.app.billing", None),  # the app's events
        ("ns.unrouted", None),
        ("ns.signals", None),
        ("ns.triggers", None),
        ("other.app.billing.low", None),
        ("ns.app.bad.name.low", None),
        ("ns.app.billing.urgent", None),
    ],
)
def test_a_dead_lettered_message_is_replayed_by_the_queue_it_came_from(
    queue: str, route: tuple[str, Priority] | None
) -> None:
    assert Topology("ns").serving("shipping", ()).task_route(queue) == route


def test_an_app_name_goes_into_queue_names_so_it_is_checked() -> None:
    for bad in ("", "a.b", "-x", "a b", "x" * 101, "ünï"):
        with pytest.raises(ConfigurationError, match="app name"):
            App(name=bad)
    assert App(name="billing-v2_eu").name == "billing-v2_eu"


def test_the_app_queue_is_bound_to_the_newest_triggers_of_every_workflow() -> None:
    def h(ctx: object) -> None:
        return None

    old = Workflow("ship", triggers=("order.paid", "order.shipped"), start="a", states={"a": Task(h)})
    new = Workflow("ship", version=2, triggers=("order.paid",), start="a", states={"a": Task(h)})
    returns = Workflow("returns", triggers=("order.returned",), start="a", states={"a": Task(h)})
    assert App([old, new, returns], name="shipping").events() == {"order.paid", "order.returned"}
