"""Serializers of the notification API: they validate input and shape output; they never write.

Every write goes through ``notifications.services``. The input rules of ``incidents.api`` hold
here too (they are the same classes): instants need a timezone offset (``AwareDateTimeField``,
"timezone offset required") and come back in UTC with ``Z``; keys a body does not accept are
refused with 400 naming them (``StrictFieldsMixin``); text may not be blank where a service needs
a reason.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.api.serializers import (
    AwareDateTimeField,
    CustomerReferenceField,
    CustomerSummarySerializer,
    StrictModelSerializer,
    StrictSerializer,
    username_field,
)
from incidents.models import Customer, Incident
from notifications.models import (
    CUSTOMER_FIGURE_FIELDS,
    NOTICE_FIELDS,
    TRANSLATABLE_TEXTS,
    Clock,
    Delivery,
    DeliveryCreation,
    Escalation,
    Notice,
    NoticeRecipient,
    SkippedRecipient,
    Translation,
    Withholding,
)
from notifications.services import notice_delivery_progress

# Clocks -----------------------------------------------------------------------------------------


class EscalationSerializer(StrictModelSerializer):
    """A warning raised on a clock: ``threshold`` (``48h`` ... ``1h``, ``overdue``,
    ``no_contact``, ``delivery_failed``) and when it was raised (UTC)."""

    class Meta:
        model = Escalation
        fields = ["threshold", "raised_at"]
        read_only_fields = fields


class ClockSerializer(StrictModelSerializer):
    """A notification deadline (DESIGN.md section 3): who must be told (``customer``), from
    when (``starts_at``), by when (``due_at``) and when it was met (``met_at``, null while not).

    ``status``: ``Clock.status_at`` at the request's instant: ``open``, ``overdue``, ``met``,
    ``met_late`` (met after ``due_at``, late forever; ``late_reason`` says why, GDPR Art.
    33(1)) or ``waived`` (an incident manager acknowledged it cannot be met; ``waiver_reason``).
    ``remaining_seconds``: whole seconds until ``due_at`` (rounded down; negative when overdue),
    null once met or waived. Instants are UTC. The serializer context may carry ``now`` (an aware
    instant) so every clock of one answer is judged at the same instant.
    """

    customer = CustomerSummarySerializer(read_only=True, allow_null=True)
    status = serializers.SerializerMethodField()
    remaining_seconds = serializers.SerializerMethodField()
    waived_by = username_field()
    escalations = EscalationSerializer(many=True, read_only=True)

    class Meta:
        model = Clock
        fields = [
            "id",
            "customer",
            "kind",
            "starts_at",
            "due_at",
            "met_at",
            "status",
            "remaining_seconds",
            "late_reason",
            "waived_at",
            "waived_by",
            "waiver_reason",
            "escalations",
        ]
        read_only_fields = fields

    def _now(self) -> datetime | None:
        return self.context.get("now")

    @extend_schema_field(serializers.ChoiceField(choices=Clock.Status.choices))
    def get_status(self, clock: Clock) -> str:
        return str(clock.status_at(self._now()))

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_remaining_seconds(self, clock: Clock) -> int | None:
        remaining = clock.remaining_at(self._now())
        return None if remaining is None else math.floor(remaining.total_seconds())


class ReasonBody(StrictSerializer):
    """``{"reason": text}``: a reason that may not be blank (``late-reason``, ``waive``)."""

    reason = serializers.CharField()


class ClockRestartBody(StrictSerializer):
    """``{"starts_at": instant with offset, "reason": text}``: move an open clock's start."""

    starts_at = AwareDateTimeField()
    reason = serializers.CharField()


# Notices ----------------------------------------------------------------------------------------


class WithheldFieldSerializer(serializers.Serializer):
    """A breach field left out of a notice: its name, the reason code and the reason's label.
    Never the field's value."""

    field = serializers.ChoiceField(choices=[(name, name) for name in NOTICE_FIELDS])
    reason = serializers.ChoiceField(choices=Withholding.Reason.choices)
    reason_label = serializers.CharField()


class DeliveryCreationSerializer(serializers.Serializer):
    """Where an approved notice's deliveries stand: ``status`` ``""`` (a draft), ``pending``
    (a worker is creating them from the committed approval) or ``done``; how many of the
    ``customers_total`` customers are done; ``deliveries_created`` so far; ``completed_at``
    (UTC, null until done)."""

    status = serializers.ChoiceField(choices=DeliveryCreation.choices)
    customers_total = serializers.IntegerField()
    customers_done = serializers.IntegerField()
    deliveries_created = serializers.IntegerField()
    completed_at = serializers.DateTimeField(allow_null=True)


class DeliveryCountsSerializer(serializers.Serializer):
    """How many deliveries of a notice are in each status, and in all."""

    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    total = serializers.IntegerField()


def _recipient_count(aggregate: Any, **conditions: Any) -> Subquery:
    rows = NoticeRecipient.objects.filter(notice=OuterRef("pk"), **conditions).order_by().values("notice")
    return Subquery(rows.annotate(value=aggregate).values("value"), output_field=IntegerField())


def with_delivery_counts(notices: QuerySet[Notice]) -> QuerySet[Notice]:
    """``notices`` annotated with ``deliveries_<status>`` counts and the delivery-creation
    progress (``recipients_total``, ``recipients_done``, ``recipients_deliveries``), read by
    ``NoticeSerializer`` (one query for the whole list instead of some per notice)."""
    return notices.annotate(
        **{
            f"deliveries_{value}": Count("deliveries", filter=Q(deliveries__status=value))
            for value in Delivery.Status.values
        },
        recipients_total=_recipient_count(Count("id")),
        recipients_done=_recipient_count(Count("id"), deliveries_created_at__isnull=False),
        recipients_deliveries=_recipient_count(Sum("deliveries")),
    )


class SkippedRecipientSerializer(serializers.ModelSerializer):
    """A contact an approved notice was not sent to: ``contact`` and ``customer`` ids, the
    ``address``, the ``reason`` (``undeliverable`` or ``pending_confirmation``) and ``detail``."""

    class Meta:
        model = SkippedRecipient
        fields = ["contact", "customer", "address", "reason", "detail"]
        read_only_fields = fields


class NoticeSerializer(StrictModelSerializer):
    """One version of what the affected customers are told about an incident (DESIGN.md s. 4).

    ``number`` counts from 1 per incident; ``kind``: ``initial``, ``update`` or ``final``;
    ``status``: ``draft`` (the written parts can still change) or ``approved`` (immutable).
    ``content``: ``{field: value or null}`` for the breach fields as they stood at approval
    (``{}`` for a draft; see ``notifications.rendering.notice_content`` for the shapes).
    ``content`` is the staff record and keeps the value of a field that was withheld, so any
    user with ``view_notice`` sees it here; the customers' messages never contain it.
    ``withheld``: the fields left out of the customers' messages, with the reason (names and
    reason labels only). ``changes``: fields that differ from the previous approved notice.
    ``deliveries``: counts by delivery status (``total`` 0 for a draft).
    ``update_number``: 1, 2, ... for updates (the subject says "Update 1"), null otherwise.
    ``translations``: ``{text name: {language: text}}`` as approved. ``delivery_creation``:
    the worker's progress creating the deliveries after approval (``DeliveryCreationSerializer``).
    ``skipped_recipients``: the active administrative contacts the approved notice was not
    sent to, and why (``undeliverable``: refused for good earlier; ``pending_confirmation``: a
    new address not confirmed yet). Instants are UTC.
    """

    created_by = username_field()
    approved_by = username_field()
    content = serializers.JSONField(read_only=True)
    changes = serializers.ListField(
        child=serializers.ChoiceField(choices=[(name, name) for name in NOTICE_FIELDS]),
        read_only=True,
    )
    withheld = serializers.SerializerMethodField()
    deliveries = serializers.SerializerMethodField()
    delivery_creation = serializers.SerializerMethodField()
    translations = serializers.JSONField(read_only=True)
    skipped_recipients = SkippedRecipientSerializer(many=True, read_only=True)

    class Meta:
        model = Notice
        fields = [
            "id",
            "number",
            "kind",
            "update_number",
            "status",
            "is_automatic",
            "contact_point",
            "likely_consequences",
            "post_mortem_summary",
            "content",
            "withheld",
            "changes",
            "translations",
            "deliveries",
            "delivery_creation",
            "skipped_recipients",
            "created_at",
            "created_by",
            "approved_at",
            "approved_by",
        ]
        read_only_fields = fields

    @extend_schema_field(WithheldFieldSerializer(many=True))
    def get_withheld(self, notice: Notice) -> list[dict[str, str]]:
        labels = dict(Withholding.Reason.choices)
        return [
            {"field": name, "reason": reason, "reason_label": str(labels.get(reason, reason))}
            for name, reason in sorted(notice.withheld.items())
        ]

    @extend_schema_field(DeliveryCreationSerializer)
    def get_delivery_creation(self, notice: Notice) -> dict[str, Any]:
        if hasattr(notice, "recipients_total"):
            progress = {
                "status": notice.delivery_creation,
                "customers_total": getattr(notice, "recipients_total", 0) or 0,
                "customers_done": getattr(notice, "recipients_done", 0) or 0,
                "deliveries_created": getattr(notice, "recipients_deliveries", 0) or 0,
                "completed_at": notice.deliveries_created_at,
            }
        else:
            progress = notice_delivery_progress(notice)
        return DeliveryCreationSerializer(progress).data

    @extend_schema_field(DeliveryCountsSerializer)
    def get_deliveries(self, notice: Notice) -> dict[str, int]:
        if hasattr(notice, "deliveries_pending"):
            counts = {value: getattr(notice, f"deliveries_{value}") for value in Delivery.Status.values}
        else:
            counts = dict.fromkeys(Delivery.Status.values, 0)
            for row in notice.deliveries.values("status").annotate(count=Count("id")):
                counts[row["status"]] = row["count"]
        return {**counts, "total": sum(counts.values())}


class NoticeDraftBody(StrictSerializer):
    """Body of ``POST .../notices/``: ``kind`` (required: ``initial`` first, then ``update`` or
    ``final``) and the written parts ``contact_point``, ``likely_consequences`` (GDPR Art.
    33(3)(c)) (each optional text). A post-mortem's summary is taken in through
    ``POST /api/incidents/{id}/post-mortem/summary-into-notice/``, never typed here."""

    kind = serializers.ChoiceField(choices=Notice.Kind.choices)
    contact_point = serializers.CharField(required=False, allow_blank=True, default="")
    likely_consequences = serializers.CharField(required=False, allow_blank=True, default="")


class NoticeChangeBody(StrictSerializer):
    """Body of ``PATCH .../notices/{number}/``: at least one of ``kind``, ``contact_point``,
    ``likely_consequences``."""

    kind = serializers.ChoiceField(choices=Notice.Kind.choices, required=False)
    contact_point = serializers.CharField(required=False, allow_blank=True)
    likely_consequences = serializers.CharField(required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                {"detail": ["Nothing to change: give at least one of " + ", ".join(self.fields) + "."]}
            )
        return attrs


class NoticePreviewQuery(StrictSerializer):
    """Query string of ``GET .../preview/``: ``language``, a code of ``settings.LANGUAGES``
    (default: the language most of the customer's contacts receive); ``customer``, an affected
    customer's id or account reference (default: the first affected customer)."""

    language = serializers.ChoiceField(choices=settings.LANGUAGES, required=False)
    customer = CustomerReferenceField(required=False)

    def validate_customer(self, customer: Any) -> Any:
        incident: Incident = self.context["incident"]
        if not incident.affected_customers.filter(customer=customer).exists():
            raise serializers.ValidationError(
                f"{customer.account_reference} is not affected by {incident.reference}."
            )
        return customer


class NoticePreviewSerializer(serializers.Serializer):
    """A notice rendered as the customer would receive it: one-line ``subject``, the plain
    ``text`` part, the (escaped) ``html`` part, the ``language`` rendered in, the ``customer``
    shown, the free texts left ``untranslated`` and the customer's ``changed_figures``."""

    subject = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField()
    language = serializers.CharField()
    customer = serializers.CharField(help_text="The account reference of the customer shown.")
    untranslated = serializers.ListField(
        child=serializers.ChoiceField(choices=[(name, name) for name in TRANSLATABLE_TEXTS]),
        help_text="Free texts that go out in NOTICE_SOURCE_LANGUAGE: no translation into this language.",
    )
    changed_figures = serializers.ListField(
        child=serializers.ChoiceField(choices=[(name, name) for name in CUSTOMER_FIGURE_FIELDS]),
        help_text=(
            "This customer's own figures that changed since its previous notice (the notice's "
            "`changes` names the incident's facts)."
        ),
    )


# Withheld details -------------------------------------------------------------------------------


class WithholdingSerializer(StrictModelSerializer):
    """A breach field an incident manager withholds from notices, and why.

    ``field``: one of the breach fields (``NOTICE_FIELDS``); ``reason``: ``risk_to_others``,
    ``law_enforcement`` or ``other`` (``reason_label`` says it in words); ``requested_by``: who
    asked (for example a police force and case number); ``review_at``: when to reconsider (UTC);
    ``released_at``: null while withheld (``is_active``). Never the field's value.
    """

    reason_label = serializers.CharField(source="get_reason_display", read_only=True)
    is_active = serializers.SerializerMethodField()
    created_by = username_field()
    released_by = username_field()

    class Meta:
        model = Withholding
        fields = [
            "id",
            "field",
            "reason",
            "reason_label",
            "explanation",
            "requested_by",
            "review_at",
            "is_active",
            "created_at",
            "created_by",
            "released_at",
            "released_by",
        ]
        read_only_fields = fields

    def get_is_active(self, withholding: Withholding) -> bool:
        return withholding.released_at is None


class WithholdingCreateBody(StrictSerializer):
    """Body of ``POST .../withholdings/``: ``field`` (a breach field name), ``reason``
    (``risk_to_others``, ``law_enforcement``, ``other``), ``requested_by`` (text),
    ``review_at`` (instant with offset), ``explanation`` (optional text)."""

    field = serializers.ChoiceField(
        choices=[(name, name) for name in NOTICE_FIELDS],
        error_messages={"invalid_choice": f'Unknown field "{{input}}"; one of {", ".join(NOTICE_FIELDS)}.'},
    )
    reason = serializers.ChoiceField(choices=Withholding.Reason.choices)
    requested_by = serializers.CharField(max_length=200)
    review_at = AwareDateTimeField()
    explanation = serializers.CharField(required=False, allow_blank=True, default="")


# Deliveries -------------------------------------------------------------------------------------


class DeliveryNoticeSerializer(StrictModelSerializer):
    """The notice a delivery carries: its incident (id and reference), number and kind."""

    incident: serializers.PrimaryKeyRelatedField[Incident] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    incident_reference = serializers.CharField(source="incident.reference", read_only=True)

    class Meta:
        model = Notice
        fields = ["incident", "incident_reference", "number", "kind"]
        read_only_fields = fields


class DeliverySerializer(StrictModelSerializer):
    """One notice to one contact, as listed (no message bodies).

    ``customer``: the customer's account reference; ``address`` and ``language``: as used for
    this message; ``status``: ``pending``, ``sending``, ``sent`` or ``failed``; ``attempts``:
    sending attempts so far; ``last_error``: the relay's last refusal or the network error;
    ``next_attempt_at``, ``sent_at`` (null until sent) and ``failure_acknowledged_at`` (an
    incident manager acknowledged the failure) in UTC; ``message_id``: the deterministic
    Message-ID header; ``in_reply_to`` and ``references`` (space-separated): the Message-IDs of
    the contact's earlier notices on the incident, so mail clients thread them.
    """

    notice = DeliveryNoticeSerializer(read_only=True)
    customer: serializers.SlugRelatedField[Customer] = serializers.SlugRelatedField(
        slug_field="account_reference", read_only=True
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "notice",
            "customer",
            "address",
            "language",
            "subject",
            "status",
            "attempts",
            "last_error",
            "next_attempt_at",
            "sent_at",
            "failure_acknowledged_at",
            "message_id",
            "in_reply_to",
            "references",
        ]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    """A delivery with its message: ``text`` (the plain-text part) and ``html`` (the HTML part),
    exactly as rendered for this customer and language."""

    text = serializers.SerializerMethodField()
    html = serializers.SerializerMethodField()

    def get_text(self, delivery: Delivery) -> str:
        shared = delivery.notice_message
        return shared.body_text if shared is not None else delivery.body_text

    def get_html(self, delivery: Delivery) -> str:
        shared = delivery.notice_message
        return shared.body_html if shared is not None else delivery.body_html

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "text", "html"]
        read_only_fields = fields


class AcknowledgeDeliveryFailureBody(StrictSerializer):
    """Body of ``POST .../acknowledge-delivery-failure/``: ``customer`` (id or account
    reference; must have a notice clock on this incident) and ``reason`` (not blank)."""

    customer = CustomerReferenceField()
    reason = serializers.CharField()

    def validate_customer(self, customer: Any) -> Any:
        incident: Incident = self.context["incident"]
        if not Clock.objects.filter(
            incident=incident, customer=customer, kind=Clock.Kind.CUSTOMER_NOTICE
        ).exists():
            raise serializers.ValidationError(
                f"{customer.account_reference} has no notice clock on {incident.reference}."
            )
        return customer


# Per-language text ------------------------------------------------------------------------------


class TranslationSerializer(StrictModelSerializer):
    """A free text of an incident's notices in one language: ``field`` (``TRANSLATABLE_TEXTS``),
    ``language``, ``text``, ``source_text`` (the default text it translates) and
    ``is_current`` (false once that default text has changed: notices then fall back to it)."""

    updated_by = username_field()
    is_current = serializers.SerializerMethodField()

    class Meta:
        model = Translation
        fields = ["id", "field", "language", "text", "source_text", "is_current", "updated_at", "updated_by"]
        read_only_fields = fields

    def get_is_current(self, translation: Translation) -> bool:
        return self.context.get("source_texts", {}).get(translation.field) == translation.source_text


class TranslationBody(StrictSerializer):
    """Body of ``POST .../translations/``: ``field`` (``TRANSLATABLE_TEXTS``), ``language`` (a
    notice language other than ``NOTICE_SOURCE_LANGUAGE``), ``text`` (empty: remove)."""

    field = serializers.ChoiceField(choices=[(name, name) for name in TRANSLATABLE_TEXTS])
    language = serializers.ChoiceField(choices=settings.LANGUAGES)
    text = serializers.CharField(allow_blank=True, max_length=8000)
