"""``POST /api/incidents/{id}/merge/``: merge a duplicate incident into the surviving one
(``incidents.merging.incident_merge``; issue 10, item 3)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.query import refuse_unknown_query_parameters
from incidents.api.serializers import (
    ErrorSerializer,
    IncidentDetailSerializer,
    StrictSerializer,
    incident_representation,
)
from incidents.merging import incident_merge
from incidents.models import MERGE_PERMISSION
from incidents.selectors import incidents_visible_to

_ERROR = OpenApiResponse(ErrorSerializer)


class MergeBody(StrictSerializer):
    """``{"into": <id of the surviving incident>}``."""

    into = serializers.IntegerField(min_value=1, help_text="The surviving incident's id.")


class MayMerge(BasePermission):
    """Anonymous: 401. Without ``incidents.view_incident``: 404. Without
    ``incidents.merge_incident``: 403 naming it."""

    message = f"Your role may not do this (needs {MERGE_PERMISSION})."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        refuse_unknown_query_parameters(request, view, listing=False)
        if not request.user.has_perm("incidents.view_incident"):
            raise Http404
        return bool(request.user.has_perm(MERGE_PERMISSION))


class IncidentMergeView(APIView):
    """Merge the duplicate incident ``{id}`` into ``into``; 200 with the duplicate, now in
    state ``merged`` with ``merged_into``. What moves, what the survivor keeps (the earliest
    detection time) and what is refused: ``incidents.merging``. Errors: 400 (``into`` missing,
    unknown, the incident itself, or drill and real mixed), 403 without
    ``incidents.merge_incident``, 404 for an unknown incident, 409 when the duplicate is
    declared or no longer detected or triaged, or the survivor is merged or closed."""

    permission_classes = [MayMerge]

    @extend_schema(
        request=MergeBody,
        responses={200: IncidentDetailSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Merge through ``incidents.merging.incident_merge``."""
        incident = get_object_or_404(incidents_visible_to(request.user), pk=pk)
        body = MergeBody(data=request.data)
        body.is_valid(raise_exception=True)
        into = incidents_visible_to(request.user).filter(pk=body.validated_data["into"]).first()
        if into is None:
            raise serializers.ValidationError({"into": ["No such incident."]})
        incident_merge(incident=incident, into=into, actor=request.user)
        return Response(incident_representation(incident.pk, request))
