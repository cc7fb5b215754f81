"""Need-to-know in the admin (``/admin/``) and the read-only auditor site (``/audit/``).

``guard_admin_site(site)`` runs once every app has registered its model admins (the sites'
URLs are built then): every ``ModelAdmin`` whose rows belong to an incident
(``incident_path``) gets a ``get_queryset`` through ``incidents.selectors.visible_related``, so
a restricted incident and its rows are in no change list, search, autocomplete or history for
a non-member, and their pages answer as for an unknown id; a foreign key to ``Incident`` in an
admin form offers only visible incidents; the auditors' read log hides the reads of such an
incident (``read_log_visible_to``). Done per site at start-up rather than in each
``ModelAdmin``, so a model admin added later (by any app) is covered without remembering to.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite, ModelAdmin
from django.db.models import ForeignKey, Model
from django.http import HttpRequest

from incidents.models import AuditCheckpoint, Incident, ReadLogEntry
from incidents.selectors import (
    incidents_visible_to,
    invisible_incident_ids,
    read_log_visible_to,
    visible_related,
)

#: How many foreign keys ``incident_path`` follows at most (a sent message: delivery, notice,
#: incident).
MAX_DEPTH = 3


def incident_path(model: type[Model]) -> str | None:
    """The lookup from a row of ``model`` to the incident it belongs to (``"pk"`` for
    ``Incident``, ``"incident"``, ``"notice__incident"``...), or ``None`` when its rows belong
    to no incident. Follows forward foreign keys, shortest path first, a field named
    ``incident`` first among equals."""
    if issubclass(model, Incident):
        return "pk"
    frontier: list[tuple[type[Model], str]] = [(model, "")]
    seen = {model}
    for _ in range(MAX_DEPTH):
        following: list[tuple[type[Model], str]] = []
        for current, prefix in frontier:
            keys = [f for f in current._meta.get_fields() if isinstance(f, ForeignKey) and f.concrete]
            keys.sort(key=lambda f: f.name != "incident")
            for key in keys:
                target = key.related_model
                if not isinstance(target, type):
                    continue
                if issubclass(target, Incident):
                    return f"{prefix}{key.name}"
                if target not in seen:
                    seen.add(target)
                    following.append((target, f"{prefix}{key.name}__"))
        frontier = following
    return None


def guard_admin_site(site: AdminSite) -> None:
    """Make every model admin of ``site`` whose rows belong to an incident read through the
    need-to-know selector (see the module docstring). Safe to call twice."""
    for model, model_admin in site._registry.items():
        _guard(model_admin, incident_path(model))


def _guard(model_admin: ModelAdmin, path: str | None) -> None:
    if getattr(model_admin, "_need_to_know_guarded", False):
        return
    model_admin._need_to_know_guarded = True  # type: ignore[attr-defined]
    original_queryset = model_admin.get_queryset
    original_formfield = model_admin.formfield_for_foreignkey

    if path is not None:

        def get_queryset(request: HttpRequest) -> Any:
            return visible_related(request.user, original_queryset(request), path)

        model_admin.get_queryset = get_queryset  # type: ignore[method-assign]
    elif issubclass(model_admin.model, ReadLogEntry):
        # The read log names incidents by id and path, not by a foreign key.
        def get_read_log(request: HttpRequest) -> Any:
            return read_log_visible_to(request.user, original_queryset(request))

        model_admin.get_queryset = get_read_log  # type: ignore[method-assign]
    elif issubclass(model_admin.model, AuditCheckpoint):
        # A checkpoint names its incident's chain by id and reference, not by a foreign key.
        def get_checkpoints(request: HttpRequest) -> Any:
            hidden = invisible_incident_ids(request.user)
            return original_queryset(request).exclude(chain="incident", subject_id__in=hidden)

        model_admin.get_queryset = get_checkpoints  # type: ignore[method-assign]

    def formfield_for_foreignkey(db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field.related_model, type) and issubclass(db_field.related_model, Incident):
            kwargs["queryset"] = incidents_visible_to(request.user)
        return original_formfield(db_field, request, **kwargs)

    model_admin.formfield_for_foreignkey = formfield_for_foreignkey  # type: ignore[method-assign]
