"""Query-string filters of the API lists (django-filter) and the text search.

An invalid filter value (an unknown state, a customer id that does not exist) is a 400 naming
the parameter, never an empty page that looks like "nothing found".
"""

from __future__ import annotations

import django_filters
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.request import Request

from incidents.models import Contact, Customer, Incident, IncidentState


class IncidentFilter(django_filters.FilterSet):
    """``GET /api/incidents/``: ``?state=``, ``?severity=``, ``?detection_source=`` (each may be
    repeated: any of the values), ``?is_drill=true|false``."""

    state = django_filters.MultipleChoiceFilter(choices=IncidentState.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Incident.Severity.choices)
    detection_source = django_filters.MultipleChoiceFilter(choices=Incident.DetectionSource.choices)
    is_drill = django_filters.BooleanFilter()

    class Meta:
        model = Incident
        fields = ["state", "severity", "detection_source", "is_drill"]


class ContactFilter(django_filters.FilterSet):
    """``GET /api/contacts/``: ``?customer=<customer id>``, ``?is_active=true|false``,
    ``?role=``."""

    customer = django_filters.ModelChoiceFilter(queryset=Customer.objects.all())

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
