"""Forms of the dashboard pages: the board's filters, customers and contacts, the customer CSV
import, and the metrics' period. They validate input; the views call one service with it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from dashboard.board import SORTS
from incidents.forms import ZonedDateTimeField
from incidents.models import OPEN_STATES, Contact, Customer, Incident, IncidentState


def incident_handlers() -> QuerySet:
    """Active users who may own an incident: responders, incident managers, superusers."""
    return (
        get_user_model()
        .objects.filter(
            Q(groups__name__in=["responder", "incident_manager"]) | Q(is_superuser=True), is_active=True
        )
        .distinct()
        .order_by("username")
    )


class BoardFilterForm(forms.Form):
    """The board's filters and sort, all in the query string so a view can be shared."""

    q = forms.CharField(
        required=False, max_length=200, label="Search", help_text="Reference, title or customer."
    )
    state = forms.ChoiceField(
        required=False,
        choices=[("", "any open state")] + [(s, IncidentState(s).label) for s in OPEN_STATES],
    )
    severity = forms.ChoiceField(required=False, choices=[("", "any severity"), *Incident.Severity.choices])
    scenario = forms.ChoiceField(required=False, choices=[("", "any scenario"), *Incident.Scenario.choices])
    detection_source = forms.ChoiceField(
        required=False,
        choices=[("", "any source"), *Incident.DetectionSource.choices],
        label="Detection source",
    )
    customer = forms.CharField(required=False, max_length=200, help_text="Account reference or name.")
    owner = forms.ModelChoiceField(
        required=False, queryset=incident_handlers(), empty_label="anyone", to_field_name="username"
    )
    drill = forms.ChoiceField(
        required=False,
        choices=[("", "real and drills"), ("real", "real only"), ("drill", "drills only")],
        label="Drill or real",
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))

    def clean_q(self) -> str:
        value = self.cleaned_data["q"]
        if "\x00" in value:
            raise forms.ValidationError("Search text cannot contain NUL.")
        return value

    def clean_customer(self) -> str:
        value = self.cleaned_data["customer"]
        if "\x00" in value:
            raise forms.ValidationError("Customer cannot contain NUL.")
        return value


class CustomerForm(forms.ModelForm):
    """A customer's own fields (``services.customer_save`` validates the whole row)."""

    class Meta:
        model = Customer
        fields = ["name", "account_reference", "country", "preferred_language", "notification_window_hours"]
        labels = {"notification_window_hours": "Notification window (hours)"}
        help_texts = {
            "notification_window_hours": "The contract's window for our initial notice after declaration, 1 to 72."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from django.conf import settings

        self.fields["preferred_language"] = forms.ChoiceField(
            choices=settings.LANGUAGES, label="Preferred language", initial="en"
        )

    def clean_country(self) -> str:
        return self.cleaned_data["country"].upper()


class ContactForm(forms.ModelForm):
    """A contact of a customer (``services.contact_create`` and ``contact_update``)."""

    class Meta:
        model = Contact
        fields = ["name", "email", "role", "language", "is_active"]
        labels = {"is_active": "Active (receives notices)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from django.conf import settings

        self.fields["language"] = forms.ChoiceField(
            choices=[("", "the customer's preferred language"), *settings.LANGUAGES], required=False
        )


class CustomerImportForm(forms.Form):
    """A CSV file in ``import_customers``'s format (one row per contact)."""

    file = forms.FileField(label="CSV file", help_text="UTF-8, a header row, one row per contact.")


def _month(value: str) -> date:
    try:
        parsed = datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        try:
            parsed = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise forms.ValidationError("Give a month as YYYY-MM (or a date as YYYY-MM-DD).") from None
    return parsed.date().replace(day=1)


class MonthField(forms.Field):
    """A month as ``YYYY-MM`` (a date ``YYYY-MM-DD`` names its month); cleans to the month's
    first day (``None`` when empty)."""

    def to_python(self, value: Any) -> date | None:
        text = str(value or "").strip()
        return _month(text) if text else None


class MetricsPeriodForm(forms.Form):
    """``from`` and ``to`` (months, inclusive; default: the last 12 months) and whether drills
    count (``drills=1``; default: they do not)."""

    from_month = MonthField(required=False, label="From (month)")
    to_month = MonthField(required=False, label="To (month)")
    drills = forms.BooleanField(required=False, label="Include drills")

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        if data is not None:
            data = {
                "from_month": data.get("from", ""),
                "to_month": data.get("to", ""),
                "drills": data.get("drills", ""),
            }
        super().__init__(data, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("from_month"), cleaned.get("to_month")
        if start and end and start > end:
            raise forms.ValidationError("The period ends before it starts.")
        return cleaned


__all__ = [
    "BoardFilterForm",
    "ContactForm",
    "CustomerForm",
    "CustomerImportForm",
    "MetricsPeriodForm",
    "ZonedDateTimeField",
    "incident_handlers",
]


class MyWorkForm(forms.Form):
    """The "my work" page's horizon: what falls due within ``days`` days (1 to 3,650; default
    30). Overdue items are always listed."""

    days = forms.IntegerField(min_value=1, max_value=3650, required=False, label="Due within (days)")
