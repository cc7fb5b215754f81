"""The public customer report page, ``/report/`` (no login).

A customer tells us about suspicious activity: organisation, contact email, what happened and
when. The page answers with a random reference (``CR-XXXX-XXXX``) and the same reference goes
out by email; it never shows or links anything about any incident. Bots: a honeypot field
(``website``, hidden from people) makes the page answer as if accepted and store nothing.
Floods: ``REPORT_LIMIT_PER_EMAIL_PER_HOUR`` per contact address and
``REPORT_LIMIT_PER_IP_PER_HOUR`` per client address (429 with the form kept). CSRF applies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from incidents.addresses import validate_single_line
from incidents.exceptions import ReportThrottled
from incidents.intake import customer_report_submit, new_report_reference

HONEYPOT_FIELD = "website"


def require_utf8_form(raw: bytes) -> None:
    """Raise ``UnicodeDecodeError`` unless ``raw`` (an urlencoded body) is UTF-8 throughout,
    raw or percent-encoded (Django would replace bad bytes with U+FFFD)."""
    parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")


class CustomerReportForm(forms.Form):
    """What the page asks; every field is required."""

    organisation = forms.CharField(
        label=_("Your organisation"), max_length=200, validators=[validate_single_line]
    )
    contact_email = forms.EmailField(
        label=_("Your email address"), help_text=_("We send the confirmation and any questions here.")
    )
    description = forms.CharField(
        label=_("What happened?"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("What you saw, where, and whose data it concerns. Do not include passwords."),
    )
    occurred_on = forms.DateField(
        label=_("When did it happen (or when did you notice)?"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_occurred_on(self) -> Any:
        value = self.cleaned_data["occurred_on"]
        if value > timezone.now().date():
            raise forms.ValidationError(_("This cannot be in the future."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("organisation", "description"):
            if "\x00" in cleaned.get(name, ""):
                self.add_error(name, _("This contains a character that cannot be stored."))
        return cleaned


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_COUNT`` proxies the
    ``X-Forwarded-For`` entry that the nearest trusted proxy saw."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def customer_report(request: HttpRequest) -> HttpResponse:
    """``GET``: the form. ``POST``: validate, call ``customer_report_submit``, show the
    reference (200); invalid input re-shows the form (400); throttled, 429."""
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    if request.method == "GET":
        return render(request, "incidents/report/report_form.html", {"form": CustomerReportForm()})
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            require_utf8_form(request.body)
    except UnicodeDecodeError:
        return HttpResponse("The form was not sent as UTF-8.", status=400, content_type="text/plain")
    form = CustomerReportForm(request.POST)
    if request.POST.get(HONEYPOT_FIELD):
        # Answer as if accepted so the bot learns nothing; nothing is stored or sent.
        return render(request, "incidents/report/report_thanks.html", {"reference": new_report_reference()})
    if not form.is_valid():
        return render(request, "incidents/report/report_form.html", {"form": form}, status=400)
    try:
        report = customer_report_submit(
            **form.cleaned_data,
            ip_address=client_ip(request),
            language=translation.get_language() or settings.LANGUAGE_CODE,
        )
    except ReportThrottled:
        return render(
            request,
            "incidents/report/report_form.html",
            {
                "form": form,
                "throttled": _("Too many reports were sent from here recently. Please try again in an hour."),
            },
            status=429,
        )
    return render(request, "incidents/report/report_thanks.html", {"reference": report.reference})
