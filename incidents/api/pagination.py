"""Keyset (cursor) pagination: pages never count or offset into whole tables (DESIGN.md s. 7)."""

from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    """Newest first by ``created_at`` then ``id``; ``?cursor=`` from ``next``/``previous``;
    ``?page_size=`` up to 200."""

    ordering: tuple[str, ...] = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AddedAtKeysetPagination(KeysetPagination):
    """Keyset pagination by ``added_at`` then ``id``, oldest first (an incident's affected
    customers, in the order they were recorded)."""

    ordering = ("added_at", "id")
