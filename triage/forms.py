"""The triage form: the scope decision, malicious or not, the ENISA severity inputs, the facts
for the notification assessment and an optional override.

It validates the shape of the input only; ``triage.services.assessment_record`` owns every rule
(what each scope needs, the override's justification) and its errors are shown on the fields
they name. Instants are read in ``settings.DISPLAY_TIME_ZONE`` (``ZonedDateTimeField``).
"""

from __future__ import annotations

from typing import Any

from django import forms

from incidents.forms import ZonedDateTimeField
from incidents.models import DataCategory, Incident
from triage.inputs import (
    BREACH_TYPE_CHOICES,
    CONSEQUENCE_CHOICES,
    DPC_FACTOR_CHOICES,
    ENISA_CATEGORY_CHOICES,
    EXFILTRATION_CHOICES,
    LEVEL_CHOICES,
)
from triage.models import Assessment

_NOT_KNOWN = "not known"


def _with_empty(choices: list[tuple[str, str]], empty: str = "—") -> list[tuple[str, str]]:
    return [("", empty), *choices]


def _known(label: str, help_text: str = "") -> forms.NullBooleanField:
    """A yes / no / not known question (``None`` when not known)."""
    widget = forms.NullBooleanSelect()
    widget.choices = [("unknown", _NOT_KNOWN), ("true", "yes"), ("false", "no")]
    return forms.NullBooleanField(label=label, required=False, help_text=help_text, widget=widget)


#: DPC factor field name -> factor value; raising factors move up to +3, lowering ones to -3.
DPC_FIELDS: dict[str, str] = {f"dpc_{value}": value for value, _ in DPC_FACTOR_CHOICES}


def _dpc_field(label: str) -> forms.TypedChoiceField:
    sign = "−" if "(lowers)" in label else "+"
    return forms.TypedChoiceField(
        label=label,
        required=False,
        coerce=int,
        # django-stubs types empty_value as str | None; Django takes any value, and 0 is "none".
        empty_value=0,  # type: ignore[arg-type]
        choices=[(0, "does not apply")] + [(steps, f"{sign}{steps}") for steps in (1, 2, 3)],
    )


class AssessmentForm(forms.Form):
    """One assessment of an incident (``assessment_record``'s inputs)."""

    # The scope decision.
    scope = forms.ChoiceField(
        choices=Assessment.Scope.choices, widget=forms.RadioSelect, label="Scope decision"
    )
    scope_rationale = forms.CharField(
        label="Rationale of the scope decision", widget=forms.Textarea(attrs={"rows": 3})
    )
    out_of_scope_category = forms.ChoiceField(
        choices=_with_empty(Incident.OutOfScopeCategory.choices),
        required=False,
        label="Out-of-scope category",
        help_text="Only when out of scope.",
    )
    customer_event_category = forms.ChoiceField(
        choices=_with_empty(Assessment.CustomerEventCategory.choices),
        required=False,
        label="Customer-driven event",
        help_text="Only for a customer-driven event.",
    )
    customer_informed_at = ZonedDateTimeField(
        required=False,
        label="Customer informed of our observation at",
        help_text="Only for a customer-driven event.",
    )
    help_offered = forms.CharField(
        required=False,
        label="Help offered on request",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Only for a customer-driven event.",
    )

    # Malicious or not; preliminary investigation; scenario.
    malicious = forms.ChoiceField(
        choices=_with_empty(Incident.Malicious.choices),
        required=False,
        label="Malicious",
        help_text="Yes adds malicious intent to the ENISA circumstances (+0.5).",
    )
    malicious_basis = forms.CharField(required=False, label="Basis", widget=forms.Textarea(attrs={"rows": 2}))
    findings = forms.CharField(
        required=False,
        label="Preliminary investigation findings",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    scenario = forms.ChoiceField(
        choices=_with_empty(Incident.Scenario.choices),
        required=False,
        label="Scenario",
        help_text="Its playbook becomes the response tasks.",
    )

    # ENISA 2013 severity.
    data_categories = forms.MultipleChoiceField(
        choices=DataCategory.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Data categories involved",
        help_text="The highest ENISA category present counts.",
    )
    credentials_give_access_to = forms.ChoiceField(
        choices=_with_empty(ENISA_CATEGORY_CHOICES),
        required=False,
        label="Credentials give access to",
        help_text="ENISA scores credentials as the data they unlock.",
    )
    ease_of_identification = forms.ChoiceField(
        choices=_with_empty(LEVEL_CHOICES["ease_of_identification"]),
        required=False,
        label="Ease of identification (EI)",
    )
    confidentiality_loss = forms.ChoiceField(
        choices=LEVEL_CHOICES["confidentiality_loss"],
        initial="none",
        label="Loss of confidentiality",
    )
    integrity_loss = forms.ChoiceField(
        choices=LEVEL_CHOICES["integrity_loss"], initial="none", label="Loss of integrity"
    )
    availability_loss = forms.ChoiceField(
        choices=LEVEL_CHOICES["availability_loss"], initial="none", label="Loss of availability"
    )
    dpc_data_volume = _dpc_field(dict(DPC_FACTOR_CHOICES)["data_volume"])
    dpc_controller_characteristics = _dpc_field(dict(DPC_FACTOR_CHOICES)["controller_characteristics"])
    dpc_individuals_characteristics = _dpc_field(dict(DPC_FACTOR_CHOICES)["individuals_characteristics"])
    dpc_invalid_or_inaccurate = _dpc_field(dict(DPC_FACTOR_CHOICES)["invalid_or_inaccurate"])
    dpc_publicly_available = _dpc_field(dict(DPC_FACTOR_CHOICES)["publicly_available"])
    dpc_nature_reveals_less = _dpc_field(dict(DPC_FACTOR_CHOICES)["nature_reveals_less"])
    override_band = forms.ChoiceField(
        choices=_with_empty(Incident.Severity.choices, "no override: use the computed band"),
        required=False,
        label="Override the computed band",
    )
    override_justification = forms.CharField(
        required=False,
        label="Justification of the override",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    # Facts for the GDPR notification assessment.
    breach_types = forms.MultipleChoiceField(
        choices=BREACH_TYPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Type of breach",
    )
    individuals = forms.IntegerField(
        required=False, min_value=0, label="People affected", help_text="Empty: not known."
    )
    special_categories = _known("Special-category data (GDPR Art. 9 or 10)")
    vulnerable_individuals = _known("Vulnerable people (children, patients)")
    exfiltration = forms.ChoiceField(
        choices=_with_empty(EXFILTRATION_CHOICES, _NOT_KNOWN),
        required=False,
        label="Data copied out",
    )
    data_unintelligible_to_recipient = _known(
        "Data unintelligible to others",
        "State-of-the-art encryption or hashing, key not compromised.",
    )
    recipients_known_and_trusted = _known("Recipients known, bound to confidentiality, confirmed deletion")
    backup_available = _known("An up-to-date backup exists")
    unavailability_hours = forms.FloatField(
        required=False, min_value=0, max_value=999_999, label="Data unavailable for (hours)"
    )
    data_permanently_lost = forms.BooleanField(required=False, label="The data cannot be restored")
    likely_consequences = forms.MultipleChoiceField(
        choices=CONSEQUENCE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Likely consequences for the people",
        help_text="None ticked: not assessed yet.",
    )
    high_risk_no_longer_likely = _known(
        "Measures taken since make a high risk no longer likely", "GDPR Art. 34(3)(b)."
    )
    individual_communication_disproportionate = _known(
        "Telling each person would take disproportionate effort", "GDPR Art. 34(3)(c)."
    )

    #: How the page groups the fields: (heading, field names).
    SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
        (
            "Scope decision",
            (
                "scope",
                "scope_rationale",
                "out_of_scope_category",
                "customer_event_category",
                "customer_informed_at",
                "help_offered",
            ),
        ),
        ("Preliminary investigation", ("malicious", "malicious_basis", "findings", "scenario")),
        (
            "ENISA severity",
            (
                "data_categories",
                "credentials_give_access_to",
                *DPC_FIELDS,
                "ease_of_identification",
                "confidentiality_loss",
                "integrity_loss",
                "availability_loss",
                "override_band",
                "override_justification",
            ),
        ),
        (
            "Notification assessment (GDPR Art. 33 and 34)",
            (
                "breach_types",
                "individuals",
                "special_categories",
                "vulnerable_individuals",
                "exfiltration",
                "data_unintelligible_to_recipient",
                "recipients_known_and_trusted",
                "backup_available",
                "unavailability_hours",
                "data_permanently_lost",
                "likely_consequences",
                "high_risk_no_longer_likely",
                "individual_communication_disproportionate",
            ),
        ),
    )

    #: Fields that only the scope they belong to hands to the service.
    SCOPE_ONLY: dict[str, str] = {
        "out_of_scope_category": Assessment.Scope.OUT_OF_SCOPE,
        "customer_event_category": Assessment.Scope.CUSTOMER_EVENT,
        "customer_informed_at": Assessment.Scope.CUSTOMER_EVENT,
        "help_offered": Assessment.Scope.CUSTOMER_EVENT,
    }

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The bound fields grouped under headings, in page order."""
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]

    @staticmethod
    def initial_for(incident: Incident, latest: Assessment | None) -> dict[str, Any]:
        """Initial values: the latest assessment's inputs, or else what the incident records
        (data categories, malicious, scenario, records affected as people affected)."""
        if latest is None:
            return {
                "data_categories": incident.data_categories or [],
                "malicious": incident.malicious or "",
                "scenario": incident.scenario or "",
                "individuals": incident.records_affected,
            }
        initial: dict[str, Any] = {
            name: getattr(latest, name)
            for name in (
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
            )
        }
        severity = latest.severity_inputs or {}
        facts = latest.notification_facts or {}
        initial["data_categories"] = severity.get("data_categories") or facts.get("data_categories") or []
        for name in ("credentials_give_access_to", *LEVEL_CHOICES):
            if severity.get(name):
                initial[name] = severity[name]
        for adjustment in severity.get("dpc_adjustments", []):
            initial[f"dpc_{adjustment['factor']}"] = adjustment["steps"]
        for name, value in facts.items():
            if name in ("data_categories", "malicious"):
                continue
            initial[name] = value
        return initial

    def severity_inputs(self) -> dict[str, Any] | None:
        """The severity inputs as ``triage.inputs`` reads them; ``None`` when nothing of the
        severity part was filled in (no data category and no ease of identification)."""
        data = self.cleaned_data
        if not data.get("data_categories") and not data.get("ease_of_identification"):
            return None
        return {
            "credentials_give_access_to": data.get("credentials_give_access_to") or None,
            "dpc_adjustments": [
                {"factor": factor, "steps": data[name]}
                for name, factor in DPC_FIELDS.items()
                if data.get(name)
            ],
            "ease_of_identification": data.get("ease_of_identification") or None,
            "confidentiality_loss": data.get("confidentiality_loss") or "none",
            "integrity_loss": data.get("integrity_loss") or "none",
            "availability_loss": data.get("availability_loss") or "none",
        }

    def notification_facts(self) -> dict[str, Any] | None:
        """The notification facts as ``triage.inputs`` reads them; ``None`` when no breach type
        was ticked."""
        data = self.cleaned_data
        if not data.get("breach_types"):
            return None
        facts = {
            name: data.get(name)
            for name in (
                "breach_types",
                "individuals",
                "special_categories",
                "vulnerable_individuals",
                "data_unintelligible_to_recipient",
                "recipients_known_and_trusted",
                "backup_available",
                "unavailability_hours",
                "high_risk_no_longer_likely",
                "individual_communication_disproportionate",
            )
        }
        facts["exfiltration"] = data.get("exfiltration") or None
        facts["data_permanently_lost"] = bool(data.get("data_permanently_lost"))
        facts["likely_consequences"] = data.get("likely_consequences") or None
        return facts

    def service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``assessment_record`` (without incident and actor). Fields
        that belong to another scope than the one chosen are left out, so switching the scope
        on the page does not trip over what was typed for the other one."""
        data = self.cleaned_data
        scope = data["scope"]
        kwargs: dict[str, Any] = {
            "scope": scope,
            "scope_rationale": data["scope_rationale"],
            "malicious": data.get("malicious") or "",
            "malicious_basis": data.get("malicious_basis") or "",
            "findings": data.get("findings") or "",
            "scenario": data.get("scenario") or "",
            "data_categories": data.get("data_categories") or [],
            "severity_inputs": self.severity_inputs(),
            "notification_facts": self.notification_facts(),
            "override_band": data.get("override_band") or "",
            "override_justification": data.get("override_justification") or "",
        }
        for name, only_for in self.SCOPE_ONLY.items():
            if scope == only_for:
                kwargs[name] = data.get(name) or (None if name == "customer_informed_at" else "")
        return kwargs


class SeverityPreviewForm(AssessmentForm):
    """The same form, reduced to what the ENISA severity needs (the no-JavaScript preview)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            self.fields[name].required = False


class TaskUpdateForm(forms.Form):
    """Tick a response task done (``done=1``) or open it again (``done=0``)."""

    done = forms.TypedChoiceField(
        choices=[("1", "done"), ("0", "not done")], coerce=lambda value: value == "1"
    )
