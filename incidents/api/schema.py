"""The OpenAPI schema tells the truth about errors: a drf-spectacular post-processing hook.

Every operation documents, as ``application/problem+json`` with the ``Problem`` schema
(``incidents.api.problems``): the error statuses its view declares, and those any route can
answer: 400 (a query parameter or body at fault), 401 (no or bad credentials, where the route
needs them), 403, 404 (any path), 406 (an ``Accept`` it cannot serve), 429 (throttled) and 503
(database or broker unreachable, with ``Retry-After``); operations with a body also 413 and
415; creates also 422 (an ``Idempotency-Key`` reused for another body).
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

PROBLEM = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "description": 'Always "about:blank".'},
        "title": {"type": "string", "description": "The HTTP status's reason phrase."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, in one line."},
        "instance": {"type": "string", "description": "The request's path."},
        "code": {"type": "string", "description": "A stable machine-readable slug (README, API errors)."},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "400: messages per field, nested like the body; others under non_field_errors.",
        },
        "missing": {
            "type": "array",
            "items": {"type": "string"},
            "description": "400 guard_failed: the facts the transition needs.",
        },
        "state": {"type": "string", "description": "409 transition_not_available: the incident's state."},
        "incident": {
            "type": "integer",
            "description": "409 duplicate_external_reference: that incident's id.",
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}

_ALWAYS = (400, 403, 404, 406, 429, 503)


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 503:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}
        }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Token realm="api"'}
        }
    return response


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _tell_the_truth_about_bodies(schemas: dict[str, Any]) -> None:
    """Request bodies refuse keys they do not name (``StrictFieldsMixin``): say so with
    ``additionalProperties: false``. A transition's body is any one of the bodies (``{}``
    fits several), so ``anyOf``, not ``oneOf``. Email addresses may be internationalised
    (Django's validator accepts them): ``idn-email``."""
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
            for node in _walk(component.get("properties", {})):
                if node.get("type") == "object" and "properties" in node:
                    node.setdefault("additionalProperties", False)
    transition = schemas.get("TransitionBodyRequest") or schemas.get("TransitionBody")
    if transition and "oneOf" in transition:
        transition["anyOf"] = transition.pop("oneOf")
    for node in _walk(schemas):
        if node.get("format") == "email":
            node["format"] = "idn-email"


def problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: see the module docstring."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    _tell_the_truth_about_bodies(schemas)
    schemas["Problem"] = PROBLEM_SCHEMA
    for stale in ("Error", "GuardFailed"):
        schemas.pop(stale, None)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "put", "post", "patch", "delete", "head", "options"):
                continue
            responses = operation.setdefault("responses", {})
            codes = {int(code) for code in responses if str(code).isdigit() and int(code) >= 400}
            codes.update(_ALWAYS)
            if operation.get("security") != [] and operation.get("security") != [{}]:
                codes.add(401)
            if "requestBody" in operation:
                codes.update((413, 415))
            if method in ("post", "put", "patch", "delete"):
                codes.add(409)  # a unique value taken, or a change that conflicts with the state
            if method == "post" and any(
                parameter.get("name") == "Idempotency-Key" for parameter in operation.get("parameters", [])
            ):
                codes.add(422)
            for code in sorted(codes):
                responses[str(code)] = _problem(code)
    return result
