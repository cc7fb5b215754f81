"""The triage app in Django's admin (``/admin/``, superusers).

Admins edit the stakeholder groups (addresses and alert rules) and the scenario playbooks (with
their steps inline). Assessments, stakeholder alerts and response tasks are read-only here: the
triage services write them, with the audit trail, and the incident page shows and works them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.http import HttpRequest

from incidents.models import Incident
from triage.models import (
    Assessment,
    PlaybookStep,
    PlaybookTemplate,
    ResponseTask,
    StakeholderAlert,
    StakeholderGroup,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows written by the services; nobody adds, changes or deletes them here."""

    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StakeholderGroupForm(forms.ModelForm):
    """Scenarios as tick boxes rather than raw JSON."""

    scenarios = forms.MultipleChoiceField(
        choices=Incident.Scenario.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Scenarios that always call for this group, whatever the band.",
    )

    class Meta:
        model = StakeholderGroup
        fields = ["name", "description", "email_addresses", "min_band", "scenarios", "is_active"]
        widgets = {"email_addresses": forms.Textarea(attrs={"rows": 4})}


@admin.register(StakeholderGroup)
class StakeholderGroupAdmin(admin.ModelAdmin):
    form = StakeholderGroupForm
    list_display = ("name", "min_band", "scenario_list", "recipient_count", "is_active")
    list_filter = ("is_active", "min_band")
    search_fields = ("name", "description", "email_addresses")

    @admin.display(description="Scenarios that always call for it")
    def scenario_list(self, group: StakeholderGroup) -> str:
        labels = dict(Incident.Scenario.choices)
        return ", ".join(labels.get(value, value) for value in group.scenarios) or "—"

    @admin.display(description="Addresses")
    def recipient_count(self, group: StakeholderGroup) -> int:
        return len(group.recipients)


class PlaybookStepInline(admin.TabularInline):
    model = PlaybookStep
    extra = 1
    fields = ("order", "description", "due_after", "assignee_role")
    ordering = ("order",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # ``obj`` is the template being edited.
        return not _has_tasks(obj) and super().has_delete_permission(request, obj)


def _has_tasks(template: PlaybookTemplate | None) -> bool:
    """Whether an incident has response tasks from ``template``'s steps (deleting a step would
    cut its tasks loose from the playbook behind an incident's back)."""
    return template is not None and ResponseTask.objects.filter(step__template=template).exists()


@admin.register(PlaybookTemplate)
class PlaybookTemplateAdmin(admin.ModelAdmin):
    """Playbooks; once an incident has tasks from one, it and its steps are not deleted here
    (set it inactive instead), so no incident's tasks change without an audit event."""

    list_display = ("title", "scenario", "step_count", "is_active")
    list_filter = ("is_active",)
    search_fields = ("title", "description", "steps__description")
    inlines = [PlaybookStepInline]

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # one at a time, each checked below
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: PlaybookTemplate | None = None) -> bool:
        return not _has_tasks(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="Steps")
    def step_count(self, template: PlaybookTemplate) -> int:
        return template.steps.count()


@admin.register(Assessment)
class AssessmentAdmin(ReadOnlyAdmin):
    list_display = (
        "incident",
        "version",
        "scope",
        "severity_band",
        "override_band",
        "severity_score",
        "scenario",
        "assessed_by",
        "assessed_at",
    )
    list_filter = ("scope", "severity_band", "override_band", "scenario")
    search_fields = ("incident__reference", "incident__title", "scope_rationale")
    list_select_related = ("incident", "assessed_by")
    show_full_result_count = False


@admin.register(StakeholderAlert)
class StakeholderAlertAdmin(ReadOnlyAdmin):
    list_display = ("incident", "group", "band", "scenario", "created_at", "sent_at")
    list_filter = ("group", "band")
    search_fields = ("incident__reference", "group__name")
    list_select_related = ("incident", "group")


@admin.register(ResponseTask)
class ResponseTaskAdmin(ReadOnlyAdmin):
    list_display = ("incident", "order", "description", "assignee", "due_at", "done_at")
    list_filter = ("scenario",)
    search_fields = ("incident__reference", "description")
    list_select_related = ("incident", "assignee")
