"""The OpenAPI document of the worker's HTTP server, served at ``/openapi.json``.

Written by hand beside the handlers (http/ingress.py, http/webhooks.py);
tests/integration/test_ingress_fuzz.py fuzzes a real worker from it, so a
route or an answer the document does not describe fails that test.
"""

from __future__ import annotations

from typing import Any

from legato.http.requests import MAX_KEY_LENGTH

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What was wrong, in words."}},
}
_RUN = {
    "type": "object",
    "required": ["id", "workflow", "status"],
    "properties": {
        "id": {"type": "string"},
        "workflow": {"type": "string"},
        "workflow_version": {"type": "integer"},
        "status": {
            "type": "string",
            "enum": [
                "pending",
                "running",
                "succeeded",
                "failed",
                "compensating",
                "compensated",
                "cancelled",
                "suspended",
                "paused",
            ],
        },
        "input": {"type": "object"},
        "data": {"type": "object", "description": "The run's data; its result once it succeeded."},
        "error": {"type": "object", "nullable": True},
        "paused": {
            "type": "object",
            "nullable": True,
            "description": "Who paused the run, when and why; null unless it is paused.",
        },
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["event", "key", "runs"],
    "properties": {
        "event": {"type": "string"},
        "key": {"type": "string", "description": "The idempotency key the event was accepted under."},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["workflow", "run_id", "created"],
                "properties": {
                    "workflow": {"type": "string"},
                    "run_id": {"type": "string"},
                    "created": {"type": "boolean", "description": "False: the key had started it before."},
                },
            },
        },
        "ignored": {"type": "string"},
    },
}
_RUN_ANSWER = {
    "type": "object",
    "required": ["run"],
    "properties": {"created": {"type": "boolean"}, "run": {"$ref": "#/components/schemas/Run"}},
}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "The request is malformed; the error says how.",
        401: "No or a wrong token, or (webhooks) a missing or bad signature.",
        403: "Refused: a non-loopback Host, or actions without a configured token.",
        404: "No such workflow, event, run, completion token or webhook source.",
        409: "Refused by the run: a signal it does not take now, a completion token used already, "
        "or a step that no longer waits for its token.",
        413: "The body is larger than [ingress] max_body.",
        422: "The idempotency key was used before with another body.",
        503: "The database or the broker is away; nothing was accepted, try again.",
    }
    return {str(code): _answer(words[code], "Error") for code in (*codes, 401, 403, 503)}


_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The event's idempotency key (IETF httpapi draft): the same key starts one run per workflow.",
    "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
}
_JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "legato worker",
            "version": "1",
            "description": "HTTP ingress, signed webhooks and probes of `legato worker --http-port` (docs/events.md).",
        },
        "components": {
            "schemas": {"Error": _ERROR, "Run": _RUN, "Accepted": _ACCEPTED, "RunAnswer": _RUN_ANSWER},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/events/{name}": {
                "post": {
                    "summary": "Start the runs an event triggers; answered once they are committed.",
                    "parameters": [_path("name"), _KEY_HEADER, _priority_header()],
                    "requestBody": {"required": True, **_JSON_OBJECT},
                    "responses": {
                        "202": _answer("Accepted: the runs it started.", "Accepted"),
                        **_errors(400, 404, 413, 422),
                    },
                }
            },
            "/workflows/{name}/runs": {
                "post": {
                    "summary": "Start a run; with ?wait, answer with its result when it finishes in time.",
                    "parameters": [
                        _path("name"),
                        _KEY_HEADER,
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "Seconds to wait for the run to finish (at most [ingress] max_wait).",
                            "schema": {"type": "number", "minimum": 0},
                        },
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "input": {"type": "object"},
                                        "key": {"type": "string", "maxLength": MAX_KEY_LENGTH},
                                        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _answer("The run finished within the wait.", "RunAnswer"),
                        "202": _answer("The run is committed (and not finished yet).", "RunAnswer"),
                        **_errors(400, 404, 413, 422),
                    },
                }
            },
            "/runs/{run_id}/signals/{name}": {
                "post": {
                    "summary": "Send a run a signal (its data is the body).",
                    "parameters": [_path("run_id"), _path("name")],
                    "requestBody": {"required": False, **_JSON_OBJECT},
                    "responses": {"200": _answer("Applied.", "RunAnswer"), **_errors(400, 404, 409, 413)},
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "summary": "A run.",
                    "parameters": [_path("run_id")],
                    "responses": {"200": _answer("The run.", "RunAnswer"), **_errors(404)},
                }
            },
            "/tokens/{token}/complete": {
                "post": {
                    "summary": "Complete the step waiting for this completion token; the body is its output.",
                    "parameters": [_path("token")],
                    "requestBody": {"required": False, **_JSON_OBJECT},
                    "responses": {
                        "200": _answer("Completed: the run goes on from the step.", "RunAnswer"),
                        **_errors(400, 404, 409, 413),
                    },
                }
            },
            "/tokens/{token}/fail": {
                "post": {
                    "summary": "Fail the step waiting for this completion token; its retry policy decides.",
                    "parameters": [_path("token")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["error"],
                                    "properties": {
                                        "error": {"type": "string", "minLength": 1},
                                        "type": {"type": "string", "minLength": 1},
                                        "non_retryable": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _answer("Failed: the step's retry policy decided what follows.", "RunAnswer"),
                        **_errors(400, 404, 409, 413),
                    },
                }
            },
            "/webhooks/{source}": {
                "post": {
                    "summary": "A provider's signed delivery ([webhooks.NAME]); the signature is the credential.",
                    "security": [],
                    "parameters": [_path("source")],
                    "requestBody": {"required": True, **_JSON_OBJECT},
                    "responses": {
                        "202": _answer("Accepted, or ignored.", "Accepted"),
                        **_errors(400, 404, 413, 422),
                    },
                }
            },
        },
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _priority_header() -> dict[str, Any]:
    return {
        "name": "X-Legato-Priority",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["low", "normal", "high"]},
    }
