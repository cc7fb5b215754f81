"""The due-next board: open incidents ordered by their nearest unmet deadline, overdue first.

The board has two parts, read in this order:

1. incidents with a running clock (an open ``notifications.Clock``), by the due time of their
   first open clock, soonest (most overdue) first; ties by clock id;
2. then open incidents with no running clock (not yet declared, or every customer told), newest
   first.

With ``sort=newest`` or ``sort=oldest`` the board is one part: open incidents by the time they
were recorded.

How it stays fast at a million incidents (no COUNT, no OFFSET, no aggregate over every open
clock): part 1 walks the partial index of open clocks in due order and keeps a clock only if no
earlier open clock of the same incident exists (an index probe on
``notifications_clock_open_inc``); part 2 walks the partial index of open incidents
(``incidents_incident_open_recent``) and keeps those without an open clock. Both continue after
a keyset cursor with a row-value comparison, ``(due_at, id) > (%s, %s)`` or
``(created_at, id) < (%s, %s)``, which PostgreSQL uses as an index condition (an ``a < x OR (a = x
AND b < y)`` filter it cannot). Both parts are read in one statement (``UNION ALL``), then the
page's rows in a second: two queries per page whatever its depth or size.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents.completeness import known_breach_fields_expression
from incidents.models import OPEN_STATES, AffectedCustomer, Customer, Incident
from incidents.selectors import visibility_condition
from notifications.models import Clock

#: Rows per page of the board.
PAGE_SIZE = 50

SORTS = {
    "due": "Nearest deadline first",
    "newest": "Newest first",
    "oldest": "Oldest first",
}

_OPEN_CLOCK = Q(met_at__isnull=True, waived_at__isnull=True)


class BadCursor(ValueError):
    """A page link that was not made by the board (altered, or from another sort)."""


@dataclass(frozen=True)
class Position:
    """Where a page starts: after ``(key, id)`` in ``part`` (1: running clocks, 2: the rest)."""

    part: int
    key: datetime
    id: int

    def encode(self, sort: str) -> str:
        raw = json.dumps([sort, self.part, self.key.astimezone(UTC).isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, sort: str) -> Position:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            cursor_sort, part, key_text, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
            key = datetime.fromisoformat(key_text)
            valid = (
                cursor_sort == sort
                and part in (1, 2)
                and type(pk) is int
                and 0 < pk < 2**63
                and not timezone.is_naive(key)
            )
            if not valid:
                raise ValueError
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError):
            raise BadCursor("That page link is not valid; start again from the first page.") from None
        return cls(part=part, key=key.astimezone(UTC), id=pk)


@dataclass
class BoardRow:
    """One incident on the board. ``due_at``: its first open clock's due time (UTC), ``None``
    without a running clock; ``affected``: affected customers; ``unnotified``: those whose
    clock is not met yet (all of them before declaration); ``known_fields``: required breach
    fields known, of ``incidents.completeness.BREACH_FIELDS`` (6)."""

    incident: Incident
    due_at: datetime | None
    affected: int
    unnotified: int
    known_fields: int

    def urgency(self, now: datetime) -> str:
        """``overdue``, ``critical`` (under 6 h left), ``soon`` (under 24 h), ``running`` or
        ``none`` (no running clock): the row's colour on the board."""
        if self.due_at is None:
            return "none"
        left = (self.due_at - now).total_seconds()
        if left < 0:
            return "overdue"
        if left < 6 * 3600:
            return "critical"
        if left < 24 * 3600:
            return "soon"
        return "running"


@dataclass
class BoardPage:
    rows: list[BoardRow]
    next_cursor: str | None


def incident_conditions(filters: dict[str, Any], prefix: str = "") -> Q:
    """The board's filters as one ``Q`` on incidents (``prefix``: the path from the queried
    model to the incident, e.g. ``"incident__"``). ``filters``: cleaned values of
    ``dashboard.forms.BoardFilterForm``; empty values are ignored. With a ``viewer`` key (a
    user or ``None``), only incidents that viewer may see (``incidents.selectors``).
    """

    def q(**lookups: Any) -> Q:
        return Q(**{f"{prefix}{name}": value for name, value in lookups.items()})

    condition = q(state__in=[filters["state"]] if filters.get("state") else OPEN_STATES)
    for name in ("severity", "scenario", "detection_source"):
        if filters.get(name):
            condition &= q(**{name: filters[name]})
    if filters.get("owner"):
        condition &= q(owner_id=filters["owner"].pk)
    if filters.get("drill") in ("real", "drill"):
        condition &= q(is_drill=filters["drill"] == "drill")
    customer = (filters.get("customer") or "").strip()
    if customer:
        customers = Customer.objects.filter(
            Q(account_reference__iexact=customer) | Q(name__icontains=customer)
        )
        condition &= q(
            pk__in=AffectedCustomer.objects.filter(customer__in=customers.values("pk")).values("incident_id")
        )
    if filters.get("matching_ids") is not None:
        condition &= q(pk__in=filters["matching_ids"])
    elif (filters.get("q") or "").strip():
        condition &= q(pk__in=text_matches(filters["q"].strip()))
    if "viewer" in filters:
        condition &= visibility_condition(filters["viewer"], prefix.removesuffix("__") or "pk")
    return condition


#: A search matching at most this many incidents is resolved to their ids first (one query
#: over the trigram indexes), so both parts of the board filter by a list; a broader one stays
#: a subquery.
SEARCH_IDS_CAP = 2000


def text_matches(text: str) -> QuerySet:
    """Ids of incidents whose reference or title contains ``text``, or which affect a customer
    whose name or account reference does (any case): one ``UNION`` of index scans on PostgreSQL
    (pg_trgm), a ``LIKE`` scan on SQLite."""
    customers = Customer.objects.filter(Q(account_reference__icontains=text) | Q(name__icontains=text))
    matching = (
        Incident.objects.filter(Q(reference__icontains=text) | Q(title__icontains=text))
        .order_by()
        .values_list("pk", flat=True)
    )
    via_customers = (
        AffectedCustomer.objects.filter(customer__in=customers.values("pk"))
        .order_by()
        .values_list("incident_id", flat=True)
    )
    return matching.union(via_customers, all=True).order_by()


def _row_after(columns: str, operator: str, position: Position) -> RawSQL:
    """A row-value keyset condition, ``(a, b) > (x, y)``: an index condition for PostgreSQL."""
    key = connection.ops.adapt_datetimefield_value(position.key)
    # Column names and the operator are this module's constants; the values are parameters.
    return RawSQL(f"({columns}) {operator} (%s, %s)", (key, position.id), output_field=BooleanField())  # noqa: S611


def _running_part(filters: dict[str, Any], after: Position | None, limit: int) -> QuerySet:
    """Part 1: each incident's first open clock, in due order, after ``after``."""
    clock_table = Clock._meta.db_table
    earlier_open = Clock.objects.filter(_OPEN_CLOCK, incident_id=OuterRef("incident_id")).filter(
        Q(due_at__lt=OuterRef("due_at")) | Q(due_at=OuterRef("due_at"), id__lt=OuterRef("id"))
    )
    clocks = Clock.objects.filter(_OPEN_CLOCK, incident_conditions(filters, "incident__")).exclude(
        Exists(earlier_open)
    )
    if filters.get("overdue"):
        clocks = clocks.filter(due_at__lt=timezone.now())
    if after is not None:
        clocks = clocks.filter(_row_after(f'"{clock_table}"."due_at", "{clock_table}"."id"', ">", after))
    return (
        clocks.order_by("due_at", "id")
        .annotate(
            part=Value(1, IntegerField()), key=F("due_at"), row_id=F("id"), incident_pk=F("incident_id")
        )
        .values_list("part", "key", "row_id", "incident_pk")[:limit]
    )


def _recorded_part(
    filters: dict[str, Any], after: Position | None, limit: int, *, newest_first: bool, without_clock: bool
) -> QuerySet:
    """Part 2 (or the whole board for the ``newest``/``oldest`` sorts): open incidents by
    ``created_at``, after ``after``."""
    table = Incident._meta.db_table
    incidents = Incident.objects.filter(incident_conditions(filters))
    open_clock = Clock.objects.filter(_OPEN_CLOCK, incident_id=OuterRef("pk"))
    if without_clock:
        incidents = incidents.exclude(Exists(open_clock))
    if filters.get("overdue"):
        incidents = incidents.filter(Exists(open_clock.filter(due_at__lt=timezone.now())))
    if after is not None:
        operator = "<" if newest_first else ">"
        incidents = incidents.filter(_row_after(f'"{table}"."created_at", "{table}"."id"', operator, after))
    order = ("-created_at", "-id") if newest_first else ("created_at", "id")
    return (
        incidents.order_by(*order)
        .annotate(part=Value(2, IntegerField()), key=F("created_at"), row_id=F("id"), incident_pk=F("id"))
        .values_list("part", "key", "row_id", "incident_pk")[:limit]
    )


def _sql(queryset: QuerySet) -> tuple[str, tuple[Any, ...]]:
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, tuple(params)


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not an instant: {value!r}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def union_sql(parts: list[QuerySet]) -> tuple[str, tuple[Any, ...]]:
    """The parts as one ``UNION ALL`` statement and its parameters."""
    pieces = [_sql(part) for part in parts]
    # The pieces are SQL compiled by Django from querysets, their values kept as parameters.
    sql = " UNION ALL ".join(
        f"SELECT * FROM ({piece_sql}) AS part{n}"  # noqa: S608
        for n, (piece_sql, _) in enumerate(pieces)
    )
    return sql, tuple(param for _, piece_params in pieces for param in piece_params)


def first_page_parts(filters: dict[str, Any]) -> list[QuerySet]:
    """The two parts of the first page of the ``due`` sort (for ``EXPLAIN`` in the benchmark)."""
    limit = PAGE_SIZE + 1
    return [
        _running_part(filters, None, limit),
        _recorded_part(filters, None, limit, newest_first=True, without_clock=True),
    ]


def _keys(parts: list[QuerySet]) -> list[tuple[int, datetime, int, int]]:
    """Run the parts as one ``UNION ALL`` statement; ``(part, key, row id, incident id)`` rows."""
    sql, params = union_sql(parts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (part, _instant(key), row_id, incident_id) for part, key, row_id, incident_id in cursor.fetchall()
        ]


def board_page(
    filters: dict[str, Any], *, viewer: Any = None, sort: str = "due", cursor: str | None = None
) -> BoardPage:
    """One page of the board (``PAGE_SIZE`` rows) for ``filters`` in ``sort`` order, starting
    after ``cursor`` (from a previous page's ``next_cursor``; ``None``: the first page), of the
    incidents ``viewer`` may see (``incidents.selectors``; ``None``: unrestricted ones only).

    Raises ``BadCursor`` for a cursor the board did not make for this sort. Two queries (one
    when nothing matches), whatever the page's depth: see the module docstring; a text search
    first resolves its matches (one more query; none matching: that query alone).
    """
    position = Position.decode(cursor, sort) if cursor else None
    filters = {**filters, "viewer": viewer}
    limit = PAGE_SIZE + 1
    text = (filters.get("q") or "").strip()
    if text:
        ids = list(text_matches(text)[: SEARCH_IDS_CAP + 1])
        if not ids:
            return BoardPage(rows=[], next_cursor=None)
        if len(ids) <= SEARCH_IDS_CAP:
            filters = {**filters, "matching_ids": ids}
    if sort == "due":
        parts = []
        if position is None or position.part == 1:
            parts.append(_running_part(filters, position, limit))
        parts.append(
            _recorded_part(
                filters,
                position if position is not None and position.part == 2 else None,
                limit,
                newest_first=True,
                without_clock=True,
            )
        )
        keys = _keys(parts)
        running = sorted((k for k in keys if k[0] == 1), key=lambda k: (k[1], k[2]))
        recorded = sorted((k for k in keys if k[0] == 2), key=lambda k: (k[1], k[2]), reverse=True)
        ordered = running + recorded
    else:
        newest = sort == "newest"
        ordered = _keys([_recorded_part(filters, position, limit, newest_first=newest, without_clock=False)])
        ordered.sort(key=lambda k: (k[1], k[2]), reverse=newest)
    more = len(ordered) > PAGE_SIZE
    ordered = ordered[:PAGE_SIZE]
    next_cursor = None
    if more:
        part, key, row_id, _ = ordered[-1]
        next_cursor = Position(part=part if sort == "due" else 2, key=key, id=row_id).encode(sort)
    return BoardPage(rows=_rows(ordered), next_cursor=next_cursor)


def _rows(keys: list[tuple[int, datetime, int, int]]) -> list[BoardRow]:
    """The page's incidents with their figures, in ``keys`` order, in one query."""
    if not keys:
        return []
    clocks = Clock.objects.filter(incident_id=OuterRef("pk")).order_by()
    first_open = clocks.filter(_OPEN_CLOCK).order_by("due_at", "id").values("due_at")[:1]
    affected = (
        AffectedCustomer.objects.filter(incident_id=OuterRef("pk"))
        .order_by()
        .values("incident_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    met = clocks.filter(met_at__isnull=False).values("incident_id").annotate(n=Count("id")).values("n")
    incidents = (
        Incident.objects.filter(pk__in=[k[3] for k in keys])
        .select_related("owner")
        .only(
            "id",
            "reference",
            "title",
            "state",
            "severity",
            "scenario",
            "detection_source",
            "is_drill",
            "created_at",
            "owner__username",
        )
        .annotate(
            next_due_at=Subquery(first_open),
            affected_count=Coalesce(Subquery(affected, output_field=IntegerField()), 0),
            met_count=Coalesce(Subquery(met, output_field=IntegerField()), 0),
            known_fields=known_breach_fields_expression(),
        )
    )
    by_id = {incident.pk: incident for incident in incidents}
    rows = []
    for _, _, _, incident_id in keys:
        incident = by_id.get(incident_id)
        if incident is None:  # deleted between the two queries
            continue
        rows.append(
            BoardRow(
                incident=incident,
                due_at=incident.next_due_at,
                affected=incident.affected_count,
                unnotified=max(incident.affected_count - incident.met_count, 0),
                known_fields=incident.known_fields,
            )
        )
    return rows
