"""The second half of the process: the confidential post-mortem of each incident with its action
items, the yearly drills, and (in ``postmortems.training``) training records.

An incident gets its post-mortem when it enters ``post_mortem`` (``postmortems.lifecycle``); it
can be closed once the post-mortem is completed and every action item is done or its risk
accepted (DESIGN.md section 2). Every write goes through ``postmortems.services``, which audits
it on the incident's hash chain; training writes go through ``postmortems.training``, which
audits them on each course's chain (the training section at the end). All instants are aware
and stored in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import HashChainedEvent


class PostMortem(models.Model):
    """The confidential review of one incident: was the response, and were the operating
    procedures, sufficient, and what must change.

    Read by incident managers and auditors only (``postmortems.view_postmortem``). Status
    ``draft`` (incident managers edit it) → ``completed`` (an incident manager; frozen from then
    on) → ``reviewed`` (an auditor records a review note). ``version`` counts the recorded
    changes from 1 (the audit trail names the version each change produced and the version a
    notice's customer summary was taken from). The customer summary is a list of statements
    (``CustomerSummaryStatement``), each naming the finding it comes from.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        COMPLETED = "completed", "Completed"
        REVIEWED = "reviewed", "Reviewed"

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="post_mortem"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    version = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)

    # Findings: what happened and what we learn.
    timeline_summary = models.TextField(blank=True, help_text="What happened when, in a few lines.")
    root_cause = models.TextField(blank=True)
    contributing_factors = models.TextField(blank=True)
    what_went_well = models.TextField(blank=True)
    what_did_not_go_well = models.TextField(blank=True)
    response_sufficient = models.BooleanField(
        null=True, blank=True, help_text="Was the response sufficient? Empty: not decided yet."
    )
    procedures_sufficient = models.BooleanField(
        null=True, blank=True, help_text="Were the operating procedures sufficient? Empty: not decided yet."
    )
    procedure_changes = models.TextField(
        blank=True, help_text="The changes to the operating procedure required."
    )
    findings = models.TextField(blank=True, help_text="Other findings (for example typed when closing).")

    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_note = models.TextField(blank=True, help_text="The auditor's review.")

    class Meta:
        permissions = [
            ("complete_postmortem", "Can complete a post-mortem"),
            ("review_postmortem", "Can review a completed post-mortem (auditors)"),
        ]

    def __str__(self) -> str:
        return f"Post-mortem of {self.incident.reference}"


class PostMortemVersion(models.Model):
    """The content of one version of a post-mortem (``postmortems.services.post_mortem_content``),
    kept so that what was recorded, and what a notice took, can be read later. The incident's
    audit trail holds each version's ``content_sha256``, so a snapshot changed afterwards no
    longer matches the hash chain."""

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    content = models.JSONField()
    content_sha256 = models.CharField(max_length=64)
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["post_mortem_id", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["post_mortem", "version"], name="postmortems_postmortemversion_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.post_mortem} v{self.version}"


#: The post-mortem's finding fields, in the order the page shows them; a customer-summary
#: statement names one of them as its source.
FINDING_FIELDS: tuple[str, ...] = (
    "timeline_summary",
    "root_cause",
    "contributing_factors",
    "what_went_well",
    "what_did_not_go_well",
    "procedure_changes",
    "findings",
)


class CustomerSummaryStatement(models.Model):
    """One statement of the post-mortem's summary for customers, and the finding it comes from
    (one of ``FINDING_FIELDS``). Only these statements, never the findings themselves, may go
    into a customer notice."""

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="summary_statements")
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    finding = models.CharField(max_length=32, choices=[(name, name) for name in FINDING_FIELDS])

    class Meta:
        ordering = ["post_mortem_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["post_mortem", "position"],
                name="postmortems_customersummarystatement_unique_position",
            )
        ]

    def __str__(self) -> str:
        return self.text[:80]


class SummaryRelease(models.Model):
    """A post-mortem's customer summary taken into a notice draft: which version, which text.
    When the notice is approved, ``sent_at`` records that this version went out."""

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="releases")
    notice = models.ForeignKey("notifications.Notice", on_delete=models.CASCADE, related_name="+")
    post_mortem_version = models.PositiveIntegerField()
    text = models.TextField()
    taken_at = models.DateTimeField(default=timezone.now)
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["post_mortem_id", "taken_at", "id"]

    def __str__(self) -> str:
        return f"Summary v{self.post_mortem_version} into notice {self.notice_id}"


class ActionItem(models.Model):
    """A follow-up from a post-mortem (or a drill's remediation); external auditors check that
    these were done.

    Status: ``open``; ``done`` (``resolution`` says what was done); ``risk_accepted``
    (``resolution`` says why). ``done_at``: when it was done or its risk accepted (UTC).
    An auditor may verify a settled item (``verified_at``, ``verified_by``, ``verification_note``).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="action_items")
    description = models.TextField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolution = models.TextField(blank=True, help_text="What was done, or why the risk is accepted.")
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verification_note = models.TextField(blank=True)

    class Meta:
        ordering = ["post_mortem_id", "id"]
        permissions = [("verify_actionitem", "Can verify that an action item was done (auditors)")]
        indexes = [
            # The overdue list and the reminder scan: open items by due time.
            models.Index(fields=["due_at"], name="postmortems_actionitem_open", condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return self.description[:80]

    def is_overdue_at(self, now: datetime | None = None) -> bool:
        """Whether the item is open and past ``due_at`` at ``now`` (default: the current instant)."""
        return (
            self.status == self.Status.OPEN
            and self.due_at is not None
            and self.due_at < (now or timezone.now())
        )


class ActionItemReminder(models.Model):
    """A reminder email to an action item's owner, recorded before it is sent (once per item
    and kind: ``due`` when less than ``REMINDER_DUE_LEAD`` remains, ``overdue`` once the due
    time has passed). The reminder scan hands each to the outbox: ``email`` is its row there
    (``notifications.OutgoingEmail``, which the outbox sender sends, retries and records), and
    ``sent_at`` the hand-over instant (before issue 8: when the scan emailed it itself;
    ``attempts`` and ``last_error`` are from then)."""

    class Kind(models.TextChoices):
        DUE = "due", "Due soon"
        OVERDUE = "overdue", "Overdue"

    action_item = models.ForeignKey(ActionItem, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    recipient = models.EmailField()
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    email = models.OneToOneField(
        "notifications.OutgoingEmail",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="action_item_reminder",
        editable=False,
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["action_item", "kind"], name="postmortems_actionitemreminder_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="postmortems_reminder_unsent",
                condition=Q(sent_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} reminder for action item {self.action_item_id}"


#: The ``due`` reminder goes out when less than this remains before an item's due time.
REMINDER_DUE_LEAD = timedelta(hours=24)


class Drill(models.Model):
    """The record of a yearly drill: an exercise run as an incident with ``is_drill`` through
    the same lifecycle, clocks, escalations and notices, reaching drill customers only.

    ``time_to_declare`` (detection to declaration) and ``time_to_notify`` (declaration to the
    last customer's clock met) are measured from the incident when the drill is completed
    (exact elapsed time; ``None`` when the drill never got that far). Remediation is the
    incident's post-mortem action items.
    """

    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="drill")
    scenario = models.TextField(help_text="The exercise's scenario, as told to the participants.")
    held_on = models.DateField()
    objectives = models.TextField(blank=True)
    outcome = models.TextField(blank=True)
    time_to_declare = models.DurationField(null=True, blank=True)
    time_to_notify = models.DurationField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-held_on", "-id"]
        indexes = [models.Index(fields=["-completed_at"], name="postmortems_drill_completed")]

    def __str__(self) -> str:
        return f"Drill {self.incident.reference} on {self.held_on:%Y-%m-%d}"


class DrillParticipant(models.Model):
    """Who took part in a drill, by function."""

    class Function(models.TextChoices):
        RESPONSE_TEAM = "response_team", "Response team"
        SECURITY = "security", "Security"
        LEGAL = "legal", "Legal"
        COMMUNICATIONS = "communications", "Communications"
        PRIVACY = "privacy", "Privacy"
        LEADERSHIP = "leadership", "Leadership"
        OTHER = "other", "Other"

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="participants")
    function = models.CharField(max_length=20, choices=Function.choices)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["drill_id", "function", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_function_display()})"


# --- Training -----------------------------------------------------------------------------
# Courses, the completions an LMS export records, the imports that brought them, and the hash
# chain that audits every training write (one chain per course). The services are in
# ``postmortems.training``; the chain in ``postmortems.training_audit``.


class Course(models.Model):
    """A training course. ``is_mandatory``: everyone on the response team (and everyone with
    training records) must hold a valid completion. ``validity_days``: how long a completion
    counts, in days of 24 hours of elapsed time (``TrainingRecord.expires_at``).
    ``mandatory_since``: when the course last became mandatory (UTC; ``None`` while optional),
    the "since when" of a person who never completed it.

    Written only through ``postmortems.training`` (``course_create``, ``course_update``), which
    audits every change in the course's chain; never deleted (records and the chain protect it).
    """

    code = models.CharField(max_length=40, unique=True, help_text="As in the LMS export's course_code.")
    name = models.CharField(max_length=200)
    is_mandatory = models.BooleanField(default=False)
    validity_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(36500)],
        help_text="How long a completion counts, in days (24 hours of elapsed time each).",
    )
    mandatory_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(validity_days__gte=1), name="postmortems_course_validity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    @property
    def validity(self) -> timedelta:
        """``validity_days`` as exact elapsed time (a day is 24 hours; no calendar, no DST)."""
        return timedelta(days=self.validity_days)


class TrainingImport(models.Model):
    """One run of ``manage.py import_training``: which file (name and SHA-256 of its bytes),
    who ran it (``None``: not named), when (UTC), and what it did. Kept for every run that
    stored anything, including a re-import that found every row already recorded."""

    file_name = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    imported_at = models.DateTimeField(default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rows = models.PositiveIntegerField(help_text="Completion rows in the file.")
    recorded = models.PositiveIntegerField(help_text="New completion records stored.")
    already_recorded = models.PositiveIntegerField(help_text="Rows found already recorded (idempotent).")

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} at {self.imported_at:%Y-%m-%dT%H:%M:%SZ}"


class TrainingRecord(models.Model):
    """One person's completion of a course, as the LMS reported it. Never edited in place.

    ``email``: the person, normalised (trimmed, lower case); people are matched by it, with or
    without an account. ``user``: the account with that email when the import ran (``None``:
    staff without an account here). ``completed_at`` and ``expires_at``: aware, UTC;
    ``expires_at = completed_at + course.validity`` (exact elapsed time), fixed when recorded.
    ``score``: 0 to 100, ``None`` when the LMS gives none. (``email``, ``course``,
    ``completed_at``) is unique: importing the same completion again stores nothing.
    """

    email = models.CharField(max_length=254)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_records",
    )
    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="records")
    completed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    score = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    imported_in = models.ForeignKey(
        TrainingImport, null=True, blank=True, on_delete=models.PROTECT, related_name="records"
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["email", "course_id", "-completed_at"]
        permissions = [("view_own_training", "Can see one's own training status")]
        constraints = [
            models.UniqueConstraint(
                fields=["email", "course", "completed_at"],
                name="postmortems_trainingrecord_unique_completion",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("completed_at")),
                name="postmortems_trainingrecord_expires_after_completion",
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=100),
                name="postmortems_trainingrecord_score_range",
            ),
        ]
        indexes = [
            # The overdue list and the lapse warnings: a person's latest expiry per course,
            # read in email order (the unique constraint's index leads with email too, but
            # without expires_at).
            models.Index(fields=["email", "course", "expires_at"], name="postmortems_training_person"),
        ]

    def __str__(self) -> str:
        return f"{self.email}: {self.course.code} at {self.completed_at:%Y-%m-%dT%H:%M:%SZ}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Training records are never edited in place; import a new completion.")
        super().save(*args, **kwargs)


class TrainingAuditEvent(HashChainedEvent):
    """One entry of a course's append-only, hash-chained audit trail: the course created, its
    changes, and every import that brought completions of it (``postmortems.training_audit``).

    One chain per course (the subject, ``SUBJECT_FIELD``), on the shared mechanism of the
    incident audit trail (``incidents.models.HashChainedEvent``: keyed hashes, checkpoints,
    ``incidents.audit.verify_chain``), registered there as the ``training`` chain by
    ``PostmortemsConfig.ready``. Appends are serialised by the course's row lock, which the
    training services hold.
    """

    SUBJECT_FIELD = "course"

    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="audit_events")

    class Meta:
        ordering = ["course_id", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "sequence"], name="postmortems_trainingauditevent_unique_sequence"
            )
        ]
