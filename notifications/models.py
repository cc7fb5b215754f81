"""Clocks, escalations, notices, withheld details and deliveries (DESIGN.md sections 3 and 4).

A clock is a row saying who must be told, from when, by when, and when it was met. Notices are
versions of what we tell customers, immutable once approved. A delivery is one notice to one
contact, the unit the sender claims, sends and records: PostgreSQL is the source of truth and
Redis only wakes workers. All instants are aware and stored in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Clock(models.Model):
    """A notification deadline: ``party`` must be told by ``due_at`` (UTC).

    Kinds other than the customer notice (a supervisory authority, NIS2, a contract) add rows of
    their own kind; nothing about "72 hours" lives on the incident. ``due_at`` is computed once
    as ``starts_at + window`` in UTC (exact elapsed time; see ``notifications.clocks``).

    Status (``status_at``): ``met`` (met on time), ``met_late`` (met after ``due_at``; stays
    late forever, with ``late_reason`` recorded, GDPR Art. 33(1)), ``waived`` (an incident manager
    acknowledged before ``due_at`` that it cannot be met, with a reason), ``waived_late`` (the
    same, acknowledged after ``due_at``: the deadline was missed), ``overdue`` (not met, past
    due), ``open``. Late stays late: ``due_at`` never moves once passed
    (``notifications.services.clock_restart``).
    """

    class Kind(models.TextChoices):
        CUSTOMER_NOTICE = "customer_notice", "Customer initial notice"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        OVERDUE = "overdue", "Overdue"
        MET = "met", "Met"
        MET_LATE = "met_late", "Met late"
        WAIVED = "waived", "Failure acknowledged"
        WAIVED_LATE = "waived_late", "Failure acknowledged after the deadline"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="clocks")
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.CUSTOMER_NOTICE)
    customer = models.ForeignKey(
        "incidents.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="clocks",
        help_text="Who must be told, for customer clocks.",
    )
    starts_at = models.DateTimeField()
    window = models.DurationField(help_text="Exact elapsed time from start to due.")
    due_at = models.DateTimeField()
    met_at = models.DateTimeField(null=True, blank=True)
    late_reason = models.TextField(blank=True, help_text="Why it was met late (Art. 33(1)).")
    waived_at = models.DateTimeField(null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    waiver_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "kind", "customer"], name="notifications_clock_unique_party"
            ),
            models.CheckConstraint(
                condition=Q(due_at__gt=F("starts_at")), name="notifications_clock_due_after_start"
            ),
        ]
        indexes = [
            # The deadline scanner's "what is due now?" and the dashboard's "due next": only
            # open clocks, so the index stays small however many clocks were ever met.
            models.Index(
                fields=["due_at"],
                name="notifications_clock_open_due",
                condition=Q(met_at__isnull=True, waived_at__isnull=True),
            ),
            # The due-next board: is this open clock its incident's first? (an index probe per
            # row, so the board walks open clocks in due order without grouping them all).
            models.Index(
                fields=["incident", "due_at", "id"],
                name="notifications_clock_open_inc",
                condition=Q(met_at__isnull=True, waived_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.customer} due {self.due_at:%Y-%m-%dT%H:%MZ}"

    @property
    def is_open(self) -> bool:
        return self.met_at is None and self.waived_at is None

    @property
    def party_name(self) -> str:
        """Who must be told, as people read it: the customer's name, or the clock's kind for a
        clock owed to another party (no customer)."""
        return self.customer.name if self.customer is not None else str(self.get_kind_display())

    @property
    def customer_reference(self) -> str | None:
        """The account reference of the customer to tell; ``None`` for a clock owed to another
        party (no customer)."""
        return self.customer.account_reference if self.customer is not None else None

    def is_late_at(self, now: datetime | None = None) -> bool:
        """Whether the deadline was (or is being) missed: met or waived after ``due_at``, or
        open past it at ``now``. Once true it stays true."""
        settled = self.met_at or self.waived_at
        return (settled or now or timezone.now()) > self.due_at

    def status_at(self, now: datetime | None = None) -> str:
        """The clock's ``Status`` value at ``now`` (default: the current instant)."""
        if self.met_at is not None:
            return self.Status.MET if self.met_at <= self.due_at else self.Status.MET_LATE
        if self.waived_at is not None:
            return self.Status.WAIVED if self.waived_at <= self.due_at else self.Status.WAIVED_LATE
        now = now or timezone.now()
        return self.Status.OVERDUE if now > self.due_at else self.Status.OPEN

    def remaining_at(self, now: datetime | None = None) -> timedelta | None:
        """Elapsed time left until ``due_at`` (negative when overdue), or ``None`` once the
        clock is met or waived."""
        if not self.is_open:
            return None
        return self.due_at - (now or timezone.now())


class Escalation(models.Model):
    """A warning raised once per clock and threshold and sent to the incident's owner and the
    incident managers. Uniqueness makes a second scanner or a repeated tick harmless."""

    class Threshold(models.TextChoices):
        HOURS_48 = "48h", "48 hours left"
        HOURS_24 = "24h", "24 hours left"
        HOURS_12 = "12h", "12 hours left"
        HOURS_6 = "6h", "6 hours left"
        HOURS_1 = "1h", "1 hour left"
        OVERDUE = "overdue", "Overdue"
        NO_CONTACT = "no_contact", "No deliverable contact"
        DELIVERY_FAILED = "delivery_failed", "Every delivery failed"

    clock = models.ForeignKey(Clock, on_delete=models.CASCADE, related_name="escalations")
    threshold = models.CharField(max_length=16, choices=Threshold.choices)
    raised_at = models.DateTimeField(default=timezone.now)
    recipients = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["raised_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clock", "threshold"], name="notifications_escalation_once_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_threshold_display()}: {self.clock}"


#: The breach fields of a customer notice, in the order the notice shows them: what GDPR Art.
#: 33(3) asks a controller to report ((a) nature, categories and approximate numbers; (c)
#: likely consequences; (d) measures), and what the controller needs to judge it (when and how
#: long, which product, which sub-processor). The contact point ((b)) closes every notice.
NOTICE_FIELDS: tuple[str, ...] = (
    "nature_of_breach",
    "data_categories",
    "data_subject_categories",
    "data_subjects_affected",
    "records_affected",
    "exposure_duration",
    "products_involved",
    "sub_processor",
    "likely_consequences",
    "mitigation_measures",
    "adverse_effect_measures",
)

#: Fields whose value differs per customer: each customer is told its own figure (never
#: another customer's); an incident-wide count only where ``incident_figures_shareable``.
CUSTOMER_FIGURE_FIELDS: tuple[str, ...] = ("data_subjects_affected", "records_affected", "exposure_duration")

#: Free text that an incident manager may give per language (``Translation``): the text facts of
#: the incident and the written parts of the notice.
TRANSLATABLE_TEXTS: tuple[str, ...] = (
    "nature_of_breach",
    "mitigation_measures",
    "adverse_effect_measures",
    "sub_processor_details",
    "likely_consequences_details",
    "post_mortem_summary",
    "contact_point",
)


class DeliveryCreation(models.TextChoices):
    """Where an approved notice's deliveries stand: a worker creates them from the committed
    approval (``notifications.services.notice_deliveries_create``)."""

    NOT_APPROVED = "", "Not approved"
    PENDING = "pending", "Deliveries to create"
    DONE = "done", "Deliveries created"


class Notice(models.Model):
    """One version of what we tell the affected customers about an incident.

    ``number`` counts from 1 per incident. A draft holds only what people write (contact point,
    likely consequences, a post-mortem summary); approving it snapshots the breach fields
    (``content``) as they stand, records which are withheld and why, and creates the deliveries,
    all in one transaction. An approved notice never changes.

    ``content``: ``{field: value or None}`` for ``NOTICE_FIELDS`` (None: not yet known), plus
    ``contact_point`` and ``incident_figures_shareable``; the per-customer figures are on each
    ``NoticeRecipient``. ``withheld``: ``{field: reason}``; ``changes``: the fields whose value
    differs from the previous approved notice; ``translations``: the per-language texts.

    Approval is recorded at once (``delivery_creation`` ``pending``, one ``NoticeRecipient`` per
    customer to tell); a worker then renders the messages and creates the deliveries
    (``done``). ``update_number`` numbers the updates: initial, update 1, update 2, ..., final.
    """

    class Kind(models.TextChoices):
        INITIAL = "initial", "Initial notice"
        UPDATE = "update", "Update"
        FINAL = "final", "Final notice"
        # Not a breach of ours: what we observed about an event on the customer's side (or
        # caused by its own action), and the help we offer on request.
        CUSTOMER_EVENT = "customer_event", "Observation of a customer-driven event"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPROVED = "approved", "Approved"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="notices")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    contact_point = models.TextField(blank=True, help_text="Who customers can ask (GDPR Art. 33(3)(b)).")
    likely_consequences = models.TextField(blank=True, help_text="GDPR Art. 33(3)(c).")
    post_mortem_summary = models.TextField(blank=True)
    observation = models.TextField(
        blank=True, help_text="Customer-driven events: what we observed (else the nature of the breach)."
    )
    help_offered = models.TextField(
        blank=True, help_text="Customer-driven events: what we recommend and offer on request."
    )
    content = models.JSONField(default=dict, blank=True)
    withheld = models.JSONField(default=dict, blank=True)
    changes = models.JSONField(default=list, blank=True)
    translations = models.JSONField(
        default=dict, blank=True, help_text="{text: {language: text}} as approved (Translation rows)."
    )
    update_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="Updates count 1, 2, ... per incident; set at approval."
    )
    delivery_creation = models.CharField(
        max_length=8, choices=DeliveryCreation.choices, blank=True, default=DeliveryCreation.NOT_APPROVED
    )
    deliveries_created_at = models.DateTimeField(null=True, blank=True)
    is_automatic = models.BooleanField(
        default=False, help_text="Issued by the deadline scanner from the facts known then."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "number"], name="notifications_notice_unique_number")
        ]
        indexes = [
            # The deadline scanner's "approvals whose deliveries are still to be created".
            models.Index(
                fields=["approved_at"],
                name="notifications_notice_to_create",
                condition=Q(delivery_creation="pending"),
            ),
        ]
        permissions = [
            ("approve_notice", "Can approve and send a customer notice"),
            ("withhold_notice_field", "Can withhold or release a notice field"),
            ("translate_notice_text", "Can give a notice's free text per language"),
        ]

    def __str__(self) -> str:
        return f"{self.incident.reference} notice {self.number} ({self.kind})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored == self.Status.APPROVED:
                raise ValueError("An approved notice is immutable.")
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        """ "Initial notice", "Update 2", "Final notice" (English, for staff pages)."""
        if self.kind == self.Kind.UPDATE and self.update_number:
            return f"Update {self.update_number}"
        return self.get_kind_display()


class NoticeRecipient(models.Model):
    """One customer an approved notice goes to, with that customer's own figures as they stood
    at approval (``figures``: ``{field: value or None}`` for ``CUSTOMER_FIGURE_FIELDS``) and
    the figures that changed since the customer's previous notice (``changes``).

    Created with the approval, in its transaction; the worker that creates the deliveries sets
    ``deliveries_created_at`` (and ``deliveries``, how many) customer by customer, so a killed
    worker resumes where it stopped and the notice page shows the progress.
    """

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="recipients")
    customer = models.ForeignKey("incidents.Customer", on_delete=models.PROTECT, related_name="+")
    figures = models.JSONField(default=dict, blank=True)
    previous_figures = models.JSONField(null=True, blank=True)
    changes = models.JSONField(default=list, blank=True)
    deliveries_created_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["notice_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "customer"], name="notifications_noticerecipient_unique"
            )
        ]
        indexes = [
            # The delivery-creating worker's "customers still to do" for one notice.
            models.Index(
                fields=["notice", "id"],
                name="notifications_recipient_todo",
                condition=Q(deliveries_created_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.notice} to {self.customer}"


class NoticeMessage(models.Model):
    """A notice rendered and built once per (customer, language): the subject, the plain-text
    and HTML parts, and the MIME body as bytes (``mime``: ``MIME-Version`` and a
    ``multipart/alternative`` body) with the encoded ``Subject`` header (``subject_header``).
    Every delivery to the customer's contacts in that language shares it; the sender adds only
    the per-contact headers (To, Message-ID, In-Reply-To, References, Date)."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="messages")
    customer = models.ForeignKey("incidents.Customer", on_delete=models.PROTECT, related_name="+")
    language = models.CharField(max_length=8)
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField()
    subject_header = models.TextField(help_text="The folded, encoded Subject header line (ASCII).")
    mime = models.BinaryField()

    class Meta:
        ordering = ["notice_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "customer", "language"], name="notifications_noticemessage_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.notice} for {self.customer} in {self.language}"


class Translation(models.Model):
    """One free text of an incident's notices in one language, given by an incident manager.

    ``field``: one of ``TRANSLATABLE_TEXTS``; ``source_text``: the default text it translates,
    as it stood then. A translation whose source text has changed since is outdated: notices
    then fall back to the default text (and the preview says so).
    """

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="translations")
    field = models.CharField(max_length=40, choices=[(name, name) for name in TRANSLATABLE_TEXTS])
    language = models.CharField(max_length=8)
    text = models.TextField()
    source_text = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident_id", "field", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "field", "language"], name="notifications_translation_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.field} in {self.language}"


class Withholding(models.Model):
    """A breach field an incident manager withholds from notices, and why.

    Withheld details stay out of every part of every message until released; the notice says
    that some details are withheld. Releasing carries the field into the next update.
    """

    class Reason(models.TextChoices):
        RISK_TO_OTHERS = "risk_to_others", "Disclosure would raise the risk to other customers"
        LAW_ENFORCEMENT = "law_enforcement", "A law-enforcement request"
        OTHER = "other", "Other"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="withholdings")
    field = models.CharField(max_length=32, choices=[(f, f) for f in NOTICE_FIELDS])
    reason = models.CharField(max_length=20, choices=Reason.choices)
    explanation = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200, help_text="Who asked for it to be withheld.")
    review_at = models.DateTimeField(help_text="When to decide again whether to release it.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident_id", "field", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "field"],
                condition=Q(released_at__isnull=True),
                name="notifications_withholding_one_active_per_field",
            )
        ]

    def __str__(self) -> str:
        return f"{self.field} withheld ({self.get_reason_display()})"


class OutboxMessage(models.Model):
    """One email in the transactional outbox: written in the transaction that decides to send
    it, then claimed, sent and recorded by the sender (``notifications.sender``). The fields
    here are everything the sender needs; concrete kinds add who and what it is about.

    The address, language and rendered message are fixed when the row is written.
    ``message_id`` is deterministic, so a message sent twice after a crash carries the same
    Message-ID. Status: ``pending`` (waiting for
    ``next_attempt_at``), ``sending`` (claimed until ``claimed_until``), ``sent`` (accepted by
    the relay at ``sent_at``), ``failed`` (permanently refused, or out of attempts). A concrete
    kind that emails a contact has a ``contact`` foreign key: a permanent refusal of the address
    marks that contact undeliverable. Register a new kind in ``notifications.outbox.OUTBOXES``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    address = models.EmailField()
    language = models.CharField(max_length=8)
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField()
    message_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True


def outbox_indexes(prefix: str) -> list[models.Index]:
    """The indexes every outbox table needs, named ``<prefix>_due``, ``_claimed``, ``_claim``
    (``prefix``: ``<app>_<short model name>``, at most 22 characters: names stop at 30)."""
    return [
        # The sender's claim: pending rows whose next attempt is due, in its order
        # (``next_attempt_at``, ``id``). With ``next_attempt_at`` alone, the 10,000 rows of one
        # fan-out (one instant) were all read and sorted for every claim of 100.
        models.Index(fields=["next_attempt_at", "id"], name=f"{prefix}_due", condition=Q(status="pending")),
        # The scanner's re-queue of claims that expired (a killed worker).
        models.Index(fields=["claimed_until"], name=f"{prefix}_claimed", condition=Q(status="sending")),
        models.Index(fields=["claim_token"], name=f"{prefix}_claim"),
    ]


class Delivery(OutboxMessage):
    """One approved notice to one contact: the unit of sending, claimed and recorded (see
    ``OutboxMessage``). Created by the worker that acts on the notice's approval, unique per
    (notice, contact), with the rendered message shared per customer and language
    (``notice_message``; only deliveries created before messages were shared carry their own
    ``body_text``/``body_html``); ``in_reply_to`` and ``references`` thread it with the
    contact's earlier notices on the incident. Accepted deliveries meet the customer's clock; a
    customer whose every delivery failed is escalated."""

    notice = models.ForeignKey(Notice, on_delete=models.PROTECT, related_name="deliveries")
    notice_message = models.ForeignKey(
        NoticeMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    # Empty once messages are shared (``notice_message``): only older deliveries carry bodies.
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    in_reply_to = models.CharField(max_length=200, blank=True)
    references = models.TextField(blank=True, help_text="Earlier Message-IDs to this contact, oldest first.")
    contact = models.ForeignKey("incidents.Contact", on_delete=models.PROTECT, related_name="deliveries")
    customer = models.ForeignKey("incidents.Customer", on_delete=models.PROTECT, related_name="deliveries")
    failure_acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["notice_id", "id"]
        verbose_name_plural = "deliveries"
        indexes = outbox_indexes("notifications_delivery")
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "contact"], name="notifications_delivery_unique_per_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.notice} to {self.address} ({self.status})"


class SentMessage(models.Model):
    """The exact bytes of the message the mail relay accepted for a delivery (RFC 5322, CRLF
    line ends, as handed to SMTP), kept as evidence (the evidence pack's ``.eml`` files), with
    their SHA-256. Recorded with the acceptance; a message sent again after a crash keeps the
    first recording (same Message-ID).

    A message sent as its contact's own headers followed by the body built once for the
    customer and language (``NoticeMessage.mime``) keeps only those headers (``head``) and a
    reference to the shared body, so ten thousand recordings do not store ten thousand copies
    of it; ``content`` puts the bytes back together. Any other message is kept whole (``raw``).
    ``sha256`` is always over the whole message as sent.
    """

    delivery = models.OneToOneField(Delivery, on_delete=models.PROTECT, related_name="sent_message")
    raw = models.BinaryField(blank=True, default=b"")
    head = models.BinaryField(blank=True, default=b"")
    shared_body = models.ForeignKey(
        NoticeMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sha256 = models.CharField(max_length=64)
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Message sent for delivery {self.delivery_id}"

    @property
    def content(self) -> bytes:
        """The message as the relay accepted it, byte for byte."""
        if self.shared_body_id is not None:
            return bytes(self.head) + bytes(self.shared_body.mime)  # type: ignore[union-attr]  # set with its id
        return bytes(self.raw)


class SkippedRecipient(models.Model):
    """An active administrative contact that an approved notice was not sent to, and why: its
    address was refused for good earlier (undeliverable), or it was added through a
    confirmation link and its address is not confirmed yet. No delivery exists for it; this row
    is what the notice's deliveries say instead."""

    class Reason(models.TextChoices):
        UNDELIVERABLE = "undeliverable", "Address refused earlier (undeliverable)"
        PENDING_CONFIRMATION = "pending_confirmation", "New address not confirmed yet"

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="skipped_recipients")
    contact = models.ForeignKey("incidents.Contact", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("incidents.Customer", on_delete=models.PROTECT, related_name="+")
    address = models.EmailField()
    reason = models.CharField(max_length=24, choices=Reason.choices)
    detail = models.TextField(blank=True, help_text="The refusal recorded on the contact, and when.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["notice_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "contact"], name="notifications_skippedrecipient_unique_per_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.notice}: {self.address} skipped ({self.reason})"


class OutgoingEmail(OutboxMessage):
    """Any other email of the outbox (see ``OutboxMessage``): one rendered message to one
    address, of a ``kind`` that names its templates (``templates/emails/<kind>/``).

    ``contact`` and ``customer``: who it is for, when it goes to a customer's contact (a
    permanent refusal then marks the contact undeliverable). To add a kind: a ``Kind`` value,
    its three templates, and a call to ``notifications.emails.outgoing_email_queue`` in the
    transaction that decides to send it (see ``docs/outbox.md``). Staff emails (stakeholder
    alerts, escalations, action-item reminders) are rows here too, one per recipient.
    """

    class Kind(models.TextChoices):
        CONTACT_CONFIRMATION = "contact_confirmation", "Contact confirmation request"
        CONTACT_ADDRESS_CONFIRMATION = "contact_address_confirmation", "New contact address confirmation"
        DUE_REMINDER = "due_reminder", "Reminder of a date (due or overdue)"
        # Staff emails (issue 8: every email is an outbox row), one row per recipient.
        STAKEHOLDER_ALERT = "stakeholder_alert", "Stakeholder alert"
        ESCALATION = "escalation", "Escalation"
        ACTION_ITEM_REMINDER = "action_item_reminder", "Action item reminder"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    contact = models.ForeignKey(
        "incidents.Contact", null=True, blank=True, on_delete=models.PROTECT, related_name="outgoing_emails"
    )
    customer = models.ForeignKey(
        "incidents.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="outgoing_emails"
    )
    # The incident a staff email is about, if any: need to know hides it with its incident in the
    # admin and the auditors' site.
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = outbox_indexes("notifications_email")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.address} ({self.status})"


class ContactConfirmationRequest(models.Model):
    """One confirmation link sent to one contact: "are these your administrative contacts?".

    ``purpose``: ``periodic`` (the recipient may confirm, correct, deactivate and add the
    customer's administrative contacts) or ``new_address`` (a contact added through a link
    confirms its own address before it counts). The link carries a token signed with Django's
    signing (``notifications.confirmations.confirmation_token``) naming this row and its
    customer; it works until ``expires_at`` (UTC) and until ``used_at`` (the recipient
    confirmed, or a newer request to the same recipient superseded it).
    """

    class Purpose(models.TextChoices):
        PERIODIC = "periodic", "Confirm the customer's contacts"
        NEW_ADDRESS = "new_address", "Confirm a new contact's address"

    customer = models.ForeignKey(
        "incidents.Customer", on_delete=models.CASCADE, related_name="confirmation_requests"
    )
    recipient = models.ForeignKey(
        "incidents.Contact", on_delete=models.CASCADE, related_name="confirmation_requests"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.PERIODIC)
    email = models.OneToOneField(
        OutgoingEmail, null=True, blank=True, on_delete=models.SET_NULL, related_name="confirmation_request"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The daily sweep: open requests whose link expired (customers to mark unconfirmed).
            models.Index(
                fields=["expires_at"],
                name="notifications_confirm_open",
                condition=Q(used_at__isnull=True),
            ),
            models.Index(fields=["customer", "-created_at"], name="notifications_confirm_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} to {self.recipient} ({self.created_at:%Y-%m-%d})"

    def is_open_at(self, now: datetime) -> bool:
        """Whether the link still works at ``now``: not used and not expired."""
        return self.used_at is None and now < self.expires_at


class DueReminder(models.Model):
    """One reminder of a date to its owner, recorded before its email is queued: ``due`` once
    less than the source's lead time remains before ``due_at``, ``overdue`` once ``due_at`` has
    passed (``notifications.reminders``). Unique per source, object, kind and due time, so a
    second scanner's insert fails and is skipped, and a date moved later raises new reminders.

    ``source``: the name of a ``ReminderSource`` (``response_task``, ``withholding_review``,
    ``training_expiry``); ``object_id``: the primary key of the row in that source that carries
    the date. ``email``: the outbox row that carries it (``OutgoingEmail`` of kind
    ``due_reminder``).
    """

    class Kind(models.TextChoices):
        DUE = "due", "Due soon"
        OVERDUE = "overdue", "Overdue"

    source = models.CharField(max_length=40)
    object_id = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    due_at = models.DateTimeField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    email = models.OneToOneField(
        OutgoingEmail, null=True, blank=True, on_delete=models.SET_NULL, related_name="due_reminder"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "object_id", "kind", "due_at"], name="notifications_duereminder_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} reminder of {self.source} {self.object_id}"
