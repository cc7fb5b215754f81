"""REST API views for clocks, notices, withheld details and deliveries: validate input, call one
service of ``notifications.services``, answer with the resource as stored afterwards.

Conventions are those of ``incidents.api.views``: 400 for invalid input (a body naming the
fields), 403 for a role that may not (or a list the user may not read), 404 for an object the
user may not see or that does not exist, 409 for an action that does not fit the current state
(``LifecycleConflict``), 413 for an oversized body. Routes under ``/api/incidents/{id}/`` answer
404 when the incident does not exist or the user lacks ``incidents.view_incident``. Lists are
keyset-paginated: ``{"next", "previous", "results"}`` with ``?cursor=`` links and
``?page_size=`` up to 200. Instants are ISO 8601 in UTC (``...Z``); input instants need an
offset.

Permissions (groups in ``notifications.migrations.0002_group_permissions``): reads need the
model's ``view_`` permission (responders, incident managers, auditors); drafting and editing a
notice ``add_notice`` / ``change_notice`` (responders, incident managers); approving it
``approve_notice``, withholding or releasing a field ``withhold_notice_field``, and every clock
write ``change_clock`` (incident managers).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import django_filters
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import OrderingFilter
from rest_framework.generics import GenericAPIView, get_object_or_404
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.pagination import KeysetPagination
from incidents.api.permissions import ModelPermissions
from incidents.api.serializers import EmptyBody, ErrorSerializer
from incidents.api.writes import IDEMPOTENCY_KEY, idempotent_create
from incidents.models import Customer, Incident
from incidents.selectors import incidents_visible_to, visible_related
from notifications import services
from notifications.api.serializers import (
    AcknowledgeDeliveryFailureBody,
    ClockRestartBody,
    ClockSerializer,
    DeliveryDetailSerializer,
    DeliverySerializer,
    NoticeChangeBody,
    NoticeDraftBody,
    NoticePreviewQuery,
    NoticePreviewSerializer,
    NoticeSerializer,
    ReasonBody,
    TranslationBody,
    TranslationSerializer,
    WithholdingCreateBody,
    WithholdingSerializer,
    with_delivery_counts,
)
from notifications.models import Clock, Delivery, Notice, Translation, Withholding

_ERROR = OpenApiResponse(ErrorSerializer)
_INCIDENT_ID = OpenApiParameter(
    "incident_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The incident's id."
)


class IncidentVisible(BasePermission):
    """Objects of an incident are invisible (404) to a user without ``incidents.view_incident``:
    on routes under ``/api/incidents/{id}/`` and on the detail routes of clocks, withholdings
    and deliveries. Anonymous users are refused (403)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
        names_an_object = view.kwargs.get("incident_pk") is not None or view.kwargs.get(lookup) is not None
        if names_an_object and not request.user.has_perm("incidents.view_incident"):
            raise Http404
        return True


_PERMISSIONS = [IncidentVisible, ModelPermissions]


class IncidentScopedMixin:
    """For routes under ``/api/incidents/{incident_pk}/``: ``self.incident``, or 404 when there
    is no such incident (a malformed or out-of-range id included) or the user may not see it (a
    restricted incident it is not a member of, ``incidents.selectors``)."""

    kwargs: dict[str, Any]
    request: Any

    @cached_property
    def incident(self) -> Incident:
        return get_object_or_404(incidents_visible_to(self.request.user), pk=self.kwargs["incident_pk"])

    def _schema_only(self) -> bool:
        # drf-spectacular builds views without URL kwargs to read their querysets.
        return getattr(self, "swagger_fake_view", False) or "incident_pk" not in self.kwargs


class ClockKeysetPagination(KeysetPagination):
    """Clocks by due time, soonest first."""

    ordering = ("due_at", "id")


class NoticeKeysetPagination(KeysetPagination):
    """Notices by number, first notice first."""

    ordering = ("number", "id")


def _clocks() -> QuerySet[Clock]:
    return Clock.objects.select_related("customer", "waived_by").prefetch_related("escalations")


# Clocks -----------------------------------------------------------------------------------------


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentClockViewSet(IncidentScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """``GET /api/incidents/{id}/clocks/``: the incident's notification clocks, soonest due
    first, keyset-paginated; each as ``ClockSerializer`` (status and remaining time judged at
    the request's instant). Permissions: ``view_incident`` (else 404), ``view_clock`` (else
    403)."""

    serializer_class = ClockSerializer
    permission_classes = _PERMISSIONS
    pagination_class = ClockKeysetPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Clock]:
        if self._schema_only():
            return Clock.objects.none()
        return _clocks().filter(incident=self.incident)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(responses={200: ClockSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The incident's notification clocks, soonest due first, keyset-paginated.

        ``status`` and ``remaining_seconds`` are judged at the request's instant. 403 without
        ``view_clock``; 404 for an unknown incident or one the user may not see.
        """
        return super().list(request, *args, **kwargs)


_CLOCK_WRITE = {200: ClockSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR}


class ClockFilter(django_filters.FilterSet):
    """``GET /api/clocks/``: ``?status=`` (repeatable: any of ``open`` (running, not yet due),
    ``overdue`` (running, past due), ``met``, ``met_late``, ``waived``, ``waived_late``),
    ``?incident=<id>``,
    ``?customer=<id>``, ``?kind=``. Status is judged at the request's instant, with the same
    rule as ``Clock.status_at``; ``open`` and ``overdue`` read the partial index of open clocks."""

    status = django_filters.MultipleChoiceFilter(
        choices=Clock.Status.choices, method="filter_status", distinct=False
    )
    incident = django_filters.NumberFilter(field_name="incident_id")
    customer = django_filters.NumberFilter(field_name="customer_id")

    class Meta:
        model = Clock
        fields = ["status", "incident", "customer", "kind"]

    def filter_status(self, queryset: QuerySet[Clock], name: str, values: list[str]) -> QuerySet[Clock]:
        if not values:
            return queryset
        now = timezone.now()
        running = Q(met_at__isnull=True, waived_at__isnull=True)
        conditions: dict[str, Q] = {
            Clock.Status.OPEN: running & Q(due_at__gte=now),
            Clock.Status.OVERDUE: running & Q(due_at__lt=now),
            Clock.Status.MET: Q(met_at__isnull=False, met_at__lte=F("due_at")),
            Clock.Status.MET_LATE: Q(met_at__isnull=False, met_at__gt=F("due_at")),
            Clock.Status.WAIVED: Q(met_at__isnull=True, waived_at__isnull=False, waived_at__lte=F("due_at")),
            Clock.Status.WAIVED_LATE: Q(
                met_at__isnull=True, waived_at__isnull=False, waived_at__gt=F("due_at")
            ),
        }
        combined = Q()
        for value in values:
            combined |= conditions[value]
        return queryset.filter(combined)


class ClockListPagination(KeysetPagination):
    """Clocks across incidents: by ``due_at`` then ``id`` (``?ordering=-due_at`` for latest
    first), keyset-paginated."""

    ordering = ("due_at", "id")


class DueOrdering(OrderingFilter):
    """``?ordering=due_at`` (default) or ``-due_at``; ties by id in the same direction."""

    ordering_fields = ["due_at"]

    def get_ordering(self, request: Request, queryset: QuerySet, view: Any) -> list[str]:
        ordering = super().get_ordering(request, queryset, view)
        if ordering and ordering[0] == "-due_at":
            return ["-due_at", "-id"]
        return ["due_at", "id"]


class ClockViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Notification clocks across incidents, one clock, and its writes (incident managers:
    ``change_clock``).

    - ``GET /api/clocks/``: clocks across incidents, soonest due first (``?ordering=-due_at``
      reverses), keyset-paginated; filters in ``ClockFilter`` (``?status=open&status=overdue``
      is everything still running, the API's due-next board). Needs ``view_clock`` and
      ``incidents.view_incident`` (403).
    - ``GET /api/clocks/{id}/``: the clock (``view_clock``).
    - ``POST /api/clocks/{id}/late-reason/`` ``{"reason"}``: why it was met late (GDPR Art.
      33(1)); 409 unless its status is ``met_late``.
    - ``POST /api/clocks/{id}/waive/`` ``{"reason"}``: acknowledge it cannot be met; 409 once
      met or waived. May move the incident to ``notified``.
    - ``POST /api/clocks/{id}/restart/`` ``{"starts_at", "reason"}``: move an open clock's start
      (``due_at`` follows, same window); 409 once met or waived. Audited with old and new
      instants.

    Each write answers 200 with the clock. Errors: 400 (blank reason, naive or malformed
    instant, unknown keys), 403 for other roles, 404 for an unknown clock or a user without
    ``view_clock`` / ``view_incident``, 409 as above. A refused write changes nothing.
    """

    serializer_class = ClockSerializer
    permission_classes = _PERMISSIONS
    required_permissions = {"POST": ["notifications.change_clock"]}
    filterset_class = ClockFilter
    ordering = ("due_at", "id")

    @property
    def filter_backends(self) -> list[Any]:  # type: ignore[override]
        return [DjangoFilterBackend, DueOrdering] if self.action == "list" else []

    @property
    def pagination_class(self) -> Any:  # type: ignore[override]
        return ClockListPagination if self.action == "list" else None

    def get_queryset(self) -> QuerySet[Clock]:
        return visible_related(self.request.user, _clocks())

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(responses={200: ClockSerializer(many=True), 400: _ERROR, 403: _ERROR})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Clocks across incidents, soonest due first (``?ordering=-due_at``: latest first),
        keyset-paginated. Filters: ``?status=`` (repeatable), ``?incident=``, ``?customer=``,
        ``?kind=``. 400 for an unknown status; 403 without ``view_clock`` or
        ``incidents.view_incident``."""
        if not request.user.has_perm("incidents.view_incident"):
            raise PermissionDenied("Your role may not see incidents, so it may not list their clocks.")
        return super().list(request, *args, **kwargs)

    def _represent(self, clock: Clock) -> dict[str, Any]:
        fresh = self.get_queryset().get(pk=clock.pk)
        return ClockSerializer(fresh, context=self.get_serializer_context()).data

    @extend_schema(request=ReasonBody, responses=_CLOCK_WRITE)
    @action(detail=True, methods=["post"], url_path="late-reason")
    def late_reason(self, request: Request, pk: str | None = None) -> Response:
        """Record why the clock was met late, GDPR Art. 33(1)
        (``services.clock_record_late_reason``); 200 with the clock. Errors: 400 for a blank
        reason; 403 without ``change_clock``; 404; 409 unless the clock's status is
        ``met_late``."""
        clock = self.get_object()
        body = ReasonBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.clock_record_late_reason(clock=clock, actor=request.user, **body.validated_data)
        return Response(self._represent(clock))

    @extend_schema(request=ReasonBody, responses=_CLOCK_WRITE)
    @action(detail=True, methods=["post"])
    def waive(self, request: Request, pk: str | None = None) -> Response:
        """Acknowledge that the clock cannot be met (``services.clock_waive``); it stops
        counting and the incident may move to ``notified``; 200 with the clock. Errors: 400
        for a blank reason; 403 without ``change_clock``; 404; 409 once met or waived."""
        clock = self.get_object()
        body = ReasonBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.clock_waive(clock=clock, actor=request.user, **body.validated_data)
        return Response(self._represent(clock))

    @extend_schema(request=ClockRestartBody, responses=_CLOCK_WRITE)
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """Move an open clock's start (``services.clock_restart``); ``due_at`` follows by
        the same window in UTC; audited with old and new instants; 200 with the clock. Errors:
        400 for a naive or malformed ``starts_at`` or a blank reason; 403 without
        ``change_clock``; 404; 409 once met or waived."""
        clock = self.get_object()
        body = ClockRestartBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.clock_restart(clock=clock, actor=request.user, **body.validated_data)
        return Response(self._represent(clock))


# Notices ----------------------------------------------------------------------------------------


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentNoticeViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """The customer notices of an incident, by number (DESIGN.md section 4).

    - ``GET /api/incidents/{id}/notices/``: the notices, first first, keyset-paginated.
    - ``POST`` ``NoticeDraftBody``: draft the next notice (``services.notice_draft``); 201.
      400 for an unknown kind or an ``update``/``final`` before any approved initial notice.
    - ``GET .../notices/{number}/``: one notice (``NoticeSerializer``).
    - ``PATCH .../notices/{number}/`` ``NoticeChangeBody``: change a draft's written parts
      (``services.notice_update_draft``); 409 once approved.
    - ``GET .../notices/{number}/preview/?language=de``: the message as a customer would get it
      in that language (``services.notice_preview``): a draft from the facts now, an approved
      notice from its snapshot. 400 for a language not in ``settings.LANGUAGES``.
    - ``POST .../notices/{number}/approve/``: approve and send (``services.notice_approve``):
      the notice is snapshotted and one delivery per active administrative contact of each
      waiting customer is queued; 200 with the approved notice and its delivery counts. 409
      when it is not a draft, the incident is not declared (or later), or nobody is waiting.

    The answer's ``content`` keeps withheld values for the staff record (see
    ``NoticeSerializer``); customers' messages never carry them. Permissions:
    ``view_incident`` (else 404), ``view_notice`` to read (else 403 on the list, 404 on a
    notice), ``add_notice`` to draft, ``change_notice`` to edit, ``approve_notice`` to approve.
    """

    serializer_class = NoticeSerializer
    permission_classes = _PERMISSIONS
    pagination_class = NoticeKeysetPagination
    filter_backends: list[Any] = []
    lookup_field = "number"
    #: ``GET .../preview/?language=&customer=`` (incidents.api.query).
    extra_query_parameters = {"GET": ["language", "customer"]}
    http_method_names = ["get", "post", "patch", "head", "options"]

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        """Write permissions by action, named in a refusal's 403 (reads: ``view_notice``)."""
        if self.action == "approve":
            return {"POST": ["notifications.approve_notice"]}
        return {"POST": ["notifications.add_notice"], "PATCH": ["notifications.change_notice"]}

    def get_queryset(self) -> QuerySet[Notice]:
        if self._schema_only():
            return Notice.objects.none()
        notices = (
            Notice.objects.filter(incident=self.incident)
            .select_related("created_by", "approved_by")
            .prefetch_related("skipped_recipients")
        )
        return with_delivery_counts(notices)

    def _represent(self, notice: Notice) -> dict[str, Any]:
        fresh = self.get_queryset().get(pk=notice.pk)
        return NoticeSerializer(fresh, context=self.get_serializer_context()).data

    @extend_schema(responses={200: NoticeSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def list(self, request: Request, incident_pk: str) -> Response:
        """The incident's notices by number, keyset-paginated, each with its delivery counts.
        403 without ``view_notice``; 404 for an unknown or invisible incident."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(NoticeSerializer(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=NoticeDraftBody,
        responses={201: NoticeSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR},
    )
    @idempotent_create
    def create(self, request: Request, incident_pk: str) -> Response:
        """Draft the incident's next notice (``services.notice_draft``); 201 with it.

        Errors: 400 for an unknown or missing ``kind``, unknown keys, or an ``update``/``final``
        before an approved initial notice; 403 without ``add_notice``; 404.
        """
        body = NoticeDraftBody(data=request.data)
        body.is_valid(raise_exception=True)
        notice = services.notice_draft(incident=self.incident, actor=request.user, **body.validated_data)
        return Response(self._represent(notice), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: NoticeSerializer, 404: _ERROR})
    def retrieve(self, request: Request, incident_pk: str, number: str) -> Response:
        """One notice by number. ``content`` keeps withheld values for the staff record; the
        customers' messages never carry them. 404 for an unknown number or invisible notice."""
        return Response(self._represent(self.get_object()))

    @extend_schema(
        request=NoticeChangeBody,
        responses={200: NoticeSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def partial_update(self, request: Request, incident_pk: str, number: str) -> Response:
        """Change a draft's written parts (``services.notice_update_draft``); 200 with it.

        Errors: 400 for an empty body, an unknown kind or unknown keys; 403 without
        ``change_notice``; 404; 409 once the notice is approved.
        """
        notice = self.get_object()
        body = NoticeChangeBody(data=request.data)
        body.is_valid(raise_exception=True)
        services.notice_update_draft(notice=notice, actor=request.user, changes=body.validated_data)
        return Response(self._represent(notice))

    @extend_schema(
        parameters=[NoticePreviewQuery],
        responses={200: NoticePreviewSerializer, 400: _ERROR, 404: _ERROR},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def preview(self, request: Request, incident_pk: str, number: str) -> Response:
        """The notice as a customer would receive it in ``?language=`` (default: the language
        most of that customer's contacts receive, ``services.customer_notice_languages``), as
        received by ``?customer=`` (an affected customer's id or account reference; default the
        first affected customer), with that customer's own figures: a draft from the incident's
        facts now, an approved notice from its snapshot; withheld fields left out
        (``services.notice_preview``). ``untranslated`` names the free texts that would go out
        in the source language. 400 for a language not in ``settings.LANGUAGES``, a customer
        that is not affected, or another query parameter; 404."""
        notice = self.get_object()
        query = NoticePreviewQuery(data=request.query_params, context={"incident": self.incident})
        query.is_valid(raise_exception=True)
        customer = query.validated_data.get("customer")
        if customer is None:
            first = self.incident.affected_customers.select_related("customer").first()
            customer = first.customer if first else None
        language = query.validated_data.get("language")
        if language is None:  # the language the customer's contacts receive
            language = services.customer_notice_languages(customer)[0] if customer else settings.LANGUAGE_CODE
        message = services.notice_preview(notice=notice, language=language, customer=customer)
        return Response(
            NoticePreviewSerializer(
                {
                    "subject": message.subject,
                    "text": message.text,
                    "html": message.html,
                    "language": message.language,
                    "customer": customer.account_reference if customer else "",
                    "untranslated": list(message.untranslated),
                    "changed_figures": list(message.changed_figures),
                }
            ).data
        )

    @extend_schema(
        request=EmptyBody,
        responses={200: NoticeSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def approve(self, request: Request, incident_pk: str, number: str) -> Response:
        """Approve the draft (``services.notice_approve``) and answer at once: the breach
        fields, per-language texts, withheld fields and changes are snapshotted and each
        waiting customer recorded with its own figures; a worker then creates one delivery per
        active administrative contact and sends them. 200 with the notice, whose
        ``delivery_creation`` shows that progress (``pending``, then ``done``).

        Errors: 400 ``{"translations": ...}`` naming the missing languages when
        ``NOTICE_REQUIRE_TRANSLATIONS`` is on; 403 without ``approve_notice``; 404; 409 when the
        notice is not a draft, the incident is not declared (or later), or no affected customer
        is waiting for it.
        """
        notice = self.get_object()
        EmptyBody(data=request.data).is_valid(raise_exception=True)
        services.notice_approve(notice=notice, actor=request.user)
        return Response(self._represent(notice))


# Per-language text ------------------------------------------------------------------------------


class TranslationKeysetPagination(KeysetPagination):
    """Translations in the order they were given."""

    ordering = ("updated_at", "id")


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentTranslationViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """The free texts of an incident's notices per language (GDPR Art. 33(3) content in the
    customer's language).

    - ``GET /api/incidents/{id}/translations/``: every translation (``TranslationSerializer``;
      ``is_current`` false for one whose default text changed since), keyset-paginated
      (``view_translation``).
    - ``POST`` ``TranslationBody``: give (or with an empty ``text`` remove) one text in one
      language (``services.translation_set``); 200 with the translation, 204 when removed.
      400 for an unknown text, a text that is empty now, or the source language
      (``translate_notice_text``: incident managers).
    """

    serializer_class = TranslationSerializer
    permission_classes = _PERMISSIONS
    required_permissions = {"POST": ["notifications.translate_notice_text"]}
    filter_backends: list[Any] = []
    pagination_class = TranslationKeysetPagination

    def get_queryset(self) -> QuerySet[Translation]:
        if self._schema_only():
            return Translation.objects.none()
        return Translation.objects.filter(incident=self.incident).select_related("updated_by")

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not self._schema_only():
            context["source_texts"] = services.notice_source_texts(self.incident)
        return context

    @extend_schema(responses={200: TranslationSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def list(self, request: Request, incident_pk: str) -> Response:
        """Every translation of the incident's notice texts, keyset-paginated. 403 without
        ``view_translation``; 404 for an unknown or invisible incident."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            TranslationSerializer(page, many=True, context=self.get_serializer_context()).data
        )

    @extend_schema(
        request=TranslationBody,
        responses={200: TranslationSerializer, 204: None, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def create(self, request: Request, incident_pk: str) -> Response:
        """Give one free text in one language (``services.translation_set``); 200 with it, or
        204 when an empty ``text`` removed it. Errors: 400; 403 without
        ``translate_notice_text``; 404; 409 for a closed incident."""
        body = TranslationBody(data=request.data)
        body.is_valid(raise_exception=True)
        translation = services.translation_set(
            incident=self.incident, actor=request.user, **body.validated_data
        )
        if translation is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        fresh = self.get_queryset().get(pk=translation.pk)
        return Response(TranslationSerializer(fresh, context=self.get_serializer_context()).data)


# Withheld details -------------------------------------------------------------------------------

_WITHHOLD = {"POST": ["notifications.withhold_notice_field"]}


@extend_schema(parameters=[_INCIDENT_ID])
class IncidentWithholdingViewSet(IncidentScopedMixin, viewsets.GenericViewSet):
    """The breach fields withheld from an incident's notices, and why.

    - ``GET /api/incidents/{id}/withholdings/``: every withholding, active and released, newest
      first, keyset-paginated (``view_withholding``).
    - ``POST`` ``WithholdingCreateBody``: withhold a field from every notice approved from now
      on (``services.withholding_create``); 201. 400 for an unknown field name or reason, a
      blank ``requested_by`` or a naive ``review_at``; 409 if the field is already withheld
      (``withhold_notice_field``: incident managers).

    Only field names and reasons are shown, never the withheld values.
    """

    serializer_class = WithholdingSerializer
    permission_classes = _PERMISSIONS
    required_permissions = _WITHHOLD
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Withholding]:
        if self._schema_only():
            return Withholding.objects.none()
        return Withholding.objects.filter(incident=self.incident).select_related("created_by", "released_by")

    @extend_schema(responses={200: WithholdingSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def list(self, request: Request, incident_pk: str) -> Response:
        """Every withholding of the incident, active and released, newest first,
        keyset-paginated (field names and reasons, never the withheld values). 403 without
        ``view_withholding``; 404 for an unknown or invisible incident."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WithholdingSerializer(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=WithholdingCreateBody,
        responses={201: WithholdingSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @idempotent_create
    def create(self, request: Request, incident_pk: str) -> Response:
        """Withhold a breach field from every notice approved from now on
        (``services.withholding_create``); 201 with the withholding.

        Errors: 400 for an unknown field name or reason, a blank ``requested_by``, a naive
        ``review_at`` or unknown keys; 403 without ``withhold_notice_field``; 404; 409 if the
        field is already withheld.
        """
        body = WithholdingCreateBody(data=request.data)
        body.is_valid(raise_exception=True)
        withholding = services.withholding_create(
            incident=self.incident, actor=request.user, **body.validated_data
        )
        fresh = self.get_queryset().get(pk=withholding.pk)
        return Response(WithholdingSerializer(fresh).data, status=status.HTTP_201_CREATED)


class WithholdingViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One withholding: ``GET /api/withholdings/{id}/`` (``view_withholding``) and ``POST
    /api/withholdings/{id}/release/`` (``withhold_notice_field``): release the field, so the
    next notice carries it and marks it changed (``services.withholding_release``); 200 with
    the withholding, 409 if already released."""

    serializer_class = WithholdingSerializer
    permission_classes = _PERMISSIONS
    required_permissions = _WITHHOLD
    filter_backends: list[Any] = []
    pagination_class = None

    def get_queryset(self) -> QuerySet[Withholding]:
        return visible_related(
            self.request.user, Withholding.objects.select_related("created_by", "released_by")
        )

    @extend_schema(
        request=EmptyBody,
        responses={200: WithholdingSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        """Release the withheld field (``services.withholding_release``): the next notice
        carries it and marks it changed; 200 with the withholding. Errors: 403 without
        ``withhold_notice_field``; 404; 409 if already released."""
        withholding = self.get_object()
        EmptyBody(data=request.data).is_valid(raise_exception=True)
        services.withholding_release(withholding=withholding, actor=request.user)
        return Response(WithholdingSerializer(self.get_queryset().get(pk=withholding.pk)).data)


# Deliveries -------------------------------------------------------------------------------------


def _visible_incidents(request: Any) -> QuerySet[Incident]:
    """The incidents a filter may name: a restricted one is "not a valid choice" (400) for a
    non-member, as an unknown id is."""
    return incidents_visible_to(getattr(request, "user", None))


class DeliveryFilter(django_filters.FilterSet):
    """``GET /api/deliveries/``: ``?incident=<incident id>``, ``?customer=<customer id>``,
    ``?status=`` (repeatable: any of ``pending``, ``sending``, ``sent``, ``failed``). An
    unknown id or status is a 400 naming the parameter."""

    incident = django_filters.ModelChoiceFilter(
        field_name="notice__incident",
        queryset=_visible_incidents,  # type: ignore[arg-type]  # django-filter calls it with the request
        label="Incident id",
    )
    customer = django_filters.ModelChoiceFilter(queryset=Customer.objects.all())
    status = django_filters.MultipleChoiceFilter(choices=Delivery.Status.choices)

    class Meta:
        model = Delivery
        fields = ["incident", "customer", "status"]


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deliveries: one approved notice to one contact (the outbox, DESIGN.md section 4).

    - ``GET /api/deliveries/``: newest first, keyset-paginated, filtered by ``DeliveryFilter``;
      items without the message bodies (``DeliverySerializer``).
    - ``GET /api/deliveries/{id}/``: one delivery with ``text`` and ``html``
      (``DeliveryDetailSerializer``).

    Read-only: deliveries are created by approving a notice and changed only by the sender.
    Permissions: ``view_delivery`` (else 403 on the list, 404 on a delivery).
    """

    permission_classes = _PERMISSIONS
    filterset_class = DeliveryFilter

    def get_queryset(self) -> QuerySet[Delivery]:
        deliveries = visible_related(
            self.request.user,
            Delivery.objects.select_related("notice__incident", "customer"),
            "notice__incident",
        )
        if self.action == "list":
            return deliveries.defer("body_text", "body_html")
        return deliveries.select_related("notice_message")

    def get_serializer_class(self) -> type[DeliverySerializer]:
        return DeliverySerializer if self.action == "list" else DeliveryDetailSerializer


@extend_schema(parameters=[_INCIDENT_ID])
class AcknowledgeDeliveryFailureView(IncidentScopedMixin, GenericAPIView):
    """``POST /api/incidents/{id}/acknowledge-delivery-failure/`` ``{"customer", "reason"}``:
    an incident manager acknowledges that a customer cannot be reached. The customer's failed
    deliveries are marked acknowledged and its open notice clock is waived with the reason
    (``services.deliveries_acknowledge_failure``), which may move the incident to
    ``notified``. 200 with the customer's clock as it stands afterwards (unchanged if it was
    already met or waived). Errors: 400 (blank reason, unknown customer or one without a
    notice clock on this incident, unknown keys), 403 without ``change_clock``, 404 for an
    invisible or unknown incident. A refused request changes nothing."""

    permission_classes = _PERMISSIONS
    required_permissions = {"POST": ["notifications.change_clock"]}
    serializer_class = ClockSerializer

    def get_queryset(self) -> QuerySet[Clock]:
        if self._schema_only():
            return Clock.objects.none()
        return _clocks().filter(incident=self.incident)

    @extend_schema(
        request=AcknowledgeDeliveryFailureBody,
        responses={200: ClockSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def post(self, request: Request, incident_pk: str) -> Response:
        """Acknowledge that a customer cannot be reached: its failed deliveries are marked
        acknowledged and its open notice clock waived with the reason; 200 with the clock.
        Errors: 400 (blank reason, unknown customer or one without a clock on this incident),
        403 without ``change_clock``, 404."""
        body = AcknowledgeDeliveryFailureBody(data=request.data, context={"incident": self.incident})
        body.is_valid(raise_exception=True)
        customer = body.validated_data["customer"]
        # The service marks deliveries before waiving the clock: one transaction, so a refused
        # waiver leaves the deliveries as they were.
        with transaction.atomic():
            services.deliveries_acknowledge_failure(
                incident=self.incident, actor=request.user, **body.validated_data
            )
        clock = self.get_queryset().get(customer=customer, kind=Clock.Kind.CUSTOMER_NOTICE)
        return Response(ClockSerializer(clock, context={"request": request}).data)
