"""Customer notices: the content snapshot and the rendered email in the contact's language.

An email is a kind plus three templates under ``templates/notices/<kind>/``: ``subject.txt``,
``body.txt`` and ``body.html``. The HTML part is autoescaped; the subject is one line of at most
``SUBJECT_MAX_LENGTH`` characters. Withheld fields are never put in the template context, so
they cannot leak into any part of the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import formats, translation
from django.utils.html import escape
from django.utils.translation import gettext, ngettext, pgettext
from django.utils.translation import gettext_lazy as _

from incidents.models import Contact, Customer, Incident
from notifications.models import NOTICE_FIELDS, Notice

SUBJECT_MAX_LENGTH = 150

FIELD_LABELS = {
    "nature_of_breach": _("Nature of the breach"),
    "mitigation_measures": _("Mitigation measures taken or proposed"),
    "products_involved": _("Product, service or application involved"),
    "exposure_duration": _("How long personal data was exposed"),
    "records_affected": _("Volume of affected or exposed records"),
    "sub_processor": _("Sub-processor or supplier involved"),
    "likely_consequences": _("Likely consequences"),
}

#: The fields each kind shows. An observation of a customer-driven event is not a breach
#: notice: it says what we saw and what help we offer, under labels of its own.
FIELDS_BY_KIND = {"customer_event": ("nature_of_breach", "mitigation_measures", "products_involved")}
LABELS_BY_KIND = {
    "customer_event": {
        "nature_of_breach": _("What we observed"),
        "mitigation_measures": _("What we recommend, and the help we offer on request"),
    }
}


@dataclass(frozen=True)
class RenderedMessage:
    """One notice rendered for one language and customer: ``subject`` (one line), ``text``
    (the plain-text part) and ``html`` (the HTML part)."""

    subject: str
    text: str
    html: str
    language: str


def notice_content(incident: Incident, *, likely_consequences: str = "") -> dict[str, Any]:
    """The breach fields of ``incident`` as they stand now, JSON-ready, ``None`` when unknown.

    Shapes: ``products_involved``: list of names; ``exposure_duration``: ``{"started_at",
    "ended_at"}`` (UTC ISO 8601) and ``"seconds"`` (exact elapsed time) or ``None`` when an end
    is unknown; ``records_affected``: ``{"count", "is_estimate"}``; ``sub_processor``:
    ``{"name", "country", "details"}``. GDPR Art. 33(3) lists what a notification describes.
    """
    exposure = None
    if incident.exposure_started_at and incident.exposure_ended_at:
        exposure = {
            "started_at": incident.exposure_started_at.astimezone(UTC).isoformat(),
            "ended_at": incident.exposure_ended_at.astimezone(UTC).isoformat(),
            "seconds": int((incident.exposure_ended_at - incident.exposure_started_at).total_seconds()),
        }
    products = sorted(product.name for product in incident.products.all())
    sub_processor = None
    supplier = incident.sub_processor  # None without a query when no sub-processor is set
    if supplier is not None:
        sub_processor = {
            "name": supplier.name,
            "country": supplier.country,
            "details": incident.sub_processor_details,
        }
    return {
        "nature_of_breach": incident.nature_of_breach.strip() or None,
        "mitigation_measures": incident.mitigation_measures.strip() or None,
        "products_involved": products or None,
        "exposure_duration": exposure,
        "records_affected": (
            {"count": incident.records_affected, "is_estimate": incident.records_affected_is_estimate}
            if incident.records_affected is not None
            else None
        ),
        "sub_processor": sub_processor,
        "likely_consequences": likely_consequences.strip() or None,
    }


def changed_fields(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The ``NOTICE_FIELDS`` whose value differs between two content snapshots (``[]`` for the
    first notice)."""
    if previous is None:
        return []
    return [name for name in NOTICE_FIELDS if previous.get(name) != current.get(name)]


def choose_language(contact: Contact | None, customer: Customer) -> str:
    """The contact's language, else the customer's preferred language, else English; only
    languages in ``settings.LANGUAGES`` count."""
    available = {code for code, _name in settings.LANGUAGES}
    for candidate in ((contact.language if contact else ""), customer.preferred_language):
        code = (candidate or "").lower().split("-")[0]
        if code in available:
            return code
    return "en"


def _duration_text(seconds: int) -> str:
    delta = timedelta(seconds=seconds)
    days, remainder = delta.days, delta.seconds
    hours, minutes = remainder // 3600, (remainder % 3600) // 60
    parts = []
    if days:
        parts.append(ngettext("%(count)d day", "%(count)d days", days) % {"count": days})
    if hours:
        parts.append(ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours})
    if minutes or not parts:
        parts.append(ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes})
    return " ".join(parts)


def _instant_text(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _display_value(name: str, value: Any) -> str | None:
    """A field value as text in the active language, or ``None`` when unknown."""
    if value is None:
        return None
    if name == "products_involved":
        return ", ".join(value)
    if name == "exposure_duration":
        return gettext("%(duration)s (from %(start)s to %(end)s)") % {
            "duration": _duration_text(value["seconds"]),
            "start": _instant_text(value["started_at"]),
            "end": _instant_text(value["ended_at"]),
        }
    if name == "records_affected":
        count = formats.number_format(value["count"], force_grouping=True)
        if value["is_estimate"]:
            return gettext("about %(count)s (estimate)") % {"count": count}
        return count
    if name == "sub_processor":
        text = value["name"] + (f" ({value['country']})" if value["country"] else "")
        return text + (f": {value['details']}" if value["details"] else "")
    return str(value)


class _FieldRow(TypedDict):
    """One breach field as the notice templates show it."""

    label: str
    value: str | None
    withheld: bool
    changed: bool


def render_notice(
    *,
    notice: Notice,
    content: dict[str, Any],
    withheld: dict[str, str],
    changes: list[str],
    customer: Customer,
    records_for_customer: int | None,
    language: str,
) -> RenderedMessage:
    """Render ``notice`` for one customer in ``language`` (a code from ``settings.LANGUAGES``).

    ``content``: a ``notice_content`` snapshot; ``withheld``: fields to leave out (their values
    never reach the templates); ``changes``: fields changed since the previous notice.
    """
    incident = notice.incident
    with translation.override(language):
        fields: list[_FieldRow] = []
        labels = FIELD_LABELS | LABELS_BY_KIND.get(notice.kind, {})
        for name in FIELDS_BY_KIND.get(notice.kind, NOTICE_FIELDS):
            is_withheld = name in withheld
            fields.append(
                {
                    "label": str(labels[name]),
                    "value": None if is_withheld else _display_value(name, content.get(name)),
                    "withheld": is_withheld,
                    "changed": name in changes and not is_withheld,
                }
            )
        context = {
            "language": language,
            "incident_reference": incident.reference,
            "notice_number": notice.number,
            "customer_name": customer.name,
            "declared_at": (
                incident.declared_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                if incident.declared_at
                else ""
            ),
            "fields": fields,
            "any_withheld": bool(withheld),
            "changed_labels": [f["label"] for f in fields if f["changed"]],
            # Separator and colon differ by language (French "\u00a0:", Japanese "、" and "：").
            "changed_labels_text": pgettext("list separator", ", ").join(
                f["label"] for f in fields if f["changed"]
            ),
            "label_suffix": pgettext("label suffix", ":"),
            "records_for_customer": (
                formats.number_format(records_for_customer, force_grouping=True)
                if records_for_customer is not None
                else None
            ),
            "post_mortem_summary": notice.post_mortem_summary,
            "contact_point": notice.contact_point or settings.NOTICE_CONTACT_POINT,
        }
    return render_templates(
        folder=f"notices/{notice.kind}", context=context, language=language, incident=incident
    )


def render_templates(
    *, folder: str, context: dict[str, Any], language: str, incident: Incident | None = None
) -> RenderedMessage:
    """Render ``<folder>/subject.txt``, ``body.txt`` and ``body.html`` with ``context`` in
    ``language``: the subject is one line (``SUBJECT_MAX_LENGTH``), the HTML part autoescaped,
    blank-line runs in the text part collapsed. The templates see ``subject`` and ``language``.
    ``incident``: the incident a notice is about; a drill's subject and both parts then say it
    is an exercise.
    """
    with translation.override(language):
        context = {**context, "language": language}
        subject: str = render_to_string(f"{folder}/subject.txt", context)
        if incident is not None:
            subject = incident.email_subject(subject)
        context["subject"] = subject
        text: str = render_to_string(f"{folder}/body.txt", context)
        html: str = render_to_string(f"{folder}/body.html", context)
        if incident is not None and incident.is_drill:
            text, html = _mark_as_drill(text, html)
    return RenderedMessage(subject=_one_line(subject), text=_tidy(text), html=html.strip(), language=language)


def _mark_as_drill(text: str, html: str) -> tuple[str, str]:
    """Open both parts with the line saying the message is an exercise (in the active
    language): first in the text, first inside ``<body>`` in the HTML (escaped)."""
    line = gettext(
        "This is an exercise (a drill). No personal data breach has happened; no action is needed."
    )
    paragraph = f"<p><strong>{escape(line)}</strong></p>"
    body_start = html.find("<body")
    body_end = html.find(">", body_start) + 1 if body_start >= 0 else 0
    return f"{line}\n\n{text}", f"{html[:body_end]}\n{paragraph}{html[body_end:]}"


def _one_line(subject: str) -> str:
    """Subjects never carry line breaks (header injection) and stay short."""
    line = " ".join(subject.split())
    if len(line) > SUBJECT_MAX_LENGTH:
        line = line[: SUBJECT_MAX_LENGTH - 1].rstrip() + "…"
    return line


def _tidy(text: str) -> str:
    """Collapse runs of blank lines left by template tags."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy) + "\n"
