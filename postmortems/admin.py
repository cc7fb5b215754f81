"""Post-mortems, action items and drills in Django's admin (``/admin/``, superusers) and on the
read-only auditor site (``/audit/``).

Both are read-only here: every change to these records goes through ``postmortems.services``,
which audits it on the incident's hash chain, so no admin edit can bypass the trail. The pages
for writing them are the incident's post-mortem and drill pages and the API. Training has its
own admin module, ``postmortems.training_admin`` (imported at the end).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from incidents.audit_site import ReadOnlyAdmin, ReadOnlyInline, audit_site
from postmortems.models import (
    ActionItem,
    ActionItemReminder,
    CustomerSummaryStatement,
    Drill,
    DrillParticipant,
    PostMortem,
    PostMortemVersion,
    SummaryRelease,
)


class PostMortemDisplay(admin.ModelAdmin):
    list_display = ("incident", "status", "version", "started_at", "completed_at", "reviewed_at")
    list_filter = ("status",)
    search_fields = ("incident__reference", "incident__title")
    list_select_related = ("incident",)


class ActionItemDisplay(admin.ModelAdmin):
    list_display = ("description", "post_mortem", "owner", "status", "due_at", "done_at", "verified_at")
    list_filter = ("status",)
    search_fields = ("description", "resolution", "post_mortem__incident__reference")
    list_select_related = ("post_mortem__incident", "owner")


class DrillDisplay(admin.ModelAdmin):
    list_display = ("incident", "held_on", "time_to_declare", "time_to_notify", "completed_at")
    search_fields = ("incident__reference", "scenario")
    list_select_related = ("incident",)


class ViewOnly(ReadOnlyAdmin):
    """Superusers in ``/admin/`` see these records and change nothing (audited services only)."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser


class ViewOnlyInline(ReadOnlyInline):
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser


def _inline(base: type, model_class: type, shown: tuple[str, ...]) -> type:
    return type(f"{model_class.__name__}{base.__name__}", (base,), {"model": model_class, "fields": shown})


ACTION_ITEM_FIELDS = ("description", "owner", "due_at", "status", "resolution", "done_at", "verified_at")
STATEMENT_FIELDS = ("position", "text", "finding")
PARTICIPANT_FIELDS = ("function", "name")


@admin.register(PostMortem)
class PostMortemAdmin(PostMortemDisplay, ViewOnly):
    inlines = [
        _inline(ViewOnlyInline, CustomerSummaryStatement, STATEMENT_FIELDS),
        _inline(ViewOnlyInline, ActionItem, ACTION_ITEM_FIELDS),
    ]


@admin.register(ActionItem)
class ActionItemAdmin(ActionItemDisplay, ViewOnly):
    pass


@admin.register(Drill)
class DrillAdmin(DrillDisplay, ViewOnly):
    inlines = [_inline(ViewOnlyInline, DrillParticipant, PARTICIPANT_FIELDS)]


# The rows the records above are made of, each on its own page too.
for _model in (
    PostMortemVersion,
    CustomerSummaryStatement,
    SummaryRelease,
    ActionItemReminder,
    DrillParticipant,
):
    admin.site.register(_model, ViewOnly)


# The read-only auditor site (``/audit/``).


@admin.register(PostMortem, site=audit_site)
class PostMortemAudit(PostMortemDisplay, ReadOnlyAdmin):
    inlines = [
        _inline(ReadOnlyInline, CustomerSummaryStatement, STATEMENT_FIELDS),
        _inline(ReadOnlyInline, ActionItem, ACTION_ITEM_FIELDS),
    ]


@admin.register(ActionItem, site=audit_site)
class ActionItemAudit(ActionItemDisplay, ReadOnlyAdmin):
    pass


@admin.register(Drill, site=audit_site)
class DrillAudit(DrillDisplay, ReadOnlyAdmin):
    inlines = [_inline(ReadOnlyInline, DrillParticipant, PARTICIPANT_FIELDS)]


# Training (courses, records, imports, their audit chain) registers itself on both sites.
from postmortems import training_admin  # noqa: E402, F401
