"""Serializer fields built once per class and copied per instance (``FieldsCacheMixin``,
``fresh_field``): each instance gets the fields a deep copy would give, and its own."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rest_framework import serializers

import notifications.api.serializers as notification_serializers
from incidents.api import serializers as incident_serializers
from incidents.api.serializers import FieldsCacheMixin, IncidentCreateSerializer, fresh_field


def _cached_serializer_classes() -> list[type]:
    found = []
    for module in (incident_serializers, notification_serializers):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, FieldsCacheMixin)
                and value.__module__ == module.__name__
                and hasattr(value, "Meta")
            ):
                found.append(value)
    return sorted(set(found), key=lambda cls: cls.__name__)


def _state(field: serializers.Field) -> dict:
    """What a field does: its attributes, its child field's too. Not its parent, nor
    ``_creation_counter`` (the order of declaration, which a deep copy's ``__init__``
    renumbers; read only when a serializer class is declared); validators by class (a deep
    copy makes new ones of those a field's ``__init__`` adds), a queryset or manager by model.
    ``_kwargs`` are compared through the field's ``repr``."""
    if isinstance(field, serializers.BaseSerializer):
        return {"repr": repr(field)}  # a nested serializer is deep-copied anyway
    state: dict = {}
    for name, value in vars(field).items():
        if name in ("parent", "_creation_counter", "_kwargs"):
            continue
        if isinstance(value, serializers.Field):
            state[name] = (type(value), _state(value))
        elif name == "_validators":
            state[name] = [type(item) for item in value]
        elif name == "queryset" and value is not None:
            state[name] = (type(value), value.model)
        else:
            state[name] = value
    return state


@pytest.mark.parametrize("serializer_class", _cached_serializer_classes(), ids=lambda cls: cls.__name__)
def test_a_fresh_field_equals_a_deep_copy(db, serializer_class):
    serializer_class().fields  # builds the class's blueprint  # noqa: B018
    blueprint = serializer_class._fields_blueprint

    for name, field in blueprint.items():
        fresh, deep = fresh_field(field), copy.deepcopy(field)
        assert type(fresh) is type(deep), name
        assert _state(fresh) == _state(deep), name
        assert repr(fresh) == repr(deep), name


def test_each_serializer_instance_has_its_own_fields():
    one: Any = IncidentCreateSerializer()
    other: Any = IncidentCreateSerializer()

    one.fields["title"].error_messages["blank"] = "changed"
    one.fields["title"].validators.append(lambda value: None)
    one.fields["data_categories"].child.error_messages["invalid_choice"] = "changed"

    assert other.fields["title"].error_messages["blank"] != "changed"
    assert len(other.fields["title"].validators) == len(one.fields["title"].validators) - 1
    assert other.fields["data_categories"].child.error_messages["invalid_choice"] != "changed"
    for serializer in (one, other):
        products = serializer.fields["products"]
        assert products.parent is serializer and products.child_relation.parent is products
        assert serializer.fields["data_categories"].child.parent is serializer.fields["data_categories"]
    # A relation's queryset is shared, never evaluated: DRF reads it through get_queryset(),
    # a fresh .all() each time, so no copy sees another's result cache.
    relation = one.fields["products"].child_relation
    assert relation.get_queryset() is not relation.get_queryset()
    assert relation.get_queryset() is not relation.queryset


@pytest.mark.django_db
def test_validating_a_relation_leaves_the_shared_queryset_unevaluated():
    from incidents.models import Product

    Product.objects.create(name="Webmail")
    body = {"title": "x", "detection_source": "staff_escalation", "products": ["Webmail"]}
    serializer: Any = IncidentCreateSerializer(data=body)

    assert serializer.is_valid(), serializer.errors
    assert [product.name for product in serializer.validated_data["products"]] == ["Webmail"]
    blueprint: Any = IncidentCreateSerializer
    assert blueprint._fields_blueprint["products"].child_relation.queryset._result_cache is None
    assert serializer.fields["products"].child_relation.queryset._result_cache is None


CREATE_BODIES: list[Any] = [
    {"title": "Laptop stolen", "detection_source": "staff_escalation"},
    {"title": "Laptop stolen", "detection_source": "staff_escalation", "severity": None, "products": []},
    {
        "title": "Payroll file sent to the wrong recipient",
        "detection_source": "staff_escalation",
        "summary": "Sent to a supplier",
        "detected_at": "2026-05-01T09:30:00Z",
        "records_affected": 12,
        "data_categories": ["identity"],
        "is_drill": True,
        "external_reference": "SIEM-1",
    },
    {"title": "", "detection_source": "nowhere", "records_affected": "many", "owner": "nobody"},
    {"detection_source": "staff_escalation", "data_categories": ["not-a-category"]},
    {"title": "Laptop stolen", "detection_source": "staff_escalation", "external_reference": "  "},
    {"title": "Laptop stolen", "state": "closed", "unknown": 1},
    {},
]


@pytest.mark.django_db
@pytest.mark.parametrize("body", CREATE_BODIES)
def test_the_create_body_validates_as_with_every_field_built(body):
    """The input-only create serializer copies only the fields a body gives (and the required
    ones): its answer is DRF's with every field built (``fields`` read first)."""
    lean = IncidentCreateSerializer(data=body)
    full = IncidentCreateSerializer(data=body)
    assert full.fields  # DRF's own path: every writable field copied and bound

    assert lean.is_valid() == full.is_valid()
    assert lean.errors == full.errors
    if not full.errors:
        assert dict(lean.validated_data) == dict(full.validated_data)
    assert "fields" not in lean.__dict__
