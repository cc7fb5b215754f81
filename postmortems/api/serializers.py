"""Serializers of the post-mortems API: post-mortems, action items and drills.
They validate input and shape output; every write goes through ``postmortems.services``.
Instants are ISO 8601 with an offset on input and UTC (``...Z``) on output."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from incidents.api.serializers import AwareDateTimeField, StrictSerializer, username_field
from incidents.models import Incident
from postmortems.models import FINDING_FIELDS, ActionItem, Drill, DrillParticipant, PostMortem
from postmortems.services import post_mortem_missing_to_complete


class SummaryStatementSerializer(serializers.Serializer):
    """One statement of the customer summary and the finding it comes from."""

    text = serializers.CharField()
    finding = serializers.ChoiceField(choices=FINDING_FIELDS)


class PostMortemSerializer(serializers.ModelSerializer):
    """A post-mortem as stored. ``status``: ``draft``, ``completed``, ``reviewed``;
    ``version`` counts recorded changes from 1; ``missing_to_complete``: the fields a draft
    still needs; ``customer_summary``: ``[{"text", "finding"}]``."""

    incident: serializers.PrimaryKeyRelatedField[Incident] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    customer_summary = serializers.SerializerMethodField()
    missing_to_complete = serializers.SerializerMethodField()
    started_at = AwareDateTimeField(read_only=True)
    completed_at = AwareDateTimeField(read_only=True, allow_null=True)
    reviewed_at = AwareDateTimeField(read_only=True, allow_null=True)
    completed_by = username_field(allow_null=True)
    reviewed_by = username_field(allow_null=True)

    class Meta:
        model = PostMortem
        fields = [
            "incident",
            "status",
            "version",
            "started_at",
            *FINDING_FIELDS,
            "response_sufficient",
            "procedures_sufficient",
            "customer_summary",
            "missing_to_complete",
            "completed_at",
            "completed_by",
            "reviewed_at",
            "reviewed_by",
            "review_note",
        ]
        read_only_fields = fields

    def get_customer_summary(self, post_mortem: PostMortem) -> list[dict[str, str]]:
        return [{"text": s.text, "finding": s.finding} for s in post_mortem.summary_statements.all()]

    def get_missing_to_complete(self, post_mortem: PostMortem) -> list[str]:
        if post_mortem.status != PostMortem.Status.DRAFT:
            return []
        return post_mortem_missing_to_complete(post_mortem)


class PostMortemChangeBody(StrictSerializer):
    """Body of ``PATCH .../post-mortem/``: any of the findings (text), the two ``*_sufficient``
    answers (true, false or null) and ``customer_summary`` (replaces the list)."""

    timeline_summary = serializers.CharField(required=False, allow_blank=True)
    root_cause = serializers.CharField(required=False, allow_blank=True)
    contributing_factors = serializers.CharField(required=False, allow_blank=True)
    what_went_well = serializers.CharField(required=False, allow_blank=True)
    what_did_not_go_well = serializers.CharField(required=False, allow_blank=True)
    procedure_changes = serializers.CharField(required=False, allow_blank=True)
    findings = serializers.CharField(required=False, allow_blank=True)
    response_sufficient = serializers.BooleanField(required=False, allow_null=True)
    procedures_sufficient = serializers.BooleanField(required=False, allow_null=True)
    customer_summary = SummaryStatementSerializer(many=True, required=False)


class NoteBody(StrictSerializer):
    """Body of a review or a verification: ``note`` (text)."""

    note = serializers.CharField()


class OptionalNoteBody(StrictSerializer):
    """Body of ``POST /api/action-items/{id}/verify/``: ``note`` (what was checked; optional)."""

    note = serializers.CharField(required=False, allow_blank=True, default="")


class SummaryIntoNoticeBody(StrictSerializer):
    """Body of ``POST .../post-mortem/summary-into-notice/``: ``notice``, the number of an update
    or final notice draft of the incident."""

    notice = serializers.IntegerField(min_value=1)


class ActionItemSerializer(serializers.ModelSerializer):
    """An action item. ``status``: ``open``, ``done``, ``risk_accepted``; ``done_at``: when it
    was done or its risk accepted; ``overdue``: open and past ``due_at``; ``verified_*``: an
    auditor's verification."""

    incident = serializers.IntegerField(source="post_mortem.incident_id", read_only=True)
    owner = username_field(allow_null=True)
    created_by = username_field(allow_null=True)
    verified_by = username_field(allow_null=True)
    due_at = AwareDateTimeField(read_only=True, allow_null=True)
    done_at = AwareDateTimeField(read_only=True, allow_null=True)
    created_at = AwareDateTimeField(read_only=True)
    verified_at = AwareDateTimeField(read_only=True, allow_null=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "incident",
            "description",
            "owner",
            "due_at",
            "status",
            "resolution",
            "done_at",
            "overdue",
            "created_at",
            "created_by",
            "verified_at",
            "verified_by",
            "verification_note",
        ]
        read_only_fields = fields

    def get_overdue(self, item: ActionItem) -> bool:
        return item.is_overdue_at(self.context.get("now"))


class _UsernameField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            slug_field="username",
            queryset=get_user_model().objects.filter(is_active=True),
            allow_null=True,
            required=False,
            **kwargs,
        )


class ActionItemCreateBody(StrictSerializer):
    """Body of ``POST /api/incidents/{id}/action-items/``: ``description``, optional ``owner``
    (an active user's username) and ``due_at`` (with an offset)."""

    description = serializers.CharField()
    owner = _UsernameField()
    due_at = AwareDateTimeField(required=False, allow_null=True)


class ActionItemChangeBody(StrictSerializer):
    """Body of ``PATCH /api/action-items/{id}/``: any of ``description``, ``owner``,
    ``due_at``, ``status`` and ``resolution`` (required to settle an item)."""

    description = serializers.CharField(required=False)
    owner = _UsernameField()
    due_at = AwareDateTimeField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=ActionItem.Status.choices, required=False)
    resolution = serializers.CharField(required=False, allow_blank=True)


class DrillParticipantSerializer(serializers.ModelSerializer):
    class Meta:
        model = DrillParticipant
        fields = ["function", "name"]


class DrillSerializer(serializers.ModelSerializer):
    """A drill record. ``time_to_declare_seconds`` and ``time_to_notify_seconds``: measured
    when the drill is completed (exact elapsed seconds; null when it did not get that far)."""

    incident: serializers.PrimaryKeyRelatedField[Incident] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    reference = serializers.CharField(source="incident.reference", read_only=True)
    participants = DrillParticipantSerializer(many=True, read_only=True)
    time_to_declare_seconds = serializers.SerializerMethodField()
    time_to_notify_seconds = serializers.SerializerMethodField()
    completed_at = AwareDateTimeField(read_only=True, allow_null=True)
    completed_by = username_field(allow_null=True)

    class Meta:
        model = Drill
        fields = [
            "incident",
            "reference",
            "scenario",
            "held_on",
            "objectives",
            "participants",
            "outcome",
            "time_to_declare_seconds",
            "time_to_notify_seconds",
            "completed_at",
            "completed_by",
        ]
        read_only_fields = fields

    def get_time_to_declare_seconds(self, drill: Drill) -> float | None:
        return drill.time_to_declare.total_seconds() if drill.time_to_declare is not None else None

    def get_time_to_notify_seconds(self, drill: Drill) -> float | None:
        return drill.time_to_notify.total_seconds() if drill.time_to_notify is not None else None


class DrillBody(StrictSerializer):
    """Body of ``PUT /api/incidents/{id}/drill/``: ``scenario``, ``held_on`` (YYYY-MM-DD),
    ``objectives`` and ``participants`` (``[{"function", "name"}]``)."""

    scenario = serializers.CharField()
    held_on = serializers.DateField()
    objectives = serializers.CharField(required=False, allow_blank=True, default="")
    participants = DrillParticipantSerializer(many=True, required=False, default=list)


class DrillCompleteBody(StrictSerializer):
    """Body of ``POST /api/incidents/{id}/drill/complete/``: ``outcome``."""

    outcome = serializers.CharField()
