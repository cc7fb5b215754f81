"""Creates that a client can retry safely, and answers that never fail after the commit.

``@idempotent_create`` wraps a view's POST handler:

1. The handler runs in one transaction that also builds the answer's body, so once the
   transaction commits there is nothing left that can fail: a database that goes away after
   the commit cannot turn a committed create into an error (the client would retry and
   duplicate). An error raised after the commit by an on-commit callback is logged, and the
   built answer is sent.
2. With an ``Idempotency-Key`` header (1 to 255 visible ASCII characters), a successful (2xx)
   answer is stored in the same transaction (``IdempotencyRecord``, per user, kept for
   ``IDEMPOTENCY_KEY_HOURS``). A retry with the same key and the same body (method, path and
   JSON body compared canonically) gets the stored answer again, with
   ``Idempotent-Replayed: true``, and creates nothing; the same key with another body gets
   422 (``idempotency_key_reused``). Two requests with one key at the same moment: the
   second waits for the first and then gets its answer (its own work is rolled back).
   Errors are not stored: they changed nothing, so a retry is simply tried again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.problems import ApiProblem
from incidents.models import IdempotencyRecord

logger = logging.getLogger("breachdesk.api")

HEADER = "Idempotency-Key"

#: Documents the header on every create (``@extend_schema(parameters=[IDEMPOTENCY_KEY])``).
IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the create safe to retry: the same key and body get the first answer again "
        "(with Idempotent-Replayed: true); the same key with another body gets 422. 1 to 255 "
        "visible ASCII characters, kept per user for IDEMPOTENCY_KEY_HOURS (24)."
    ),
    pattern=r"^[!-~]{1,255}$",
)


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all("!" <= character <= "~" for character in key)


def _fingerprint(request: Request) -> str:
    try:
        data = request.data
    except Exception:  # noqa: BLE001 - an unparsable body: the handler will refuse it with 400
        data = None
    if isinstance(data, dict | list):
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    else:
        body = request.body if data is None else str(data).encode()
    digest = hashlib.sha256()
    for part in ((request.method or "").encode(), request.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_fingerprint != fingerprint:
        raise ApiProblem(
            status_code=422,
            detail=f"This {HEADER} was used for a different request; use a new key for a new create.",
            code="idempotency_key_reused",
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _stored(user: Any, key: str) -> IdempotencyRecord | None:
    oldest = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    return IdempotencyRecord.objects.filter(user=user, key=key, created_at__gte=oldest).first()


def run_create(request: Request, produce: Callable[[], Response]) -> Response:
    """Run ``produce`` (which writes and returns the answer with its body built) as described
    in the module docstring, and return its answer or the stored one."""
    key = request.headers.get(HEADER)
    user = request.user if request.user.is_authenticated else None
    if key is not None and user is not None:
        if not _valid_key(key):
            raise ValidationError({HEADER: ["1 to 255 visible ASCII characters."]})
        fingerprint = _fingerprint(request)
        existing = _stored(user, key)
        if existing is not None:
            return _replay(existing, fingerprint)
    else:
        key = None
        fingerprint = ""

    committed = False

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    response: Response | None = None
    try:
        with transaction.atomic():
            # Registered first, so it runs first after the commit: later callbacks may fail.
            transaction.on_commit(mark_committed)
            response = produce()
            if key is not None and 200 <= response.status_code < 300:
                # Last statement of the transaction: a concurrent request with this key that
                # committed first makes it fail, and this request's work is rolled back.
                IdempotencyRecord.objects.create(
                    user=user,  # type: ignore[misc]  # not None: a key is used only with a user
                    key=key,
                    method=request.method or "POST",
                    path=request.path[:500],
                    request_fingerprint=fingerprint,
                    response_status=response.status_code,
                    response_body=json.loads(json.dumps(response.data, default=str)),
                )
    except IntegrityError:
        if committed or key is None:
            raise
        existing = _stored(user, key)
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    except Exception:
        if not committed or response is None:
            raise
        logger.exception(
            "An after-commit step of %s %s failed; answering with what was committed.",
            request.method,
            request.path,
        )
    assert response is not None
    return response


def idempotent_create(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a DRF view method whose POST creates something (see the module docstring).
    Other methods of the same handler (an action serving GET and POST) pass through."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        if request.method != "POST":
            return handler(view, request, *args, **kwargs)
        return run_create(request, lambda: handler(view, request, *args, **kwargs))

    wrapper.idempotent_create = True  # type: ignore[attr-defined]
    return wrapper
