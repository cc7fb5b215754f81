"""Keyset (cursor) pagination: pages never count or offset into whole tables (DESIGN.md s. 7).

Every paginated list also refuses, with 400, an unknown query parameter
(``incidents.api.query``), a ``page_size`` that is not an integer from 1 to 200, and a
``cursor`` that was not issued by the API.
"""

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from incidents.api.query import refuse_unknown_query_parameters


class KeysetPagination(CursorPagination):
    """Newest first by ``created_at`` then ``id``; ``?cursor=`` from ``next``/``previous``;
    ``?page_size=`` from 1 to 200 (default 50)."""

    ordering: tuple[str, ...] = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        if view is not None:
            refuse_unknown_query_parameters(request, view, listing=True)
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Any:
        if request.query_params.get(self.cursor_query_param) == "":
            return None  # ?cursor= (empty): the first page
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor: use a next or previous link as given."]}
            ) from None

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"An integer from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class AddedAtKeysetPagination(KeysetPagination):
    """Keyset pagination by ``added_at`` then ``id``, oldest first (an incident's affected
    customers, in the order they were recorded)."""

    ordering = ("added_at", "id")
