"""``/api/tokens/``: a user's own API tokens, listed, created and revoked by their owner.

- ``GET /api/tokens/``: the requesting user's tokens, newest first (never the keys).
- ``POST /api/tokens/`` ``{"name", "expires_in_days": 1..366 (default API_TOKEN_DEFAULT_DAYS)}``:
  201 with the token and its ``key``, shown this once.
- ``DELETE /api/tokens/{id}/``: revoke it (204); it stops working at once. Another user's
  token is 404.

Any signed-in user may manage their own tokens; nobody else's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.authentication import api_token_create, api_token_revoke
from incidents.api.query import is_list_request, refuse_unknown_query_parameters
from incidents.api.serializers import AwareDateTimeField, StrictSerializer
from incidents.models import ApiToken


class SignedIn(BasePermission):
    """Any authenticated user (their own tokens only, by the queryset)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not is_list_request(request, view):
            refuse_unknown_query_parameters(request, view, listing=False)
        return True


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as listed: ``prefix`` (the key's first characters), ``is_active`` (not revoked
    and not expired now), instants in UTC; never the key."""

    created_at = AwareDateTimeField(read_only=True)
    expires_at = AwareDateTimeField(read_only=True)
    last_used_at = AwareDateTimeField(read_only=True, allow_null=True)
    revoked_at = AwareDateTimeField(read_only=True, allow_null=True)
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields

    def get_is_active(self, token: ApiToken) -> bool:
        from django.utils import timezone

        return token.is_usable_at(timezone.now())


class NewApiTokenSerializer(ApiTokenSerializer):
    """A token just created, with its ``key``: use it as ``Authorization: Token <key>``."""

    key = serializers.CharField(read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiTokenCreateBody(StrictSerializer):
    name = serializers.CharField(max_length=200)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=366, required=False)

    def validate_name(self, value: str) -> str:
        if "\x00" in value or not value.strip():
            raise serializers.ValidationError("Give the token a name.")
        return value.strip()


class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """See the module docstring."""

    serializer_class = ApiTokenSerializer
    permission_classes = [SignedIn]
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user_id=self.request.user.pk or 0)

    @extend_schema(request=ApiTokenCreateBody, responses={201: NewApiTokenSerializer})
    def create(self, request: Request) -> Response:
        """Create a token for the requesting user; 201 with its ``key`` (shown only now).
        Not idempotent on purpose: a replay would have to store the key."""
        body = ApiTokenCreateBody(data=request.data)
        body.is_valid(raise_exception=True)
        days = body.validated_data.get("expires_in_days", settings.API_TOKEN_DEFAULT_DAYS)
        token, key = api_token_create(
            user=request.user, name=body.validated_data["name"], lifetime=timedelta(days=days)
        )
        token.key = key  # type: ignore[attr-defined]
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke one of the requesting user's tokens (204); it stops working at once."""
        api_token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
