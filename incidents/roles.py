"""Role groups and their permissions, shared by the data migrations that grant them.

The group names ``responder``, ``incident_manager`` and ``auditor`` are a contract (DESIGN.md
section 6). Each app's data migration calls ``grant_app_permissions`` with its own spec; the
functions take the migration's historical ``apps`` registry, so they keep working as models
change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions

ROLE_GROUPS = ("responder", "incident_manager", "auditor")


def create_all_permissions(apps: Any) -> None:
    """Create every model's permissions now (Django normally does it after all migrations)."""
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None


def grant_app_permissions(apps: Any, app_label: str, spec: dict[str, list[str]]) -> None:
    """Add to each group in ``spec`` (``{group name: [codename, ...]}``) those permissions of
    ``app_label``. Raises ``RuntimeError`` if a codename does not exist (a typo must not
    silently leave a role without a right)."""
    create_all_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in spec.items():
        permissions = list(
            Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )
        if len(permissions) != len(set(codenames)):
            raise RuntimeError(f"Expected {len(set(codenames))} {app_label} permissions for {group_name}.")
        # get_or_create: a database flushed after the role migration (a test that migrates
        # back and forth) has no groups yet; the role is the same either way.
        Group.objects.get_or_create(name=group_name)[0].permissions.add(*permissions)


def revoke_app_permissions(apps: Any, app_label: str) -> None:
    """Remove every permission of ``app_label`` from the role groups."""
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label=app_label))
