"""Training in Django's admin (``/admin/``, superusers) and in the read-only auditor site
(``/audit/``). Imported by ``postmortems.admin`` (Django imports only ``admin.py``).

Courses are added and changed here through ``postmortems.training`` (``course_create``,
``course_update``), so every change lands in the course's audit chain; they are never deleted
(their records and chain keep them). Completion records and imports come only from
``manage.py import_training`` and are read-only everywhere; the audit chain is append-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from incidents.admin import ReadOnlyInline as AdminReadOnlyInline
from incidents.admin import WrittenElsewhere
from incidents.audit_site import ReadOnlyAdmin, ReadOnlyInline, audit_site
from postmortems import training
from postmortems.models import Course, TrainingAuditEvent, TrainingImport, TrainingRecord

# --- What both sites show -----------------------------------------------------------------


class CourseDisplay(admin.ModelAdmin):
    list_display = ("code", "name", "is_mandatory", "validity_days", "mandatory_since", "created_at")
    list_filter = ("is_mandatory",)
    search_fields = ("code", "name")


class TrainingRecordDisplay(admin.ModelAdmin):
    list_display = ("email", "user", "course", "completed_at", "expires_at", "score", "imported_in")
    list_filter = ("course",)
    search_fields = ("email", "user__username", "course__code")
    list_select_related = ("user", "course", "imported_in")
    date_hierarchy = "completed_at"
    show_full_result_count = False
    fields = ("email", "user", "course", "completed_at", "expires_at", "score", "imported_in", "recorded_at")
    readonly_fields = fields


class TrainingImportDisplay(admin.ModelAdmin):
    list_display = ("file_name", "imported_at", "imported_by", "rows", "recorded", "already_recorded")
    search_fields = ("file_name", "file_sha256")
    list_select_related = ("imported_by",)
    fields = (
        "file_name",
        "file_sha256",
        "imported_at",
        "imported_by",
        "rows",
        "recorded",
        "already_recorded",
    )
    readonly_fields = fields


class TrainingAuditEventDisplay(admin.ModelAdmin):
    list_display = ("course", "sequence", "occurred_at", "actor_username", "verb")
    list_filter = ("verb",)
    search_fields = ("course__code", "actor_username")
    list_select_related = ("course",)
    show_full_result_count = False
    fields = (
        "course",
        "sequence",
        "occurred_at",
        "actor",
        "actor_username",
        "verb",
        "data",
        "previous_hash",
        "hash",
    )
    readonly_fields = fields


# --- /admin/ ------------------------------------------------------------------------------


class TrainingAuditEventInline(AdminReadOnlyInline):
    model = TrainingAuditEvent
    show_change_link = False
    fields = ("sequence", "occurred_at", "actor_username", "verb", "data")
    readonly_fields = fields
    ordering = ("sequence",)


@admin.register(Course)
class CourseAdmin(CourseDisplay):
    """Courses for superusers, saved through the audited services; never deleted."""

    fields = ("code", "name", "is_mandatory", "validity_days", "mandatory_since", "created_at")
    readonly_fields = ("mandatory_since", "created_at")
    inlines = [TrainingAuditEventInline]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A service refusing the save (a value the form let through) rolls the admin's
        # transaction back; say why instead of answering 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            self.message_user(request, f"Not saved: {'; '.join(error.messages)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Course, form: Any, change: bool) -> None:
        values = {
            name: form.cleaned_data[name] for name in training.COURSE_FIELDS if name in form.cleaned_data
        }
        if change:
            changes = {name: values[name] for name in form.changed_data if name in values}
            training.course_update(course=obj, actor=request.user, changes=changes)
            return
        created = training.course_create(actor=request.user, fields=values)
        # The admin goes on with ``obj`` (the log entry, the redirect).
        obj.pk = created.pk
        obj.created_at = created.created_at
        obj.mandatory_since = created.mandatory_since
        obj._state.adding = False


@admin.register(TrainingRecord)
class TrainingRecordAdmin(TrainingRecordDisplay, WrittenElsewhere):
    """Read-only: records come from ``manage.py import_training`` and are never edited."""


@admin.register(TrainingImport)
class TrainingImportAdmin(TrainingImportDisplay, WrittenElsewhere):
    """Read-only: one row per run of ``manage.py import_training``."""


@admin.register(TrainingAuditEvent)
class TrainingAuditEventAdmin(TrainingAuditEventDisplay, WrittenElsewhere):
    """The training audit chain is append-only: no one adds, changes or deletes it here."""


# --- The read-only auditor site (``/audit/``) ----------------------------------------------


class TrainingAuditEventAuditInline(ReadOnlyInline):
    model = TrainingAuditEvent
    fields = ("sequence", "occurred_at", "actor_username", "verb", "data")
    ordering = ("sequence",)


@admin.register(Course, site=audit_site)
class CourseAudit(CourseDisplay, ReadOnlyAdmin):
    inlines = [TrainingAuditEventAuditInline]


@admin.register(TrainingRecord, site=audit_site)
class TrainingRecordAudit(TrainingRecordDisplay, ReadOnlyAdmin):
    pass


@admin.register(TrainingImport, site=audit_site)
class TrainingImportAudit(TrainingImportDisplay, ReadOnlyAdmin):
    pass


@admin.register(TrainingAuditEvent, site=audit_site)
class TrainingAuditEventAudit(TrainingAuditEventDisplay, ReadOnlyAdmin):
    pass
