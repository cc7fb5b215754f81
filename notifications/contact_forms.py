"""Forms of the public contact confirmation page (``/contacts/confirm/<token>/``).

They validate input only; ``notifications.contact_views`` hands the cleaned values to one
service in ``notifications.confirmations``, which checks that a contact named belongs to the
link's customer. Labels are translated: the page is shown in the link recipient's language.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from incidents.addresses import validate_single_line

#: The languages a contact may choose (the notices are written in these).
LANGUAGE_CHOICES = [(code, name) for code, name in settings.LANGUAGES]


class ContactCorrectForm(forms.Form):
    """Correct one contact's name or language."""

    contact = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    name = forms.CharField(label=_("Name"), max_length=200, validators=[validate_single_line])
    language = forms.ChoiceField(label=_("Language of our emails"), choices=LANGUAGE_CHOICES)


class ContactDeactivateForm(forms.Form):
    """Deactivate one contact (it stops receiving notices; it is not deleted)."""

    contact = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class ContactAddForm(forms.Form):
    """Add an administrative contact; it counts once its own address confirms."""

    name = forms.CharField(label=_("Name"), max_length=200, validators=[validate_single_line])
    email = forms.EmailField(label=_("Email address"), max_length=254)
    language = forms.ChoiceField(label=_("Language of our emails"), choices=LANGUAGE_CHOICES)


class ConfirmForm(forms.Form):
    """Confirm the contacts as listed (or, on a new contact's link, its own address)."""
