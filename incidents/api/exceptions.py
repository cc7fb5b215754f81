"""Maps service errors to HTTP answers so that no user input ever produces a 500.

``GuardFailed`` -> 400 with ``missing``; ``TransitionNotAvailable`` -> 409 with the current
``state``; ``LifecycleConflict`` -> 409; ``ActionForbidden`` -> 403 with the service's message;
Django's ``ValidationError`` -> 400 with the messages per field; a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` -> 413.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from incidents.exceptions import (
    ActionForbidden,
    GuardFailed,
    LifecycleConflict,
    TransitionNotAvailable,
)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler plus the domain errors above; ``None`` (a 500) only for errors
    that are bugs, never for anything a request body or query string can cause."""
    if isinstance(exc, GuardFailed):
        return Response({"detail": str(exc), "missing": exc.missing}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TransitionNotAvailable):
        return Response({"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, LifecycleConflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ActionForbidden):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, ValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return drf_exception_handler(exc, context)
