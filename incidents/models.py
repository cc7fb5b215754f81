"""The incident register: customers and their contacts, products, the sub-processor register, the
incident with its lifecycle, the customers it affects, and the tamper-evident audit trail.

All instants are timezone-aware and stored in UTC (fields ending in ``_at``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from incidents.addresses import (
    EmailAddressField,
    header_text,
    validate_country_code,
    validate_language_code,
    validate_single_line,
)


class Customer(models.Model):
    """A customer of the organisation: the controller whose personal data we process.

    ``notification_window_hours`` is the customer's contractual window for our initial notice
    after declaration (hours of elapsed time, 1 to 72; our policy commitment is 72).

    Contact confirmation (customers keep their administrative contacts correct): every
    ``CONTACT_CONFIRMATION_DAYS`` the customer's contacts are asked to confirm them through a
    signed link. ``contacts_confirmation_requested_at``: when the last request went out (UTC;
    ``None``: never asked). ``contacts_confirmed_at``: when a contact last confirmed the list
    through a link (``None``: never). ``contacts_unconfirmed_since``: set when a request's link
    expired with no confirmation since it was sent (the customer is "unconfirmed"); cleared by
    the next confirmation.
    """

    name = models.CharField(max_length=200, validators=[validate_single_line])
    account_reference = models.CharField(max_length=64, unique=True, validators=[validate_single_line])
    country = models.CharField(
        max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code.", validators=[validate_country_code]
    )
    preferred_language = models.CharField(max_length=8, default="en", validators=[validate_language_code])
    notification_window_hours = models.PositiveSmallIntegerField(
        default=72, validators=[MinValueValidator(1), MaxValueValidator(72)]
    )
    is_drill_customer = models.BooleanField(
        default=False,
        help_text="A customer that exists for drills: only drills may affect it, and drills notify "
        "no other customer.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    contacts_confirmation_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    contacts_confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    contacts_unconfirmed_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        permissions = [
            ("view_contact_readiness", "Can see which customers could not be reached today"),
        ]
        constraints = [
            # demo-en-001 next to DEMO-EN-001 made "the" customer ambiguous (issue 8).
            models.UniqueConstraint(
                Lower("account_reference"),
                name="incidents_customer_unique_account_reference_any_case",
                violation_error_message="Another customer already has this account reference (in any case).",
            ),
        ]
        indexes = [
            # send_contact_confirmations: customers never asked, or asked longest ago, first.
            models.Index(
                fields=["contacts_confirmation_requested_at"],
                name="incidents_customer_confirm_due",
            ),
            # The readiness page and ?unconfirmed=true: only marked customers are indexed.
            models.Index(
                fields=["contacts_unconfirmed_since"],
                name="incidents_customer_unconfirmed",
                condition=Q(contacts_unconfirmed_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_reference})"

    @property
    def is_unconfirmed(self) -> bool:
        """Whether the customer is marked "unconfirmed" (a confirmation link expired unanswered)."""
        return self.contacts_unconfirmed_since is not None

    def clean(self) -> None:
        """Refuse to turn a customer into a drill customer, or back, once any incident affects
        it: a real incident would then have a drill customer, or a drill a real one, behind the
        checks made when it was added. Raises ``ValidationError`` on ``is_drill_customer``."""
        super().clean()
        other_case = (
            Customer.objects.filter(account_reference__iexact=self.account_reference)
            .exclude(pk=self.pk)
            .exclude(account_reference=self.account_reference)  # the same spelling: "unique" says so
            .values_list("account_reference", flat=True)
            .first()
            if self.account_reference
            else None
        )
        if other_case is not None:
            raise ValidationError(
                {
                    "account_reference": f"Another customer already has the account reference "
                    f"{other_case!r}; account references are unique in any case."
                }
            )
        if self.pk is None:
            return
        stored = Customer.objects.filter(pk=self.pk).values_list("is_drill_customer", flat=True).first()
        if stored is not None and stored != self.is_drill_customer and self.incidents.exists():
            raise ValidationError(
                {
                    "is_drill_customer": "This customer is already affected by an incident; whether it is "
                    "a drill customer can no longer change."
                }
            )


class ContactQuerySet(models.QuerySet):
    """Who can be notified. One definition, used by notice approval, clocks, the readiness page
    and the API, so "deliverable" means the same everywhere."""

    def administrative(self) -> ContactQuerySet:
        """Active administrative contacts (whether or not email reaches them)."""
        return self.filter(is_active=True, role=Contact.Role.ADMINISTRATIVE)

    def deliverable(self) -> ContactQuerySet:
        """Active administrative contacts that notices go to: not marked undeliverable (a
        permanent SMTP refusal) and not waiting for their own address to be confirmed."""
        return self.administrative().filter(pending_confirmation=False, undeliverable_at__isnull=True)


class Contact(models.Model):
    """A person at a customer whom we notify. Customers keep their contacts correct.

    Only active administrative contacts receive notices, and of those only the deliverable ones
    (``Contact.objects.deliverable()``). ``undeliverable_at`` and ``undeliverable_reason``: set
    when the receiving mail server permanently refused an email to this address (SMTP 5xx on
    the recipient, for a notice or a confirmation request); cleared only when a confirmation
    link confirms the contact again or staff edit it. ``pending_confirmation``: added by a
    customer through a confirmation link and not counted until the new address confirms
    itself through the link emailed to it. ``confirmed_at``: when a confirmation link last
    confirmed it (UTC).
    """

    class Role(models.TextChoices):
        ADMINISTRATIVE = "administrative", "Administrative"
        TECHNICAL = "technical", "Technical"
        PRIVACY = "privacy", "Privacy / data protection officer"
        OTHER = "other", "Other"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, validators=[validate_single_line])
    email = EmailAddressField()
    language = models.CharField(
        max_length=8,
        blank=True,
        help_text="Empty: the customer's preferred language.",
        validators=[validate_language_code],
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ADMINISTRATIVE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    pending_confirmation = models.BooleanField(
        default=False, editable=False, help_text="Added through a confirmation link; counts once confirmed."
    )
    undeliverable_at = models.DateTimeField(null=True, blank=True, editable=False)
    undeliverable_reason = models.TextField(blank=True, editable=False)

    objects = ContactQuerySet.as_manager()

    class Meta:
        ordering = ["customer_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "email"], name="incidents_contact_unique_email_per_customer"
            ),
            # Olivia.Bennett@ next to olivia.bennett@ got every notice twice (issue 8). The local
            # part may be case-sensitive in theory (RFC 5321), never in practice.
            models.UniqueConstraint(
                "customer",
                Lower("email"),
                name="incidents_contact_unique_email_any_case",
                violation_error_message="This email address is already a contact of this customer (in any case).",
            ),
        ]
        indexes = [
            # "Has this customer a deliverable contact?": notice approval, clocks, readiness.
            models.Index(
                fields=["customer"],
                name="incidents_contact_deliverable",
                condition=Q(
                    is_active=True,
                    role="administrative",
                    pending_confirmation=False,
                    undeliverable_at__isnull=True,
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def is_deliverable(self) -> bool:
        """Whether notices go to this contact (see ``ContactQuerySet.deliverable``)."""
        return (
            self.is_active
            and self.role == self.Role.ADMINISTRATIVE
            and not self.pending_confirmation
            and self.undeliverable_at is None
        )


class Product(models.Model):
    """A product, service or application that may be involved in a breach."""

    name = models.CharField(max_length=200, unique=True, validators=[validate_single_line])
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Supplier(models.Model):
    """An entry of the sub-processor register (GDPR Art. 28(2) and (4))."""

    name = models.CharField(max_length=200, unique=True, validators=[validate_single_line])
    services = models.TextField(blank=True, help_text="What the supplier does for us.")
    country = models.CharField(
        max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code.", validators=[validate_country_code]
    )
    contact = models.TextField(blank=True, help_text="Who to reach at the supplier, and how.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DataCategory(models.TextChoices):
    """Categories of personal data involved in a breach (GDPR Art. 9 and 10 name the special ones)."""

    IDENTITY = "identity", "Identity and contact details"
    GOVERNMENT_IDENTIFIER = "government_identifier", "Government identifiers"
    FINANCIAL = "financial", "Financial (bank account) data"
    PAYMENT_CARD = "payment_card", "Payment card data"
    CREDENTIALS = "credentials", "Credentials"
    HEALTH = "health", "Health data"
    SPECIAL_CATEGORY = "special_category", "Other special categories (Art. 9)"
    CRIMINAL = "criminal", "Criminal convictions and offences (Art. 10)"
    BEHAVIOURAL = "behavioural", "Behavioural and location data"
    COMMUNICATIONS = "communications", "Content of communications"
    EMPLOYMENT = "employment", "Employment data"
    CUSTOMER_SUPPLIED = "customer_supplied", "Support or consulting data supplied by customers"
    OTHER = "other", "Other personal data"


class DataSubjectCategory(models.TextChoices):
    """Categories of data subjects concerned (GDPR Art. 33(3)(a) asks for them)."""

    CUSTOMERS = "customers", "The controller's customers or users"
    EMPLOYEES = "employees", "Employees and staff"
    JOB_APPLICANTS = "job_applicants", "Job applicants"
    PATIENTS = "patients", "Patients"
    CHILDREN = "children", "Children"
    STUDENTS = "students", "Pupils and students"
    BUSINESS_CONTACTS = "business_contacts", "Business contacts"
    VULNERABLE = "vulnerable", "Vulnerable people"
    OTHER = "other", "Other data subjects"


class LikelyConsequence(models.TextChoices):
    """Likely consequences of a breach for the data subjects (GDPR Art. 33(3)(c); Recital 75
    names the damage to consider). The values are those of ``triage``'s assessment, so its
    findings flow into the incident's facts unchanged (a test keeps the two lists equal)."""

    NONE = "none", "None or negligible"
    MINOR_INCONVENIENCE = "minor_inconvenience", "Minor inconvenience"
    UNSOLICITED_CONTACT = "unsolicited_contact", "Unsolicited contact (spam, marketing)"
    LOSS_OF_CONTROL = "loss_of_control", "Loss of control over personal data"
    PHISHING = "phishing", "Phishing"
    IDENTITY_THEFT_OR_FRAUD = "identity_theft_or_fraud", "Identity theft or fraud"
    FINANCIAL_LOSS = "financial_loss", "Financial loss"
    DISCRIMINATION = "discrimination", "Discrimination"
    DAMAGE_TO_REPUTATION = "damage_to_reputation", "Damage to reputation"
    HARM_TO_HEALTH = "harm_to_health", "Harm to health"
    OTHER_SIGNIFICANT_DISADVANTAGE = "other_significant_disadvantage", "Other significant disadvantage"


class IncidentState(models.TextChoices):
    """Lifecycle states; the values are an API contract (DESIGN.md section 2)."""

    DETECTED = "detected", "Detected"
    TRIAGED = "triaged", "Triaged"
    DECLARED = "declared", "Declared"
    NOTIFIED = "notified", "Notified"
    POST_MORTEM = "post_mortem", "Post-mortem"
    CLOSED = "closed", "Closed"
    OUT_OF_SCOPE = "out_of_scope", "Out of scope"
    CUSTOMER_EVENT = "customer_event", "Customer-driven event"
    MERGED = "merged", "Merged into another incident"


#: States in which an incident is still being worked on (the due-next board lists these).
OPEN_STATES: tuple[str, ...] = (
    IncidentState.DETECTED,
    IncidentState.TRIAGED,
    IncidentState.DECLARED,
    IncidentState.NOTIFIED,
    IncidentState.POST_MORTEM,
)

#: The first word of the subject of every email about a drill, in every language (mail filters
#: and people match it).
DRILL_MARKER = "[DRILL]"


#: Transition name -> permission codename (app label ``incidents``) that allows it.
TRANSITION_PERMISSIONS: dict[str, str] = {
    "triage": "incidents.triage_incident",
    "rule_out_of_scope": "incidents.rule_incident_out_of_scope",
    "classify_as_customer_event": "incidents.classify_incident_as_customer_event",
    "declare": "incidents.declare_incident",
    "mark_notified": "incidents.mark_incident_notified",
    "begin_post_mortem": "incidents.begin_incident_post_mortem",
    "close": "incidents.close_incident",
}

#: The permission of the ``merge`` transition (its own route, ``incidents.merging``; not one of
#: the generic transition routes because it names a second incident).
MERGE_PERMISSION = "incidents.merge_incident"


class Incident(ConcurrentTransitionMixin, models.Model):
    """A suspected or declared personal data breach, from first signal to closed post-mortem.

    ``state`` is protected: it changes only through the transition methods below, which are
    called by the service functions in ``incidents.services`` (never directly by views).
    Transition methods only change fields; their guards are ``incidents.lifecycle.missing_for``.
    ``ConcurrentTransitionMixin`` (which includes ``FSMModelMixin``) refuses to save a state
    change over a state that changed since the row was read.
    """

    class DetectionSource(models.TextChoices):
        AUTOMATED_ALERT = "automated_alert", "Automated alert"
        CUSTOMER_REPORT = "customer_report", "Customer report"
        EXTERNAL_REPORT = "external_report", "External report"
        STAFF_ESCALATION = "staff_escalation", "Staff escalation"
        VULNERABILITY_REPORT = "vulnerability_report", "Vulnerability report"

    class Scenario(models.TextChoices):
        MISDIRECTED_COMMUNICATION = "misdirected_communication", "Misdirected communication"
        LOST_OR_STOLEN_DEVICE = "lost_or_stolen_device", "Lost or stolen device"
        MALICIOUS_INSIDER = "malicious_insider", "Malicious insider"
        UNAUTHORISED_ACCESS = "unauthorised_access", "Unauthorised access"
        MALWARE_OR_RANSOMWARE = "malware_or_ransomware", "Malware or ransomware"
        ACCIDENTAL_PUBLICATION = "accidental_publication", "Accidental publication"
        SUPPLIER_BREACH = "supplier_breach", "Supplier breach"
        CUSTOMER_SUPPLIED_SENSITIVE_DATA = (
            "customer_supplied_sensitive_data",
            "Customer-supplied sensitive data",
        )
        OTHER = "other", "Other"

    class Severity(models.TextChoices):
        """Bands of the ENISA severity methodology (2013)."""

        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        VERY_HIGH = "very_high", "Very high"

    class Malicious(models.TextChoices):
        YES = "yes", "Yes"
        NO = "no", "No"
        UNKNOWN = "unknown", "Unknown"

    class DatePrecision(models.TextChoices):
        """How much of a date is known; a missing day or month is approximate, not invented."""

        YEAR = "year", "Year only"
        MONTH = "month", "Year and month"
        DAY = "day", "Exact day"

    class OutOfScopeCategory(models.TextChoices):
        POLICY_QUESTION = "policy_question", "General question about data-protection policies"
        DATA_SUBJECT_REQUEST = "data_subject_request", "Data subject request"
        OPT_OUT_REQUEST = "opt_out_request", "Opt-out request"
        PRODUCT_FEEDBACK = "product_feedback", "Product wish or bug unrelated to data protection"
        NO_CUSTOMER_DATA = "no_customer_data", "Incident involving no customer data"
        FRAUD_AGAINST_ORGANISATION = "fraud_against_organisation", "Fraud against the organisation"

    reference = models.CharField(max_length=20, unique=True, null=True, editable=False)
    title = models.CharField(max_length=300, validators=[validate_single_line])
    summary = models.TextField(blank=True)
    detection_source = models.CharField(max_length=32, choices=DetectionSource.choices)
    detected_at = models.DateTimeField(null=True, blank=True, help_text="Unknown: empty.")
    occurred_on = models.DateField(null=True, blank=True)
    occurred_on_precision = models.CharField(max_length=5, choices=DatePrecision.choices, blank=True)
    reported_by = models.CharField(max_length=300, blank=True, validators=[validate_single_line])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_incidents",
    )
    state = FSMField(
        max_length=20, choices=IncidentState.choices, default=IncidentState.DETECTED, protected=True
    )
    scenario = models.CharField(max_length=40, choices=Scenario.choices, null=True, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, null=True, blank=True)
    malicious = models.CharField(max_length=7, choices=Malicious.choices, null=True, blank=True)
    is_drill = models.BooleanField(default=False)

    # The breach fields that customer notices are built from.
    nature_of_breach = models.TextField(blank=True)
    mitigation_measures = models.TextField(blank=True)
    products = models.ManyToManyField(Product, blank=True, related_name="incidents")
    exposure_started_at = models.DateTimeField(null=True, blank=True)
    exposure_ended_at = models.DateTimeField(null=True, blank=True)
    records_affected = models.PositiveBigIntegerField(null=True, blank=True)
    records_affected_is_estimate = models.BooleanField(default=False)
    data_categories = models.JSONField(
        null=True, blank=True, help_text="List of DataCategory values; empty: unknown."
    )
    data_subject_categories = models.JSONField(
        null=True, blank=True, help_text="List of DataSubjectCategory values; empty: unknown."
    )
    data_subjects_affected = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Approximate number of data subjects concerned; empty: unknown."
    )
    data_subjects_affected_is_estimate = models.BooleanField(default=False)
    likely_consequences = models.JSONField(
        null=True, blank=True, help_text="List of LikelyConsequence values; empty: unknown."
    )
    adverse_effect_measures = models.TextField(
        blank=True, help_text="Measures to mitigate the breach's possible adverse effects (Art. 33(3)(d))."
    )
    incident_figures_shareable = models.BooleanField(
        default=False,
        help_text="Notices may state the incident-wide counts next to each customer's own "
        "(set by an incident manager).",
    )
    sub_processor = models.ForeignKey(
        Supplier, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )
    sub_processor_details = models.TextField(blank=True)

    # Scope decision (the triage exits).
    out_of_scope_category = models.CharField(max_length=32, choices=OutOfScopeCategory.choices, blank=True)
    scope_rationale = models.TextField(blank=True)
    customer_informed_at = models.DateTimeField(null=True, blank=True)

    triaged_at = models.DateTimeField(null=True, blank=True)
    declared_at = models.DateTimeField(null=True, blank=True)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    # The sending system's identifier (unique per detection source: an importer's idempotency
    # key) and, for imported incidents, the whole record.
    external_reference = models.CharField(
        max_length=100, null=True, blank=True, validators=[validate_single_line]
    )
    source_record = models.JSONField(null=True, blank=True, editable=False)

    # Set by the ``merge`` transition: this incident was a duplicate report of ``merged_into``
    # (the surviving incident), which took over its detection records, notes and files.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_duplicates",
        editable=False,
    )
    merged_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("triage_incident", "Can triage an incident"),
            ("rule_incident_out_of_scope", "Can rule an incident out of scope"),
            ("classify_incident_as_customer_event", "Can classify as a customer-driven event"),
            ("declare_incident", "Can declare a personal data breach"),
            ("mark_incident_notified", "Can mark an incident notified (system)"),
            ("begin_incident_post_mortem", "Can begin an incident's post-mortem"),
            ("close_incident", "Can close an incident"),
            ("share_incident_figures", "Can let notices state incident-wide figures"),
            ("merge_incident", "Can merge a duplicate incident into another"),
        ]
        indexes = [
            # The incident list: newest first, keyset-paginated.
            models.Index(fields=["-created_at", "-id"], name="incidents_incident_recent"),
            models.Index(fields=["state", "-created_at"], name="incidents_incident_state"),
            # The due-next board's incidents without a running clock, newest first: only open
            # incidents, so the index stays small however many were ever closed.
            models.Index(
                fields=["-created_at", "-id"],
                name="incidents_incident_open_recent",
                condition=Q(state__in=OPEN_STATES),
            ),
            # The metrics' refresh: which incidents changed since it last ran.
            models.Index(fields=["updated_at"], name="incidents_incident_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(exposure_ended_at__isnull=True)
                | Q(exposure_started_at__isnull=True)
                | Q(exposure_ended_at__gte=models.F("exposure_started_at")),
                name="incidents_incident_exposure_ends_after_start",
            ),
            models.UniqueConstraint(
                fields=["detection_source", "external_reference"],
                name="incidents_incident_unique_external_reference_per_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference or 'new'}: {self.title}"

    def email_subject(self, subject: str) -> str:
        """``subject`` for an email about this incident: prefixed with ``DRILL_MARKER`` when the
        incident is a drill, so no exercise email can be taken for a real one. Line breaks and
        control characters (a customer or title stored before they were refused) become spaces
        (``incidents.addresses.header_text``): the email still goes out."""
        subject = header_text(subject)
        return f"{DRILL_MARKER} {subject}" if self.is_drill else subject

    @property
    def exposure_duration(self) -> timedelta | None:
        """How long personal data was exposed (``timedelta``), or ``None`` when either end is
        unknown."""
        if self.exposure_started_at and self.exposure_ended_at:
            return self.exposure_ended_at - self.exposure_started_at
        return None

    # Lifecycle (DESIGN.md section 2). Guards live in incidents.lifecycle; services check them
    # first to name missing fields, and the conditions here make the table self-enforcing.

    @transition(
        field=state,
        source=IncidentState.DETECTED,
        target=IncidentState.TRIAGED,
        permission=TRANSITION_PERMISSIONS["triage"],
        conditions=[lambda self: not _missing(self, "triage")],
    )
    def triage(self, *, at: datetime) -> None:
        self.triaged_at = at

    @transition(
        field=state,
        source=[IncidentState.DETECTED, IncidentState.TRIAGED],
        target=IncidentState.OUT_OF_SCOPE,
        permission=TRANSITION_PERMISSIONS["rule_out_of_scope"],
        conditions=[lambda self: not _missing(self, "rule_out_of_scope")],
    )
    def rule_out_of_scope(self, *, at: datetime) -> None:
        self.closed_at = at

    @transition(
        field=state,
        source=[IncidentState.DETECTED, IncidentState.TRIAGED],
        target=IncidentState.CUSTOMER_EVENT,
        permission=TRANSITION_PERMISSIONS["classify_as_customer_event"],
        conditions=[lambda self: not _missing(self, "classify_as_customer_event")],
    )
    def classify_as_customer_event(self, *, at: datetime) -> None:
        self.closed_at = at

    @transition(
        field=state,
        source=IncidentState.TRIAGED,
        target=IncidentState.DECLARED,
        permission=TRANSITION_PERMISSIONS["declare"],
        conditions=[lambda self: not _missing(self, "declare")],
    )
    def declare(self, *, at: datetime, by: Any) -> None:
        self.declared_at = at
        self.declared_by = by

    @transition(
        field=state,
        source=IncidentState.DECLARED,
        target=IncidentState.NOTIFIED,
        permission=TRANSITION_PERMISSIONS["mark_notified"],
        conditions=[lambda self: not _missing(self, "mark_notified")],
    )
    def mark_notified(self, *, at: datetime) -> None:
        self.notified_at = at

    @transition(
        field=state,
        source=IncidentState.NOTIFIED,
        target=IncidentState.POST_MORTEM,
        permission=TRANSITION_PERMISSIONS["begin_post_mortem"],
    )
    def begin_post_mortem(self, *, at: datetime) -> None:
        pass

    @transition(
        field=state,
        source=IncidentState.POST_MORTEM,
        target=IncidentState.CLOSED,
        permission=TRANSITION_PERMISSIONS["close"],
        conditions=[lambda self: not _missing(self, "close")],
    )
    def close(self, *, at: datetime) -> None:
        self.closed_at = at

    @transition(
        field=state,
        source=[IncidentState.DETECTED, IncidentState.TRIAGED],
        target=IncidentState.MERGED,
        permission=MERGE_PERMISSION,
    )
    def merge(self, *, at: datetime, into: Incident) -> None:
        """Close this incident as a duplicate of ``into``. Called only by
        ``incidents.merging.incident_merge``, which checks the rules and moves the records."""
        self.merged_into = into
        self.merged_at = at
        self.closed_at = at


def _missing(incident: models.Model, transition_name: str) -> list[str]:
    from incidents.lifecycle import missing_for

    # django-fsm types a condition's argument as any model; these conditions are Incident's.
    assert isinstance(incident, Incident)
    return missing_for(incident, transition_name)


class AffectedCustomer(models.Model):
    """A customer whose personal data is involved in an incident. Once the incident is
    declared, the customer has a notice clock (``notifications.Clock``)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected_customers")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="incidents")
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    records_affected = models.PositiveBigIntegerField(null=True, blank=True)
    records_affected_is_estimate = models.BooleanField(default=False)
    data_subjects_affected = models.PositiveBigIntegerField(null=True, blank=True)
    data_subjects_affected_is_estimate = models.BooleanField(default=False)
    exposure_started_at = models.DateTimeField(
        null=True, blank=True, help_text="This customer's own exposure window; empty: the incident's."
    )
    exposure_ended_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    #: The customer's own figures, each told to that customer only (``affected_customer_update``).
    FIGURE_FIELDS = (
        "records_affected",
        "records_affected_is_estimate",
        "data_subjects_affected",
        "data_subjects_affected_is_estimate",
        "exposure_started_at",
        "exposure_ended_at",
    )

    class Meta:
        ordering = ["incident_id", "customer__name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "customer"], name="incidents_affectedcustomer_unique_pair"
            ),
            models.CheckConstraint(
                condition=Q(exposure_ended_at__isnull=True)
                | Q(exposure_started_at__isnull=True)
                | Q(exposure_ended_at__gte=models.F("exposure_started_at")),
                name="incidents_affectedcustomer_exposure_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} in {self.incident.reference}"

    @property
    def no_notice_reason(self) -> str | None:
        """Why this customer gets no notice whatever is approved (a real customer added to a
        drill), or ``None`` when it is notified as usual."""
        if self.incident.is_drill and not self.customer.is_drill_customer:
            return REAL_CUSTOMER_IN_DRILL
        return None


#: Why a real customer affected by a drill is never notified (shown on its clock and row).
REAL_CUSTOMER_IN_DRILL = (
    "This incident is a drill and the customer is not a drill customer: it gets no notice, "
    "and its clock is closed at once."
)


class Note(models.Model):
    """A responder's or incident manager's note on an incident: what was found, said or done.

    ``created_at`` is when we recorded it (UTC); ``occurred_at`` is when the thing it describes
    happened, if the author knows (UTC; ``None``: not stated), so the timeline can tell when
    something happened from when we learned it. Notes are never edited or deleted: adding one
    is an audit event (``note_added``), and a correction is a new note.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_username = models.CharField(max_length=150)
    text = models.TextField()
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When it happened, if known.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["incident_id", "created_at", "id"]
        indexes = [models.Index(fields=["incident", "created_at"], name="incidents_note_timeline")]

    def __str__(self) -> str:
        return f"Note by {self.author_username} on {self.incident_id}"


class HashChainedEvent(models.Model):
    """One entry of an append-only, hash-chained audit trail about one subject.

    Each subject (an incident, a customer, a course) has its own chain: ``sequence`` counts from
    1 and ``hash`` is HMAC-SHA256, under the audit key ``key_id`` names
    (``incidents.audit_keys``: a secret kept out of the database), over the previous row's hash
    and this row's content (``hash_content``). A row changed, removed or inserted behind the
    application's back, or rewritten with its hash recomputed by someone without the key, is
    detected by ``incidents.audit.verify_chain``; signed checkpoints (``AuditCheckpoint``) catch
    a truncated tail or a deleted chain. Subclasses name their subject's foreign key in
    ``SUBJECT_FIELD`` and are registered in ``incidents.audit.CHAINS``; appends are serialised
    by the row lock the services hold on the subject. On PostgreSQL a trigger refuses UPDATE
    and DELETE on these tables (migration ``incidents.0014``).
    """

    SUBJECT_FIELD: ClassVar[str]
    GENESIS_HASH = "0" * 64

    sequence = models.PositiveIntegerField()
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, help_text="Empty: the system.")
    verb = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(
        max_length=16, blank=True, default="", help_text="The audit key that sealed this row (its id)."
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%dT%H:%M:%SZ} {self.verb}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("Audit events are append-only.")

    @property
    def subject_id(self) -> int:
        return getattr(self, f"{self.SUBJECT_FIELD}_id")

    def hash_content(self) -> dict[str, Any]:
        """The content the hash covers (every field but the hashes and the actor's key)."""
        return {
            self.SUBJECT_FIELD: self.subject_id,
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor_username": self.actor_username,
            "verb": self.verb,
            "data": self.data,
        }

    def hash_payload(self) -> str:
        """What the hash covers: the previous hash followed by this row's content as canonical
        JSON (sorted keys, no spaces, UTF-8)."""
        return self.previous_hash + json.dumps(
            self.hash_content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )

    def compute_hash(self, key: Any = None) -> str:
        """HMAC-SHA256 hex digest of ``hash_payload`` under ``key`` (an
        ``incidents.audit_keys.AuditKey``; default: the current audit key)."""
        from incidents.audit_keys import current_key

        return (key or current_key()).sign(self.hash_payload())

    def compute_unkeyed_hash(self) -> str:
        """Plain SHA-256 of ``hash_payload``: how rows were hashed before the trail was keyed,
        and what anyone without the key can compute. Never a valid hash now; the verification
        uses it to say that a row was recomputed without the key."""
        return hashlib.sha256(self.hash_payload().encode()).hexdigest()


class AuditEvent(HashChainedEvent):
    """One entry of an incident's audit chain (see ``HashChainedEvent``).

    Written by the service functions in the same transaction as the change they record, under
    the incident's row lock. ``from_state`` and ``to_state``: the lifecycle states around a
    transition (empty for other verbs).
    """

    SUBJECT_FIELD = "incident"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="audit_events")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["incident_id", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "sequence"], name="incidents_auditevent_unique_sequence"
            )
        ]

    def hash_content(self) -> dict[str, Any]:
        return {**super().hash_content(), "from_state": self.from_state, "to_state": self.to_state}


class CustomerAuditEvent(HashChainedEvent):
    """One entry of a customer's audit chain: changes to its contacts and their confirmation,
    which are about no incident (see ``HashChainedEvent``).

    Written in the transaction that makes the change, under the customer's row lock. The actor
    is a staff user (``actor``), the system (neither), or the recipient of a confirmation link
    acting without a login (``actor_contact_email``: the address the link was sent to).
    """

    SUBJECT_FIELD = "customer"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="audit_events")
    actor_contact_email = models.CharField(
        max_length=254, blank=True, help_text="The confirmation link's recipient, when it acted."
    )

    class Meta:
        ordering = ["customer_id", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "sequence"], name="incidents_customerauditevent_unique_sequence"
            )
        ]

    def hash_content(self) -> dict[str, Any]:
        return {**super().hash_content(), "actor_contact_email": self.actor_contact_email}

    @property
    def actor_display(self) -> str:
        """Who acted, as a person reads it: a username, "link recipient <address>" or "system"."""
        if self.actor_username:
            return self.actor_username
        if self.actor_contact_email:
            return f"link recipient {self.actor_contact_email}"
        return "system"


class AuditCheckpoint(models.Model):
    """A signed record of one audit chain's head, kept outside the audit tables.

    Written by ``incidents.checkpoints.audit_checkpoints_write`` (beat task
    ``checkpoint_audit_trail``) whenever a chain grew since its last checkpoint, and appended to
    ``AUDIT_CHECKPOINT_FILE`` when set. ``chain``: the chain's name in ``incidents.audit.CHAINS``
    (``incident``, ``customer``, ``training``); ``subject_id``: the incident's, customer's or
    course's id (no foreign key, so the checkpoint outlives a deleted chain);
    ``subject_label``: its reference, account reference or code then. ``length``: the chain's
    last sequence number; ``head_hash``: that row's hash. ``signature``: HMAC-SHA256 under the
    audit key ``key_id`` over the other fields (``signed_payload``). The verification reports a
    chain shorter than a checkpoint (a truncated tail), a head that changed, a checkpointed
    chain with no rows (a deleted chain) and a signature that does not verify. Append-only
    like the trail (a trigger on PostgreSQL).
    """

    chain = models.CharField(max_length=32)
    subject_id = models.PositiveBigIntegerField()
    subject_label = models.CharField(max_length=200, blank=True)
    length = models.PositiveIntegerField()
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["chain", "subject_id", "length"]
        indexes = [
            # The writer's "latest checkpoint of each chain" and the verification's reads.
            models.Index(fields=["chain", "subject_id", "length"], name="incidents_auditcheckpoint_head"),
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.subject_label or self.subject_id} at {self.length}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit checkpoints are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("Audit checkpoints are append-only.")

    def signed_payload(self) -> str:
        """The canonical JSON the signature covers (every field but the id, key and signature)."""
        return json.dumps(
            {
                "chain": self.chain,
                "subject_id": self.subject_id,
                "subject_label": self.subject_label,
                "length": self.length,
                "head_hash": self.head_hash,
                "created_at": self.created_at.astimezone(UTC).isoformat(),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def as_json(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready values (the evidence pack's, the checkpoint file's line)."""
        return {
            "chain": self.chain,
            "subject_id": self.subject_id,
            "subject_label": self.subject_label,
            "length": self.length,
            "head_hash": self.head_hash,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "key_id": self.key_id,
            "signature": self.signature,
        }


class WorkerHeartbeat(models.Model):
    """When a Celery worker with beat last ran its periodic heartbeat (UTC), shown on the web
    pages so a stopped worker, and with it stopped deadline scanning, is visible."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%dT%H:%M:%SZ}"


# API access ---------------------------------------------------------------------------------


class ApiToken(models.Model):
    """A personal API token: ``Authorization: Token <key>``.

    Only the SHA-256 of the key is stored (``key_hash``); the key is shown once, when the token
    is created. A token works until ``expires_at`` (UTC) unless revoked (``revoked_at``) or its
    user is deactivated. ``prefix``: the key's first characters, so its owner can tell tokens
    apart in a list. ``last_used_at`` is refreshed at most once a minute.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at", "-id"], name="incidents_apitoken_by_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        """SHA-256 hex digest of a token key (keys are 256-bit random: no slow hash needed)."""
        return hashlib.sha256(key.encode()).hexdigest()

    def is_usable_at(self, now: datetime) -> bool:
        """True while not revoked and not expired at ``now`` (aware)."""
        return self.revoked_at is None and now < self.expires_at


class IdempotencyRecord(models.Model):
    """The first successful answer to a create sent with ``Idempotency-Key``, replayed for a
    retry with the same key and body (per user, for ``IDEMPOTENCY_KEY_HOURS``).

    ``request_fingerprint``: SHA-256 over the method, path and canonical body; a retry whose
    fingerprint differs gets 422. Written in the transaction that made the resource, so a
    record exists exactly when its resource was committed.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"], name="incidents_idempotencyrecord_unique_key_per_user"
            )
        ]
        # The daily purge of expired records (incidents.tasks.purge_idempotency_records).
        indexes = [models.Index(fields=["created_at"], name="incidents_idempotency_age")]


# Intake from machines and customers -----------------------------------------------------------


class AlertSource(models.Model):
    """A monitoring system allowed to post signed alerts to ``POST /api/intake/alerts/``.

    The shared secret must be recoverable to verify HMAC-SHA256 signatures, so it cannot be
    hashed: it is stored encrypted (Fernet, with a key derived from ``SECRET_KEY``; see
    ``incidents.intake.secret_box``), shown once when created or rotated
    (``manage.py create_alert_source`` / ``rotate_alert_source``) and never logged. After a
    rotation the previous secret keeps verifying until ``previous_secret_expires_at`` (UTC).
    """

    name = models.CharField(max_length=100, unique=True)
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One signed alert as received from a source, attached to the incident it opened or to
    the open incident with the same ``dedupe_key``.

    ``replay_key``: SHA-256 over the signed timestamp and body; unique per source, so the same
    signed request accepted twice is refused as a replay. ``opened_incident``: true for the
    alert that created its incident.
    """

    source = models.ForeignKey(AlertSource, on_delete=models.PROTECT, related_name="alerts")
    dedupe_key = models.CharField(max_length=200)
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="alerts")
    opened_incident = models.BooleanField(default=False)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    details = models.JSONField(null=True, blank=True)
    detected_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    replay_key = models.CharField(max_length=64)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "replay_key"], name="incidents_alert_unique_replay_per_source"
            )
        ]
        indexes = [
            # Deduplication: the newest alert of a (source, dedupe key) names the open incident.
            models.Index(fields=["source", "dedupe_key", "-id"], name="incidents_alert_dedupe"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.dedupe_key} at {self.received_at:%Y-%m-%dT%H:%M:%SZ}"


class AlertThread(models.Model):
    """The incident that alerts of one (source, dedupe key) currently attach to.

    One row per pair, locked while an alert is taken in, so two identical alerts arriving at
    once open one incident. When that incident is closed or ruled out, the next alert opens
    a new one and the row points at it.
    """

    source = models.ForeignKey(AlertSource, on_delete=models.PROTECT, related_name="+")
    dedupe_key = models.CharField(max_length=200)
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="+")
    alert_count = models.PositiveIntegerField(default=1)
    last_alert_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "dedupe_key"], name="incidents_alertthread_unique_key")
        ]


class CustomerReport(models.Model):
    """A report of suspicious activity from the public page ``/report/``.

    ``reference``: random and unguessable (``CR-XXXX-XXXX``), given to the reporter; it says
    nothing about any other report or incident (the incident's own ``BD-`` reference is
    sequential and stays internal). ``ip_address`` and ``contact_email`` feed the page's
    throttles.
    """

    reference = models.CharField(max_length=20, unique=True)
    # A foreign key, not one-to-one: merging duplicates gathers several reports on one incident.
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="customer_reports")
    organisation = models.CharField(max_length=200, validators=[validate_single_line])
    contact_email = models.EmailField()
    description = models.TextField()
    occurred_on = models.DateField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    language = models.CharField(max_length=8, default="en")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The page's throttles count recent reports per address and per IP.
            models.Index(fields=["contact_email", "created_at"], name="incidents_report_by_email"),
            models.Index(fields=["ip_address", "created_at"], name="incidents_report_by_ip"),
        ]

    def __str__(self) -> str:
        return self.reference


class OutgoingEmail(models.Model):
    """An email to send that is not a customer notice (those are ``notifications.Delivery``):
    a row first, claimed and sent by ``incidents.tasks.send_outgoing_emails``, retried with
    backoff. Today: the confirmation of a customer report.

    ``status``: ``pending`` (``next_attempt_at`` says when), ``sending`` (claimed until
    ``claimed_until``; an expired claim is taken again), ``sent`` (``sent_at``) or ``failed``
    (refused for good, or out of attempts; ``last_error``). ``message_id`` is deterministic,
    so a re-send after a crash carries the same Message-ID.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=40)
    # The incident it is about, if any (a declaration alert): need to know hides it with its
    # incident in the admin and the auditors' site.
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    to_address = models.EmailField()
    language = models.CharField(max_length=8, default="en")
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    message_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sender's "what is due now?" query.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="incidents_outgoingemail_due",
            ),
            # Claims that expired (a killed worker) are taken again.
            models.Index(
                fields=["claimed_until"], condition=Q(status="sending"), name="incidents_outgoingemail_claims"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_address} ({self.status})"


class ReadLogEntry(models.Model):
    """One record an auditor opened (a page or an API route), kept so that the organisation
    can show who read what and when. Written by ``incidents.middleware.AuditorReadLogMiddleware``
    for every successful read by a member of the ``auditor`` group; never changed.

    ``route``: the URL pattern's name (for example ``incidents:incident_detail``);
    ``object_type`` and ``object_id``: what the route names (the model of its first id
    argument, for example ``incident`` and ``42``), empty for lists; ``path``: the path and query
    string as requested.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    read_at = models.DateTimeField(default=timezone.now)
    route = models.CharField(max_length=200, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=2000)

    class Meta:
        ordering = ["-read_at", "-id"]
        verbose_name_plural = "read log entries"
        indexes = [models.Index(fields=["-read_at", "-id"], name="incidents_readlogentry_recent")]

    def __str__(self) -> str:
        return f"{self.username} read {self.path} at {self.read_at:%Y-%m-%dT%H:%M:%SZ}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Read log entries are never changed.")
        super().save(*args, **kwargs)


class AccountExpiry(models.Model):
    """When a user account stops working (UTC): after ``expires_at`` it cannot log in, and a
    session or token still open is refused. Every auditor account must carry one (external
    auditors are given access for an engagement, not forever); other accounts may."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="expiry")
    expires_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True, help_text="For example the audit engagement.")

    class Meta:
        verbose_name_plural = "account expiries"

    def __str__(self) -> str:
        return f"{self.user} until {self.expires_at:%Y-%m-%dT%H:%MZ}"


class SecurityAuditEvent(models.Model):
    """One sign-in or access event (issue 8.3): a login, a failed login, a lock-out, a second
    factor passed, failed or enrolled, a session ended by a timeout, a logout, or a permission
    denial (a 403 answered to a signed-in or anonymous client, and a refused API token, 401).

    Written by ``incidents.signin`` from Django's auth signals (``user_logged_in``,
    ``user_login_failed``, ``user_logged_out``), django-axes' ``user_locked_out``, the
    second-factor pages and ``SecurityAuditMiddleware``; never changed, shown read-only in
    ``/admin/`` and on the auditors' site ``/audit/``.

    ``user``: the account concerned when it is known (``None`` for an unknown username or an
    anonymous client); ``username``: the name given or the account's (kept when the account is
    deleted); ``ip_address``: the client's address as ``incidents.signin.client_ip`` reads it
    (``None`` when unknown); ``at``: UTC; ``path``: the request's path; ``detail``: what else is
    known, JSON (for example ``{"method": "password"}`` or ``{"status": 403}``; never a password
    or a one-time code).
    """

    class Kind(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOCKED_OUT = "locked_out", "Locked out"
        LOGOUT = "logout", "Logged out"
        SECOND_FACTOR_PASSED = "second_factor_passed", "Second factor passed"
        SECOND_FACTOR_FAILED = "second_factor_failed", "Second factor failed"
        SECOND_FACTOR_ENROLLED = "second_factor_enrolled", "Second factor enrolled"
        SESSION_EXPIRED = "session_expired", "Session expired"
        PERMISSION_DENIED = "permission_denied", "Permission denied"
        API_TOKEN_REFUSED = "api_token_refused", "API token refused"

    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=2000, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The admin's list (newest first) and "what happened to this account".
            models.Index(fields=["-at", "-id"], name="incidents_securityevent_recent"),
            models.Index(fields=["username", "-at"], name="incidents_securityevent_user"),
            models.Index(fields=["kind", "-at"], name="incidents_securityevent_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.username or 'anonymous'} at {self.at:%Y-%m-%dT%H:%M:%SZ}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Security audit events are never changed.")
        super().save(*args, **kwargs)


# Evidence files ---------------------------------------------------------------------------------


def evidence_storage() -> Any:
    """The storage evidence files are kept in: ``STORAGES["evidence"]`` (filesystem under
    ``BREACHDESK_VAR_DIR/evidence`` by default; S3-compatible through django-storages when
    configured, see README "Evidence files")."""
    from django.core.files.storage import storages

    return storages["evidence"]


class EvidenceFile(models.Model):
    """A file attached to an incident as evidence (a screenshot, a log extract, the written
    confirmation of deletion), optionally to one of its notes or playbook tasks.

    The bytes live in ``evidence_storage()`` under ``storage_name`` (an opaque name chosen by
    the application, never the uploader's); ``original_name`` is shown and used for downloads
    only. ``sha256``: hex SHA-256 of the bytes, computed while they were streamed into storage;
    ``size``: bytes. ``content_type``: what the uploader's client declared (information only:
    downloads are always ``application/octet-stream``).

    ``task_content_type``/``task_object_id``: a generic reference to a playbook task
    (``settings.EVIDENCE_TASK_MODEL``, ``triage.ResponseTask``): tasks live in an app above
    this one, which this app must not import.

    A file is never edited. Before declaration it may be deleted (audited); afterwards it can
    only be superseded: a new file replaces it, and this row keeps ``superseded_by``,
    ``superseded_at`` (UTC) and ``superseded_reason``, with its bytes.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="evidence_files")
    note = models.ForeignKey(
        Note, null=True, blank=True, on_delete=models.PROTECT, related_name="evidence_files"
    )
    task_content_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    task_object_id = models.PositiveBigIntegerField(null=True, blank=True)
    description = models.TextField(blank=True)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    content_type = models.CharField(max_length=255, blank=True, help_text="As declared by the uploader.")
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=500, unique=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_by_username = models.CharField(max_length=150)
    uploaded_at = models.DateTimeField(default=timezone.now)
    superseded_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="supersedes"
    )
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["incident_id", "uploaded_at", "id"]
        indexes = [models.Index(fields=["incident", "uploaded_at"], name="incidents_evidencefile_list")]
        constraints = [
            models.CheckConstraint(
                condition=Q(task_content_type__isnull=True, task_object_id__isnull=True)
                | Q(task_content_type__isnull=False, task_object_id__isnull=False),
                name="incidents_evidencefile_task_reference_whole",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]}…)"

    @property
    def is_superseded(self) -> bool:
        """True once a newer file replaced this one."""
        return self.superseded_by_id is not None


# Events for other systems (outgoing webhooks; incidents.webhooks) ----------------------------


class WebhookEventType(models.TextChoices):
    """The events Breachdesk tells subscribers of. Values are a contract (README "Webhooks")."""

    INCIDENT_CREATED = "incident.created", "Incident recorded"
    INCIDENT_TRIAGED = "incident.triaged", "Incident triaged"
    INCIDENT_DECLARED = "incident.declared", "Personal data breach declared"
    INCIDENT_NOTIFIED = "incident.notified", "Every affected customer notified"
    ESCALATION_RAISED = "escalation.raised", "Escalation raised on a notification clock"
    DELIVERY_FAILED = "delivery.failed", "A customer notice could not be delivered"
    INCIDENT_CLOSED = "incident.closed", "Incident closed"


class WebhookSubscriber(models.Model):
    """Another system that receives signed events by HTTP POST at ``url``.

    ``secret``: HMAC-SHA256 key of the ``Breachdesk-Signature`` header. It must be recoverable
    to sign, so it is stored encrypted (Fernet, key derived from ``SECRET_KEY``; see
    ``incidents.webhooks.secret_box``), shown once when created or rotated, never logged. After
    a rotation, until ``previous_secret_expires_at`` (UTC), requests carry a signature with the
    previous secret too. ``event_types``: a list of ``WebhookEventType`` values. An inactive
    subscriber gets no new deliveries; pending ones fail when their turn comes.
    """

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=2000)
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    event_types = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookEvent(models.Model):
    """One event about an incident, raised in the transaction that made the change.

    ``payload``: the JSON body sent to every subscriber (``incidents.webhooks.webhook_payload``);
    it never holds a withheld detail, and fields withheld after it was raised are removed again
    when it is sent. ``uuid``: the event's identifier in the payload (``id``).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="webhook_events")
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["incident", "type"], name="incidents_webhookevent_by_type")]

    def __str__(self) -> str:
        return f"{self.type} of {self.incident_id} at {self.created_at:%Y-%m-%dT%H:%M:%SZ}"


class WebhookDelivery(models.Model):
    """One event to one subscriber: a row first, claimed and retried by the webhook sender.

    ``uuid``: the ``Breachdesk-Delivery`` header (the same on every attempt and on a redelivery,
    so a receiver can drop duplicates). ``status``: ``pending`` (due at ``next_attempt_at``),
    ``sending`` (claimed until ``claimed_until`` with ``claim_token``), ``delivered`` (a 2xx at
    ``delivered_at``) or ``failed`` (a refusal, or ``WEBHOOK_MAX_ATTEMPTS`` reached).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subscriber = models.ForeignKey(WebhookSubscriber, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("redeliver_webhookdelivery", "Can send a failed webhook delivery again")]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "event"], name="incidents_webhookdelivery_unique_per_subscriber"
            )
        ]
        indexes = [
            # The webhook sender's claim ("what is due now?") and the scanner's wake-up probe.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="incidents_webhookdel_due",
            ),
            # The scanner's re-queue of claims that expired (a killed worker).
            models.Index(
                fields=["claimed_until"], condition=Q(status="sending"), name="incidents_webhookdel_claimed"
            ),
            # The delivery log of a subscriber, newest first.
            models.Index(fields=["subscriber", "-created_at", "-id"], name="incidents_webhookdel_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.subscriber} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery, as it went: the answer's status code (``None``: no
    answer: a refused address, a timeout, a dropped connection), the exact elapsed ``duration``,
    the error, and ``outcome`` (``delivered``, ``retry`` or ``failed``)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts_made")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration = models.DurationField()
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=10)

    class Meta:
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error}"


class IncidentRestriction(models.Model):
    """An incident restricted to named people on a need-to-know basis (issue 10, item 1).

    While this row exists only its members (``IncidentRestrictionMember``) see the incident and
    everything that belongs to it, in every read path (``incidents.selectors``); everyone else,
    whatever their role (superusers included), gets 404 and finds it in no list, search, count,
    metric, export or email subject. The incident manager who restricts it is always a member.
    An auditor is a member only when an incident manager grants it (``granted`` in the audit
    event). Lifting the restriction deletes this row and its members; the incident's audit
    chain keeps the history (``incident_restricted``, ``incident_restriction_changed``,
    ``incident_restriction_lifted``). The primary key is the incident's, so a membership test
    reads one index (``incidents_ntk_member_user``).
    """

    incident = models.OneToOneField(
        Incident, primary_key=True, on_delete=models.CASCADE, related_name="restriction"
    )
    restricted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restricted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        permissions = [("restrict_incident", "Can restrict an incident to named people")]

    def __str__(self) -> str:
        return f"Incident {self.incident_id} restricted"


class IncidentRestrictionMember(models.Model):
    """One person who may see a restricted incident. ``added_by``/``added_at`` (UTC) say who
    added them; an auditor's row is an incident manager's grant."""

    restriction = models.ForeignKey(IncidentRestriction, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["restriction", "user"], name="incidents_restrictionmember_unique")
        ]
        # The selector asks "is this user a member of the restriction of incident X?".
        indexes = [models.Index(fields=["user", "restriction"], name="incidents_ntk_member_user")]

    def __str__(self) -> str:
        return f"{self.user_id} on incident {self.restriction_id}"
