"""``/api/webhooks/subscribers/``: the systems that receive Breachdesk's events (README "Webhooks").

- ``GET /api/webhooks/subscribers/``: subscribers, newest first, keyset-paginated (never a secret). Needs
  ``incidents.view_webhooksubscriber`` (incident managers, auditors; others 403).
- ``POST /api/webhooks/subscribers/`` ``{"name", "url", "event_types": [...], "is_active"}``: 201
  with the subscriber and its ``secret``, shown this once. Needs
  ``incidents.add_webhooksubscriber`` (incident managers).
- ``GET /api/webhooks/subscribers/{id}/``; ``PATCH`` it with any of ``name``, ``url``,
  ``event_types``, ``is_active`` (``false`` deactivates). ``PATCH`` needs
  ``incidents.change_webhooksubscriber``.
- ``POST /api/webhooks/subscribers/{id}/rotate-secret/`` ``{"grace_hours": 0..168}`` (default
  0): 200 with the new ``secret``, shown this once; during the grace period requests carry a
  second signature with the previous secret. Needs ``incidents.change_webhooksubscriber``.
- ``GET /api/webhooks/subscribers/{id}/deliveries/``: the delivery log, newest first, each
  delivery with its attempts. Needs ``incidents.view_webhookdelivery`` (incident managers,
  auditors).
- ``POST /api/webhooks/subscribers/{id}/deliveries/{delivery_id}/redeliver/``: a failed delivery
  is sent again (200 with it; 409 if it has not failed or the subscriber is inactive). Needs
  ``incidents.redeliver_webhookdelivery`` (incident managers).

A user who may not view subscribers gets 404 for any one of them and 403 for the list.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.pagination import KeysetPagination
from incidents.api.serializers import AwareDateTimeField, StrictSerializer, username_field
from incidents.models import WebhookAttempt, WebhookDelivery, WebhookEventType, WebhookSubscriber
from incidents.webhooks import (
    subscriber_log,
    webhook_delivery_redeliver,
    webhook_subscriber_create,
    webhook_subscriber_rotate_secret,
    webhook_subscriber_update,
)


class WebhookSubscriberSerializer(serializers.ModelSerializer):
    """A subscriber as listed: never its secret. ``secret_rotated_at``: the last rotation (UTC)
    or null; ``previous_secret_expires_at``: until when the previous secret still signs."""

    created_by = username_field()
    created_at = AwareDateTimeField(read_only=True)
    updated_at = AwareDateTimeField(read_only=True)
    secret_rotated_at = AwareDateTimeField(source="rotated_at", read_only=True, allow_null=True)
    previous_secret_expires_at = AwareDateTimeField(read_only=True, allow_null=True)
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEventType.choices))

    class Meta:
        model = WebhookSubscriber
        fields = [
            "id",
            "name",
            "url",
            "event_types",
            "is_active",
            "created_by",
            "created_at",
            "updated_at",
            "secret_rotated_at",
            "previous_secret_expires_at",
        ]
        read_only_fields = fields


class NewSecretSerializer(WebhookSubscriberSerializer):
    """A subscriber just created (or its secret just rotated), with its ``secret``: the HMAC key
    of ``Breachdesk-Signature``. Shown only in this answer."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookSubscriberSerializer.Meta):
        fields = [*WebhookSubscriberSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class SubscriberBody(StrictSerializer):
    """A subscriber to create or change; the service validates the URL (https, public
    addresses) and the event types."""

    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices), allow_empty=False, max_length=20
    )
    is_active = serializers.BooleanField(required=False, default=True)

    def validate_name(self, value: str) -> str:
        if "\x00" in value or not value.strip():
            raise serializers.ValidationError("Give the subscriber a name.")
        return value.strip()

    def validate_url(self, value: str) -> str:
        if "\x00" in value or any(character.isspace() for character in value.strip()):
            raise serializers.ValidationError("Give a URL without spaces.")
        return value.strip()


class RotateSecretBody(StrictSerializer):
    grace_hours = serializers.IntegerField(min_value=0, max_value=168, required=False, default=0)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    """One attempt: ``status_code`` (null: no answer), ``duration_ms`` (elapsed milliseconds),
    ``error``, ``outcome`` (``delivered``, ``retry``, ``failed``)."""

    at = AwareDateTimeField(read_only=True)
    duration_ms = serializers.SerializerMethodField()

    class Meta:
        model = WebhookAttempt
        fields = ["number", "at", "status_code", "duration_ms", "error", "outcome"]
        read_only_fields = fields

    def get_duration_ms(self, attempt: WebhookAttempt) -> int:
        return round(attempt.duration.total_seconds() * 1000)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    """One event to the subscriber: ``id`` (the ``Breachdesk-Delivery`` header), the event's
    ``event_type`` and ``incident`` (id), ``status``, ``attempts``, the next attempt, the last
    answer, and each attempt."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    event_id = serializers.UUIDField(source="event.uuid", read_only=True)
    incident = serializers.IntegerField(source="event.incident_id", read_only=True)
    created_at = AwareDateTimeField(read_only=True)
    next_attempt_at = AwareDateTimeField(read_only=True)
    delivered_at = AwareDateTimeField(read_only=True, allow_null=True)
    attempt_log = WebhookAttemptSerializer(source="attempts_made", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "event_id",
            "incident",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "attempt_log",
        ]
        read_only_fields = fields


class WebhookSubscriberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """See the module docstring."""

    serializer_class = WebhookSubscriberSerializer
    filter_backends: list[Any] = []
    required_permissions = {
        "PATCH": ["incidents.change_webhooksubscriber"],
    }

    def get_queryset(self) -> QuerySet[WebhookSubscriber]:
        return WebhookSubscriber.objects.select_related("created_by")

    def get_permissions(self) -> Any:
        if self.action == "rotate_secret":
            self.required_permissions = {"POST": ["incidents.change_webhooksubscriber"]}
        elif self.action == "deliveries":
            self.required_permissions = {"GET": ["incidents.view_webhookdelivery"]}
        elif self.action == "redeliver":
            self.required_permissions = {"POST": ["incidents.redeliver_webhookdelivery"]}
        return super().get_permissions()

    @extend_schema(request=SubscriberBody, responses={201: NewSecretSerializer})
    def create(self, request: Request) -> Response:
        """Register a subscriber; 201 with its ``secret`` (shown only now). Not idempotent on
        purpose (no ``Idempotency-Key``): a replay would have to store the secret."""
        body = SubscriberBody(data=request.data)
        body.is_valid(raise_exception=True)
        subscriber, secret = webhook_subscriber_create(actor=request.user, **body.validated_data)
        subscriber.secret = secret  # type: ignore[attr-defined]
        return Response(NewSecretSerializer(subscriber).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SubscriberBody(partial=True), responses={200: WebhookSubscriberSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change a subscriber (``is_active: false`` deactivates it)."""
        subscriber = self.get_object()
        body = SubscriberBody(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = {name: value for name, value in body.validated_data.items() if name in request.data}
        subscriber = webhook_subscriber_update(actor=request.user, subscriber=subscriber, changes=changes)
        return Response(WebhookSubscriberSerializer(subscriber).data)

    @extend_schema(request=RotateSecretBody, responses={200: NewSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """Give the subscriber a new secret; 200 with it (shown only now)."""
        subscriber = self.get_object()
        body = RotateSecretBody(data=request.data)
        body.is_valid(raise_exception=True)
        secret = webhook_subscriber_rotate_secret(
            actor=request.user,
            subscriber=subscriber,
            grace=timedelta(hours=body.validated_data["grace_hours"]),
        )
        subscriber.refresh_from_db()
        subscriber.secret = secret
        return Response(NewSecretSerializer(subscriber).data)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=KeysetPagination)
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The subscriber's delivery log, newest first, paginated (``?cursor=``, ``?page_size=``)."""
        subscriber = self.get_object()
        page = self.paginate_queryset(subscriber_log(subscriber))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[0-9]+)/redeliver")
    def redeliver(self, request: Request, pk: str | None = None, delivery_id: str | None = None) -> Response:
        """Send a failed delivery again (it becomes pending, due now)."""
        subscriber = self.get_object()
        delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, subscriber=subscriber)
        delivery = webhook_delivery_redeliver(actor=request.user, delivery=delivery)
        return Response(WebhookDeliverySerializer(subscriber_log(subscriber).get(pk=delivery.pk)).data)
