"""The triage API (under ``/api/``): an incident's assessments and response tasks, and the
ENISA severity calculator used by the live triage form.

- ``GET /api/incidents/{incident_id}/assessments/``: every version, newest first.
- ``POST /api/incidents/{incident_id}/assessments/``: record a new version (201).
- ``GET /api/incidents/{incident_id}/tasks/``: the response tasks, soonest due first.
- ``GET|PATCH /api/tasks/{id}/``: one task; PATCH ticks it done or reassigns it.
- ``POST /api/severity/``: the ENISA severity of some inputs; nothing is stored.

Permissions as in the incidents API (``ModelPermissions``): reading needs ``view_<model>``
(without it, or without ``incidents.view_incident``, an incident's routes answer 404), writing
``add_``/``change_`` (403). Errors: 400 with the fields at fault, 403, 404, 405, 409 when the
incident's state does not allow it. Lists are keyset-paginated (``next``, ``previous``,
``results``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.pagination import KeysetPagination
from incidents.api.serializers import ErrorSerializer, IncidentDetailSerializer, incident_representation
from incidents.api.writes import IDEMPOTENCY_KEY, idempotent_create
from incidents.exceptions import TransitionNotAvailable
from incidents.models import Incident, IncidentState
from incidents.selectors import incidents_visible_to, visible_related
from triage import services
from triage.api.serializers import (
    AssessmentBody,
    AssessmentSerializer,
    ResponseTaskPatchBody,
    ResponseTaskSerializer,
    SeverityPreviewBody,
    SeverityResultSerializer,
)
from triage.models import Assessment, ResponseTask

_ERROR = OpenApiResponse(ErrorSerializer)


class VersionKeysetPagination(KeysetPagination):
    """An incident's assessments, newest version first."""

    ordering = ("-version",)


class DueKeysetPagination(KeysetPagination):
    """An incident's response tasks, soonest due first."""

    ordering = ("due_at", "id")


class IncidentScopedMixin(generics.GenericAPIView):
    """For routes under ``/api/incidents/{incident_id}/``: the incident, or 404 when it does not
    exist, the user may not view incidents or may not see this one (``incidents.selectors``). ``lookup_url_kwarg`` makes ``ModelPermissions``
    answer 404 (not 403) to a user who may not view the listed model either."""

    lookup_url_kwarg = "incident_id"

    @cached_property
    def incident(self) -> Incident:
        if not self.request.user.has_perm("incidents.view_incident"):
            raise Http404("No such incident.")
        try:
            return incidents_visible_to(self.request.user).get(pk=int(self.kwargs["incident_id"]))
        except (Incident.DoesNotExist, ValueError):
            raise Http404("No such incident.") from None


@extend_schema_view(
    get=extend_schema(responses={200: AssessmentSerializer(many=True), 404: _ERROR}),
)
class AssessmentListCreateView(IncidentScopedMixin, generics.ListCreateAPIView):
    """An incident's assessment versions (``GET``, newest first) and a new one (``POST``).

    ``POST`` body: ``AssessmentBody`` (scope decision, malicious, scenario, data categories,
    ENISA severity inputs, notification facts, optional override with justification). It runs
    ``triage.services.assessment_record``, which also drives the lifecycle (triage, update, or
    an exit), alerts stakeholders and creates the playbook's tasks. 201 with the new version.
    Errors: 400 (invalid body, a rule not met, a lifecycle guard not met), 403 without
    ``triage.add_assessment`` or the lifecycle permission, 404, 409 when the incident's state
    does not allow the decision (for example an exit after declaration).
    """

    queryset = Assessment.objects.all()
    serializer_class = AssessmentSerializer
    pagination_class = VersionKeysetPagination
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[Assessment]:
        return Assessment.objects.filter(incident=self.incident).select_related("assessed_by")

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=AssessmentBody,
        responses={201: AssessmentSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @idempotent_create
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = AssessmentBody(data=request.data)
        body.is_valid(raise_exception=True)
        assessment = services.assessment_record(
            incident=self.incident, actor=request.user, **body.validated_data
        )
        fresh = Assessment.objects.select_related("assessed_by").get(pk=assessment.pk)
        return Response(AssessmentSerializer(fresh).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(responses={200: ResponseTaskSerializer(many=True), 404: _ERROR}),
)
class IncidentTaskListView(IncidentScopedMixin, generics.ListAPIView):
    """An incident's response tasks from its scenario playbooks, soonest due first
    (``triage.view_responsetask``)."""

    queryset = ResponseTask.objects.all()
    serializer_class = ResponseTaskSerializer
    pagination_class = DueKeysetPagination
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[ResponseTask]:
        return ResponseTask.objects.filter(incident=self.incident).select_related("assignee", "done_by")


@extend_schema_view(
    get=extend_schema(responses={200: ResponseTaskSerializer, 404: _ERROR}),
)
class ResponseTaskDetailView(generics.RetrieveAPIView):
    """One response task (``GET``) and ticking it done or reassigning it (``PATCH``).

    ``PATCH`` body: ``{"done": true|false, "assignee": "<username>"|null}`` (at least one),
    through ``triage.services.response_task_update``; 200 with the task. Errors: 400 (unknown
    key, unknown or inactive user, empty body), 403 without ``triage.change_responsetask``, 404,
    409 when the incident is closed or ruled out.
    """

    serializer_class = ResponseTaskSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[ResponseTask]:
        return visible_related(self.request.user, ResponseTask.objects.select_related("assignee", "done_by"))

    def get_object(self) -> ResponseTask:
        if not self.request.user.has_perm("incidents.view_incident"):
            raise Http404("No such task.")
        return super().get_object()

    @extend_schema(
        request=ResponseTaskPatchBody,
        responses={200: ResponseTaskSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        body = ResponseTaskPatchBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.response_task_update(task=task, actor=request.user, **body.validated_data)
        fresh = self.get_queryset().get(pk=task.pk)
        return Response(ResponseTaskSerializer(fresh).data)


class TriageTransitionView(IncidentScopedMixin, generics.GenericAPIView):
    """``POST /api/incidents/{id}/transitions/triage/``: the ``triage`` transition, through the
    same assessment as the triage form (one triage path, web and API).

    Body: an in-scope ``AssessmentBody`` (``scope`` may be left out: ``in_scope``), recorded
    through ``triage.services.assessment_record``, which triages a ``detected`` incident (a
    recorded in-scope assessment has always triaged it already: there is no version to refer
    to). 200 with the incident (as the other transitions answer).
    Errors: 400 ``{"detail": TRIAGE_NEEDS_ASSESSMENT, "missing": ["assessment"]}`` without an
    assessment (an empty body, or only ``severity``/``malicious``/``scenario``), or naming the
    assessment's fields at fault; 403 without ``incidents.triage_incident`` (and
    ``triage.add_assessment`` to record one); 404; 409 when the incident is not ``detected``.
    """

    queryset = Incident.objects.none()
    serializer_class = AssessmentBody
    lookup_url_kwarg = "incident_id"
    required_permissions = {"POST": ["incidents.triage_incident"]}
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[Incident]:
        return Incident.objects.filter(pk=self.incident.pk)

    @extend_schema(
        request=AssessmentBody,
        responses={200: IncidentDetailSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        incident = self.incident
        data = request.data if isinstance(request.data, dict) else {}
        if set(data) <= {"severity", "malicious", "scenario"}:
            raise services.AssessmentRequired
        body = AssessmentBody(data={"scope": Assessment.Scope.IN_SCOPE, **data})
        body.is_valid(raise_exception=True)
        if body.validated_data["scope"] != Assessment.Scope.IN_SCOPE:
            # A ValidationError, so the answer is a problem like every other 400.
            raise DRFValidationError(
                {
                    "scope": [
                        "The triage transition takes an in-scope assessment; record a scope exit "
                        f"at /api/incidents/{incident.pk}/assessments/."
                    ]
                }
            )
        if incident.state != IncidentState.DETECTED:
            raise TransitionNotAvailable(transition_name="triage", state=incident.state)
        services.assessment_record(incident=incident, actor=request.user, **body.validated_data)
        return Response(incident_representation(incident.pk, request))


class SeverityView(generics.GenericAPIView):
    """``POST /api/severity/``: the ENISA 2013 severity of the inputs (``triage.scoring``), for
    the live triage form; nothing is stored.

    Body: ``{"data_categories": [...], "malicious": "yes"|"no"|"unknown"|null,
    "severity_inputs": {...}}``. Answer: ``base_dpc``, ``dpc``, ``ease_of_identification``,
    ``circumstances``, ``score`` (SE = DPC × EI + CB), ``band`` and ``reasons``. Errors: 400
    naming the input at fault, 403 without ``triage.view_assessment``.
    """

    queryset = Assessment.objects.none()
    serializer_class = SeverityPreviewBody
    required_permissions = {"POST": ["triage.view_assessment"]}
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        request=SeverityPreviewBody,
        responses={200: SeverityResultSerializer, 400: _ERROR, 403: _ERROR},
    )
    def post(self, request: Request) -> Response:
        body = SeverityPreviewBody(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.severity_preview(
            severity_inputs=body.validated_data["severity_inputs"],
            data_categories=body.validated_data["data_categories"],
            malicious=body.validated_data.get("malicious"),
        )
        return Response(SeverityResultSerializer(services.severity_result_json(result)).data)
