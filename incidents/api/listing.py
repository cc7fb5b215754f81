"""``GET /api/incidents/`` pages built from rows of values instead of model serializers.

A page of 50 incidents through ``IncidentSerializer`` built 50 incidents and their users as
model instances and walked 47 DRF fields per incident (``get_attribute``, ``to_representation``):
about 60% of the list's CPU time (bench/board.py). Here each listed incident is one dict of
``.values()`` columns; products and affected customers are read for the whole page in two
queries of values; every field is converted only when DRF would change the value (instants and
dates; the rest already have their JSON type as read).

The representation is the serializer's own, field for field: the columns, their order and their
conversions are derived once from ``IncidentSerializer``'s fields (so a field added there is
listed here, or refused at start-up when this module cannot build it), and
tests/incidents/test_api_list_values.py compares both for incidents in every state. The queryset,
need-to-know filtering (``incidents.selectors``), filters, search, permissions and keyset
pagination are the view's own, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Field, Model, QuerySet
from rest_framework import serializers

from incidents.api.serializers import (
    IncidentDetailSerializer,
    IncidentSerializer,
    available_transitions,
    user_permissions,
)
from incidents.models import AffectedCustomer, Customer, Incident, Product

#: Converts a column's non-null value to its JSON value (``None``: the value is already it).
Converter = Callable[[Any], Any] | None

#: Serializer fields whose value already has its JSON type when read from the database: DRF's
#: ``to_representation`` returns it unchanged (``str``, ``int``, ``bool``, a choice's own value).
_AS_READ = (
    serializers.CharField,
    serializers.ChoiceField,
    serializers.BooleanField,
    serializers.IntegerField,
    serializers.JSONField,
)

#: The method fields of ``IncidentSerializer`` that this module computes itself (below).
_COMPUTED = ("exposure_duration_hours", "affected_customers", "available_transitions")


@dataclass(frozen=True)
class ListedField:
    """One key of a listed incident: ``name`` (the JSON key), ``column`` (the ``.values()``
    lookup it is read from; ``None`` for the relations and computed fields), ``convert``."""

    name: str
    column: str | None
    convert: Converter = None


def _column(field: serializers.Field) -> str:
    source_attrs = list(field.source_attrs)
    if isinstance(field, serializers.SlugRelatedField):
        source_attrs.append(str(field.slug_field))
    model_field = Incident._meta.get_field(source_attrs[0])
    if not model_field.concrete or model_field.many_to_many:
        raise ImproperlyConfigured(f"incidents.api.listing cannot read {field.field_name!r} as a column.")
    return "__".join(source_attrs)


def _listed_field(field: serializers.Field) -> ListedField:
    name = str(field.field_name)
    if name in _COMPUTED:
        return ListedField(name, None)
    if name == "products":
        child = getattr(field, "child_relation", None)
        if not isinstance(child, serializers.SlugRelatedField) or child.slug_field != "name":
            raise ImproperlyConfigured("incidents.api.listing lists products by name.")
        return ListedField(name, None)
    if isinstance(field, serializers.SerializerMethodField | serializers.ManyRelatedField):
        raise ImproperlyConfigured(f"incidents.api.listing does not know how to list {name!r}.")
    if isinstance(field, serializers.SlugRelatedField | serializers.PrimaryKeyRelatedField):
        # values() gives the related row's slug through a join, or the foreign key itself.
        return ListedField(name, _column(field))
    if isinstance(field, serializers.DateTimeField | serializers.DateField):
        # The field's own conversion: UTC with "Z" for instants (AwareDateTimeField), ISO dates.
        return ListedField(name, _column(field), field.to_representation)
    if isinstance(field, serializers.ListField):
        child = field.child
        if not isinstance(child, serializers.ChoiceField) or not all(
            isinstance(key, str) for key in child.choices
        ):
            raise ImproperlyConfigured(f"incidents.api.listing does not know how to list {name!r}.")
        return ListedField(name, _column(field), list)
    if isinstance(field, _AS_READ):
        if isinstance(field, serializers.ChoiceField) and not all(
            isinstance(key, str) for key in field.choices
        ):
            raise ImproperlyConfigured(f"incidents.api.listing lists text choices only ({name!r}).")
        return ListedField(name, _column(field))
    raise ImproperlyConfigured(f"incidents.api.listing does not know how to list {name!r}.")


@cache
def listed_fields() -> tuple[ListedField, ...]:
    """The keys of a listed incident in ``IncidentSerializer``'s order, with their columns and
    conversions (built once per process). Raises ``ImproperlyConfigured`` for a serializer
    field this module cannot list from values (a new method field, a property)."""
    fields = IncidentSerializer().fields
    return tuple(_listed_field(field) for field in fields.values() if not field.write_only)


def list_columns() -> list[str]:
    """The ``.values()`` lookups a listed page reads (with ``created_at`` and ``id``, which
    the keyset pagination needs, and the exposure's ends for its duration)."""
    columns = {field.column: None for field in listed_fields() if field.column is not None}
    for needed in ("id", "created_at", "state", "exposure_started_at", "exposure_ended_at"):
        columns.setdefault(needed, None)
    return list(columns)


def listed_values(queryset: QuerySet[Incident]) -> QuerySet[Incident, dict[str, Any]]:
    """``queryset`` (filtered, need-to-know applied) as rows of the listed columns, one dict
    per incident; no query until evaluated (by the paginator)."""
    return queryset.values(*list_columns())


@cache
def _related_sql(count: int) -> str:
    """One query for a page's relations (``count`` incident ids as parameters, twice): rows
    ``(0, incident id, product name, 0, product name)`` and ``(1, incident id, customer name,
    affected customer id, account reference)``, in the orders the serializer's relations give
    (``Product`` and ``AffectedCustomer`` ``Meta.ordering``; the rows' collation is the
    columns' own, as the ORM's ORDER BY)."""
    if Product._meta.ordering != ["name"] or AffectedCustomer._meta.ordering != [
        "incident_id",
        "customer__name",
        "id",
    ]:
        raise ImproperlyConfigured("incidents.api.listing orders relations as their models do.")
    quote = connection.ops.quote_name

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    def column(model: type[Model], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, Field) and field.column is not None
        return quote(field.column)

    through = Incident.products.through
    ids = ", ".join(["%s"] * count)
    # Identifiers from model metadata and placeholders only: no value is written into the SQL.
    products = (
        f"SELECT 0, ip.{column(through, 'incident')}, p.{column(Product, 'name')}, 0,"  # noqa: S608
        f" p.{column(Product, 'name')} FROM {table(through)} ip JOIN {table(Product)} p"
        f" ON p.{column(Product, 'id')} = ip.{column(through, 'product')}"
        f" WHERE ip.{column(through, 'incident')} IN ({ids})"
    )
    customers = (
        f"SELECT 1, a.{column(AffectedCustomer, 'incident')}, c.{column(Customer, 'name')},"  # noqa: S608
        f" a.{column(AffectedCustomer, 'id')}, c.{column(Customer, 'account_reference')}"
        f" FROM {table(AffectedCustomer)} a JOIN {table(Customer)} c"
        f" ON c.{column(Customer, 'id')} = a.{column(AffectedCustomer, 'customer')}"
        f" WHERE a.{column(AffectedCustomer, 'incident')} IN ({ids})"
    )
    return f"{products} UNION ALL {customers} ORDER BY 1, 2, 3, 4"


def _related_values(ids: list[int]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Product names (``Product`` order: name) and affected customers' account references
    (``AffectedCustomer`` order: customer name, then id) of the incidents ``ids``: one query
    (hand-written: the ORM's preparation of 50 ids, twice, cost as much CPU as the rest of
    the page)."""
    related: tuple[dict[int, list[str]], dict[int, list[str]]] = (
        {incident_id: [] for incident_id in ids},
        {incident_id: [] for incident_id in ids},
    )
    if not ids:
        return related
    with connection.cursor() as cursor:
        cursor.execute(_related_sql(len(ids)), [*ids, *ids])
        for kind, incident_id, _, _, value in cursor.fetchall():
            related[kind][incident_id].append(value)
    return related


def _exposure_duration_hours(row: dict[str, Any]) -> float | None:
    started: datetime | None = row["exposure_started_at"]
    ended: datetime | None = row["exposure_ended_at"]
    if started and ended:
        return (ended - started).total_seconds() / 3600
    return None


class _State:
    """What ``available_transitions`` reads of an incident: its state."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _item(
    row: dict[str, Any],
    fields: tuple[ListedField, ...],
    products: list[str],
    customers: list[str],
    transitions: Callable[[str], list[str]],
) -> dict[str, Any]:
    """One incident's representation from its ``row`` of listed columns, its product names,
    its affected customers' account references and ``transitions(state)``."""
    item: dict[str, Any] = {}
    for field in fields:
        name = field.name
        if field.column is not None:
            value = row[field.column]
            convert = field.convert
            item[name] = value if value is None or convert is None else convert(value)
        elif name == "products":
            item[name] = products
        elif name == "affected_customers":
            item[name] = customers
        elif name == "exposure_duration_hours":
            item[name] = _exposure_duration_hours(row)
        else:  # available_transitions
            item[name] = transitions(row["state"])
    return item


def _transitions_for(user: Any) -> Callable[[str], list[str]]:
    """``state -> transition names user may take`` (the same for every incident in a state;
    ``user``'s permissions read once, cached by Django)."""
    permissions = user_permissions(user)
    known: dict[str, list[str]] = {}

    def transitions(state: str) -> list[str]:
        if state not in known:
            known[state] = available_transitions(_State(state), user, permissions)  # type: ignore[arg-type]
        return list(known[state])

    return transitions


def listed_incidents(rows: Iterable[dict[str, Any]], user: Any) -> list[dict[str, Any]]:
    """The JSON representations (``IncidentSerializer``'s, key for key and in its order) of the
    incidents ``rows`` (from ``listed_values``), as ``user`` lists them: two queries for the
    page's products and affected customers; ``user``'s permissions once (cached by Django)."""
    rows = list(rows)
    products, customers = _related_values([row["id"] for row in rows])
    transitions = _transitions_for(user)
    fields = listed_fields()
    return [_item(row, fields, products[row["id"]], customers[row["id"]], transitions) for row in rows]


def _instance_value(incident: Incident, column: str) -> Any:
    """What ``.values(column)`` reads for ``incident``, from the instance: a foreign key's id,
    or a related row's column through the related instance (``owner__username``)."""
    name, _, related_column = column.partition("__")
    field = Incident._meta.get_field(name)
    value = getattr(incident, field.attname)  # type: ignore[union-attr]  # concrete fields only
    if not related_column or value is None:
        return value
    return getattr(getattr(incident, name), related_column)


@cache
def _check_detail_fields() -> None:
    """``ImproperlyConfigured`` unless the detail's keys are the listed ones, then
    ``source_record`` (what ``created_incident_representation`` builds)."""
    expected = [field.name for field in listed_fields()] + ["source_record"]
    actual = [name for name, field in IncidentDetailSerializer().fields.items() if not field.write_only]
    if actual != expected:
        raise ImproperlyConfigured(
            "incidents.api.listing: the detail representation is the list item and source_record."
        )


def created_incident_representation(
    incident: Incident, *, products: list[Product], user: Any
) -> dict[str, Any]:
    """``IncidentDetailSerializer``'s representation of an incident just created (model
    instance as written, not re-read), key for key: ``products`` (instances) are its products
    and it has no affected customers yet. Computed from the listed columns as the list is
    (``listed_fields``), then ``source_record``, in 0.2 ms where the serializer took 2 ms;
    tests/incidents/test_api_create_answer.py checks it equals what ``GET`` answers."""
    _check_detail_fields()
    row = {column: _instance_value(incident, column) for column in list_columns()}
    names = [product.name for product in sorted(products, key=lambda product: product.name)]
    item = _item(row, listed_fields(), names, [], _transitions_for(user))
    item["source_record"] = incident.source_record
    return item
