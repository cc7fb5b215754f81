"""Post-mortems in Django's admin (``/admin/``, superusers). The ``*Display`` classes
(unregistered ``ModelAdmin`` subclasses) are reused by the read-only auditor site
(``incidents.audit_site``).

A post-mortem is created when an incident begins its post-mortem (``postmortems.lifecycle``),
never added here,
and not deleted (auditors check that its follow-up happened).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from incidents.audit_site import ReadOnlyAdmin, ReadOnlyInline, audit_site
from postmortems.models import ActionItem, PostMortem


class PostMortemDisplay(admin.ModelAdmin):
    list_display = ("incident", "started_at", "completed_at")
    list_filter = ("completed_at",)
    search_fields = ("incident__reference", "incident__title", "findings")
    list_select_related = ("incident",)


class ActionItemDisplay(admin.ModelAdmin):
    list_display = ("description", "post_mortem", "owner", "status", "due_at", "resolved_at")
    list_filter = ("status",)
    search_fields = ("description", "resolution", "post_mortem__incident__reference")
    list_select_related = ("post_mortem__incident", "owner")


class ActionItemInline(admin.TabularInline):
    model = ActionItem
    extra = 0
    fields = ("description", "owner", "due_at", "status", "resolution", "resolved_at")


@admin.register(PostMortem)
class PostMortemAdmin(PostMortemDisplay):
    readonly_fields = ("incident", "started_at")
    inlines = [ActionItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ActionItem)
class ActionItemAdmin(ActionItemDisplay):
    pass


# The read-only auditor site (``/audit/``).


class ActionItemAuditInline(ReadOnlyInline):
    model = ActionItem
    fields = ("description", "owner", "due_at", "status", "resolution", "resolved_at")


@admin.register(PostMortem, site=audit_site)
class PostMortemAudit(PostMortemDisplay, ReadOnlyAdmin):
    readonly_fields = ("incident", "started_at")
    inlines = [ActionItemAuditInline]


@admin.register(ActionItem, site=audit_site)
class ActionItemAudit(ActionItemDisplay, ReadOnlyAdmin):
    pass
