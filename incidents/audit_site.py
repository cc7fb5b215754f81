"""The read-only auditor site at ``/audit/`` (DESIGN.md section 6): external and internal
auditors read every record of the incident register and the post-mortems, and change nothing.

Who may enter: an active user who is a superuser or in the group ``auditor`` (``is_staff`` is
not needed; the site's own login page admits them). Every model of the ``incidents``,
``postmortems``, ``notifications`` and ``triage`` apps is registered read-only: no add, change
or delete permission and no actions, so those URLs answer 403. Users and groups are shown read-only, without
password hashes.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest

from incidents.admin import (
    AffectedCustomerDisplay,
    AlertDisplay,
    AlertSourceDisplay,
    AlertThreadDisplay,
    ApiTokenDisplay,
    AuditEventDisplay,
    ContactDisplay,
    CustomerDisplay,
    CustomerReportDisplay,
    IdempotencyRecordDisplay,
    IncidentDisplay,
    OutgoingEmailDisplay,
    ProductDisplay,
    SupplierDisplay,
    WorkerHeartbeatDisplay,
)
from incidents.models import (
    AffectedCustomer,
    Alert,
    AlertSource,
    AlertThread,
    ApiToken,
    AuditEvent,
    Contact,
    Customer,
    CustomerReport,
    IdempotencyRecord,
    Incident,
    OutgoingEmail,
    Product,
    Supplier,
    WorkerHeartbeat,
)
from postmortems.admin import ActionItemDisplay, PostMortemDisplay
from postmortems.models import ActionItem, PostMortem

#: The group whose members may use this site (a contract: created by a data migration).
AUDITOR_GROUP = "auditor"

#: Apps every model of which the auditors see.
AUDITED_APPS = ("incidents", "postmortems", "notifications", "triage")


def _may_audit(user: Any) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    # Cached per user object (one request): the site asks many times per page.
    cached = getattr(user, "_breachdesk_may_audit", None)
    if cached is None:
        cached = user.groups.filter(name=AUDITOR_GROUP).exists()
        user._breachdesk_may_audit = cached
    return cached


class AuditAuthenticationForm(AuthenticationForm):
    """The audit site's login: active auditors and superusers, staff status not needed."""

    required_css_class = "required"

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not _may_audit(user):
            raise ValidationError(
                "This account may not use the audit site (it is for the auditor group).",
                code="not_auditor",
            )


class AuditSite(admin.AdminSite):
    """An ``AdminSite`` for auditors: read-only, no staff flag needed."""

    site_header = "Breachdesk audit (read-only)"
    site_title = "Breachdesk audit"
    index_title = "Records of the incident register"
    login_form = AuditAuthenticationForm

    def user_may_audit(self, user: Any) -> bool:
        """Whether ``user`` is active and a superuser or a member of the ``auditor`` group."""
        return _may_audit(user)

    def has_permission(self, request: HttpRequest) -> bool:
        return _may_audit(request.user)


audit_site = AuditSite(name="audit")
audit_site.disable_action("delete_selected")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows a model's list and records; adds, changes, deletes and actions are refused (403).

    Viewing follows the site's rule (auditors and superusers), not per-model permissions, so
    auditors also see the user and group tables.
    """

    actions = None

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.admin_site.has_permission(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Related rows listed on a record's page, read-only, each linking to its own page."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ContactInline(ReadOnlyInline):
    model = Contact
    fields = ("name", "email", "role", "language", "is_active")


class AffectedCustomerInline(ReadOnlyInline):
    model = AffectedCustomer
    fields = ("customer", "added_at", "added_by", "records_affected")


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    fields = ("sequence", "occurred_at", "actor_username", "verb", "from_state", "to_state", "data")
    ordering = ("sequence",)


class ActionItemInline(ReadOnlyInline):
    model = ActionItem
    fields = ("description", "owner", "due_at", "status", "resolution", "resolved_at")


@admin.register(Customer, site=audit_site)
class CustomerAudit(CustomerDisplay, ReadOnlyAdmin):
    inlines = [ContactInline]


@admin.register(Contact, site=audit_site)
class ContactAudit(ContactDisplay, ReadOnlyAdmin):
    pass


@admin.register(Product, site=audit_site)
class ProductAudit(ProductDisplay, ReadOnlyAdmin):
    pass


@admin.register(Supplier, site=audit_site)
class SupplierAudit(SupplierDisplay, ReadOnlyAdmin):
    pass


@admin.register(Incident, site=audit_site)
class IncidentAudit(IncidentDisplay, ReadOnlyAdmin):
    readonly_fields = ("reference", "created_at", "updated_at", "source_record")
    inlines = [AffectedCustomerInline, AuditEventInline]


@admin.register(AffectedCustomer, site=audit_site)
class AffectedCustomerAudit(AffectedCustomerDisplay, ReadOnlyAdmin):
    pass


@admin.register(AuditEvent, site=audit_site)
class AuditEventAudit(AuditEventDisplay, ReadOnlyAdmin):
    pass


@admin.register(WorkerHeartbeat, site=audit_site)
class WorkerHeartbeatAudit(WorkerHeartbeatDisplay, ReadOnlyAdmin):
    pass


@admin.register(PostMortem, site=audit_site)
class PostMortemAudit(PostMortemDisplay, ReadOnlyAdmin):
    readonly_fields = ("incident", "started_at")
    inlines = [ActionItemInline]


@admin.register(ActionItem, site=audit_site)
class ActionItemAudit(ActionItemDisplay, ReadOnlyAdmin):
    pass


@admin.register(get_user_model(), site=audit_site)
class UserAudit(ReadOnlyAdmin):
    """Accounts, read-only and without the password hash."""

    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_superuser", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    search_fields = ("username", "email", "first_name", "last_name")
    fields = (
        "username",
        "first_name",
        "last_name",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "groups",
        "user_permissions",
        "last_login",
        "date_joined",
    )


@admin.register(Group, site=audit_site)
class GroupAudit(ReadOnlyAdmin):
    list_display = ("name",)
    search_fields = ("name",)
    fields = ("name", "permissions")


@admin.register(AlertSource, site=audit_site)
class AlertSourceAudit(AlertSourceDisplay, ReadOnlyAdmin):
    pass


@admin.register(Alert, site=audit_site)
class AlertAudit(AlertDisplay, ReadOnlyAdmin):
    pass


@admin.register(AlertThread, site=audit_site)
class AlertThreadAudit(AlertThreadDisplay, ReadOnlyAdmin):
    pass


@admin.register(CustomerReport, site=audit_site)
class CustomerReportAudit(CustomerReportDisplay, ReadOnlyAdmin):
    pass


@admin.register(OutgoingEmail, site=audit_site)
class OutgoingEmailAudit(OutgoingEmailDisplay, ReadOnlyAdmin):
    pass


@admin.register(ApiToken, site=audit_site)
class ApiTokenAudit(ApiTokenDisplay, ReadOnlyAdmin):
    pass


@admin.register(IdempotencyRecord, site=audit_site)
class IdempotencyRecordAudit(IdempotencyRecordDisplay, ReadOnlyAdmin):
    pass


# Models added to the audited apps later are shown too, with a plain read-only admin, so the
# auditors' promise ("every record") does not depend on remembering to register them here.
for _model in (model for label in AUDITED_APPS for model in apps.get_app_config(label).get_models()):
    if not audit_site.is_registered(_model):
        audit_site.register(_model, ReadOnlyAdmin)
