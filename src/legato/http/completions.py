"""Completion tokens over HTTP, on the worker's HTTP server (authenticated as the ingress is).

POST /tokens/{token}/complete   body: the step's output (a JSON object, may be empty)
POST /tokens/{token}/fail       body: {"error": "...", "type": "...", "non_retryable": false}

200 with the run once the completion is committed; 404 for a token no step
was handed; 409 for a token used already (a token is single-use: the answer
says how and when it was used) or a run that no longer waits for it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from legato.engine import Engine
from legato.errors import BrokerError, LegatoError, OperationRefused, StoreError, UnknownCompletionToken
from legato.http.requests import BadRequest, json_object, json_response, raw_body
from legato.machine.errors import ErrorInfo
from legato.machine.values import JSON, unstorable
from legato.outside import EXTERNAL_ERROR, settle_token
from legato.views import run_json

ACTOR = "http"
FAIL_FIELDS = frozenset({"error", "type", "non_retryable"})


class CompletionRoutes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/tokens/{token}/complete", self.post_complete),
            web.post("/tokens/{token}/fail", self.post_fail),
        ]

    async def post_complete(self, request: web.Request) -> web.Response:
        output = json_object(await raw_body(request), "the output", empty_ok=True)
        problem = unstorable(output)
        if problem is not None:
            raise BadRequest(f"the output cannot be stored: {problem}")
        return await self._settle(request, output or None, None, False)

    async def post_fail(self, request: web.Request) -> web.Response:
        body = json_object(await raw_body(request), "the failure")
        unknown = sorted(body.keys() - FAIL_FIELDS)
        if unknown:
            raise BadRequest(
                f"unknown field {unknown[0]!r}; a failure takes {', '.join(sorted(FAIL_FIELDS))}"
            )
        message, type_ = body.get("error"), body.get("type", EXTERNAL_ERROR)
        if not isinstance(message, str) or not message:
            raise BadRequest("error must be a non-empty string: what went wrong")
        if not isinstance(type_, str) or not type_:
            raise BadRequest("type must be a non-empty string")
        non_retryable = body.get("non_retryable", False)
        if not isinstance(non_retryable, bool):
            raise BadRequest("non_retryable must be true or false")
        problem = unstorable({"error": message, "type": type_})
        if problem is not None:
            raise BadRequest(f"the error cannot be stored: {problem}")
        return await self._settle(request, None, ErrorInfo.of(type_, message), non_retryable)

    async def _settle(
        self, request: web.Request, output: JSON, error: ErrorInfo | None, non_retryable: bool
    ) -> web.Response:
        token = request.match_info["token"]
        try:
            run = await settle_token(
                self.engine,
                self.engine.store,
                token,
                ACTOR,
                output=output,
                error=error,
                non_retryable=non_retryable,
            )
        except UnknownCompletionToken as exc:
            raise BadRequest(str(exc), 404) from None
        except OperationRefused as exc:
            raise BadRequest(str(exc), 409) from None
        except (StoreError, BrokerError):
            raise  # an outage: 503, try again
        except LegatoError as exc:
            # The run cannot be moved here (a workflow version this worker lacks).
            raise BadRequest(str(exc), 409) from None
        answer: dict[str, Any] = {"run": run_json(run)}
        return json_response(answer)
