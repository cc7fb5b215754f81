"""Forms of the incident web pages. They validate input only; the views hand the cleaned values
to one service in ``incidents.services``, which owns every rule.

Instants typed into a form are read in ``settings.DISPLAY_TIME_ZONE`` (the field says so) and
handed on as aware UTC instants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.text import format_lazy

from incidents.models import (
    Customer,
    DataCategory,
    DataSubjectCategory,
    Incident,
    IncidentState,
    LikelyConsequence,
)
from incidents.services import EDITABLE_FIELDS
from incidents.templatetags.breachdesk import display_zone

_display_zone_name = lazy(lambda: settings.DISPLAY_TIME_ZONE, str)


class ZonedDateTimeField(forms.DateTimeField):
    """A date and time typed in ``settings.DISPLAY_TIME_ZONE``; cleans to an aware UTC instant.

    Input with an explicit offset (ISO 8601, ``2025-03-30T02:30+02:00``) keeps its offset. A
    wall-clock time that does not exist or is ambiguous in the zone (a DST change) is a form
    error, not a guess. Initial values are shown in the display zone.
    """

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S")

    def __init__(self, **kwargs: Any) -> None:
        # Lazy: the setting is read when the form is shown, not when this module is imported.
        zone_note = format_lazy("Time zone: {}.", _display_zone_name())
        help_text = kwargs.get("help_text") or ""
        kwargs["help_text"] = format_lazy("{} {}", help_text, zone_note) if help_text else zone_note
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(display_zone()):
            result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(display_zone()).replace(tzinfo=None, microsecond=0)
        return value


class IncidentFilter(django_filters.FilterSet):
    """The incident list's filters: ``state``, ``severity``, ``detection_source`` (exact
    values), ``drill`` (``real`` or ``drill``) and ``q``, a case-insensitive search over
    reference, title and summary."""

    q = django_filters.CharFilter(method="search", label="Search")
    state = django_filters.ChoiceFilter(choices=IncidentState.choices, empty_label="any state")
    severity = django_filters.ChoiceFilter(choices=Incident.Severity.choices, empty_label="any severity")
    detection_source = django_filters.ChoiceFilter(
        choices=Incident.DetectionSource.choices, empty_label="any source"
    )
    drill = django_filters.ChoiceFilter(
        field_name="is_drill",
        choices=[("real", "real incidents"), ("drill", "drills")],
        empty_label="real and drills",
        method="filter_drill",
        label="Drill",
    )

    class Meta:
        model = Incident
        fields = ["q", "state", "severity", "detection_source", "drill"]

    def filter_drill(self, queryset: QuerySet[Incident], name: str, value: str) -> QuerySet[Incident]:
        return queryset.filter(is_drill=value == "drill") if value else queryset

    def search(self, queryset: QuerySet[Incident], name: str, value: str) -> QuerySet[Incident]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(reference__icontains=value) | Q(title__icontains=value) | Q(summary__icontains=value)
        )


def _incident_handlers() -> QuerySet:
    """Active users who may own an incident: responders, incident managers, superusers."""
    return (
        get_user_model()
        .objects.filter(
            Q(groups__name__in=["responder", "incident_manager"]) | Q(is_superuser=True),
            is_active=True,
        )
        .distinct()
        .order_by("username")
    )


class IncidentCreateForm(forms.ModelForm):
    """Intake of a new signal; cleaned data goes to ``services.incident_create``."""

    class Meta:
        model = Incident
        fields = [
            "title",
            "summary",
            "detection_source",
            "detected_at",
            "reported_by",
            "scenario",
            "is_drill",
        ]
        field_classes = {"detected_at": ZonedDateTimeField}
        widgets = {"summary": forms.Textarea(attrs={"rows": 4})}
        labels = {"is_drill": "This is a drill"}
        help_texts = {
            "detected_at": "Leave empty if not known.",
            "is_drill": "An exercise: its notices reach drill customers only, and every email says so.",
        }

    def service_fields(self) -> dict[str, Any]:
        """The ``fields`` mapping for ``incident_create`` (only what was filled in)."""
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value not in (None, "") and value is not False
        }


class IncidentEditForm(forms.ModelForm):
    """The facts of an incident (never its state); changed fields go to
    ``services.incident_update``."""

    data_categories = forms.MultipleChoiceField(
        choices=DataCategory.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: not yet known.",
    )
    data_subject_categories = forms.MultipleChoiceField(
        choices=DataSubjectCategory.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Categories of data subjects",
        help_text="None ticked: not yet known.",
    )
    likely_consequences = forms.MultipleChoiceField(
        choices=LikelyConsequence.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For the data subjects (GDPR Art. 33(3)(c)). None ticked: not yet known.",
    )

    class Meta:
        model = Incident
        fields = list(EDITABLE_FIELDS)
        field_classes = {
            "detected_at": ZonedDateTimeField,
            "exposure_started_at": ZonedDateTimeField,
            "exposure_ended_at": ZonedDateTimeField,
        }
        widgets = {
            "summary": forms.Textarea(attrs={"rows": 4}),
            "nature_of_breach": forms.Textarea(attrs={"rows": 4}),
            "mitigation_measures": forms.Textarea(attrs={"rows": 4}),
            "adverse_effect_measures": forms.Textarea(attrs={"rows": 3}),
            "sub_processor_details": forms.Textarea(attrs={"rows": 3}),
            "occurred_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "products": forms.CheckboxSelectMultiple,
        }
        labels = {
            "occurred_on_precision": "How precise is that date",
            "is_drill": "This is a drill",
            "nature_of_breach": "Nature of the breach",
            "records_affected_is_estimate": "The number of records is an estimate",
            "data_subjects_affected": "Data subjects affected (approximate number)",
            "data_subjects_affected_is_estimate": "The number of data subjects is an estimate",
            "adverse_effect_measures": "Measures to mitigate possible adverse effects",
            "incident_figures_shareable": "Notices may state the incident-wide figures",
            "sub_processor": "Sub-processor",
            "sub_processor_details": "Sub-processor details",
        }
        help_texts = {
            "detected_at": "Leave empty if not known.",
            "exposure_started_at": "Leave empty if not known.",
            "exposure_ended_at": "Leave empty if not known.",
        }

    #: How the page groups the fields: (heading, field names).
    SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
        (
            "Facts",
            (
                "title",
                "summary",
                "detection_source",
                "detected_at",
                "occurred_on",
                "occurred_on_precision",
                "reported_by",
                "owner",
                "is_drill",
            ),
        ),
        ("Assessment", ("scenario", "severity", "malicious")),
        (
            "The breach (what customer notices say)",
            (
                "nature_of_breach",
                "data_categories",
                "data_subject_categories",
                "data_subjects_affected",
                "data_subjects_affected_is_estimate",
                "records_affected",
                "records_affected_is_estimate",
                "incident_figures_shareable",
                "exposure_started_at",
                "exposure_ended_at",
                "products",
                "sub_processor",
                "sub_processor_details",
                "likely_consequences",
                "mitigation_measures",
                "adverse_effect_measures",
            ),
        ),
    )

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The bound fields grouped under headings, in page order."""
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = _incident_handlers()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        started, ended = cleaned.get("exposure_started_at"), cleaned.get("exposure_ended_at")
        if started and ended and ended < started:
            # Said here on the field; the model's check constraint would name only itself.
            self.add_error("exposure_ended_at", "The exposure cannot end before it started.")
        return cleaned

    def service_changes(self) -> dict[str, Any]:
        """The ``changes`` mapping for ``incident_update``: only the fields that changed;
        an empty data category list means unknown (``None``)."""
        changes = {name: self.cleaned_data[name] for name in self.changed_data}
        for name in ("data_categories", "data_subject_categories", "likely_consequences"):
            if name in changes:
                changes[name] = changes[name] or None
        if "products" in changes:
            changes["products"] = list(changes["products"])
        return changes


#: The largest count a PositiveBigIntegerField stores on every supported database.
MAX_RECORD_COUNT = 2**63 - 1


class AffectedCustomerAddForm(forms.Form):
    """Record a customer as affected, by its account reference (any letter case) or its exact
    name; the page offers the known customers as suggestions."""

    account_reference = forms.CharField(
        max_length=200,
        label="Customer (account reference or name)",
        widget=forms.TextInput(attrs={"list": "customer-suggestions", "autocomplete": "off"}),
    )
    records_affected = forms.IntegerField(
        min_value=0, max_value=MAX_RECORD_COUNT, required=False, label="Records affected (this customer)"
    )
    records_affected_is_estimate = forms.BooleanField(required=False, label="The records are an estimate")
    data_subjects_affected = forms.IntegerField(
        min_value=0,
        max_value=MAX_RECORD_COUNT,
        required=False,
        label="Data subjects affected (this customer)",
    )
    data_subjects_affected_is_estimate = forms.BooleanField(
        required=False, label="The data subjects are an estimate"
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def figures(self) -> dict[str, Any]:
        """The customer's own figures for ``affected_customer_add`` (told to it only)."""
        return {
            name: self.cleaned_data[name]
            for name in (
                "records_affected",
                "records_affected_is_estimate",
                "data_subjects_affected",
                "data_subjects_affected_is_estimate",
            )
        }

    def clean_account_reference(self) -> Customer:
        given = self.cleaned_data["account_reference"].strip()
        matches = list(
            Customer.objects.filter(Q(account_reference__iexact=given) | Q(name__iexact=given))[:2]
        )
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise forms.ValidationError(
                f"More than one customer matches “{given}”: give the account reference."
            )
        raise forms.ValidationError(f"No customer has the account reference or name “{given}”.")


#: Guard fact name -> how a page names it when it is missing.
MISSING_FACT_LABELS: dict[str, str] = {
    "severity": "a severity",
    "malicious": "whether it was malicious (yes, no or unknown)",
    "out_of_scope_category": "an out-of-scope category",
    "scope_rationale": "a rationale",
    "customer_informed_at": "when the customer was informed",
    "nature_of_breach": "the nature of the breach",
    "affected_customers": "at least one affected customer",
    "post_mortem.completed": "the post-mortem completed",
    "post_mortem.action_items": "every post-mortem action item done or its risk accepted",
    "response_tasks": "every playbook task done",
    "withholdings": "every withheld detail released",
}


def describe_missing(fact: str, transition_name: str = "") -> str:
    """How a page names a missing guard fact (a ``lifecycle.missing_for`` name) of
    ``transition_name``."""
    if fact == "affected_customers" and transition_name == "mark_notified":
        return "every affected customer's initial notice delivered or recorded as undeliverable"
    return MISSING_FACT_LABELS.get(fact, fact.replace("_", " "))


def _choices(choices: list[tuple[str, str]], empty: str = "—") -> list[tuple[str, str]]:
    return [("", empty), *choices]


class TransitionForm(forms.Form):
    """Inputs of one lifecycle transition; an empty field means "keep what is recorded".

    ``guard_fields`` maps guard fact names (``lifecycle.missing_for``) to this form's fields so
    a guard failure is shown on the field that can fix it.
    """

    button_label: str = ""
    guard_fields: dict[str, str] = {}

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        self.incident = incident
        super().__init__(*args, **kwargs)

    def service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the transition's service (without incident and actor)."""
        return {
            name: value.strip() if isinstance(value, str) else value
            for name, value in self.cleaned_data.items()
            if value not in (None, "") and not (isinstance(value, str) and not value.strip())
        }

    def field_for_fact(self, fact: str) -> str | None:
        """The field of this form that supplies guard fact ``fact``, or ``None``."""
        name = self.guard_fields.get(fact, fact)
        return name if name in self.fields else None


class TriageForm(TransitionForm):
    button_label = "Triage"

    severity = forms.ChoiceField(choices=_choices(Incident.Severity.choices), required=False)
    malicious = forms.ChoiceField(choices=_choices(Incident.Malicious.choices), required=False)
    scenario = forms.ChoiceField(choices=_choices(Incident.Scenario.choices), required=False)

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "severity": incident.severity,
                "malicious": incident.malicious,
                "scenario": incident.scenario,
            },
        )
        super().__init__(*args, incident=incident, **kwargs)


class RuleOutOfScopeForm(TransitionForm):
    button_label = "Rule out of scope"

    out_of_scope_category = forms.ChoiceField(
        choices=_choices(Incident.OutOfScopeCategory.choices), required=False, label="Category"
    )
    scope_rationale = forms.CharField(
        required=False, label="Rationale", widget=forms.Textarea(attrs={"rows": 2})
    )


class ClassifyAsCustomerEventForm(TransitionForm):
    button_label = "Classify as customer-driven event"

    scope_rationale = forms.CharField(
        required=False, label="Rationale", widget=forms.Textarea(attrs={"rows": 2})
    )
    customer_informed_at = ZonedDateTimeField(required=False, label="Customer informed at")


class DeclareForm(TransitionForm):
    button_label = "Declare a personal data breach"

    nature_of_breach = forms.CharField(
        required=False, label="Nature of the breach", widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"nature_of_breach": incident.nature_of_breach})
        super().__init__(*args, incident=incident, **kwargs)


class MarkNotifiedForm(TransitionForm):
    button_label = "Mark notified"


class BeginPostMortemForm(TransitionForm):
    button_label = "Begin post-mortem"


class CloseForm(TransitionForm):
    """Closing takes no input: its guard (the post-mortem completed with its action items
    settled, playbook tasks done, nothing withheld) is met elsewhere, and the form says what
    is still open."""

    button_label = "Close"


#: Transition name -> the form carrying its guard's inputs.
TRANSITION_FORMS: dict[str, type[TransitionForm]] = {
    "triage": TriageForm,
    "rule_out_of_scope": RuleOutOfScopeForm,
    "classify_as_customer_event": ClassifyAsCustomerEventForm,
    "declare": DeclareForm,
    "mark_notified": MarkNotifiedForm,
    "begin_post_mortem": BeginPostMortemForm,
    "close": CloseForm,
}


class NoteForm(forms.Form):
    """A note on the incident's timeline (``services.note_add``)."""

    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000, label="Note")
    occurred_at = ZonedDateTimeField(
        required=False,
        label="When it happened",
        help_text="If you know; leave empty otherwise. The note also records when you wrote it.",
    )


class RestrictionForm(forms.Form):
    """The incident page's need-to-know form (``incidents.restriction_views``): the usernames
    of the people who may see the incident, separated by spaces or commas."""

    members = forms.CharField(
        required=False,
        max_length=10_000,
        label="Members (usernames)",
        help_text="Separated by spaces or commas.",
    )

    def usernames(self) -> list[str]:
        """The usernames typed, in order, without repeats (after ``is_valid``)."""
        text = self.cleaned_data.get("members") or ""
        return list(dict.fromkeys(name for name in text.replace(",", " ").split() if name))
