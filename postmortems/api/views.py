"""REST API for post-mortems, action items and drills: validate input, call one service of
``postmortems.services``, answer with the record as stored afterwards.

Conventions are those of ``incidents.api.views``: 400 for invalid input (naming the fields),
403 for a role that may not, 404 for an incident the user may not see or that does not exist
(and for a post-mortem or drill the incident does not have), 409 for an action that does not
fit the current state. Post-mortems are confidential: reading one needs
``postmortems.view_postmortem`` (incident managers and auditors); a responder gets 403.
Auditors write only their own review records: ``post-mortem/review/`` and
``action-items/{id}/verify/``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.pagination import KeysetPagination
from incidents.api.serializers import ErrorSerializer
from incidents.api.writes import IDEMPOTENCY_KEY, idempotent_create
from incidents.selectors import visible_related
from notifications.api.views import _PERMISSIONS, IncidentScopedMixin
from notifications.models import Notice
from postmortems import services
from postmortems.api.serializers import (
    ActionItemChangeBody,
    ActionItemCreateBody,
    ActionItemSerializer,
    DrillBody,
    DrillCompleteBody,
    DrillSerializer,
    NoteBody,
    OptionalNoteBody,
    PostMortemChangeBody,
    PostMortemSerializer,
    SummaryIntoNoticeBody,
)
from postmortems.models import ActionItem, Drill, PostMortem

_ERROR = OpenApiResponse(ErrorSerializer)
_INCIDENT_ID = OpenApiParameter(
    "incident_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The incident's id."
)
_ERRORS = {400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR}


def _post_mortems() -> QuerySet[PostMortem]:
    return PostMortem.objects.select_related("completed_by", "reviewed_by").prefetch_related(
        "summary_statements"
    )


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentPostMortemViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """``/api/incidents/{id}/post-mortem/``: the incident's confidential post-mortem.

    - ``GET``: the post-mortem (404 before ``begin_post_mortem``).
    - ``PATCH``: change the draft's findings and customer summary (incident managers); each
      change makes a new version.
    - ``POST .../complete/``: complete it (incident managers); 400 naming what is missing.
    - ``POST .../review/`` ``{"note"}``: an auditor's review of a completed post-mortem.
    - ``POST .../summary-into-notice/`` ``{"notice": n}``: take the customer summary into an
      update or final notice draft.
    """

    permission_classes = _PERMISSIONS
    serializer_class = PostMortemSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[PostMortem]:
        return _post_mortems()

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        read = ["incidents.view_incident", "postmortems.view_postmortem"]
        by_action = {
            "complete": {"POST": ["postmortems.complete_postmortem"]},
            "review": {"POST": ["postmortems.review_postmortem"]},
            "summary_into_notice": {"POST": ["postmortems.view_postmortem", "notifications.change_notice"]},
        }
        return by_action.get(
            self.action or "",
            {"GET": read, "HEAD": read, "OPTIONS": read, "PATCH": ["postmortems.change_postmortem"]},
        )

    def _post_mortem(self) -> PostMortem:
        post_mortem = _post_mortems().filter(incident=self.incident).first()
        if post_mortem is None:
            raise NotFound("This incident has no post-mortem yet (it begins with begin_post_mortem).")
        return post_mortem

    def _represent(self) -> Response:
        return Response(PostMortemSerializer(self._post_mortem()).data)

    @extend_schema(responses={200: PostMortemSerializer, 403: _ERROR, 404: _ERROR})
    def retrieve(self, request: Request, incident_pk: str) -> Response:
        """The post-mortem as stored."""
        return self._represent()

    @extend_schema(request=PostMortemChangeBody, responses={200: PostMortemSerializer, **_ERRORS})
    def partial_update(self, request: Request, incident_pk: str) -> Response:
        """Change the draft (``services.post_mortem_update``)."""
        self._post_mortem()
        body = PostMortemChangeBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.post_mortem_update(incident=self.incident, actor=request.user, changes=body.validated_data)
        return self._represent()

    @extend_schema(request=None, responses={200: PostMortemSerializer, **_ERRORS})
    @action(detail=False, methods=["post"])
    def complete(self, request: Request, incident_pk: str) -> Response:
        """Complete the draft (``services.post_mortem_complete``)."""
        self._post_mortem()
        services.post_mortem_complete(incident=self.incident, actor=request.user)
        return self._represent()

    @extend_schema(request=NoteBody, responses={200: PostMortemSerializer, **_ERRORS})
    @action(detail=False, methods=["post"])
    def review(self, request: Request, incident_pk: str) -> Response:
        """An auditor's review (``services.post_mortem_review``)."""
        self._post_mortem()
        body = NoteBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.post_mortem_review(
            incident=self.incident, actor=request.user, note=body.validated_data["note"]
        )
        return self._represent()

    @extend_schema(request=SummaryIntoNoticeBody, responses={200: PostMortemSerializer, **_ERRORS})
    @action(detail=False, methods=["post"], url_path="summary-into-notice")
    def summary_into_notice(self, request: Request, incident_pk: str) -> Response:
        """Take the customer summary into a notice draft (``services.post_mortem_summary_into_notice``)."""
        self._post_mortem()
        body = SummaryIntoNoticeBody(data=request.data)
        body.is_valid(raise_exception=True)
        notice = get_object_or_404(
            Notice.objects.all(), incident=self.incident, number=body.validated_data["notice"]
        )
        services.post_mortem_summary_into_notice(notice=notice, actor=request.user)
        return self._represent()


class ActionItemKeysetPagination(KeysetPagination):
    """Action items in the order they were recorded."""

    ordering = ("id",)


def _action_items() -> QuerySet[ActionItem]:
    return ActionItem.objects.select_related("post_mortem", "owner", "created_by", "verified_by")


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentActionItemViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """``GET/POST /api/incidents/{id}/action-items/``: the incident's action items; adding one
    needs ``postmortems.add_actionitem`` (incident managers) and a post-mortem."""

    permission_classes = _PERMISSIONS
    serializer_class = ActionItemSerializer
    pagination_class = ActionItemKeysetPagination

    def get_queryset(self) -> QuerySet[ActionItem]:
        if self._schema_only():
            return ActionItem.objects.none()
        return _action_items().filter(post_mortem__incident=self.incident)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(responses={200: ActionItemSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def list(self, request: Request, incident_pk: str) -> Response:
        """The incident's action items, first recorded first."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=ActionItemCreateBody,
        responses={201: ActionItemSerializer, **_ERRORS},
    )
    @idempotent_create
    def create(self, request: Request, incident_pk: str) -> Response:
        """Add an action item (``services.action_item_create``)."""
        incident = self.incident
        body = ActionItemCreateBody(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.action_item_create(incident=incident, actor=request.user, **body.validated_data)
        return Response(
            ActionItemSerializer(_action_items().get(pk=item.pk), context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )


class ActionItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Action items across incidents.

    - ``GET /api/action-items/``: ``?status=open|done|risk_accepted``, ``?overdue=true`` (open
      and past due: the overdue list), ``?owner=<username>``; first recorded first.
    - ``GET /api/action-items/{id}/``; ``PATCH`` (incident managers; the owner may mark it done).
    - ``POST /api/action-items/{id}/verify/`` ``{"note"}``: an auditor verifies a settled item.
    """

    permission_classes = _PERMISSIONS
    serializer_class = ActionItemSerializer
    pagination_class = ActionItemKeysetPagination
    http_method_names = ["get", "post", "patch", "head", "options"]
    #: Read by get_queryset, not by a filterset (incidents.api.query).
    extra_query_parameters = {"GET": ["status", "overdue", "owner"]}

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        if self.action == "verify":
            return {"POST": ["postmortems.verify_actionitem"]}
        if self.action == "partial_update":
            # Owners may mark their own item done: the service decides (403 otherwise).
            return {"PATCH": ["postmortems.view_actionitem"]}
        return {}

    def get_queryset(self) -> QuerySet[ActionItem]:
        items = visible_related(self.request.user, _action_items(), "post_mortem__incident")
        if self.action != "list":
            return items
        status_filter = self.request.query_params.get("status")
        if status_filter:
            if status_filter not in ActionItem.Status.values:
                from rest_framework.exceptions import ValidationError

                raise ValidationError({"status": [f"One of {', '.join(ActionItem.Status.values)}."]})
            items = items.filter(status=status_filter)
        overdue = self.request.query_params.get("overdue")
        if overdue not in (None, "", "true", "false"):
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"overdue": ["true or false."]})
        if overdue == "true":
            items = items.filter(status=ActionItem.Status.OPEN, due_at__lt=timezone.now())
        owner = self.request.query_params.get("owner")
        if owner:
            items = items.filter(owner__username=owner)
        return items

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=ActionItem.Status.values),
            OpenApiParameter("overdue", OpenApiTypes.BOOL),
            OpenApiParameter("owner", OpenApiTypes.STR),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Action items across incidents (filters above)."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ActionItemChangeBody, responses={200: ActionItemSerializer, **_ERRORS})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change an item (``services.action_item_update``)."""
        item = self.get_object()
        body = ActionItemChangeBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.action_item_update(item=item, actor=request.user, changes=body.validated_data)
        return Response(self.get_serializer(_action_items().get(pk=item.pk)).data)

    @extend_schema(request=OptionalNoteBody, responses={200: ActionItemSerializer, **_ERRORS})
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str | None = None) -> Response:
        """An auditor's verification (``services.action_item_verify``)."""
        item = self.get_object()
        body = OptionalNoteBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.action_item_verify(item=item, actor=request.user, note=body.validated_data["note"])
        return Response(self.get_serializer(_action_items().get(pk=item.pk)).data)


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentDrillViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """``/api/incidents/{id}/drill/``: the drill record of an incident marked as a drill.

    - ``GET``: the record (404 when there is none).
    - ``PUT`` ``{"scenario", "held_on", "objectives", "participants"}``: record or change it
      (incident managers; 400 when the incident is not a drill).
    - ``POST .../complete/`` ``{"outcome"}``: complete it; the times to declare and to notify
      are measured then.
    """

    permission_classes = _PERMISSIONS
    serializer_class = DrillSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Drill]:
        return Drill.objects.select_related("incident", "completed_by").prefetch_related("participants")

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        if self.action == "complete":
            return {"POST": ["postmortems.change_drill"]}
        return {"PUT": ["postmortems.add_drill"]}

    def get_object(self) -> Drill:
        """The incident's drill record; 404 when there is none. (The route has no ``pk``: DRF's
        own ``get_object``, which OPTIONS calls to describe PUT, would fail with a 500.)"""
        drill = self.get_queryset().filter(incident=self.incident).first()
        if drill is None:
            raise NotFound("This incident has no drill record.")
        self.check_object_permissions(self.request, drill)
        return drill

    def _represent(self) -> Response:
        return Response(DrillSerializer(self.get_object()).data)

    @extend_schema(responses={200: DrillSerializer, 403: _ERROR, 404: _ERROR})
    def retrieve(self, request: Request, incident_pk: str) -> Response:
        """The drill record."""
        return self._represent()

    @extend_schema(request=DrillBody, responses={200: DrillSerializer, **_ERRORS})
    def update(self, request: Request, incident_pk: str) -> Response:
        """Record or change the drill (``services.drill_record``)."""
        incident = self.incident
        body = DrillBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.drill_record(incident=incident, actor=request.user, **body.validated_data)
        return self._represent()

    @extend_schema(request=DrillCompleteBody, responses={200: DrillSerializer, **_ERRORS})
    @action(detail=False, methods=["post"])
    def complete(self, request: Request, incident_pk: str) -> Response:
        """Complete the drill (``services.drill_complete``)."""
        incident = self.incident
        body = DrillCompleteBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.drill_complete(incident=incident, actor=request.user, outcome=body.validated_data["outcome"])
        return self._represent()


class DrillKeysetPagination(KeysetPagination):
    ordering = ("-held_on", "-id")


class DrillViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """``GET /api/drills/``: every drill record, latest first."""

    permission_classes = _PERMISSIONS
    serializer_class = DrillSerializer
    pagination_class = DrillKeysetPagination

    def get_queryset(self) -> QuerySet[Drill]:
        return visible_related(
            self.request.user,
            Drill.objects.select_related("incident", "completed_by").prefetch_related("participants"),
        )
