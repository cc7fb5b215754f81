"""The authentication backend: ``incidents.accounts.ExpiringModelBackend``, reading a user's
permissions in one query.

``ModelBackend`` reads a user's own permissions and their groups' permissions with two queries
on the first permission check of a request; every API request makes one. This reads both with
one query and caches them on the user object for the request, exactly as ``ModelBackend``
does (same ``_perm_cache``, same ``"app_label.codename"`` strings, same rules for inactive
users and superusers).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Q

from incidents.accounts import ExpiringModelBackend


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
