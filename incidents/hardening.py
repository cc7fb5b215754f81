"""Request hardening that holds for every page, whoever wrote it (issue 8.5).

- ``PageMethodsMiddleware``: a web page (anything that is not a DRF API view) takes ``GET``,
  ``HEAD`` and ``POST`` only; ``PUT``, ``PATCH``, ``DELETE``, ``OPTIONS`` and any other method
  answer 405 with ``Allow``, before the view runs. (Django's function views do not look at the
  method unless decorated, and its form views treat ``PUT`` as ``POST``.) A page that takes no
  ``POST`` says so with ``require_safe``; the API's routes answer 405 through DRF.
- ``AdminActionInputMiddleware``: an admin action posted with selected rows that are not ids of
  the model (``_selected_action=abc``) answers 400 with a message instead of the 500 that
  ``queryset.filter(pk__in=...)`` raises; it covers every ``ModelAdmin`` of every admin site
  (``/admin/`` and the auditors' ``/audit/``), including those of Django's own apps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed

#: The methods a web page may take; every other one answers 405.
PAGE_METHODS = ("GET", "HEAD", "POST")


def _is_api_view(view_func: Callable[..., Any]) -> bool:
    """Whether ``view_func`` is a DRF view (``APIView.as_view()`` sets ``cls``), which answers
    405 itself with a problem body."""
    from rest_framework.views import APIView

    view_class = getattr(view_func, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)


class PageMethodsMiddleware:
    """Refuse with 405 any method but ``GET``, ``HEAD`` and ``POST`` to a web page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        """405 (with ``Allow: GET, HEAD, POST``) for another method to a non-API view; else
        ``None`` (the view runs)."""
        if request.method in PAGE_METHODS or _is_api_view(view_func):
            return None
        return HttpResponseNotAllowed(PAGE_METHODS)


class AdminActionInputMiddleware:
    """Answer 400 to an admin action whose selected rows are not ids of the admin's model."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        """400 with a one-line message when a ``POST`` to a ``ModelAdmin`` view (``get_urls``
        sets ``model_admin`` on each) names a selected row (``_selected_action``) that its
        model's primary key cannot hold; else ``None``. Nothing is changed."""
        model_admin = getattr(view_func, "model_admin", None)
        if request.method != "POST" or model_admin is None:
            return None
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        primary_key = model_admin.model._meta.pk
        for value in selected:
            try:
                # The range too: an id beyond the column's integers fails in the database.
                primary_key.run_validators(primary_key.to_python(value))
            except ValidationError:
                return HttpResponseBadRequest(
                    f"No action was taken: the selected row {value[:40]!r} is not an id of "
                    f"{model_admin.model._meta.verbose_name}.",
                    content_type="text/plain; charset=utf-8",
                )
        return None
