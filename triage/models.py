"""Triage records: the versioned assessment of an incident, the stakeholder groups it alerts and
the alerts sent, and the scenario playbooks whose steps become response tasks.

All instants are timezone-aware and stored in UTC (fields ending in ``_at``); durations are
``timedelta``. Rows are written by ``triage.services`` (never by views or serializers), which
drives the incident lifecycle through ``incidents.services``.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import models
from django.utils import timezone

from incidents.models import Incident

#: Rank of each ENISA band, lowest first; compares bands without string tricks.
BAND_RANK: dict[str, int] = {
    Incident.Severity.LOW: 0,
    Incident.Severity.MEDIUM: 1,
    Incident.Severity.HIGH: 2,
    Incident.Severity.VERY_HIGH: 3,
}


class Assessment(models.Model):
    """One version of an incident's triage assessment; a reassessment adds version n+1 and keeps
    the earlier ones (they are never changed).

    - Scope decision: ``scope`` with a ``scope_rationale``; for ``out_of_scope`` an
      ``out_of_scope_category`` (``Incident.OutOfScopeCategory``); for ``customer_event`` a
      ``customer_event_category``, ``customer_informed_at`` (when the customer was told what we
      observed) and ``help_offered`` (what help was offered on request).
    - ``malicious`` (yes, no, unknown; empty for an exit that did not assess it) and its basis;
      ``findings`` of the preliminary investigation; ``scenario``.
    - ENISA 2013 severity (``triage.scoring``): ``severity_inputs`` as recorded (JSON, see
      ``triage.inputs``), ``severity_score`` (SE, 0.25 to 6), ``severity_band``,
      ``severity_result`` (``base_dpc``, ``dpc``, ``ease_of_identification``,
      ``circumstances``, ``reasons``); an ``override_band`` needs an ``override_justification``.
      All empty when no severity was assessed (possible only for an exit).
    - GDPR notification assessment (``triage.notification_assessment``): ``notification_facts``
      (JSON) and ``notification_recommendation`` (``risk``, the four duties, ``reasons`` each
      ``{article, text, guidance}``); null when not assessed (possible only for an exit).
    """

    class Scope(models.TextChoices):
        IN_SCOPE = "in_scope", "In scope: a possible personal data breach"
        CUSTOMER_EVENT = "customer_event", "Customer-driven event"
        OUT_OF_SCOPE = "out_of_scope", "Out of scope"

    class CustomerEventCategory(models.TextChoices):
        CUSTOMER_SENT_SENSITIVE_DATA = (
            "customer_sent_sensitive_data",
            "The customer sent us passwords or other sensitive data by mistake",
        )
        CUSTOMER_DELETION_REQUEST = (
            "customer_deletion_request",
            "The customer asks us to delete data",
        )
        CUSTOMER_FRAUD_VICTIM = "customer_fraud_victim", "The customer is the victim of a fraud"
        CUSTOMER_SIDE_INCIDENT = "customer_side_incident", "An incident on the customer's side"
        OTHER = "other", "Other customer-driven event"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="assessments")
    version = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    scope = models.CharField(max_length=20, choices=Scope.choices)
    scope_rationale = models.TextField()
    out_of_scope_category = models.CharField(
        max_length=32, choices=Incident.OutOfScopeCategory.choices, blank=True
    )
    customer_event_category = models.CharField(
        max_length=32, choices=CustomerEventCategory.choices, blank=True
    )
    customer_informed_at = models.DateTimeField(null=True, blank=True)
    help_offered = models.TextField(blank=True, help_text="What help was offered on request.")

    malicious = models.CharField(max_length=7, choices=Incident.Malicious.choices, blank=True)
    malicious_basis = models.TextField(blank=True, help_text="Why it is (not) deemed malicious.")
    findings = models.TextField(blank=True, help_text="Preliminary investigation findings.")
    scenario = models.CharField(max_length=40, choices=Incident.Scenario.choices, blank=True)

    severity_inputs = models.JSONField(null=True, blank=True)
    severity_score = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    severity_band = models.CharField(max_length=10, choices=Incident.Severity.choices, blank=True)
    severity_result = models.JSONField(null=True, blank=True)
    override_band = models.CharField(max_length=10, choices=Incident.Severity.choices, blank=True)
    override_justification = models.TextField(blank=True)

    notification_facts = models.JSONField(null=True, blank=True)
    notification_recommendation = models.JSONField(null=True, blank=True)

    assessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    assessed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["incident_id", "-version"]
        get_latest_by = "version"
        constraints = [
            models.UniqueConstraint(fields=["incident", "version"], name="triage_assessment_unique_version"),
            models.CheckConstraint(
                condition=models.Q(override_band="") | ~models.Q(override_justification=""),
                name="triage_assessment_override_justified",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident.reference} assessment v{self.version}"

    @property
    def band(self) -> str:
        """The severity band that counts: the override if any, else the computed band; ``""``
        when no severity was assessed."""
        return self.override_band or self.severity_band

    def get_band_display(self) -> str:
        """The label of ``band`` ("High"), or ``""``."""
        return Incident.Severity(self.band).label if self.band else ""


def _validate_email_lines(value: str) -> None:
    for address in split_addresses(value):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"“{address}” is not a valid email address.") from None


def split_addresses(value: str) -> list[str]:
    """The addresses in ``value``, one per line or separated by commas or semicolons, in order,
    without blanks or repeats."""
    found: list[str] = []
    for part in value.replace(";", "\n").replace(",", "\n").splitlines():
        address = part.strip()
        if address and address not in found:
            found.append(address)
    return found


class StakeholderGroup(models.Model):
    """A group of people alerted when an in-scope assessment calls for them (security, legal,
    communications, privacy, leadership; seeded by a data migration, edited by admins).

    A group is called when it is active and the assessment's band reaches ``min_band`` (empty:
    never by band alone) or its scenario is one of ``scenarios`` (a list of
    ``Incident.Scenario`` values). ``email_addresses``: one per line (or comma-separated).
    """

    name = models.SlugField(max_length=40, unique=True)
    description = models.TextField(blank=True)
    email_addresses = models.TextField(
        blank=True, validators=[_validate_email_lines], help_text="One address per line."
    )
    min_band = models.CharField(
        max_length=10,
        choices=Incident.Severity.choices,
        blank=True,
        help_text="The lowest severity band that calls for this group; empty: no band does.",
    )
    scenarios = models.JSONField(
        default=list,
        blank=True,
        help_text="Scenarios that always call for this group, whatever the band.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def recipients(self) -> list[str]:
        """The group's email addresses as a list (empty when none are configured)."""
        return split_addresses(self.email_addresses)

    def why_called(self, *, band: str, scenario: str) -> str:
        """Why an assessment of ``band`` and ``scenario`` calls for this group, or ``""`` when it
        does not (inactive groups are never called)."""
        if not self.is_active:
            return ""
        reasons = []
        if band and self.min_band and BAND_RANK[band] >= BAND_RANK[self.min_band]:
            reasons.append(
                f"severity {Incident.Severity(band).label.lower()} reaches this group's threshold "
                f"({Incident.Severity(self.min_band).label.lower()})"
            )
        if scenario and scenario in (self.scenarios or []):
            reasons.append(f"the scenario “{Incident.Scenario(scenario).label}” always calls for this group")
        return "; ".join(reasons)


class StakeholderAlert(models.Model):
    """One alert of a stakeholder group about an incident: at most one per (incident, group),
    ever. Created in the assessment's transaction, together with its ``emails``: one outbox row
    per recipient (``notifications.OutgoingEmail``, kind ``stakeholder_alert``), which the
    outbox sender claims, sends, retries and records (issue 8: none lost with the broker down,
    none sent twice). ``email_status`` sums them up.

    ``recipients``: the addresses as they stood when the alert was raised (a list; empty when the
    group had none, and then nothing is sent and ``last_error`` says so). ``band`` and
    ``scenario``: those that called it. ``sent_at``: when an alert raised before issue 8 was
    emailed directly (empty for alerts sent through the outbox: their rows say it).
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="stakeholder_alerts")
    group = models.ForeignKey(StakeholderGroup, on_delete=models.PROTECT, related_name="alerts")
    assessment = models.ForeignKey(Assessment, on_delete=models.PROTECT, related_name="alerts")
    band = models.CharField(max_length=10, choices=Incident.Severity.choices, blank=True)
    scenario = models.CharField(max_length=40, choices=Incident.Scenario.choices, blank=True)
    reason = models.TextField(help_text="Why the assessment called for this group.")
    summary = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    emails = models.ManyToManyField(
        "notifications.OutgoingEmail", blank=True, related_name="stakeholder_alerts", editable=False
    )

    class Meta:
        ordering = ["incident_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "group"], name="triage_stakeholderalert_once_per_group"
            )
        ]

    def __str__(self) -> str:
        return f"{self.group} alerted about {self.incident.reference}"

    def email_status(self) -> str:
        """One line for the incident page: how many of this alert's emails the relay accepted,
        how many failed for good and how many are still queued (reads ``emails``; prefetch it
        for a list), or the legacy ``sent_at`` / ``last_error`` of an alert from before the
        outbox."""
        emails = list(self.emails.all())
        if not emails:
            if self.sent_at:
                return f"sent {self.sent_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            return self.last_error or "queued"
        sent = sum(email.status == "sent" for email in emails)
        failed = sum(email.status == "failed" for email in emails)
        parts = [f"{sent} of {len(emails)} sent"]
        if failed:
            parts.append(f"{failed} failed")
        if len(emails) - sent - failed:
            parts.append(f"{len(emails) - sent - failed} queued")
        return ", ".join(parts)


class PlaybookTemplate(models.Model):
    """The response playbook of one scenario: ordered steps that become an incident's response
    tasks when it is triaged in scope (seeded for every scenario; edited by admins)."""

    scenario = models.CharField(max_length=40, choices=Incident.Scenario.choices, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["scenario"]

    def __str__(self) -> str:
        return self.title


class PlaybookStep(models.Model):
    """One step of a playbook: what to do, how many hours of elapsed time after the assessment it
    is due (``due_after``), and optionally which role should do it."""

    template = models.ForeignKey(PlaybookTemplate, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    description = models.TextField()
    due_after = models.DurationField(
        default=timedelta(hours=24),
        validators=[MinValueValidator(timedelta(0))],
        help_text="Elapsed time after the assessment, for example 4:00:00 for four hours.",
    )
    assignee_role = models.CharField(
        max_length=60,
        blank=True,
        help_text="Who should do it (for example legal, HR, security); empty: the incident owner.",
    )

    class Meta:
        ordering = ["template_id", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["template", "order"], name="triage_playbookstep_unique_order")
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.description[:60]}"


class ResponseTask(models.Model):
    """A playbook step to do for one incident: at most one per (incident, step).

    ``description``, ``assignee_role`` and ``scenario`` are copied from the step so a later edit
    of the template does not rewrite what was asked. ``assignee``: the incident owner by default.
    ``due_at`` = the assessment's ``assessed_at`` + the step's ``due_after`` (UTC arithmetic).
    ``done_at`` and ``done_by`` are set when a responder ticks it done.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="response_tasks")
    step = models.ForeignKey(
        PlaybookStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    assessment = models.ForeignKey(Assessment, on_delete=models.PROTECT, related_name="response_tasks")
    scenario = models.CharField(max_length=40, choices=Incident.Scenario.choices)
    order = models.PositiveSmallIntegerField()
    description = models.TextField()
    assignee_role = models.CharField(max_length=60, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident_id", "due_at", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "step"], name="triage_responsetask_once_per_step")
        ]
        indexes = [
            # The incident page and the API list an incident's tasks by due time.
            models.Index(fields=["incident", "due_at"], name="triage_responsetask_due"),
        ]

    def __str__(self) -> str:
        return f"{self.incident.reference}: {self.description[:60]}"

    @property
    def is_done(self) -> bool:
        """True once ticked done."""
        return self.done_at is not None
