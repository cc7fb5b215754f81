"""``POST /api/intake/alerts/``: signed alerts from monitoring systems (``incidents.intake``).

No user: the request is authenticated by its signature (``AlertSignatureAuthentication``),
throttled per source, and answered from what was written (no read after the commit).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.addresses import has_line_break
from incidents.api.query import refuse_unknown_query_parameters
from incidents.api.serializers import AwareDateTimeField, StrictSerializer
from incidents.api.throttling import AlertSourceThrottle
from incidents.exceptions import AlertRefused
from incidents.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, alert_receive, alert_source_verify
from incidents.models import AlertSource

SCHEME = 'Signature realm="alerts", headers="X-Breachdesk-Timestamp X-Breachdesk-Signature"'


class _SourceUser:
    """The request's user for a signed alert: nobody (``is_authenticated`` is False)."""

    is_authenticated = False
    is_active = False
    pk = None


class AlertSignatureAuthentication(BaseAuthentication):
    """Verifies ``X-Breachdesk-Signature`` over ``<X-Breachdesk-Timestamp>.<raw body>``;
    ``request.auth`` becomes the ``AlertSource``. Refusals: 401 with code ``bad_signature``,
    ``stale_timestamp`` (see ``incidents.intake.alert_source_verify``)."""

    def authenticate(self, request: Request) -> tuple[Any, AlertSource]:
        try:
            source, fingerprint = alert_source_verify(
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=request.body,
            )
        except AlertRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused), code=refused.code) from None
        request.alert_fingerprint = fingerprint  # type: ignore[attr-defined]  # read by the view
        return _SourceUser(), source

    def authenticate_header(self, request: Request) -> str:
        return SCHEME


class AlertSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "incidents.api.intake.AlertSignatureAuthentication"
    name = "alertSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": (
                "sha256=<hex HMAC-SHA256 of '<X-Breachdesk-Timestamp>.<raw body>'> with the source's "
                "secret (manage.py create_alert_source)."
            ),
        }


class SignedBySource(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        refuse_unknown_query_parameters(request, view, listing=False)
        return isinstance(request.auth, AlertSource)


class AlertBody(StrictSerializer):
    """An alert: ``dedupe_key`` (the sender's name for what fires, up to 200 characters),
    ``title``, ``detected_at`` (ISO 8601 with an offset, not in the future), optional
    ``summary`` and ``details`` (any JSON object, kept with the alert)."""

    dedupe_key = serializers.CharField(max_length=200)
    title = serializers.CharField(max_length=300)
    detected_at = AwareDateTimeField()
    summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    details = serializers.DictField(required=False, allow_null=True, default=None)

    def validate_detected_at(self, value: Any) -> Any:
        if value > timezone.now() + timedelta(minutes=5):
            raise serializers.ValidationError("This cannot be in the future.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("dedupe_key", "title", "summary"):
            if "\x00" in attrs.get(name, ""):
                raise serializers.ValidationError({name: ["NUL characters cannot be stored."]})
        if has_line_break(attrs.get("title", "")):
            # The title becomes the incident's, which reaches email headers (issue 8).
            raise serializers.ValidationError(
                {"title": ["This must be a single line: line breaks and control characters are not allowed."]}
            )
        return attrs


class AlertAnswerSerializer(serializers.Serializer):
    """The answer: the ``incident`` the alert opened (201) or attached to (200), its
    ``reference``, the stored ``alert``'s id, ``deduplicated`` and the incident's
    ``alert_count`` from this (source, dedupe key)."""

    incident = serializers.IntegerField()
    reference = serializers.CharField()
    alert = serializers.IntegerField()
    deduplicated = serializers.BooleanField()
    alert_count = serializers.IntegerField()


_HEADERS = [
    OpenApiParameter(
        TIMESTAMP_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=True,
        description="Unix seconds (UTC) when the request was signed; at most 300 seconds from now.",
        pattern=r"^[0-9]{1,12}$",
    ),
    OpenApiParameter(
        SIGNATURE_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=True,
        description="sha256=<hex HMAC-SHA256 of '<timestamp>.<raw body>'>.",
        pattern=r"^sha256=[0-9a-f]{64}$",
    ),
]


class AlertIntakeView(APIView):
    """``POST /api/intake/alerts/``: a signed alert from a monitoring system.

    201 ``{"incident", "reference", "alert", "deduplicated": false, "alert_count": 1}``: a new
    ``detected`` incident (source ``automated_alert``). 200 with ``"deduplicated": true``: the
    alert attached to the open incident of the same source and ``dedupe_key``. Errors: 400
    (body; nothing stored), 401 (``bad_signature``, ``stale_timestamp``, ``replayed``), 429 per
    source (``API_THROTTLE_ALERT_SOURCE``).
    """

    authentication_classes = [AlertSignatureAuthentication]
    permission_classes = [SignedBySource]
    throttle_classes = [AlertSourceThrottle]

    @extend_schema(
        parameters=_HEADERS,
        request=AlertBody,
        responses={201: AlertAnswerSerializer, 200: AlertAnswerSerializer, 400: None, 401: None},
        operation_id="intake_alerts_create",
    )
    def post(self, request: Request) -> Response:
        body = AlertBody(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            source, fingerprint = request.auth, getattr(request, "alert_fingerprint", "")
            assert isinstance(source, AlertSource)  # SignedBySource let only a source through
            outcome = alert_receive(source=source, fingerprint=fingerprint, **body.validated_data)
        except AlertRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused), code=refused.code) from None
        answer = {
            "incident": outcome.incident.pk,
            "reference": outcome.incident.reference,
            "alert": outcome.alert.pk,
            "deduplicated": not outcome.opened,
            "alert_count": outcome.alert_count,
        }
        return Response(answer, status=status.HTTP_201_CREATED if outcome.opened else status.HTTP_200_OK)
