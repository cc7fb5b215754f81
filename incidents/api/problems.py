"""One error format for the whole API: RFC 9457 problem details (``application/problem+json``).

Every 4xx and 5xx answer under ``/api/`` is a JSON object::

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "detected_at: timezone offset required: ...", "instance": "/api/incidents/",
     "code": "invalid", "errors": {"detected_at": ["timezone offset required: ..."]}}

- ``type`` is ``about:blank`` (RFC 9457 section 4.2.1): the status says what kind of problem
  it is, ``title`` is the status's reason phrase, ``detail`` says what went wrong this time in
  one line, ``instance`` is the request's path.
- ``code`` (an extension member) is a stable machine-readable slug: ``invalid``,
  ``guard_failed``, ``not_authenticated``, ``authentication_failed``, ``permission_denied``,
  ``not_found``, ``method_not_allowed``, ``not_acceptable``, ``unsupported_media_type``,
  ``conflict``, ``transition_not_available``, ``duplicate_external_reference``,
  ``idempotency_key_reused``, ``idempotency_key_in_use``, ``request_too_large``,
  ``throttled``, ``service_unavailable``, ``server_error``; the alert intake adds
  ``bad_signature``, ``stale_timestamp`` and ``replayed``.
- Other extension members, where they apply: ``errors`` (400: the messages per field, nested
  as the body is; messages not about one field under ``non_field_errors``), ``missing`` (400
  ``guard_failed``: the facts a transition needs), ``state`` (409 ``transition_not_available``:
  the incident's current state), ``incident`` (409 ``duplicate_external_reference``: the id of
  the incident that has it).

The database or the broker being unreachable is a 503 with ``Retry-After`` (seconds), never a
500: the request changed nothing that was not rolled back, and the client should retry.
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from incidents.exceptions import (
    ActionForbidden,
    DuplicateExternalReference,
    GuardFailed,
    LifecycleConflict,
    TransitionNotAvailable,
)

logger = logging.getLogger("breachdesk.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Seconds a client should wait before retrying after a 503 (the database or broker is down).
RETRY_AFTER_SECONDS = 5


class ApiProblem(exceptions.APIException):
    """An API error with a problem ``code`` and extension ``members`` of its own."""

    def __init__(self, *, status_code: int, detail: str, code: str, **members: Any) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.members = members


def _broker_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = []
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError

        errors.append(KombuOperationalError)
    except ImportError:  # pragma: no cover - kombu is a dependency
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return tuple(errors)


#: Errors that mean "a server we depend on is unreachable right now": 503 with Retry-After.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, *_broker_errors())


def problem_body(*, status_code: int, detail: str, code: str, instance: str = "", **members: Any) -> dict:
    """The problem details object for ``status_code`` (see the module docstring)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body["code"] = code
    body.update({key: value for key, value in members.items() if value is not None})
    return body


def problem_response(
    request: HttpRequest | None, *, status_code: int, detail: str, code: str, **members: Any
) -> JsonResponse:
    """A plain Django ``JsonResponse`` carrying a problem (for answers outside DRF views)."""
    body = problem_body(
        status_code=status_code,
        detail=detail,
        code=code,
        instance=request.path if request is not None else "",
        **members,
    )
    response = JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    if status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _flatten(detail: Any) -> Any:
    """DRF's error detail (``ErrorDetail`` strings in lists and dicts) as plain JSON."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list | tuple):
        return [_flatten(value) for value in detail]
    return str(detail)


def _errors_mapping(detail: Any) -> dict[str, Any]:
    """Field errors as a mapping; a bare list or string goes under ``non_field_errors``."""
    flat = _flatten(detail)
    if isinstance(flat, dict):
        return flat
    return {"non_field_errors": flat if isinstance(flat, list) else [flat]}


def _first_messages(errors: dict[str, Any], prefix: str = "") -> list[str]:
    """``field: message`` for the first message of each field (nested names joined by dots)."""
    lines: list[str] = []
    for key, value in errors.items():
        name = key if key == "non_field_errors" and not prefix else f"{prefix}{key}"
        while isinstance(value, list) and value and not isinstance(value[0], str):
            # A list of nested errors (one per item): report the first item that has any.
            items = [(index, item) for index, item in enumerate(value) if item]
            if not items:
                value = []
                break
            index, value = items[0]
            name = f"{name}[{index}]"
        if isinstance(value, dict):
            lines += _first_messages(value, prefix=f"{name}.")
        elif isinstance(value, list) and value:
            lines.append(value[0] if name == "non_field_errors" else f"{name}: {value[0]}")
        elif isinstance(value, str):
            lines.append(f"{name}: {value}")
    return lines


def _leaves(codes: Any) -> list[str]:
    if isinstance(codes, dict):
        return [leaf for value in codes.values() for leaf in _leaves(value)]
    if isinstance(codes, list | tuple):
        return [leaf for value in codes for leaf in _leaves(value)]
    return [str(codes)]


def _validation_problem(errors: dict[str, Any]) -> dict[str, Any]:
    lines = _first_messages(errors)
    detail = "; ".join(lines) if lines else "Invalid input."
    return {"status_code": 400, "detail": detail, "code": "invalid", "errors": errors}


def _problem_for(exc: BaseException) -> dict[str, Any] | None:
    """Keyword arguments of ``problem_body`` for ``exc``, or ``None`` for a bug (a 500)."""
    if isinstance(exc, ApiProblem):
        return {
            "status_code": exc.status_code,
            "detail": str(exc.detail),
            "code": str(exc.get_codes()),
            **exc.members,
        }
    if isinstance(exc, GuardFailed):
        return {"status_code": 400, "detail": str(exc), "code": "guard_failed", "missing": exc.missing}
    if isinstance(exc, TransitionNotAvailable):
        return {
            "status_code": 409,
            "detail": str(exc),
            "code": "transition_not_available",
            "state": exc.state,
        }
    if isinstance(exc, DuplicateExternalReference):
        return {
            "status_code": 409,
            "detail": str(exc),
            "code": "duplicate_external_reference",
            "incident": exc.incident_id,
        }
    if isinstance(exc, LifecycleConflict):
        return {"status_code": 409, "detail": str(exc), "code": "conflict"}
    if isinstance(exc, ActionForbidden | DjangoPermissionDenied):
        # ActionForbidden is a PermissionDenied too; any view may raise Django's own.
        return {"status_code": 403, "detail": str(exc) or "Permission denied.", "code": "permission_denied"}
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return _validation_problem({key: list(value) for key, value in exc.message_dict.items()})
        return _validation_problem({"non_field_errors": exc.messages})
    if isinstance(exc, exceptions.ValidationError):
        problem = _validation_problem(_errors_mapping(exc.detail))
        if set(_leaves(exc.get_codes())) == {"unique"}:
            # A value another record already has: a conflict with the current state, not a
            # malformed request (the same body can succeed once the other record changes).
            problem.update(status_code=409, code="conflict")
        return problem
    if isinstance(exc, RequestDataTooBig):
        return {
            "status_code": 413,
            "detail": f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            "code": "request_too_large",
        }
    if isinstance(exc, UnicodeDecodeError):
        return {"status_code": 400, "detail": "The request is not valid UTF-8.", "code": "invalid"}
    if isinstance(exc, SuspiciousOperation):
        return {"status_code": 400, "detail": "The request was refused as malformed.", "code": "invalid"}
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return {
            "status_code": 503,
            "detail": "A server this request needs (the database or the message broker) is unreachable; "
            f"nothing was changed. Retry in {RETRY_AFTER_SECONDS} seconds.",
            "code": "service_unavailable",
        }
    if isinstance(exc, IntegrityError):
        return {
            "status_code": 409,
            "detail": "The change conflicts with a concurrent one; nothing was changed. Read the resource and retry.",
            "code": "conflict",
        }
    if isinstance(exc, DataError):
        return {"status_code": 400, "detail": "A value cannot be stored as given.", "code": "invalid"}
    if isinstance(exc, Http404):
        return {"status_code": 404, "detail": str(exc) or "Not found.", "code": "not_found"}
    if isinstance(exc, exceptions.Throttled):
        return {"status_code": 429, "detail": str(exc.detail), "code": "throttled"}
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        if isinstance(exc.detail, dict | list):
            errors = _errors_mapping(exc.detail)
            detail = "; ".join(_first_messages(errors)) or str(exc.default_detail)
            return {"status_code": exc.status_code, "detail": detail, "code": str(code), "errors": errors}
        return {"status_code": exc.status_code, "detail": str(exc.detail), "code": str(code)}
    if isinstance(exc, DatabaseError):
        return {
            "status_code": 503,
            "detail": f"The database could not complete the request; nothing was changed. Retry in {RETRY_AFTER_SECONDS} seconds.",
            "code": "service_unavailable",
        }
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every error a request can cause as a problem response.

    Returns ``None`` (Django's 500, itself answered as a problem by ``server_error``) only for
    errors that are bugs. Rolls back the request's atomic block, as DRF's own handler does.
    """
    request = context.get("request")
    arguments = _problem_for(exc)
    if arguments is None:
        return None
    if arguments["status_code"] >= 500:
        logger.warning("API %s answered %s: %r", getattr(request, "path", "?"), arguments["status_code"], exc)
    # Let DRF compute its headers (WWW-Authenticate, Retry-After of throttles, Allow).
    drf_response = (
        drf_exception_handler(exc, context) if isinstance(exc, exceptions.APIException | Http404) else None
    )
    set_rollback()
    body = problem_body(instance=getattr(request, "path", ""), **arguments)
    response = Response(body, status=arguments["status_code"], content_type=PROBLEM_CONTENT_TYPE)
    if drf_response is not None:
        for header, value in drf_response.headers.items():
            if header.lower() in ("www-authenticate", "retry-after", "allow"):
                response[header] = value
    if arguments["status_code"] == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if arguments["status_code"] == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Token realm="api"'
    return response


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class ApiProblemMiddleware:
    """Answers an exception that escaped a view under ``/api/`` (a non-DRF view, or a bug in a
    DRF one) with a problem: 503 with ``Retry-After`` when the database or broker is
    unreachable, 500 otherwise, whatever ``DEBUG`` says. Other paths are left to Django."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request):
            return None
        arguments = _problem_for(exception)
        if arguments is None:
            logger.error("Unhandled error under %s", request.path, exc_info=exception)
            arguments = {
                "status_code": 500,
                "detail": "Internal error; it has been logged.",
                "code": "server_error",
            }
        return problem_response(request, **arguments)


# Django's error handlers (config.urls): problems under /api/, Django's pages elsewhere ---------


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return problem_response(
            request, status_code=400, detail="The request was refused as malformed.", code="invalid"
        )
    from django.views.defaults import bad_request as default

    return default(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return problem_response(
            request, status_code=403, detail=str(exception) or "Permission denied.", code="permission_denied"
        )
    from django.views.defaults import permission_denied as default

    return default(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return problem_response(
            request, status_code=404, detail=f"Nothing at {request.path}.", code="not_found"
        )
    from django.views.defaults import page_not_found as default

    return default(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        exception = sys.exc_info()[1]
        arguments = _problem_for(exception) if exception is not None else None
        if arguments is None or arguments["status_code"] < 500:
            arguments = {
                "status_code": 500,
                "detail": "Internal error; it has been logged.",
                "code": "server_error",
            }
        return problem_response(request, **arguments)
    from django.views.defaults import server_error as default

    return default(request)


# The schema ---------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every 4xx and 5xx answer under ``/api/`` carries them."""

    type = serializers.CharField(help_text='Always "about:blank": the status says what kind of problem.')
    title = serializers.CharField(help_text="The HTTP status's reason phrase.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong, in one line.")
    instance = serializers.CharField(required=False, help_text="The request's path.")
    code = serializers.CharField(help_text="A stable machine-readable slug (see the README).")
    errors = serializers.DictField(  # type: ignore[assignment]  # the member, not Serializer.errors
        required=False,
        help_text="400: messages per field, nested like the body; others under non_field_errors.",
    )
    missing = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="400 guard_failed: facts the transition needs.",
    )
    state = serializers.CharField(
        required=False, help_text="409 transition_not_available: the current state."
    )
    incident = serializers.IntegerField(
        required=False, help_text="409 duplicate_external_reference: the incident that has it."
    )
