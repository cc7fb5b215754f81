"""Forms of the post-mortem, action-item and drill pages: they validate input and hand it to
``postmortems.services`` (which holds the rules)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from incidents.forms import ZonedDateTimeField
from postmortems.models import FINDING_FIELDS, ActionItem, DrillParticipant, PostMortem

_SUFFICIENT_CHOICES = [("", "not decided yet"), ("yes", "Yes"), ("no", "No")]
FINDING_LABELS = {
    "timeline_summary": "Timeline summary",
    "root_cause": "Root cause",
    "contributing_factors": "Contributing factors",
    "what_went_well": "What went well",
    "what_did_not_go_well": "What did not go well",
    "procedure_changes": "Procedure changes required",
    "findings": "Other findings",
}
#: Labels of every field a post-mortem's completion may name as missing.
FIELD_LABELS = {
    **FINDING_LABELS,
    "response_sufficient": "Was the response sufficient?",
    "procedures_sufficient": "Were the operating procedures sufficient?",
}
#: How many customer-summary statements the page offers at once.
SUMMARY_ROWS = 5


def _staff() -> QuerySet[Any]:
    """Active users who may own an action item (people who work incidents)."""
    return (
        get_user_model()
        .objects.filter(
            Q(groups__name__in=["responder", "incident_manager"]) | Q(is_superuser=True), is_active=True
        )
        .distinct()
        .order_by("username")
    )


class SufficientField(forms.TypedChoiceField):
    """Yes, no, or not decided yet (``True``, ``False``, ``None``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            choices=_SUFFICIENT_CHOICES,
            coerce=lambda value: {"yes": True, "no": False}.get(value),
            empty_value=None,
            required=False,
            **kwargs,
        )


def _as_choice(value: bool | None) -> str:
    if value is None:
        return ""
    return "yes" if value else "no"


class PostMortemForm(forms.Form):
    """A draft post-mortem's findings, the two sufficiency answers and up to ``SUMMARY_ROWS``
    customer-summary statements (each naming the finding it comes from)."""

    timeline_summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    root_cause = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    contributing_factors = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    what_went_well = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    what_did_not_go_well = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    response_sufficient = SufficientField(label="Was the response sufficient?")
    procedures_sufficient = SufficientField(label="Were the operating procedures sufficient?")
    procedure_changes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    findings = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, post_mortem: PostMortem | None = None, **kwargs: Any) -> None:
        if post_mortem is not None and "data" not in kwargs and not args:
            initial: dict[str, Any] = {name: getattr(post_mortem, name) for name in FINDING_FIELDS}
            initial["response_sufficient"] = _as_choice(post_mortem.response_sufficient)
            initial["procedures_sufficient"] = _as_choice(post_mortem.procedures_sufficient)
            for number, statement in enumerate(post_mortem.summary_statements.all()):
                initial[f"summary_{number}_text"] = statement.text
                initial[f"summary_{number}_finding"] = statement.finding
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        for name, label in FINDING_LABELS.items():
            self.fields[name].label = label
        finding_choices = [("", "—"), *((name, FINDING_LABELS[name]) for name in FINDING_FIELDS)]
        for number in range(SUMMARY_ROWS):
            self.fields[f"summary_{number}_text"] = forms.CharField(
                required=False, label=f"Statement {number + 1}", widget=forms.Textarea(attrs={"rows": 2})
            )
            self.fields[f"summary_{number}_finding"] = forms.ChoiceField(
                required=False, choices=finding_choices, label="comes from"
            )

    def summary_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"summary_{n}_text"], self[f"summary_{n}_finding"]) for n in range(SUMMARY_ROWS)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for number in range(SUMMARY_ROWS):
            text = (cleaned.get(f"summary_{number}_text") or "").strip()
            finding = cleaned.get(f"summary_{number}_finding")
            if text and not finding:
                self.add_error(f"summary_{number}_finding", "Say which finding this statement comes from.")
            if finding and not text:
                self.add_error(f"summary_{number}_text", "Write the statement, or clear its finding.")
        return cleaned

    def changes(self) -> dict[str, Any]:
        """The service's ``changes``: every field, the summary as ``[{"text", "finding"}]``."""
        data = self.cleaned_data
        changes: dict[str, Any] = {name: data[name].strip() for name in FINDING_FIELDS}
        changes["response_sufficient"] = data["response_sufficient"]
        changes["procedures_sufficient"] = data["procedures_sufficient"]
        changes["customer_summary"] = [
            {"text": data[f"summary_{n}_text"].strip(), "finding": data[f"summary_{n}_finding"]}
            for n in range(SUMMARY_ROWS)
            if (data.get(f"summary_{n}_text") or "").strip()
        ]
        return changes


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Review note")


class SummaryIntoNoticeForm(forms.Form):
    notice = forms.IntegerField(min_value=1, label="Notice number")


class ActionItemForm(forms.Form):
    """A new action item: what, who and by when."""

    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    owner = forms.ModelChoiceField(queryset=_staff(), required=False, to_field_name="username")
    due_at = ZonedDateTimeField(required=False, label="Due")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = _staff()


class ActionItemStatusForm(forms.Form):
    """Settle an action item (done, or its risk accepted with a reason) or open it again."""

    status = forms.ChoiceField(choices=ActionItem.Status.choices)
    resolution = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="What was done, or why"
    )


class VerifyForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="What was checked")


#: How many participants the drill form offers at once.
PARTICIPANT_ROWS = 8


class DrillForm(forms.Form):
    """A drill's record: scenario, date, objectives and participants by function."""

    scenario = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    held_on = forms.DateField(label="Held on", widget=forms.DateInput(attrs={"type": "date"}))
    objectives = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        functions = [("", "—"), *DrillParticipant.Function.choices]
        for number in range(PARTICIPANT_ROWS):
            self.fields[f"participant_{number}_function"] = forms.ChoiceField(
                required=False, choices=functions, label=f"Participant {number + 1}"
            )
            self.fields[f"participant_{number}_name"] = forms.CharField(required=False, label="name")

    def participant_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"participant_{n}_function"], self[f"participant_{n}_name"])
            for n in range(PARTICIPANT_ROWS)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for number in range(PARTICIPANT_ROWS):
            function = cleaned.get(f"participant_{number}_function")
            name = (cleaned.get(f"participant_{number}_name") or "").strip()
            if bool(function) != bool(name):
                self.add_error(f"participant_{number}_name", "Give both the function and the name.")
        return cleaned

    def participants(self) -> list[dict[str, str]]:
        data = self.cleaned_data
        return [
            {"function": data[f"participant_{n}_function"], "name": data[f"participant_{n}_name"].strip()}
            for n in range(PARTICIPANT_ROWS)
            if data.get(f"participant_{n}_function")
        ]


class DrillCompleteForm(forms.Form):
    outcome = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
