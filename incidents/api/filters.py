"""Query-string filters of the API lists (django-filter) and the text search.

An invalid filter value (an unknown state, a customer id that does not exist) is a 400 naming
the parameter, never an empty page that looks like "nothing found".
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.request import Request

from incidents.models import Contact, Customer, Incident, IncidentState


class StrictBooleanField(forms.NullBooleanField):
    """``true`` or ``false`` (also ``True``/``False``, ``1``/``0``); anything else is an error,
    not silently "no filter" as Django's ``NullBooleanField`` would have it."""

    # The raw text reaches to_python (NullBooleanSelect would turn "-1" into "no filter").
    widget = forms.TextInput
    accepted = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]  # None: no filter, as NullBooleanField
        if value in (None, ""):
            return None
        if value not in self.accepted:
            raise forms.ValidationError("Give true or false.", code="invalid")
        return self.accepted[value]

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class IncidentFilter(django_filters.FilterSet):
    """``GET /api/incidents/``: ``?state=``, ``?severity=``, ``?detection_source=`` (each may be
    repeated: any of the values), ``?is_drill=true|false``."""

    state = django_filters.MultipleChoiceFilter(choices=IncidentState.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Incident.Severity.choices)
    detection_source = django_filters.MultipleChoiceFilter(choices=Incident.DetectionSource.choices)
    is_drill = StrictBooleanFilter()

    class Meta:
        model = Incident
        fields = ["state", "severity", "detection_source", "is_drill"]


class CustomerFilter(django_filters.FilterSet):
    """``GET /api/customers/``: ``?deliverable=true|false`` (whether the customer has a
    deliverable administrative contact: ``incidents.readiness``), ``?unconfirmed=true|false``
    (marked unconfirmed: its last confirmation link expired unanswered)."""

    deliverable = StrictBooleanFilter(field_name="has_deliverable_contact")
    unconfirmed = StrictBooleanFilter(method="filter_unconfirmed")

    class Meta:
        model = Customer
        fields = ["deliverable", "unconfirmed"]

    @extend_schema_field(OpenApiTypes.BOOL)
    def filter_unconfirmed(self, queryset: QuerySet[Customer], name: str, value: bool) -> QuerySet[Customer]:
        return queryset.filter(contacts_unconfirmed_since__isnull=not value)


class ContactFilter(django_filters.FilterSet):
    """``GET /api/contacts/``: ``?customer=<customer id>``, ``?is_active=true|false``,
    ``?role=``."""

    customer = django_filters.ModelChoiceFilter(queryset=Customer.objects.all())
    is_active = StrictBooleanFilter()

    class Meta:
        model = Contact
        fields = ["customer", "is_active", "role"]


class TextSearchFilter(SearchFilter):
    """DRF's ``?search=`` (every word must match one of the view's ``search_fields``,
    case-insensitively), refusing a NUL character with 400: PostgreSQL cannot compare text
    with NUL and would otherwise fail the request."""

    def get_search_terms(self, request: Request) -> list[str]:
        terms = super().get_search_terms(request)
        if any("\x00" in term for term in terms):
            raise ValidationError({self.search_param: ["Search terms cannot contain NUL."]})
        return terms
