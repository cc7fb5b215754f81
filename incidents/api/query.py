"""Unknown query parameters are refused with 400, never silently ignored.

Every API view gets this through the project's defaults, declaratively: a list's allowed
parameters are those of its filter backends (the filterset's filters, ``search``) and of its
paginator (``cursor``, ``page_size``), found from the view itself, plus the names a view
declares in ``extra_query_parameters`` (``{"GET": ["language"]}``). Lists are checked by the
paginator (``KeysetPagination``), every other request by the default permission classes
(``ModelPermissions``, ``IncidentVisible``). A new list view that uses a filterset and the
default pagination needs nothing more.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter


def _filter_backend_parameters(view: Any) -> set[str]:
    names: set[str] = set()
    for backend_class in getattr(view, "filter_backends", None) or []:
        backend = backend_class()
        if isinstance(backend, SearchFilter):
            if getattr(view, "search_fields", None):
                names.add(backend.search_param)
            continue
        if isinstance(backend, OrderingFilter):
            names.add(backend.ordering_param)
            continue
        get_class = getattr(backend, "get_filterset_class", None)
        if get_class is None:
            continue
        try:
            queryset = view.get_queryset()
        except Exception:  # noqa: BLE001 - a view without a queryset has no filterset
            queryset = None
        filterset_class = get_class(view, queryset)
        if filterset_class is None:
            continue
        for name, filter_ in filterset_class.base_filters.items():
            widget = getattr(filter_.field_class, "widget", None)
            suffixes = getattr(widget, "suffixes", None)
            if suffixes:
                names.update(f"{name}_{suffix}" if suffix else name for suffix in suffixes)
            else:
                names.add(name)
    return names


def _paginator_parameters(paginator: Any) -> set[str]:
    names = set()
    for attribute in (
        "cursor_query_param",
        "page_query_param",
        "page_size_query_param",
        "limit_query_param",
        "offset_query_param",
    ):
        value = getattr(paginator, attribute, None)
        if value:
            names.add(value)
    return names


def _handles(view: Any, method: str) -> bool:
    if hasattr(view, "action_map"):
        return view.action_map.get(method.lower()) is not None or method in ("OPTIONS", "HEAD")
    return method.lower() in getattr(view, "http_method_names", ()) and hasattr(view, method.lower())


def declared_parameters(view: Any, method: str) -> set[str]:
    return set((getattr(view, "extra_query_parameters", None) or {}).get(method, ()))


def refuse_unknown_query_parameters(request: Any, view: Any, *, listing: bool) -> None:
    """Raise ``ValidationError`` (400) naming each query parameter ``view`` does not accept.

    ``listing``: the request is a paginated list (filters and pagination allowed).
    """
    given = set(request.query_params.keys())
    if not given or not _handles(view, request.method):
        return  # a method the view does not handle gets its 405 from DRF
    allowed = declared_parameters(view, request.method)
    if listing:
        allowed |= _filter_backend_parameters(view)
        paginator = getattr(view, "paginator", None)
        if paginator is not None:
            allowed |= _paginator_parameters(paginator)
    unknown = sorted(given - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ValidationError(
            {name: [f"Unknown query parameter; this route accepts: {accepted}."] for name in unknown}
        )


def is_list_request(request: Any, view: Any) -> bool:
    """True when ``request`` will be answered by ``view``'s paginator (checked there)."""
    if request.method not in ("GET", "HEAD"):
        return False
    action = getattr(view, "action", None)
    if action is not None:
        if action == "list":
            return True
        handler = getattr(view, action, None)
        # An extra action paginates when it names a pagination class (``@action(...,
        # pagination_class=...)``).
        return getattr(handler, "kwargs", {}).get("pagination_class") is not None
    return hasattr(view, "list") and getattr(view, "pagination_class", None) is not None
