"""A sign-up flow: score the user, escalate suspicious sign-ups, send a welcome mail.

python -m examples.signup
"""

from __future__ import annotations

from typing import Any

import anyio

from examples._run import with_worker
from legato import App, Choice, Client, Field, RetryPolicy, Run, StepContext, Succeed, Task, Workflow

SENT: list[tuple[str, str]] = []
"""The mails our fake mailer 'sent', keyed so that a retry never sends twice."""


async def score(ctx: StepContext) -> dict[str, Any]:
    email: str = ctx.data["email"]
    return {"score": 9 if email.endswith("@mailinator.com") else 2}


async def escalate(ctx: StepContext) -> dict[str, Any]:
    return {"flagged_for_review": True}


async def welcome(ctx: StepContext) -> dict[str, Any]:
    # ctx.step_key is the same for every attempt of this step: an idempotency key
    # for the mail provider, so a retry after a timeout does not mail twice.
    if (ctx.step_key, ctx.data["email"]) not in SENT:
        SENT.append((ctx.step_key, ctx.data["email"]))
    return {"welcomed": True}


signup = Workflow(
    "signup",
    triggers=("user.signed_up",),
    start="score",
    retry=RetryPolicy(max_attempts=4, initial_delay=0.1),
    states={
        "score": Task(score, next="route"),
        "route": Choice([(Field("score") >= 7, "escalate")], default="welcome"),
        "escalate": Task(escalate, next="welcome"),
        "welcome": Task(welcome, next="done", timeout=10),
        "done": Succeed(),
    },
)

app = App([signup])


async def scenario(client: Client) -> list[Run]:
    runs = [
        await client.start("signup", {"email": "ada@example.com"}),
        await client.start("signup", {"email": "bot@mailinator.com"}),
    ]
    return [await client.wait(r.id, timeout=30) for r in runs]


def main() -> None:
    for run in anyio.run(with_worker, app, scenario):
        print(run.input["email"], run.status.value, dict(run.data))


if __name__ == "__main__":
    main()
