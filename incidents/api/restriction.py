"""``/api/incidents/{id}/restriction/``: who may see a need-to-know incident (issue 10, item 1).

- ``GET``: ``RestrictionSerializer``: ``{"incident", "restricted", "restricted_by",
  "restricted_at", "members": [usernames], "auditors": [usernames granted]}`` (an unrestricted
  incident: ``restricted`` false, no members).
- ``PUT`` ``{"members": ["username", ...]}``: restrict the incident to those people, or replace
  its members (``services.incident_restriction_set``; the requesting incident manager is always
  one); 200 with the restriction. An auditor among them is a grant (audited).
- ``DELETE``: lift the restriction (``services.incident_restriction_lift``); 204.

Permissions: ``incidents.restrict_incident`` (incident managers) for every method, else 403;
an incident the user may not see (unknown, or restricted without them) is 404 first, so a
non-member incident manager cannot tell it exists. Errors: 400 for a body that is not
``{"members": [strings]}`` or names unknown or inactive usernames (the message names them), or
people whose role may not see incidents; 409 ``DELETE`` on an unrestricted incident.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import services
from incidents.accounts import is_auditor
from incidents.api.query import refuse_unknown_query_parameters
from incidents.api.serializers import ErrorSerializer, StrictSerializer
from incidents.models import Incident, IncidentRestriction
from incidents.selectors import incidents_visible_to

_ERROR = OpenApiResponse(ErrorSerializer)


class RestrictionBody(StrictSerializer):
    """``PUT`` body: ``members``, the usernames of the people who may see the incident (the
    requesting incident manager is added if missing; an empty list leaves only them)."""

    members = serializers.ListField(
        child=serializers.CharField(max_length=150), allow_empty=True, max_length=500
    )

    def validate_members(self, usernames: list[str]) -> list[Any]:
        wanted = list(dict.fromkeys(name.strip() for name in usernames if name.strip()))
        users = {
            user.get_username(): user
            for user in get_user_model().objects.filter(username__in=wanted, is_active=True)
        }
        unknown = [name for name in wanted if name not in users]
        if unknown:
            raise serializers.ValidationError(f"No active user with these usernames: {', '.join(unknown)}.")
        return [users[name] for name in wanted]


class RestrictionSerializer(serializers.Serializer):
    """A restriction as answered (instants UTC ISO 8601; ``null`` when not restricted)."""

    incident = serializers.IntegerField()
    restricted = serializers.BooleanField()
    restricted_by = serializers.CharField(allow_null=True)
    restricted_at = serializers.DateTimeField(allow_null=True)
    members = serializers.ListField(child=serializers.CharField())
    auditors = serializers.ListField(child=serializers.CharField())


def restriction_representation(incident: Incident) -> dict[str, Any]:
    """``RestrictionSerializer``'s data for ``incident`` as stored now."""
    restriction = (
        IncidentRestriction.objects.select_related("restricted_by").filter(incident=incident).first()
    )
    if restriction is None:
        return {
            "incident": incident.pk,
            "restricted": False,
            "restricted_by": None,
            "restricted_at": None,
            "members": [],
            "auditors": [],
        }
    users = [row.user for row in restriction.members.select_related("user").order_by("user__username")]
    return {
        "incident": incident.pk,
        "restricted": True,
        "restricted_by": restriction.restricted_by.get_username() if restriction.restricted_by else None,
        "restricted_at": restriction.restricted_at,
        "members": [user.get_username() for user in users],
        "auditors": [user.get_username() for user in users if is_auditor(user)],
    }


class IncidentRestrictionView(APIView):
    """``GET|PUT|DELETE /api/incidents/{id}/restriction/`` (see the module docstring)."""

    http_method_names = ["get", "put", "delete", "head", "options"]
    permission_classes = [IsAuthenticated]

    def _incident(self, request: Request, pk: int) -> Incident:
        refuse_unknown_query_parameters(request, self, listing=False)
        user = request.user
        if not user.has_perm("incidents.view_incident"):
            raise Http404("No such incident.")
        incident = incidents_visible_to(user).filter(pk=pk).first()
        if incident is None:
            raise Http404("No such incident.")
        if not user.has_perm(services.RESTRICT_PERMISSION):
            raise PermissionDenied(f"Your role may not do this (needs {services.RESTRICT_PERMISSION}).")
        return incident

    @extend_schema(request=None, responses={200: RestrictionSerializer, 403: _ERROR, 404: _ERROR})
    def get(self, request: Request, pk: int) -> Response:
        """Who may see the incident: ``restricted`` and its ``members`` (and granted
        ``auditors``). 403 without ``restrict_incident``; 404 for an invisible incident."""
        incident = self._incident(request, pk)
        return Response(RestrictionSerializer(restriction_representation(incident)).data)

    @extend_schema(
        request=RestrictionBody,
        responses={200: RestrictionSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR},
    )
    def put(self, request: Request, pk: int) -> Response:
        """Restrict the incident to ``members`` or replace them; 200 with the restriction.
        400 names unknown usernames; 403 without ``restrict_incident``; 404."""
        incident = self._incident(request, pk)
        body = RestrictionBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.incident_restriction_set(
            incident=incident, actor=request.user, members=body.validated_data["members"]
        )
        return Response(RestrictionSerializer(restriction_representation(incident)).data)

    @extend_schema(request=None, responses={204: None, 403: _ERROR, 404: _ERROR, 409: _ERROR})
    def delete(self, request: Request, pk: int) -> Response:
        """Lift the restriction; 204. 409 when the incident is not restricted."""
        incident = self._incident(request, pk)
        services.incident_restriction_lift(incident=incident, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
