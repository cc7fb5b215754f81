"""The read-only auditor site at ``/audit/`` (DESIGN.md section 6): external and internal
auditors read every record of the incident register and the post-mortems, and change nothing.

Who may enter: an active user who is a superuser or in the group ``auditor`` (``is_staff`` is
not needed; the site's own login page admits them). Every model of the ``incidents``,
``postmortems``, ``notifications`` and ``triage`` apps is registered read-only (the apps above
``incidents`` register their own displays here from their ``admin.py``): no add, change
or delete permission and no actions, so those URLs answer 403. Users and groups are shown read-only, without
password hashes.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from incidents.accounts import ExpiryAwareAuthenticationForm, is_auditor
from incidents.admin import (
    AffectedCustomerDisplay,
    AlertDisplay,
    AlertSourceDisplay,
    AlertThreadDisplay,
    ApiTokenDisplay,
    AuditCheckpointDisplay,
    AuditEventDisplay,
    ContactDisplay,
    CustomerAuditEventDisplay,
    CustomerDisplay,
    CustomerReportDisplay,
    IdempotencyRecordDisplay,
    IncidentDisplay,
    OutgoingEmailDisplay,
    ProductDisplay,
    SupplierDisplay,
    WebhookAttemptDisplay,
    WebhookDeliveryDisplay,
    WebhookEventDisplay,
    WebhookSubscriberDisplay,
    WorkerHeartbeatDisplay,
)
from incidents.admin_guard import guard_admin_site
from incidents.audit import verify_chain
from incidents.models import (
    AffectedCustomer,
    Alert,
    AlertSource,
    AlertThread,
    ApiToken,
    AuditCheckpoint,
    AuditEvent,
    Contact,
    Customer,
    CustomerAuditEvent,
    CustomerReport,
    IdempotencyRecord,
    Incident,
    OutgoingEmail,
    Product,
    Supplier,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscriber,
    WorkerHeartbeat,
)
from incidents.selectors import invisible_incident_ids, visible_related

#: Apps every model of which the auditors see.
AUDITED_APPS = ("incidents", "postmortems", "notifications", "triage")


def _may_audit(user: Any) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or is_auditor(user)


class AuditAuthenticationForm(ExpiryAwareAuthenticationForm):
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
    """An ``AdminSite`` for auditors: read-only, no staff flag needed.

    Besides every record, it offers the audit trail's verification (``/audit/verify/``); the
    exports of the apps above (the breach register, evidence packs) are routed beside it in
    ``config/urls.py`` and linked from its index (``EXPORT_LINKS``).
    """

    site_header = "Breachdesk audit (read-only)"
    site_title = "Breachdesk audit"
    index_title = "Records of the incident register"
    login_form = AuditAuthenticationForm
    index_template = "admin/audit_index.html"

    #: ``(label, path)`` of the exports linked from the index.
    EXPORT_LINKS: tuple[tuple[str, str], ...] = (
        ("Breach register (CSV)", "register.csv"),
        ("Breach register (XLSX)", "register.xlsx"),
        ("Verify the audit trail", "verify/"),
        ("Verify the training audit trail", "training/verify/"),
    )

    def get_urls(self) -> list[Any]:
        register_every_model()
        # Need to know: every model admin whose rows belong to an incident reads through the
        # selector (incidents.admin_guard), the ones the apps above registered included.
        guard_admin_site(self)
        return [
            path("verify/", self.admin_view(self.verify_view), name="verify_audit_trail"),
            *super().get_urls(),
        ]

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        return {**super().each_context(request), "export_links": self.EXPORT_LINKS}

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """``GET /audit/verify/``: recompute every audit chain now (incidents, customers,
        training courses) against the signed checkpoints (the table and
        ``AUDIT_CHECKPOINT_FILE``) and show each break (the chain, the row, why and its kind),
        or that every chain verifies; the same check as ``manage.py verify_audit_trail``."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        from incidents.checkpoints import configured_file_checkpoints

        try:
            file_checkpoints = configured_file_checkpoints()
        except (OSError, ValueError) as error:
            file_checkpoints = []
            messages.error(request, f"The checkpoint file was not used: {error}")
        # Every chain is verified; a restricted incident the viewer is not a member of is left
        # out of what is shown (its breaks and the counts), so the page does not reveal it.
        hidden = set(invisible_incident_ids(request.user))
        breaks = [
            chain_break
            for chain_break in verify_chain(extra_checkpoints=file_checkpoints)
            if chain_break.incident_id not in hidden
        ]
        events = visible_related(request.user, AuditEvent.objects.all())
        checkpoints = AuditCheckpoint.objects.exclude(chain="incident", subject_id__in=hidden)
        context = {
            **self.each_context(request),
            "title": "Audit trail verification",
            "breaks": breaks,
            "chains": events.values("incident_id").distinct().count(),
            "events": events.count(),
            "checkpoints": checkpoints.count(),
            "verified_at": timezone.now(),
        }
        return TemplateResponse(request, "admin/audit_verify.html", context)

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


class CustomerAuditEventInline(ReadOnlyInline):
    model = CustomerAuditEvent
    fields = ("sequence", "occurred_at", "actor_username", "actor_contact_email", "verb", "data")
    ordering = ("sequence",)


@admin.register(Customer, site=audit_site)
class CustomerAudit(CustomerDisplay, ReadOnlyAdmin):
    inlines = [ContactInline, CustomerAuditEventInline]


@admin.register(CustomerAuditEvent, site=audit_site)
class CustomerAuditEventAudit(CustomerAuditEventDisplay, ReadOnlyAdmin):
    pass


@admin.register(AuditCheckpoint, site=audit_site)
class AuditCheckpointAudit(AuditCheckpointDisplay, ReadOnlyAdmin):
    pass


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
    readonly_fields = ("evidence_pack", "reference", "created_at", "updated_at", "source_record")
    inlines = [AffectedCustomerInline, AuditEventInline]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [("Evidence", {"fields": ("evidence_pack",)}), *super().get_fieldsets(request, obj)]

    @admin.display(description="Evidence pack")
    def evidence_pack(self, incident: Incident) -> str:
        return format_html(
            '<a href="{}">Download the evidence pack (ZIP)</a>',
            reverse("audit-evidence-pack", args=[incident.pk]),
        )


@admin.register(AffectedCustomer, site=audit_site)
class AffectedCustomerAudit(AffectedCustomerDisplay, ReadOnlyAdmin):
    pass


@admin.register(AuditEvent, site=audit_site)
class AuditEventAudit(AuditEventDisplay, ReadOnlyAdmin):
    pass


@admin.register(WorkerHeartbeat, site=audit_site)
class WorkerHeartbeatAudit(WorkerHeartbeatDisplay, ReadOnlyAdmin):
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


# Webhooks: subscribers without their secrets; events, deliveries, attempts.


@admin.register(WebhookSubscriber, site=audit_site)
class WebhookSubscriberAudit(WebhookSubscriberDisplay, ReadOnlyAdmin):
    pass


@admin.register(WebhookEvent, site=audit_site)
class WebhookEventAudit(WebhookEventDisplay, ReadOnlyAdmin):
    pass


@admin.register(WebhookDelivery, site=audit_site)
class WebhookDeliveryAudit(WebhookDeliveryDisplay, ReadOnlyAdmin):
    pass


@admin.register(WebhookAttempt, site=audit_site)
class WebhookAttemptAudit(WebhookAttemptDisplay, ReadOnlyAdmin):
    pass


def register_every_model() -> None:
    """Show every model of the audited apps that no app registered with a display of its own,
    with a plain read-only admin, so the auditors' promise ("every record") does not depend on
    remembering to register a new model. Apps above this one register their own displays with
    ``audit_site`` in their ``admin.py`` (``postmortems.admin``), which Django imports at
    start-up; this runs after them, when the site's URLs are first built."""
    for model in (m for label in AUDITED_APPS for m in apps.get_app_config(label).get_models()):
        if not audit_site.is_registered(model):
            audit_site.register(model, ReadOnlyAdmin)


# --- Sign-in (issue 8.3): the security audit events, read-only for auditors ----------------
from incidents.admin import SecurityAuditEventDisplay  # noqa: E402 - kept with its section
from incidents.models import SecurityAuditEvent  # noqa: E402


@admin.register(SecurityAuditEvent, site=audit_site)
class SecurityAuditEventAudit(SecurityAuditEventDisplay, ReadOnlyAdmin):
    pass
