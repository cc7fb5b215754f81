"""The authentication backend: ``incidents.accounts.ExpiringModelBackend``, reading a user's
permissions in one query.

``ModelBackend`` reads a user's own permissions and their groups' permissions with two queries
on the first permission check of a request; every API request makes one. This reads both with
one query and caches them on the user object for the request, exactly as ``ModelBackend``
does (same ``_perm_cache``, same ``"app_label.codename"`` strings, same rules for inactive
users and superusers). An API token's authentication reads them with the token instead
(``permission_annotations`` and ``remember_permissions``): one query for the whole check.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import F, OuterRef, Q, StringAgg, Subquery, Value
from django.db.models.functions import Concat

from incidents.accounts import ExpiringModelBackend

#: Separates the permission names in the text ``permission_annotations`` aggregates (a control
#: character: never in an app label or a codename).
_SEPARATOR = "\x1f"


def _permission_names(condition: Q) -> Subquery:
    return Subquery(
        Permission.objects.filter(condition)
        .order_by()
        .annotate(everyone=Value(1))
        .values("everyone")
        .annotate(
            names=StringAgg(
                Concat(F("content_type__app_label"), Value("."), F("codename")), Value(_SEPARATOR)
            )
        )
        .values("names")
    )


def permission_annotations(user_id: str) -> dict[str, Subquery]:
    """Annotations for a query whose rows name a user by the field ``user_id`` (for example an
    ``ApiToken`` query: ``"user_id"``): ``user_permission_names`` and ``group_permission_names``,
    the user's own permissions and their groups' as text (null when none), for
    ``remember_permissions``."""
    return {
        "user_permission_names": _permission_names(Q(user=OuterRef(user_id))),
        "group_permission_names": _permission_names(Q(group__user=OuterRef(user_id))),
    }


def remember_permissions(user_obj: Any, *, user_names: str | None, group_names: str | None) -> None:
    """Cache on ``user_obj`` (for the request) the permissions read through
    ``permission_annotations``, exactly as ``ModelBackend`` caches them after its own queries
    (``_user_perm_cache``, ``_group_perm_cache``, ``_perm_cache``: sets of
    ``"app_label.codename"``), so ``has_perm`` asks nothing more. Not for an inactive user or a
    superuser, whose permissions do not come from these rows: they are left to the backend."""
    if not user_obj.is_active or user_obj.is_superuser:
        return
    own = set(user_names.split(_SEPARATOR)) if user_names else set()
    groups = set(group_names.split(_SEPARATOR)) if group_names else set()
    user_obj._user_perm_cache = own
    user_obj._group_perm_cache = groups
    user_obj._perm_cache = own | groups


class ModelBackendOneQuery(ExpiringModelBackend):
    """``ExpiringModelBackend`` (log-in refuses expired accounts) reading permissions in one
    query."""

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            permissions = Permission.objects.all()
            if not user_obj.is_superuser:
                permissions = permissions.filter(Q(user=user_obj) | Q(group__user=user_obj))
            user_obj._perm_cache = {
                f"{app_label}.{codename}"
                for app_label, codename in permissions.values_list(
                    "content_type__app_label", "codename"
                ).distinct()
            }
        return user_obj._perm_cache
