"""Post-mortems: the confidential review of how a breach was handled, and its action items.

An incident gets its post-mortem when it enters ``post_mortem``; it can be closed once the
post-mortem is completed and every action item is done or accepted (DESIGN.md section 2).

Training (courses, completion records, their imports and audit chain) has its own section below.
"""

import hashlib
import json
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class PostMortem(models.Model):
    """The confidential review of one incident. ``customer_summary`` may go into a notice."""

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="post_mortem"
    )
    started_at = models.DateTimeField(default=timezone.now)
    findings = models.TextField(blank=True, help_text="Was the response sufficient; what changes.")
    customer_summary = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Post-mortem of {self.incident.reference}"


class ActionItem(models.Model):
    """A follow-up from a post-mortem; external auditors check that these were done."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        ACCEPTED = "accepted", "Risk accepted"

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="action_items")
    description = models.TextField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.TextField(blank=True, help_text="What was done, or why the risk is accepted.")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["post_mortem_id", "id"]

    def __str__(self) -> str:
        return self.description[:80]


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


class TrainingAuditEvent(models.Model):
    """One entry of a course's append-only, hash-chained audit trail: the course created, its
    changes, and every import that brought completions of it (``postmortems.training_audit``).

    One chain per course (the subject, ``SUBJECT_FIELD``): ``sequence`` counts from 1 and
    ``hash`` is SHA-256 over the previous row's hash and this row's content
    (``hash_content``), so a row changed, removed or inserted behind the application's back is
    found by ``training_audit.verify_training_chains``. Appends are serialised by the course's
    row lock, which the training services hold. The columns, the hashed content and the
    verification are those of the incident audit trail (``incidents.models.AuditEvent``), less
    the lifecycle states, so that this model can become a subclass of a shared hash-chained
    base in ``incidents`` without a schema change.
    """

    SUBJECT_FIELD = "course"
    GENESIS_HASH = "0" * 64

    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="audit_events")
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

    class Meta:
        ordering = ["course_id", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "sequence"], name="postmortems_trainingauditevent_unique_sequence"
            )
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%dT%H:%M:%SZ} {self.verb}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any):
        raise ValueError("Audit events are append-only.")

    @property
    def subject_id(self) -> int:
        """The id of the course whose chain this event belongs to."""
        return self.course_id

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

    def compute_hash(self) -> str:
        """SHA-256 hex digest over the previous hash and this row's content (canonical JSON)."""
        payload = self.previous_hash + json.dumps(
            self.hash_content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()
