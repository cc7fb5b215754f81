"""Forms of the customer-notification pages: clocks, notices, withheld details, deliveries.

They validate input only; the views in ``notifications.views`` hand the cleaned values to one
service in ``notifications.services``, which owns every rule (who may, when, what is refused).
Instants typed into a form are read in ``settings.DISPLAY_TIME_ZONE`` (the field says so) and
handed on as aware UTC instants.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from incidents.forms import ZonedDateTimeField
from notifications.models import NOTICE_FIELDS, Notice, Withholding
from notifications.rendering import FIELD_LABELS
from notifications.services import TRANSLATABLE_LABELS

#: ``(field, label)`` choices for the breach fields of a notice, in notice order.
NOTICE_FIELD_CHOICES: list[tuple[str, str]] = [(name, str(FIELD_LABELS[name])) for name in NOTICE_FIELDS]


def _reason_field(label: str, help_text: str = "") -> forms.CharField:
    # strip=True: a reason of only spaces is empty, and "required" says so before any service.
    return forms.CharField(
        label=label, help_text=help_text, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )


class LateReasonForm(forms.Form):
    """Why a clock was met late (``clock_record_late_reason``; GDPR Art. 33(1))."""

    reason = _reason_field("Reason for the delay")


class ClockWaiveForm(forms.Form):
    """Acknowledge that a clock cannot be met (``clock_waive``)."""

    reason = _reason_field("Why this deadline cannot be met")


class ClockRestartForm(forms.Form):
    """Move a clock's start (``clock_restart``); the due time follows in exact elapsed hours."""

    starts_at = ZonedDateTimeField(label="New start")
    reason = _reason_field("Why the start moves")


class NoticeForm(forms.Form):
    """The written parts of a notice: its kind and what people write (``notice_draft``,
    ``notice_update_draft``). The breach fields come from the incident when it is approved."""

    kind = forms.ChoiceField(choices=Notice.Kind.choices, label="Kind")
    contact_point = forms.CharField(
        required=False,
        max_length=2000,
        label="Contact point",
        help_text="Who customers can ask (GDPR Art. 33(3)(b)). Empty: the default contact point.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    likely_consequences = forms.CharField(
        required=False,
        max_length=8000,
        label="Likely consequences",
        help_text=(
            "GDPR Art. 33(3)(c). A description added to the consequences recorded in triage; "
            "with neither, the notice says “not yet known”."
        ),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    @classmethod
    def for_notice(cls, notice: Notice, data: Any = None, **kwargs: Any) -> NoticeForm:
        """The form filled with ``notice``'s current written parts (to edit a draft)."""
        initial = {name: getattr(notice, name) for name in ("kind", "contact_point", "likely_consequences")}
        return cls(data, initial=initial, **kwargs)

    def service_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``notice_draft`` (without incident and actor)."""
        return dict(self.cleaned_data)

    def service_changes(self) -> dict[str, str]:
        """The ``changes`` mapping for ``notice_update_draft``: only the fields that changed."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class NoticeApproveForm(forms.Form):
    """Approve and send a draft. The person confirms the audience they were shown; the hidden
    counts let the view notice that the audience changed in the meantime."""

    confirm = forms.BooleanField(
        label="I have checked the preview and want it sent",
        error_messages={"required": "Tick the box to confirm who will receive this notice."},
    )
    customers = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    contacts = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class WithholdingForm(forms.Form):
    """Withhold a breach field from notices (``withholding_create``)."""

    field = forms.ChoiceField(choices=NOTICE_FIELD_CHOICES, label="Field to withhold")
    reason = forms.ChoiceField(choices=Withholding.Reason.choices, label="Reason")
    explanation = forms.CharField(
        required=False, max_length=4000, label="Explanation", widget=forms.Textarea(attrs={"rows": 2})
    )
    requested_by = forms.CharField(
        max_length=200, label="Who asked", help_text="For example the police force and case number."
    )
    review_at = ZonedDateTimeField(label="Review on", help_text="When to decide again whether to release it.")

    def service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``withholding_create`` (without incident and actor)."""
        return dict(self.cleaned_data)


class TranslationForm(forms.Form):
    """The free texts of an incident's notices in one language (``translation_set``): one
    field per text the next notice carries, showing the default text it translates. Built by
    ``for_texts``; an emptied field removes that translation."""

    language = forms.ChoiceField(choices=[], widget=forms.HiddenInput)
    #: ``{text name: default text}`` the form translates (set by ``for_texts``).
    sources: dict[str, str]

    @classmethod
    def for_texts(
        cls, texts: dict[str, str], current: dict[str, Any], *, language: str, data: Any = None
    ) -> TranslationForm:
        """``texts``: ``{text name: default text}``; ``current``: ``{text name: Translation}``
        already given (an outdated one is shown, marked, for revision)."""
        form = cls(data, prefix="translate", initial={"language": language})
        language_field = form.fields["language"]
        assert isinstance(language_field, forms.ChoiceField)
        language_field.choices = [
            (code, name) for code, name in settings.LANGUAGES if code != settings.NOTICE_SOURCE_LANGUAGE
        ]
        form.sources = texts
        for name, text in texts.items():
            given = current.get(name)
            outdated = given is not None and given.source_text != text
            form.fields[name] = forms.CharField(
                required=False,
                max_length=8000,
                label=TRANSLATABLE_LABELS[name],
                help_text=("Outdated: the text changed since this was translated. " if outdated else "")
                + f"Translates: “{text}”",
                initial=given.text if given else "",
                widget=forms.Textarea(attrs={"rows": 2, "lang": language}),
            )
        return form

    def service_changes(self) -> dict[str, str]:
        """``{text name: text}`` of the texts that changed (an outdated one counts as changed
        when saved again, so it translates the current text)."""
        return {name: self.cleaned_data[name] for name in self.sources if name in self.changed_data}


class AcknowledgeFailureForm(forms.Form):
    """Acknowledge that a customer cannot be reached: every delivery failed
    (``deliveries_acknowledge_failure``); the customer's clock is waived with the reason."""

    reason = _reason_field(
        "Why the customer cannot be reached", "For example: every administrative address bounced."
    )
