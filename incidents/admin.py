"""The incident register in Django's admin (``/admin/``, superusers).

The ``*Display`` classes hold what both admin sites show (columns, filters, search, layout); the
read-only auditor site (``incidents.audit_site``) reuses them. They are unregistered
``ModelAdmin`` subclasses, so the type checker holds their options to ``ModelAdmin``'s types.
Here the reference data (customers, contacts, products, suppliers) is edited directly; incidents
are written through ``incidents.services`` so every change lands in the audit trail, and their
lifecycle ``state`` is read-only (it is protected: it changes only through the transition
services). Affected customers, audit events and worker heartbeats are read-only: the incident
page and the system write them. Contacts are saved through ``services.contact_create`` and
``services.contact_update`` (audited on the customer's chain; a staff edit makes an
undeliverable contact deliverable again); their deliverability and confirmation fields are
read-only.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property

from incidents import reference, services
from incidents.exceptions import LifecycleConflict
from incidents.models import (
    AccountExpiry,
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
    EvidenceFile,
    IdempotencyRecord,
    Incident,
    IncidentRestriction,
    IncidentRestrictionMember,
    Note,
    OutgoingEmail,
    Product,
    ReadLogEntry,
    Supplier,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscriber,
    WorkerHeartbeat,
)

# --- What both sites show -----------------------------------------------------------------


class CappedCountPaginator(Paginator):
    """A changelist paginator that never counts a whole large table: it counts at most
    ``CAP`` + 1 rows (``SELECT COUNT(*) FROM (... LIMIT 10001)``), so the changelist of a
    million incidents costs what it costs at ten thousand. Beyond the cap the last page is page
    ``CAP / per_page``; narrow the list with the filters or the search to reach older rows."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # The changelist's object list is a QuerySet: sliced, it counts in a subquery.
        return cast("QuerySet[Any]", self.object_list)[: self.CAP].count()


class CustomerDisplay(admin.ModelAdmin):
    list_display = (
        "name",
        "account_reference",
        "country",
        "preferred_language",
        "notification_window_hours",
        "is_drill_customer",
        "created_at",
    )
    list_filter = ("country", "preferred_language", "is_drill_customer")
    search_fields = ("name", "account_reference")
    readonly_fields = (
        "contacts_confirmation_requested_at",
        "contacts_confirmed_at",
        "contacts_unconfirmed_since",
    )


#: Contact fields only the system writes (bounces, confirmation links); shown, never edited.
CONTACT_STATE_FIELDS = ("confirmed_at", "pending_confirmation", "undeliverable_at", "undeliverable_reason")


class ContactDisplay(admin.ModelAdmin):
    list_display = ("name", "email", "customer", "role", "language", "is_active", "undeliverable_at")
    list_filter = ("role", "is_active", "language", "pending_confirmation")
    search_fields = ("name", "email", "customer__name", "customer__account_reference")
    list_select_related = ("customer",)
    readonly_fields = CONTACT_STATE_FIELDS


class CustomerAuditEventDisplay(admin.ModelAdmin):
    list_display = ("customer", "sequence", "occurred_at", "actor_username", "actor_contact_email", "verb")
    list_filter = ("verb",)
    search_fields = ("customer__account_reference", "customer__name", "actor_username", "actor_contact_email")
    list_select_related = ("customer",)
    show_full_result_count = False
    fields = (
        "customer",
        "sequence",
        "occurred_at",
        "actor",
        "actor_username",
        "actor_contact_email",
        "verb",
        "data",
        "previous_hash",
        "hash",
    )
    readonly_fields = fields


class ProductDisplay(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name", "description")


class SupplierDisplay(admin.ModelAdmin):
    list_display = ("name", "country", "services")
    list_filter = ("country",)
    search_fields = ("name", "services", "contact")


class IncidentDisplay(admin.ModelAdmin):
    list_display = (
        "reference",
        "title",
        "state",
        "severity",
        "detection_source",
        "is_drill",
        "created_at",
        "declared_at",
    )
    list_filter = ("state", "severity", "detection_source", "malicious", "scenario", "is_drill")
    search_fields = ("reference", "title", "summary", "external_reference")
    show_full_result_count = False
    paginator = CappedCountPaginator
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "reference",
                    "title",
                    "summary",
                    "state",
                    "detection_source",
                    "detected_at",
                    ("occurred_on", "occurred_on_precision"),
                    "reported_by",
                    "created_by",
                    "owner",
                    "is_drill",
                    "external_reference",
                )
            },
        ),
        ("Triage", {"fields": ("scenario", "severity", "malicious")}),
        (
            "Breach (what customer notices say)",
            {
                "fields": (
                    "nature_of_breach",
                    "mitigation_measures",
                    "products",
                    ("exposure_started_at", "exposure_ended_at"),
                    ("records_affected", "records_affected_is_estimate"),
                    "data_categories",
                    "sub_processor",
                    "sub_processor_details",
                )
            },
        ),
        (
            "Scope decision",
            {"fields": ("out_of_scope_category", "scope_rationale", "customer_informed_at")},
        ),
        (
            "Lifecycle",
            {
                "fields": (
                    "triaged_at",
                    ("declared_at", "declared_by"),
                    "notified_at",
                    "closed_at",
                    ("created_at", "updated_at"),
                )
            },
        ),
        ("Imported record", {"classes": ("collapse",), "fields": ("source_record",)}),
    )

    def view_on_site(self, obj: Incident) -> str:
        return reverse("incidents:incident_detail", args=[obj.pk])


class AffectedCustomerDisplay(admin.ModelAdmin):
    list_display = (
        "incident",
        "customer",
        "added_at",
        "added_by",
        "records_affected",
    )
    list_filter = ("incident__state",)
    search_fields = ("incident__reference", "customer__name", "customer__account_reference")
    list_select_related = ("incident", "customer", "added_by")


class AuditEventDisplay(admin.ModelAdmin):
    list_display = (
        "incident",
        "sequence",
        "occurred_at",
        "actor_username",
        "verb",
        "from_state",
        "to_state",
    )
    list_filter = ("verb", "to_state")
    search_fields = ("incident__reference", "actor_username", "verb")
    list_select_related = ("incident",)
    show_full_result_count = False
    fields = (
        "incident",
        "sequence",
        "occurred_at",
        "actor",
        "actor_username",
        "verb",
        "from_state",
        "to_state",
        "data",
        "previous_hash",
        "hash",
    )
    readonly_fields = fields


class WorkerHeartbeatDisplay(admin.ModelAdmin):
    list_display = ("name", "beat_at")


# --- /admin/ ------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    """An inline that lists related rows without letting the admin change them."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ("name", "email", "role", "language", "is_active", "undeliverable_at")
    readonly_fields = ("undeliverable_at",)
    can_delete = False


def _save_contact(request: HttpRequest, contact: Contact, changed: list[str], change: bool) -> Contact:
    """Save an admin form's contact through the services (audited on the customer's chain)."""
    values = {name: getattr(contact, name) for name in services.CONTACT_FIELDS}
    if change:
        return services.contact_update(
            contact=contact,
            actor=request.user,
            changes={name: values[name] for name in changed if name in services.CONTACT_FIELDS},
        )
    return services.contact_create(customer=contact.customer, actor=request.user, **values)


class ContactServiceAdminMixin(admin.ModelAdmin):
    """Turns a refused contact save (a duplicate address, a bad value) into a message."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            self.message_user(request, f"Not saved: {'; '.join(error.messages)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class AuditedWritesAdmin(admin.ModelAdmin):
    """Saves and deletes through the audited services of ``incidents.reference`` (each
    incident a change touches gets an audit event) and shows a refusal as a message instead of
    a 500. The bulk "delete selected" action is withdrawn: deletions go one at a time through
    the delete page, each through the service."""

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)
        return actions

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any) -> None:
        raise NotImplementedError

    def delete_through_service(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.save_through_service(request, obj, form)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_through_service(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_through_service(request, obj)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (LifecycleConflict, ValidationError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            self.message_user(request, f"Not saved: {message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The service refusing (a finished incident lists the row, the row has a history)
        # rolls the admin's transaction back; say why on the row's page.
        try:
            return super().delete_view(request, object_id, extra_context)
        except LifecycleConflict as error:
            self.message_user(request, f"Not deleted: {error}", messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id])
            )


class CustomerAuditEventInline(ReadOnlyInline):
    model = CustomerAuditEvent
    fields = ("sequence", "occurred_at", "actor_username", "actor_contact_email", "verb", "data")
    readonly_fields = fields
    ordering = ("sequence",)


@admin.register(Customer)
class CustomerAdmin(AuditedWritesAdmin, ContactServiceAdminMixin, CustomerDisplay):
    """Customers: saved through ``services.customer_save`` (audited on the customer's chain),
    contacts through the contact services; deleted only through ``reference.customer_delete``,
    which refuses a customer with any history (an audit chain, an incident)."""

    inlines = [ContactInline, CustomerAuditEventInline]

    def save_through_service(self, request: HttpRequest, obj: Customer, form: Any) -> None:
        services.customer_save(actor=request.user, customer=obj, changed=list(form.changed_data))

    def delete_through_service(self, request: HttpRequest, obj: Customer) -> None:
        reference.customer_delete(actor=request.user, customer=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Contact:
            return super().save_formset(request, form, formset, change)
        # What formset.save() would leave for the admin's change message.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for contact_form in formset.forms:
            if not contact_form.has_changed():
                continue
            contact = contact_form.instance
            is_new = contact.pk is None
            contact.customer = form.instance
            saved = _save_contact(request, contact, contact_form.changed_data, change=not is_new)
            if is_new:
                formset.new_objects.append(saved)
            else:
                formset.changed_objects.append((saved, contact_form.changed_data))
        return None


@admin.register(Contact)
class ContactAdmin(ContactServiceAdminMixin, ContactDisplay):
    autocomplete_fields = ("customer",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deactivate instead: past deliveries keep their contact.
        return False

    def save_model(self, request: HttpRequest, obj: Contact, form: Any, change: bool) -> None:
        saved = _save_contact(request, obj, list(form.changed_data), change)
        obj.pk = saved.pk
        obj._state.adding = False


@admin.register(Product)
class ProductAdmin(AuditedWritesAdmin, ProductDisplay):
    """Products: a change or a deletion is audited on every incident that lists the product
    (``reference.product_save``, ``reference.product_delete``); a product listed by a finished
    incident is not deleted."""

    def save_through_service(self, request: HttpRequest, obj: Product, form: Any) -> None:
        reference.product_save(actor=request.user, product=obj)

    def delete_through_service(self, request: HttpRequest, obj: Product) -> None:
        reference.product_delete(actor=request.user, product=obj)


@admin.register(Supplier)
class SupplierAdmin(AuditedWritesAdmin, SupplierDisplay):
    """The sub-processor register: a change is audited on every incident naming the supplier
    (``reference.supplier_save``); a supplier named by an incident is not deleted."""

    def save_through_service(self, request: HttpRequest, obj: Supplier, form: Any) -> None:
        reference.supplier_save(actor=request.user, supplier=obj)

    def delete_through_service(self, request: HttpRequest, obj: Supplier) -> None:
        reference.supplier_delete(actor=request.user, supplier=obj)


class AffectedCustomerInline(ReadOnlyInline):
    model = AffectedCustomer
    fields = ("customer", "added_at", "added_by", "records_affected")
    readonly_fields = fields


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    fields = ("sequence", "occurred_at", "actor_username", "verb", "from_state", "to_state", "data")
    readonly_fields = fields
    ordering = ("sequence",)


#: Incident fields the admin shows but never writes: the lifecycle (changed only by the
#: transition services), the scope decision (recorded by those services) and bookkeeping.
INCIDENT_READONLY_FIELDS: tuple[str, ...] = (
    "reference",
    "state",
    "created_by",
    "external_reference",
    "source_record",
    "out_of_scope_category",
    "scope_rationale",
    "customer_informed_at",
    "triaged_at",
    "declared_at",
    "declared_by",
    "notified_at",
    "closed_at",
    "created_at",
    "updated_at",
)


@admin.register(Incident)
class IncidentAdmin(IncidentDisplay):
    """Incidents for superusers: facts are saved through ``services.incident_create`` and
    ``services.incident_update`` (audited); ``state`` and the other lifecycle fields are
    read-only; final incidents are view-only; nothing is deleted (the audit trail keeps it)."""

    readonly_fields = INCIDENT_READONLY_FIELDS
    filter_horizontal = ("products",)
    autocomplete_fields = ("sub_processor",)
    inlines = [AffectedCustomerInline, AuditEventInline]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A service refusing the save (the incident became final meanwhile, a bad value) rolls
        # the admin's transaction back; say why instead of answering 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (LifecycleConflict, ValidationError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            self.message_user(request, f"Not saved: {message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def has_change_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        if obj is not None and obj.state in services.FINAL_STATES:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in services.EDITABLE_FIELDS
            }
            services.incident_update(incident=obj, actor=request.user, changes=changes)
            return
        fields = {
            name: value
            for name, value in form.cleaned_data.items()
            if name in services.EDITABLE_FIELDS and value not in (None, "")
        }
        created = services.incident_create(actor=request.user, fields=fields)
        # The admin goes on with ``obj`` (related rows, the log entry, the redirect).
        obj.pk = created.pk
        obj.reference = created.reference
        obj.created_at = created.created_at
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Products were set by the service (audited), so the form's own m2m save is skipped;
        # the inlines are read-only and save nothing.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class WrittenElsewhere(admin.ModelAdmin):
    """Shown to superusers and never added, changed or deleted here: these rows are written by
    an audited service or by the system, and nothing may bypass that."""

    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AffectedCustomer)
class AffectedCustomerAdmin(AffectedCustomerDisplay, WrittenElsewhere):
    """Customers are added and removed on the incident page (audited)."""


@admin.register(AuditEvent)
class AuditEventAdmin(AuditEventDisplay, WrittenElsewhere):
    """The audit trail is append-only: no one adds, changes or deletes it here, superusers
    included."""


@admin.register(CustomerAuditEvent)
class CustomerAuditEventAdmin(CustomerAuditEventDisplay, WrittenElsewhere):
    """Customers' audit chains are append-only, like the incidents'."""


class AuditCheckpointDisplay(admin.ModelAdmin):
    list_display = ("created_at", "chain", "subject_label", "length", "key_id")
    list_filter = ("chain",)
    search_fields = ("subject_label", "head_hash")
    show_full_result_count = False
    fields = (
        "chain",
        "subject_id",
        "subject_label",
        "length",
        "head_hash",
        "created_at",
        "key_id",
        "signature",
    )
    readonly_fields = fields


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AuditCheckpointDisplay, WrittenElsewhere):
    """Signed checkpoints of the audit chains, written by beat; append-only like the trail."""


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(WorkerHeartbeatDisplay, WrittenElsewhere):
    """Written by the worker."""


# Intake and API access: written by the system (signed alerts, the report page, the API);
# superusers read them here and may deactivate an alert source or revoke a token. Secrets
# never appear: alert sources show no secret fields, tokens no key hash.


class AlertSourceDisplay(admin.ModelAdmin):
    list_display = ("name", "is_active", "created_at", "rotated_at", "previous_secret_expires_at")
    fields = ("name", "is_active", "created_at", "rotated_at", "previous_secret_expires_at")
    readonly_fields = ("name", "created_at", "rotated_at", "previous_secret_expires_at")


class AlertDisplay(admin.ModelAdmin):
    list_display = ("received_at", "source", "dedupe_key", "incident", "opened_incident", "title")
    list_filter = ("source", "opened_incident")
    search_fields = ("dedupe_key", "title")
    list_select_related = ("source", "incident")


class AlertThreadDisplay(admin.ModelAdmin):
    list_display = ("source", "dedupe_key", "incident", "alert_count", "last_alert_at")
    list_select_related = ("source", "incident")


class CustomerReportDisplay(admin.ModelAdmin):
    list_display = ("reference", "created_at", "organisation", "contact_email", "incident")
    search_fields = ("reference", "organisation", "contact_email")
    list_select_related = ("incident",)


class OutgoingEmailDisplay(admin.ModelAdmin):
    list_display = ("created_at", "kind", "to_address", "status", "attempts", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("to_address", "subject")


class ApiTokenDisplay(admin.ModelAdmin):
    list_display = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    fields = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_select_related = ("user",)


class IdempotencyRecordDisplay(admin.ModelAdmin):
    list_display = ("created_at", "user", "method", "path", "response_status")
    fields = ("user", "key", "method", "path", "response_status", "created_at")
    list_select_related = ("user",)


class _SystemWritten(admin.ModelAdmin):
    """Read-only: the system writes these rows."""

    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadLogEntryDisplay(admin.ModelAdmin):
    list_display = ("read_at", "username", "route", "object_type", "object_id", "path")
    list_filter = ("object_type",)
    search_fields = ("username", "path", "object_id")
    date_hierarchy = "read_at"


class AccountExpiryDisplay(admin.ModelAdmin):
    list_display = ("user", "expires_at", "note")
    search_fields = ("user__username", "note")
    list_select_related = ("user",)


@admin.register(ReadLogEntry)
class ReadLogEntryAdmin(ReadLogEntryDisplay, WrittenElsewhere):
    """Written for every record an auditor opens; never changed, superusers included."""


@admin.register(AlertSource)
class AlertSourceAdmin(AlertSourceDisplay):
    """Create and rotate with ``manage.py create_alert_source`` / ``rotate_alert_source`` (the
    secret is shown once there); here only ``is_active`` changes."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(AlertDisplay, _SystemWritten):
    pass


@admin.register(AlertThread)
class AlertThreadAdmin(AlertThreadDisplay, _SystemWritten):
    pass


@admin.register(CustomerReport)
class CustomerReportAdmin(CustomerReportDisplay, _SystemWritten):
    pass


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(OutgoingEmailDisplay, _SystemWritten):
    pass


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(IdempotencyRecordDisplay, _SystemWritten):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(ApiTokenDisplay, _SystemWritten):
    """Tokens are created by their owners (``/api/tokens/``, ``manage.py create_api_token``);
    a superuser may revoke any (the action below)."""

    actions = ["revoke"]  # type: ignore[assignment]  # _SystemWritten has none; this one has one

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        from incidents.api.authentication import api_token_revoke

        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


@admin.register(AccountExpiry)
class AccountExpiryAdmin(AccountExpiryDisplay):
    """When an account (every auditor's must have one) stops working; set by superusers."""

    autocomplete_fields = ("user",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """Notes are added on the incident page (audited) and never changed: read-only here."""

    list_display = ("incident", "author_username", "created_at", "occurred_at")
    search_fields = ("text", "author_username", "incident__reference")
    list_select_related = ("incident",)
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Sign-in (issue 8.3) --------------------------------------------------------------------
from incidents.models import SecurityAuditEvent  # noqa: E402 - kept with the section it serves


class SecurityAuditEventDisplay(admin.ModelAdmin):
    """Logins, failures, lock-outs, second factors, expired sessions and permission denials
    (``incidents.signin``), newest first; shown on both sites, never changed."""

    list_display = ("at", "kind", "username", "ip_address", "path")
    list_filter = ("kind",)
    search_fields = ("username", "ip_address", "path")
    date_hierarchy = "at"
    show_full_result_count = False
    fields = ("at", "kind", "user", "username", "ip_address", "path", "detail")
    readonly_fields = fields


@admin.register(SecurityAuditEvent)
class SecurityAuditEventAdmin(SecurityAuditEventDisplay, WrittenElsewhere):
    """Written by the sign-in code; never changed, superusers included."""


@admin.register(EvidenceFile)
class EvidenceFileAdmin(WrittenElsewhere):
    """Evidence files are uploaded, superseded and deleted on the incident page or the API
    (audited): read-only here, bytes downloaded from the incident page."""

    list_display = ("incident", "original_name", "size", "sha256", "uploaded_by_username", "uploaded_at")
    search_fields = ("original_name", "sha256", "incident__reference")
    list_select_related = ("incident",)


# --- Webhooks (managed at /webhooks/ and /api/webhooks/; read-only here) ----------------------


class WebhookSubscriberDisplay(admin.ModelAdmin):
    """Never the secret (not even encrypted)."""

    list_display = ("name", "url", "is_active", "created_by", "created_at", "rotated_at")
    fields = (
        "name",
        "url",
        "event_types",
        "is_active",
        "created_by",
        "created_at",
        "updated_at",
        "rotated_at",
        "previous_secret_expires_at",
    )
    list_filter = ("is_active",)
    search_fields = ("name", "url")
    list_select_related = ("created_by",)


class WebhookEventDisplay(admin.ModelAdmin):
    list_display = ("created_at", "type", "incident", "uuid")
    list_filter = ("type",)
    search_fields = ("uuid", "incident__reference")
    list_select_related = ("incident",)


class WebhookDeliveryDisplay(admin.ModelAdmin):
    list_display = (
        "created_at",
        "subscriber",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "delivered_at",
    )
    list_filter = ("status", "subscriber")
    search_fields = ("uuid",)
    list_select_related = ("subscriber", "event")


class WebhookAttemptDisplay(admin.ModelAdmin):
    list_display = ("at", "delivery", "number", "status_code", "duration", "outcome")
    list_filter = ("outcome",)
    list_select_related = ("delivery__subscriber", "delivery__event")


@admin.register(WebhookSubscriber)
class WebhookSubscriberAdmin(WebhookSubscriberDisplay, _SystemWritten):
    """Registered, changed and rotated on ``/webhooks/`` (the secret is shown once there)."""


@admin.register(WebhookEvent)
class WebhookEventAdmin(WebhookEventDisplay, _SystemWritten):
    pass


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(WebhookDeliveryDisplay, _SystemWritten):
    pass


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(WebhookAttemptDisplay, _SystemWritten):
    pass


# Need to know: written by incidents.services.incident_restriction_set and _lift (audited), on
# the incident page and through the API; shown here read-only.


@admin.register(IncidentRestriction)
class IncidentRestrictionAdmin(WrittenElsewhere):
    """An incident restricted to named people (need to know)."""

    list_display = ("incident", "restricted_by", "restricted_at")
    list_select_related = ("incident", "restricted_by")


@admin.register(IncidentRestrictionMember)
class IncidentRestrictionMemberAdmin(WrittenElsewhere):
    """One member of a restricted incident."""

    list_display = ("restriction", "user", "added_by", "added_at")
    list_select_related = ("restriction", "user", "added_by")
