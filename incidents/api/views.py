"""REST API views: validate input, call one service, answer with the changed resource.

Common answers on every route: 400 for invalid input (a body naming the fields; see
``incidents.api.serializers``), 403 for a role that may not (or a list the user may not read),
404 for an object the user may not see or that does not exist, 405 for a method the route does
not have, 409 for an action that does not fit the incident's state, 413 for a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE``. Lists are keyset-paginated: ``{"next", "previous",
"results"}`` with ``?cursor=`` links, ``?page_size=`` up to 200.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from incidents import services
from incidents.api.filters import ContactFilter, CustomerFilter, IncidentFilter, TextSearchFilter
from incidents.api.listing import created_incident_representation, listed_incidents, listed_values
from incidents.api.pagination import AddedAtKeysetPagination, KeysetPagination
from incidents.api.serializers import (
    TRANSITION_BODIES,
    AffectedCustomerAddBody,
    AffectedCustomerFiguresBody,
    AffectedCustomerRemoveBody,
    AffectedCustomerSerializer,
    ClassifyAsCustomerEventBody,
    ContactSerializer,
    CustomerSerializer,
    DeclareBody,
    EmptyBody,
    ErrorSerializer,
    GuardFailedSerializer,
    IncidentCreateSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    ReadinessSerializer,
    ReadLogEntrySerializer,
    RuleOutOfScopeBody,
    TriageBody,
)
from incidents.api.writes import IDEMPOTENCY_KEY, idempotent_create
from incidents.lifecycle import TRANSITION_NAMES
from incidents.models import (
    TRANSITION_PERMISSIONS,
    AffectedCustomer,
    Contact,
    Customer,
    Incident,
    ReadLogEntry,
)
from incidents.readiness import has_deliverable_contact, readiness_figures
from incidents.selectors import incidents_visible_to, read_log_visible_to

_ERROR = OpenApiResponse(ErrorSerializer)


class IncidentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Incidents: suspected or declared personal data breaches.

    - ``GET /api/incidents/``: newest first, keyset-paginated. Filters ``?state=``,
      ``?severity=``, ``?detection_source=`` (repeatable), ``?is_drill=``; ``?search=`` matches
      title, summary and reference. Items omit ``source_record``.
    - ``POST /api/incidents/``: record a signal (state ``detected``); 201 with the incident.
    - ``GET /api/incidents/{id}/``: the incident, with ``source_record``.
    - ``PATCH /api/incidents/{id}/``: change facts (never ``state``: 400); 409 when the incident
      is closed or ruled out.
    - ``POST /api/incidents/{id}/transitions/{name}/``: take a lifecycle transition.
    - ``GET|POST|DELETE /api/incidents/{id}/affected-customers/``: the affected customers.

    Permissions: ``view_incident`` to read (without it: 403 on the list, 404 on an incident),
    ``add_incident`` to create, ``change_incident`` to edit; transitions and affected customers
    as on their actions.
    """

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    #: The model of get_queryset's querysets, for ModelPermissions.
    permission_model = Incident
    filter_backends = [DjangoFilterBackend, TextSearchFilter]
    filterset_class = IncidentFilter
    #: ``DELETE .../affected-customers/?customer=`` (incidents.api.query).
    extra_query_parameters = {"DELETE": ["customer"]}
    search_fields = ["title", "summary", "reference"]

    def get_queryset(self) -> QuerySet[Incident]:
        # incidents_visible_to: a restricted incident is 404 and in no list for a non-member.
        user = self.request.user
        if self.action == "list":
            # The list reads rows of values (incidents.api.listing.listed_values), not instances.
            # Built once per request: the permission and query-parameter checks ask for it too
            # (for its model and filterset) and each build compiles the need-to-know subqueries;
            # every use filters a clone, none evaluates it.
            listed = self.__dict__.get("_listed_incidents")
            if listed is None:
                listed = self.__dict__["_listed_incidents"] = incidents_visible_to(
                    user, Incident.objects.all()
                )
            return listed
        incidents = incidents_visible_to(
            user, Incident.objects.select_related("owner", "declared_by")
        ).prefetch_related(
            "products",
            Prefetch(
                "affected_customers",
                queryset=AffectedCustomer.objects.select_related("customer").only(
                    "id",
                    "incident_id",
                    "customer__id",
                    "customer__account_reference",
                    "customer__name",
                ),
            ),
        )
        return incidents

    def get_serializer_class(self) -> type[IncidentSerializer]:
        return IncidentSerializer if self.action == "list" else IncidentDetailSerializer

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        """Permissions of the actions that are not plain model reads and writes (read by
        ``ModelPermissions``, after its ``view_incident`` check that answers 404)."""
        if self.action == "transition":
            permission = TRANSITION_PERMISSIONS.get(self.kwargs.get("transition_name", ""))
            # An unknown name needs only view_incident here, then gets 404 from the action.
            return {"POST": [permission or "incidents.view_incident"]}
        if self.action == "affected_customers":
            return {
                "GET": ["incidents.view_affectedcustomer"],
                "HEAD": ["incidents.view_affectedcustomer"],
                "OPTIONS": ["incidents.view_affectedcustomer"],
                "POST": ["incidents.add_affectedcustomer"],
                "PATCH": ["incidents.change_affectedcustomer"],
                "DELETE": ["incidents.delete_affectedcustomer"],
            }
        return {}

    def _represent(self, incident: Incident) -> dict[str, Any]:
        """The detail representation of ``incident`` as stored now (re-read with prefetches)."""
        fresh = self.get_queryset().get(pk=incident.pk)
        return IncidentDetailSerializer(fresh, context=self.get_serializer_context()).data

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=IncidentCreateSerializer,
        responses={201: IncidentDetailSerializer, 400: _ERROR, 403: _ERROR, 409: _ERROR},
    )
    @idempotent_create
    def create(self, request: Request) -> Response:
        """Record a new signal through ``services.incident_create``; 201 with the incident.

        Body: the writable incident fields (``title`` and ``detection_source`` required) and
        ``external_reference`` (the sending system's id, unique per detection source).
        The answer is built from what was written, inside the transaction (no re-read), so a
        committed create always answers 201. Errors: 400 (invalid, unknown or read-only
        fields), 403 without ``add_incident``, 409 ``duplicate_external_reference`` naming the
        incident that has it, 422 for a reused ``Idempotency-Key``.
        """
        serializer = IncidentCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        external_reference = fields.pop("external_reference", None)
        incident = services.incident_create(
            actor=request.user, fields=fields, external_reference=external_reference
        )
        # Built from what was written, as IncidentDetailSerializer would (incidents.api.listing).
        data = created_incident_representation(
            incident, products=fields.get("products", []), user=request.user
        )
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=IncidentDetailSerializer,
        responses={
            200: IncidentDetailSerializer,
            400: _ERROR,
            403: _ERROR,
            404: _ERROR,
            409: _ERROR,
        },
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change some of an incident's facts through ``services.incident_update``.

        Body: any writable incident fields. Errors: 400 (invalid, unknown or read-only fields;
        ``state``: "State changes only through transitions"), 403 without ``change_incident``,
        404, 409 when the incident is closed or ruled out.
        """
        incident = self.get_object()
        serializer = self.get_serializer(incident, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.incident_update(incident=incident, actor=request.user, changes=serializer.validated_data)
        return Response(self._represent(incident))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "transition_name",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                enum=list(TRANSITION_NAMES),
                description="The lifecycle transition to take (DESIGN.md section 2).",
            )
        ],
        request=PolymorphicProxySerializer(
            component_name="TransitionBody",
            serializers=[
                TriageBody,
                RuleOutOfScopeBody,
                ClassifyAsCustomerEventBody,
                DeclareBody,
                EmptyBody,
            ],
            resource_type_field_name=None,
        ),
        responses={
            200: IncidentDetailSerializer,
            400: OpenApiResponse(GuardFailedSerializer, description="Guard not met or bad body."),
            403: _ERROR,
            404: _ERROR,
            409: OpenApiResponse(ErrorSerializer, description="Not available from this state."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"transitions/(?P<transition_name>[^/.]+)",
        filter_backends=[],
        pagination_class=None,
    )
    def transition(self, request: Request, pk: str | None = None, transition_name: str = "") -> Response:
        """Take lifecycle transition ``transition_name`` through its service
        (``services.TRANSITION_SERVICES``); 200 with the incident in its new state.

        Body per transition (unknown keys: 400): ``triage`` {severity, malicious, scenario};
        ``rule_out_of_scope`` {out_of_scope_category, scope_rationale};
        ``classify_as_customer_event`` {scope_rationale, customer_informed_at};
        ``declare`` {nature_of_breach}; ``close``, ``mark_notified`` and
        ``begin_post_mortem`` {}. Values already recorded need not be repeated.
        Errors: 400 ``{"detail", "missing": [field names]}`` when the guard is not met, or a
        field error for an invalid body; 403 when the role may not take it
        (``TRANSITION_PERMISSIONS``); 404 for an unknown incident or transition name; 409
        ``{"detail", "state"}`` when it is not available from the current state. A refused
        transition changes nothing (row and audit trail).
        """
        if transition_name not in services.TRANSITION_SERVICES:
            raise NotFound(f"Unknown transition {transition_name!r}; known: {', '.join(TRANSITION_NAMES)}.")
        incident = self.get_object()
        body = TRANSITION_BODIES[transition_name](data=request.data)
        body.is_valid(raise_exception=True)
        services.TRANSITION_SERVICES[transition_name](
            incident=incident, actor=request.user, **body.validated_data
        )
        return Response(self._represent(incident))

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: AffectedCustomerSerializer(many=True), 403: _ERROR, 404: _ERROR},
    )
    @extend_schema(
        methods=["POST"],
        parameters=[IDEMPOTENCY_KEY],
        request=AffectedCustomerAddBody,
        responses={
            201: AffectedCustomerSerializer,
            400: _ERROR,
            403: _ERROR,
            404: _ERROR,
            409: _ERROR,
        },
    )
    @extend_schema(
        methods=["PATCH"],
        request=AffectedCustomerFiguresBody,
        responses={200: AffectedCustomerSerializer, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @extend_schema(
        methods=["DELETE"],
        parameters=[
            OpenApiParameter(
                "customer",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="Customer id or account reference, if not given in the body.",
            )
        ],
        request=AffectedCustomerRemoveBody,
        responses={204: None, 400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    @action(
        detail=True,
        methods=["get", "post", "patch", "delete"],
        url_path="affected-customers",
        filter_backends=[],
        pagination_class=AddedAtKeysetPagination,
    )
    @idempotent_create
    def affected_customers(self, request: Request, pk: str | None = None) -> Response:
        """The customers whose personal data an incident involves.

        - ``GET``: keyset-paginated, oldest addition first (``view_affectedcustomer``).
        - ``POST`` ``{"customer": <id or account reference>, "records_affected": int|null,
          "notes": str}``: add one through ``services.affected_customer_add``; 201 with the
          row. 409 if already recorded or the incident is closed or ruled out
          (``add_affectedcustomer``).
        - ``PATCH`` ``{"customer": ..., <figures>}``: change the customer's own figures
          (``AffectedCustomerFiguresBody``) through ``services.affected_customer_update``; 200
          with the row (``change_affectedcustomer``). 404 if the customer is not recorded.
        - ``DELETE`` ``{"customer": ...}`` (or ``?customer=``): remove one through
          ``services.affected_customer_remove``; 204. 409 after declaration or when not
          recorded (``delete_affectedcustomer``).

        Errors: 400 for an unknown customer or invalid body, 403 for a role that may not, 404
        for an incident the user may not see.
        """
        incident = self.get_object()
        if request.method == "POST":
            body = AffectedCustomerAddBody(data=request.data)
            body.is_valid(raise_exception=True)
            affected = services.affected_customer_add(
                incident=incident, actor=request.user, **body.validated_data
            )
            affected = AffectedCustomer.objects.select_related("customer", "added_by", "incident").get(
                pk=affected.pk
            )
            return Response(AffectedCustomerSerializer(affected).data, status=status.HTTP_201_CREATED)
        if request.method == "PATCH":
            figures = AffectedCustomerFiguresBody(data=request.data)
            figures.is_valid(raise_exception=True)
            changes = dict(figures.validated_data)
            customer = changes.pop("customer")
            affected = get_object_or_404(AffectedCustomer, incident=incident, customer=customer)
            services.affected_customer_update(affected=affected, actor=request.user, changes=changes)
            affected = AffectedCustomer.objects.select_related("customer", "added_by").get(pk=affected.pk)
            return Response(AffectedCustomerSerializer(affected).data)
        if request.method == "DELETE":
            data: Any = request.data
            if not data and "customer" in request.query_params:
                data = {"customer": request.query_params["customer"]}
            removal = AffectedCustomerRemoveBody(data=data)
            removal.is_valid(raise_exception=True)
            services.affected_customer_remove(
                incident=incident, actor=request.user, customer=removal.validated_data["customer"]
            )
            return Response(status=status.HTTP_204_NO_CONTENT)
        rows = AffectedCustomer.objects.filter(incident=incident).select_related(
            "customer", "added_by", "incident"
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AffectedCustomerSerializer(page, many=True).data)

    # Last in the class: above it, ``list`` in an annotation would name this method.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # No docstring: the schema's description of the list stays the class's (above).
        # One keyset page of the incidents the user may see (incidents_visible_to), filtered
        # and searched as before; IncidentSerializer's representation built from rows of
        # values (incidents.api.listing), in the same number of queries for 1 or 200 rows.
        rows = listed_values(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(rows)
        if page is None:
            return Response(listed_incidents(rows, request.user))
        return self.get_paginated_response(listed_incidents(page, request.user))


class CustomerViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Customers (the controllers whose personal data we process).

    ``GET /api/customers/`` (keyset-paginated, newest first; ``?search=`` over name and account
    reference; ``?deliverable=false`` the customers no notice could reach today, ``?unconfirmed=
    true`` those marked unconfirmed: ``CustomerFilter``), ``POST`` (201), ``GET|PUT|PATCH
    /api/customers/{id}/``, ``GET /api/customers/readiness/`` (counts; needs
    ``incidents.view_contact_readiness``). No DELETE (405): a customer named in an incident
    stays on record. Permissions: ``view_customer``, ``add_customer``, ``change_customer``.
    Errors: 400 (invalid, unknown or read-only fields, a duplicate account reference, a bad
    filter value), 403, 404.
    """

    serializer_class = CustomerSerializer
    filter_backends = [DjangoFilterBackend, TextSearchFilter]
    filterset_class = CustomerFilter
    search_fields = ["name", "account_reference"]

    def get_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.annotate(has_deliverable_contact=has_deliverable_contact())

    @property
    def required_permissions(self) -> dict[str, list[str]]:
        if self.action == "readiness":
            return {method: ["incidents.view_contact_readiness"] for method in ("GET", "HEAD", "OPTIONS")}
        return {}

    @extend_schema(responses={200: ReadinessSerializer, 403: _ERROR})
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def readiness(self, request: Request) -> Response:
        """Today's readiness counts (``incidents.readiness.readiness_figures``): customers
        with no deliverable administrative contact, customers unconfirmed, contacts refused by
        their mail server, new contacts waiting to confirm. 403 without
        ``incidents.view_contact_readiness``."""
        return Response(ReadinessSerializer(readiness_figures().as_dict()).data)

    @extend_schema(parameters=[IDEMPOTENCY_KEY])
    @idempotent_create
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create one (201); safe to retry with ``Idempotency-Key``."""
        return super().create(request, *args, **kwargs)


class ContactViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Customers' contacts, the people we notify.

    ``GET /api/contacts/`` (keyset-paginated, newest first; ``?customer=<id>``,
    ``?is_active=``, ``?role=``), ``POST`` (201), ``GET|PUT|PATCH /api/contacts/{id}/``. No
    DELETE (405): deactivate with ``is_active=false`` so past deliveries keep their contact.
    Writes go through ``services.contact_create`` / ``contact_update``: audited on the
    customer's chain, and a staff edit makes an undeliverable contact deliverable again.
    Permissions: ``view_contact``, ``add_contact``, ``change_contact``. Errors: 400 (invalid,
    unknown or read-only fields, an email already used at that customer), 403, 404.
    """

    queryset = Contact.objects.all()
    serializer_class = ContactSerializer
    filterset_class = ContactFilter

    @extend_schema(parameters=[IDEMPOTENCY_KEY])
    @idempotent_create
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create one (201); safe to retry with ``Idempotency-Key``."""
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        values = dict(serializer.validated_data)
        customer = values.pop("customer")
        serializer.instance = services.contact_create(customer=customer, actor=self.request.user, **values)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        values = dict(serializer.validated_data)
        contact = serializer.instance
        assert isinstance(contact, Contact)
        if "customer" in values and values.pop("customer").pk != contact.customer_id:
            raise DRFValidationError({"customer": ["A contact cannot move to another customer."]})
        serializer.instance = services.contact_update(
            contact=contact, actor=self.request.user, changes=values
        )


class ReadLogKeysetPagination(KeysetPagination):
    """Newest read first."""

    ordering = ("-read_at", "-id")


class ReadLogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """``GET /api/read-log/``: every record an auditor opened (page or API), newest first;
    ``?username=`` and ``?object_type=`` narrow it. Read-only, for incident managers and
    auditors (``incidents.view_readlogentry``); 403 for anyone else."""

    serializer_class = ReadLogEntrySerializer
    pagination_class = ReadLogKeysetPagination
    #: Read by get_queryset, not by a filterset (incidents.api.query).
    extra_query_parameters = {"GET": ["username", "object_type"]}

    def get_queryset(self) -> QuerySet[ReadLogEntry]:
        if getattr(self, "swagger_fake_view", False):
            return ReadLogEntry.objects.none()  # drf-spectacular reads the model; no query
        # Reads of a restricted incident the user is not a member of are not listed (need to know).
        entries = read_log_visible_to(self.request.user, ReadLogEntry.objects.all())
        for name in ("username", "object_type"):
            value = self.request.query_params.get(name)
            if value:
                entries = entries.filter(**{name: value})
        return entries

    @extend_schema(
        parameters=[
            OpenApiParameter("username", OpenApiTypes.STR),
            OpenApiParameter("object_type", OpenApiTypes.STR),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The read log, newest first."""
        return super().list(request, *args, **kwargs)
