"""Serializers of the triage API: they validate input and shape output; they never write.

Input rules as in ``incidents.api.serializers``: unknown or read-only keys are refused with 400
naming them (at every level of a nested body), instants need a timezone offset. Writes go
through ``triage.services``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from incidents.api.serializers import AwareDateTimeField, BlankChoicesMixin, StrictSerializer, username_field
from incidents.models import DataCategory, Incident
from triage.inputs import (
    BREACH_TYPE_CHOICES,
    CONSEQUENCE_CHOICES,
    DPC_FACTOR_CHOICES,
    ENISA_CATEGORY_CHOICES,
    EXFILTRATION_CHOICES,
    LEVEL_CHOICES,
)
from triage.models import Assessment, ResponseTask

# Request bodies --------------------------------------------------------------------------------


class DpcAdjustmentBody(StrictSerializer):
    """One ENISA 2013 contextual factor and its size in DPC steps (1 to 3); raising factors add,
    lowering ones subtract."""

    factor = serializers.ChoiceField(choices=DPC_FACTOR_CHOICES)
    steps = serializers.IntegerField(min_value=1, max_value=3, default=1)


class SeverityInputsBody(StrictSerializer):
    """ENISA 2013 severity inputs (``triage.inputs``). ``ease_of_identification`` is required;
    the three losses default to ``none``; ``credentials_give_access_to`` is needed when the
    data categories include ``credentials``."""

    credentials_give_access_to = serializers.ChoiceField(
        choices=ENISA_CATEGORY_CHOICES, allow_null=True, required=False
    )
    dpc_adjustments = DpcAdjustmentBody(many=True, required=False)
    ease_of_identification = serializers.ChoiceField(choices=LEVEL_CHOICES["ease_of_identification"])
    confidentiality_loss = serializers.ChoiceField(
        choices=LEVEL_CHOICES["confidentiality_loss"], required=False, default="none"
    )
    integrity_loss = serializers.ChoiceField(
        choices=LEVEL_CHOICES["integrity_loss"], required=False, default="none"
    )
    availability_loss = serializers.ChoiceField(
        choices=LEVEL_CHOICES["availability_loss"], required=False, default="none"
    )


def _known(help_text: str) -> serializers.BooleanField:
    return serializers.BooleanField(allow_null=True, required=False, help_text=help_text)


class NotificationFactsBody(StrictSerializer):
    """Facts for the GDPR notification assessment (``triage.inputs``); a missing key or ``null``
    means "not known", which the rules read on the careful side (WP250)."""

    breach_types = serializers.ListField(
        child=serializers.ChoiceField(choices=BREACH_TYPE_CHOICES), min_length=1, max_length=3
    )
    individuals = serializers.IntegerField(
        min_value=0,
        max_value=2**63 - 1,
        allow_null=True,
        required=False,
        help_text="People affected.",
    )
    special_categories = _known("GDPR Art. 9 or 10 data involved.")
    vulnerable_individuals = _known("Children, patients or others needing particular protection.")
    data_unintelligible_to_recipient = _known("State-of-the-art encryption, key not compromised.")
    backup_available = _known("An up-to-date backup allows restoring the data.")
    recipients_known_and_trusted = _known("Known recipients bound to confidentiality confirmed deletion.")
    high_risk_no_longer_likely = _known("GDPR Art. 34(3)(b).")
    individual_communication_disproportionate = _known("GDPR Art. 34(3)(c).")
    unavailability_hours = serializers.FloatField(
        min_value=0,
        max_value=999_999,
        allow_null=True,
        required=False,
        help_text="Hours the data were (or will be) unavailable.",
    )
    data_permanently_lost = serializers.BooleanField(required=False, default=False)
    exfiltration = serializers.ChoiceField(choices=EXFILTRATION_CHOICES, allow_null=True, required=False)
    likely_consequences = serializers.ListField(
        child=serializers.ChoiceField(choices=CONSEQUENCE_CHOICES),
        allow_null=True,
        required=False,
        help_text="Null or empty: not assessed yet.",
    )


class AssessmentBody(StrictSerializer):
    """Body of ``POST /api/incidents/{id}/assessments/`` (``triage.services.assessment_record``).

    ``scope`` and ``scope_rationale`` always. ``in_scope`` also needs ``malicious``,
    ``scenario``, ``data_categories`` (at least one), ``severity_inputs`` and
    ``notification_facts``; ``out_of_scope`` needs ``out_of_scope_category``;
    ``customer_event`` needs ``customer_event_category`` and ``customer_informed_at``.
    ``override_band`` needs ``override_justification``.
    """

    scope = serializers.ChoiceField(choices=Assessment.Scope.choices)
    scope_rationale = serializers.CharField()
    out_of_scope_category = serializers.ChoiceField(
        choices=Incident.OutOfScopeCategory.choices, required=False
    )
    customer_event_category = serializers.ChoiceField(
        choices=Assessment.CustomerEventCategory.choices, required=False
    )
    customer_informed_at = AwareDateTimeField(required=False, allow_null=True)
    help_offered = serializers.CharField(required=False, allow_blank=True)
    malicious = serializers.ChoiceField(choices=Incident.Malicious.choices, required=False)
    malicious_basis = serializers.CharField(required=False, allow_blank=True)
    findings = serializers.CharField(required=False, allow_blank=True)
    scenario = serializers.ChoiceField(choices=Incident.Scenario.choices, required=False)
    data_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=DataCategory.choices), required=False
    )
    severity_inputs = SeverityInputsBody(required=False, allow_null=True)
    notification_facts = NotificationFactsBody(required=False, allow_null=True)
    override_band = serializers.ChoiceField(choices=Incident.Severity.choices, required=False)
    override_justification = serializers.CharField(required=False, allow_blank=True)


class SeverityPreviewBody(StrictSerializer):
    """Body of ``POST /api/severity/``: the data categories (at least one), whether it was
    malicious (``yes`` adds ENISA's malicious intent) and the severity inputs."""

    data_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=DataCategory.choices), min_length=1
    )
    malicious = serializers.ChoiceField(choices=Incident.Malicious.choices, required=False, allow_null=True)
    severity_inputs = SeverityInputsBody()


class ResponseTaskPatchBody(StrictSerializer):
    """Body of ``PATCH /api/tasks/{id}/``: ``done`` (true ticks it done, false opens it again)
    and/or ``assignee`` (a username of an active account, or null for nobody)."""

    done = serializers.BooleanField(required=False)
    assignee = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        allow_null=True,
        required=False,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Nothing to change: give done and/or assignee.")
        return attrs


# Responses -------------------------------------------------------------------------------------


class SeverityResultSerializer(serializers.Serializer):
    """An ENISA 2013 severity: ``score`` = ``dpc`` × ``ease_of_identification`` +
    ``circumstances`` (decimals as strings, exact), its ``band``, and the ``reasons``."""

    base_dpc = serializers.IntegerField(help_text="Highest base score of the categories, 1 to 4.")
    dpc = serializers.IntegerField(help_text="After the contextual factors, 1 to 4.")
    ease_of_identification = serializers.DecimalField(max_digits=3, decimal_places=2)
    circumstances = serializers.DecimalField(max_digits=3, decimal_places=2)
    score = serializers.DecimalField(max_digits=4, decimal_places=2)
    band = serializers.ChoiceField(choices=Incident.Severity.choices)
    reasons = serializers.ListField(child=serializers.CharField())


class NotificationReasonSerializer(serializers.Serializer):
    """One step of the notification reasoning: the GDPR article, the finding, the guidance."""

    article = serializers.CharField()
    text = serializers.CharField()
    guidance = serializers.CharField(allow_blank=True)


class NotificationRecommendationSerializer(serializers.Serializer):
    """The notification recommendation (``triage.notification_assessment``)."""

    risk = serializers.ChoiceField(choices=["unlikely", "risk", "high"])
    document_internally = serializers.BooleanField(help_text="Always (GDPR Art. 33(5)).")
    notify_supervisory_authority = serializers.BooleanField(help_text="GDPR Art. 33(1).")
    communicate_to_data_subjects = serializers.BooleanField(help_text="GDPR Art. 34(1).")
    public_communication = serializers.BooleanField(help_text="GDPR Art. 34(3)(c).")
    reasons = NotificationReasonSerializer(many=True)


class AssessmentSerializer(BlankChoicesMixin, serializers.ModelSerializer):
    """One version of an incident's assessment, as stored (read-only).

    ``band``: the band that counts (``override_band`` if set, else ``severity_band``).
    ``severity_inputs`` and ``notification_facts``: the inputs as recorded, with the
    ``data_categories`` and ``malicious`` they were assessed with; null when not assessed.
    """

    assessed_by = username_field()
    assessed_at = AwareDateTimeField(read_only=True)
    customer_informed_at = AwareDateTimeField(read_only=True, allow_null=True)
    band = serializers.CharField(read_only=True, help_text="The band that counts; empty: none.")
    severity_result = SeverityResultSerializer(read_only=True, allow_null=True)
    notification_recommendation = NotificationRecommendationSerializer(read_only=True, allow_null=True)
    severity_inputs = serializers.JSONField(read_only=True, allow_null=True)
    notification_facts = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Assessment
        fields = [
            "id",
            "incident",
            "version",
            "scope",
            "scope_rationale",
            "out_of_scope_category",
            "customer_event_category",
            "customer_informed_at",
            "help_offered",
            "malicious",
            "malicious_basis",
            "findings",
            "scenario",
            "severity_inputs",
            "severity_score",
            "severity_band",
            "severity_result",
            "override_band",
            "override_justification",
            "band",
            "notification_facts",
            "notification_recommendation",
            "assessed_by",
            "assessed_at",
        ]
        read_only_fields = fields


class ResponseTaskSerializer(BlankChoicesMixin, serializers.ModelSerializer):
    """A response task from a scenario playbook. ``due_at``: assessment time + the step's
    hours; ``done``: whether it is ticked done (``done_at``, ``done_by``). Instants in UTC."""

    assignee = username_field()
    done_by = username_field()
    done = serializers.BooleanField(source="is_done", read_only=True)
    due_at = AwareDateTimeField(read_only=True)
    done_at = AwareDateTimeField(read_only=True, allow_null=True)
    created_at = AwareDateTimeField(read_only=True)

    class Meta:
        model = ResponseTask
        fields = [
            "id",
            "incident",
            "scenario",
            "order",
            "description",
            "assignee_role",
            "assignee",
            "due_at",
            "done",
            "done_at",
            "done_by",
            "created_at",
        ]
        read_only_fields = fields
