"""Customer notices: the content snapshot and the rendered email in the contact's language.

An email is a kind plus three templates under ``templates/notices/<kind>/``: ``subject.txt``,
``body.txt`` and ``body.html``. The HTML part is autoescaped; the subject is one line of at most
``SUBJECT_MAX_LENGTH`` characters. Withheld fields are never put in the template context, so
they cannot leak into any part of the message.

What a notice says follows GDPR Art. 33(3), which the controller (our customer) must report to
its supervisory authority: (a) the nature of the breach, the categories and approximate number
of data subjects and of personal data records concerned; (b) a contact point; (c) the likely
consequences; (d) the measures taken or proposed, including those to mitigate its possible
adverse effects. Each customer is told its own figures (``customer_figures``), never another
customer's; incident-wide counts only when an incident manager marked them shareable.

Dates, numbers, lists, durations and country names are formatted by Babel (CLDR data) in the
message's language; salutations follow each language's grammar (French elision, German and
Japanese honorifics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format
from babel.lists import format_list
from babel.numbers import format_decimal
from babel.units import format_unit
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from incidents.models import AffectedCustomer, Contact, Customer, Incident
from notifications.models import CUSTOMER_FIGURE_FIELDS, NOTICE_FIELDS, Notice

SUBJECT_MAX_LENGTH = 150

FIELD_LABELS = {
    "nature_of_breach": _("Nature of the breach"),
    "data_categories": _("Categories of personal data concerned"),
    "data_subject_categories": _("Categories of data subjects concerned"),
    "data_subjects_affected": _("Approximate number of your data subjects concerned"),
    "records_affected": _("Approximate number of your personal data records concerned"),
    "exposure_duration": _("When and for how long personal data was exposed"),
    "products_involved": _("Product, service or application involved"),
    "sub_processor": _("Sub-processor or supplier involved"),
    "likely_consequences": _("Likely consequences of the breach"),
    "mitigation_measures": _("Measures taken or proposed to address the breach"),
    "adverse_effect_measures": _("Measures to mitigate its possible adverse effects"),
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

#: Labels of the categories and consequences, in the customer's language (the values are
#: those of ``incidents.models.DataCategory``, ``DataSubjectCategory``, ``LikelyConsequence``).
DATA_CATEGORY_LABELS = {
    "identity": _("identity and contact details"),
    "government_identifier": _("government identifiers"),
    "financial": _("financial (bank account) data"),
    "payment_card": _("payment card data"),
    "credentials": _("credentials"),
    "health": _("health data"),
    "special_category": _("other special categories of personal data (GDPR Art. 9)"),
    "criminal": _("data on criminal convictions and offences (GDPR Art. 10)"),
    "behavioural": _("behavioural and location data"),
    "communications": _("content of communications"),
    "employment": _("employment data"),
    "customer_supplied": _("support or consulting data you supplied"),
    "other": _("other personal data"),
}
DATA_SUBJECT_CATEGORY_LABELS = {
    "customers": _("your customers or users"),
    "employees": _("employees and staff"),
    "job_applicants": _("job applicants"),
    "patients": _("patients"),
    "children": _("children"),
    "students": _("pupils and students"),
    "business_contacts": _("business contacts"),
    "vulnerable": _("vulnerable people"),
    "other": _("other data subjects"),
}
CONSEQUENCE_LABELS = {
    "none": _("none or negligible"),
    "minor_inconvenience": _("minor inconvenience"),
    "unsolicited_contact": _("unsolicited contact (spam, marketing)"),
    "loss_of_control": _("loss of control over personal data"),
    "phishing": _("phishing"),
    "identity_theft_or_fraud": _("identity theft or fraud"),
    "financial_loss": _("financial loss"),
    "discrimination": _("discrimination"),
    "damage_to_reputation": _("damage to reputation"),
    "harm_to_health": _("harm to health"),
    "other_significant_disadvantage": _("other significant disadvantage"),
}

#: Salutations: French elides "de" before a vowel sound ("d'Atelier"), so each language has a
#: form for names that start with a vowel (the same text where the language does not elide).
SALUTATION = pgettext_lazy("salutation", "Dear administrators of %(customer)s,")
SALUTATION_BEFORE_VOWEL = pgettext_lazy(
    "salutation before a name that starts with a vowel sound", "Dear administrators of %(customer)s,"
)
_VOWELS = set("aeiouyàâäáãåæéèêëíìîïóòôöõœúùûüÿ")


@dataclass(frozen=True)
class RenderedMessage:
    """One notice rendered for one language and customer: ``subject`` (one line), ``text``
    (the plain-text part) and ``html`` (the HTML part); ``untranslated``: names
    (``TRANSLATABLE_TEXTS``) of the free texts that go out in
    ``settings.NOTICE_SOURCE_LANGUAGE`` because no translation into ``language`` was given
    (empty for the source language). ``figures``: the customer's own figures the message
    states (``customer_figures``' shape), and ``changed_figures`` those of them (names of
    ``CUSTOMER_FIGURE_FIELDS``) that differ from the customer's previous notice, both set by
    ``notifications.services.notice_preview``; ``None`` and ``()`` elsewhere."""

    subject: str
    text: str
    html: str
    language: str
    untranslated: tuple[str, ...] = field(default=())
    figures: dict[str, Any] | None = None
    changed_figures: tuple[str, ...] = field(default=())


# Content -----------------------------------------------------------------------------------


def _count(count: int | None, is_estimate: bool) -> dict[str, Any] | None:
    return None if count is None else {"count": count, "is_estimate": bool(is_estimate)}


def _exposure(started_at: datetime | None, ended_at: datetime | None) -> dict[str, Any] | None:
    """``{"started_at", "ended_at", "seconds"}`` (UTC ISO 8601; ``seconds`` of exact elapsed
    time when both are known), each part ``None`` when unknown; ``None`` when both are."""
    if started_at is None and ended_at is None:
        return None
    return {
        "started_at": started_at.astimezone(UTC).isoformat() if started_at else None,
        "ended_at": ended_at.astimezone(UTC).isoformat() if ended_at else None,
        "seconds": int((ended_at - started_at).total_seconds()) if started_at and ended_at else None,
    }


def notice_content(
    incident: Incident,
    *,
    likely_consequences: str = "",
    contact_point: str = "",
    post_mortem_summary: str = "",
) -> dict[str, Any]:
    """The breach fields of ``incident`` as they stand now, JSON-ready, ``None`` when unknown.

    Shapes: ``data_categories``, ``data_subject_categories``, ``products_involved``: lists;
    ``data_subjects_affected`` and ``records_affected``: ``{"count", "is_estimate"}``
    (incident-wide: each customer's own figure is in ``customer_figures``);
    ``exposure_duration``: ``{"started_at", "ended_at", "seconds"}`` (UTC ISO 8601, any part
    ``None`` when unknown); ``sub_processor``: ``{"name", "country", "details"}``;
    ``likely_consequences``: ``{"consequences": [values], "description": text or None}``
    (the incident's, carried from triage, and the notice's written text). Also
    ``contact_point`` (the notice's, else ``settings.NOTICE_CONTACT_POINT``),
    ``post_mortem_summary`` and ``incident_figures_shareable``. GDPR Art. 33(3).
    """
    products = sorted(product.name for product in incident.products.all())
    sub_processor = None
    supplier = incident.sub_processor  # None without a query when no sub-processor is set
    if supplier is not None:
        sub_processor = {
            "name": supplier.name,
            "country": supplier.country,
            "details": incident.sub_processor_details.strip() or None,
        }
    consequences = list(incident.likely_consequences or [])
    description = likely_consequences.strip() or None
    return {
        "nature_of_breach": incident.nature_of_breach.strip() or None,
        "data_categories": list(incident.data_categories or []) or None,
        "data_subject_categories": list(incident.data_subject_categories or []) or None,
        "data_subjects_affected": _count(
            incident.data_subjects_affected, incident.data_subjects_affected_is_estimate
        ),
        "records_affected": _count(incident.records_affected, incident.records_affected_is_estimate),
        "exposure_duration": _exposure(incident.exposure_started_at, incident.exposure_ended_at),
        "products_involved": products or None,
        "sub_processor": sub_processor,
        "likely_consequences": (
            {"consequences": consequences, "description": description}
            if consequences or description
            else None
        ),
        "mitigation_measures": incident.mitigation_measures.strip() or None,
        "adverse_effect_measures": incident.adverse_effect_measures.strip() or None,
        "contact_point": contact_point.strip() or settings.NOTICE_CONTACT_POINT,
        "post_mortem_summary": post_mortem_summary.strip() or None,
        "incident_figures_shareable": incident.incident_figures_shareable,
    }


def customer_figures(affected: AffectedCustomer, incident: Incident) -> dict[str, Any]:
    """``affected``'s own figures (``CUSTOMER_FIGURE_FIELDS``), shaped as in ``notice_content``:
    its records and data subjects (``None`` when its count is unknown: never the incident's),
    and its exposure window, else the incident's."""
    own_window = affected.exposure_started_at is not None or affected.exposure_ended_at is not None
    return {
        "data_subjects_affected": _count(
            affected.data_subjects_affected, affected.data_subjects_affected_is_estimate
        ),
        "records_affected": _count(affected.records_affected, affected.records_affected_is_estimate),
        "exposure_duration": (
            _exposure(affected.exposure_started_at, affected.exposure_ended_at)
            if own_window
            else _exposure(incident.exposure_started_at, incident.exposure_ended_at)
        ),
    }


def changed_fields(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The ``NOTICE_FIELDS`` whose value differs between two content snapshots (``[]`` for the
    first notice)."""
    if previous is None:
        return []
    return [name for name in NOTICE_FIELDS if previous.get(name) != current.get(name)]


def changed_figures(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The ``CUSTOMER_FIGURE_FIELDS`` that differ from the customer's previous notice."""
    if previous is None:
        return []
    return [name for name in CUSTOMER_FIGURE_FIELDS if previous.get(name) != current.get(name)]


def choose_language(contact: Contact | None, customer: Customer) -> str:
    """The contact's language, else the customer's preferred language, else English; only
    languages in ``settings.LANGUAGES`` count."""
    available = {code for code, _name in settings.LANGUAGES}
    for candidate in ((contact.language if contact else ""), customer.preferred_language):
        code = (candidate or "").lower().split("-")[0]
        if code in available:
            return code
    return "en"


# Free text per language ----------------------------------------------------------------------


def source_texts(content: dict[str, Any]) -> dict[str, str]:
    """The free texts of a content snapshot, by ``TRANSLATABLE_TEXTS`` name (only those that
    have a text): what an incident manager may give per language."""
    texts = {
        "nature_of_breach": content.get("nature_of_breach"),
        "mitigation_measures": content.get("mitigation_measures"),
        "adverse_effect_measures": content.get("adverse_effect_measures"),
        "sub_processor_details": (content.get("sub_processor") or {}).get("details"),
        "likely_consequences_details": _consequences(content.get("likely_consequences"))["description"],
        "post_mortem_summary": content.get("post_mortem_summary"),
        "contact_point": content.get("contact_point"),
    }
    return {name: text for name, text in texts.items() if isinstance(text, str) and text.strip()}


#: Which notice field shows each free text (the preview marks that field).
TEXT_FIELD = {
    "nature_of_breach": "nature_of_breach",
    "mitigation_measures": "mitigation_measures",
    "adverse_effect_measures": "adverse_effect_measures",
    "sub_processor_details": "sub_processor",
    "likely_consequences_details": "likely_consequences",
    "post_mortem_summary": "post_mortem_summary",
    "contact_point": "contact_point",
}


def _localised(
    content: dict[str, Any], translations: dict[str, dict[str, str]], language: str
) -> tuple[dict[str, Any], set[str]]:
    """``content`` with each free text replaced by its translation into ``language``, and the
    names of the texts that stay in the source language."""
    source_language = settings.NOTICE_SOURCE_LANGUAGE
    localised = {**content}
    untranslated: set[str] = set()
    for name in source_texts(content):
        given = (translations.get(name) or {}).get(language)
        if language == source_language:
            continue
        if not given:
            untranslated.add(name)
            continue
        if name == "sub_processor_details":
            localised["sub_processor"] = {**content["sub_processor"], "details": given}
        elif name == "likely_consequences_details":
            localised["likely_consequences"] = {
                **_consequences(content["likely_consequences"]),
                "description": given,
            }
        else:
            localised[name] = given
    return localised, untranslated


# Formatting (Babel) ----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def babel_locale(language: str) -> Locale:
    """The Babel ``Locale`` of ``language``, parsed once: Babel's formatters parse a locale
    given by name on every call (12 us each, twice per customer in a fan-out)."""
    return Locale.parse(language)


def format_count(count: int, language: str) -> str:
    """``count`` with the language's digit grouping ("1,200", "1.200", "1 200")."""
    return format_decimal(count, locale=babel_locale(language))


@lru_cache(maxsize=4096)  # the declaration instant, once per language for a whole fan-out
def format_instant(instant: datetime, language: str) -> str:
    """An instant as a localised date and time in UTC, always naming the zone
    ("20. November 2026, 10:00 UTC", "2026年11月20日 10:00 UTC")."""
    instant = instant.astimezone(UTC)
    pattern = get_datetime_format("medium", locale=babel_locale(language))
    text = (
        str(pattern)
        .replace("{1}", format_date(instant.date(), "long", locale=babel_locale(language)))
        .replace("{0}", format_time(instant, "short", tzinfo=UTC, locale=babel_locale(language)))
    )
    return f"{text} UTC"


def _unit(count: int, unit: str, language: str) -> str:
    text = format_unit(count, unit, length="long", locale=babel_locale(language))
    if unit in text:  # CLDR lacks the long form in this language (Japanese): use the short one
        text = format_unit(count, unit, length="short", locale=babel_locale(language))
    return text


def format_duration(seconds: int, language: str) -> str:
    """Exact elapsed time in days, hours and minutes ("1 day, 2 hours, and 30 minutes",
    "1 Tag, 2 Stunden und 30 Minuten"); rounded down to the minute."""
    delta = timedelta(seconds=seconds)
    hours, minutes = delta.seconds // 3600, (delta.seconds % 3600) // 60
    parts = []
    if delta.days:
        parts.append(_unit(delta.days, "duration-day", language))
    if hours:
        parts.append(_unit(hours, "duration-hour", language))
    if minutes or not parts:
        parts.append(_unit(minutes, "duration-minute", language))
    return format_list(parts, locale=babel_locale(language))


def format_items(items: list[str], language: str) -> str:
    """A list joined the language's way ("a, b, and c", "a, b und c", "a、b、c")."""
    return format_list(items, locale=babel_locale(language)) if items else ""


def country_name(code: str, language: str) -> str:
    """The country's name in ``language`` (ISO 3166-1 alpha-2 code), or the code if unknown."""
    return babel_locale(language).territories.get(code.upper(), code) if code else ""


def salutation(customer_name: str, language: str) -> str:
    """The greeting that opens a notice, in the active language, addressing the customer's
    administrators with the language's honorific and grammar ("Aux administrateurs
    d'Atelier Dupont,", "Sehr geehrte Administratorinnen und Administratoren von ...,",
    "... 御中")."""
    first = customer_name.strip().lstrip("\"'«“‘(").lower()[:1]
    template = SALUTATION_BEFORE_VOWEL if first in _VOWELS else SALUTATION
    return str(template) % {"customer": customer_name.strip()}


def _consequences(value: Any) -> dict[str, Any]:
    """A ``likely_consequences`` value as ``{"consequences", "description"}`` (notices approved
    before this shape held the written text alone)."""
    if value is None:
        return {"consequences": [], "description": None}
    if isinstance(value, str):
        return {"consequences": [], "description": value}
    return {"consequences": list(value.get("consequences") or []), "description": value.get("description")}


def _exposure_text(value: dict[str, Any], language: str) -> str:
    started, ended = value.get("started_at"), value.get("ended_at")
    if started and ended:
        seconds = value.get("seconds")
        if seconds is None:
            seconds = int((datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds())
        return gettext("%(duration)s (from %(start)s to %(end)s)") % {
            "duration": format_duration(seconds, language),
            "start": format_instant(datetime.fromisoformat(started), language),
            "end": format_instant(datetime.fromisoformat(ended), language),
        }
    if started:
        return gettext("Exposed since %(start)s; the end is not yet known.") % {
            "start": format_instant(datetime.fromisoformat(started), language)
        }
    return gettext("Exposed until %(end)s; the start is not yet known.") % {
        "end": format_instant(datetime.fromisoformat(str(ended)), language)
    }


def _count_text(value: dict[str, Any], language: str) -> str:
    count = format_count(value["count"], language)
    if value["is_estimate"]:
        return gettext("about %(count)s (estimate)") % {"count": count}
    return gettext("%(count)s (exact)") % {"count": count}


def _labels(values: list[str], labels: dict[str, Any]) -> list[str]:
    return [str(labels[value]) if value in labels else value for value in values]


def display_value(name: str, value: Any, language: str) -> str | None:
    """A field value as text in ``language`` (the active translation), ``None`` when unknown."""
    if value is None:
        return None
    if name in ("products_involved",):
        return format_items(list(value), language)
    if name == "data_categories":
        return format_items(_labels(value, DATA_CATEGORY_LABELS), language)
    if name == "data_subject_categories":
        return format_items(_labels(value, DATA_SUBJECT_CATEGORY_LABELS), language)
    if name == "exposure_duration":
        return _exposure_text(value, language)
    if name in ("records_affected", "data_subjects_affected"):
        return _count_text(value, language)
    if name == "sub_processor":
        text = value["name"]
        if value.get("country"):
            text += f" ({country_name(value['country'], language)})"
        return text + (f": {value['details']}" if value.get("details") else "")
    if name == "likely_consequences":
        consequences = _consequences(value)
        listed = format_items(_labels(consequences["consequences"], CONSEQUENCE_LABELS), language)
        listed = listed[:1].upper() + listed[1:]
        parts = [f"{listed}." if listed else "", consequences["description"] or ""]
        return "\n".join(part for part in parts if part) or None
    return str(value)


# Rendering ---------------------------------------------------------------------------------------


def customer_parts(
    customer_name: str, figures: dict[str, Any], previous_figures: dict[str, Any] | None, language: str
) -> dict[str, Any]:
    """What differs per customer in a notice, as text in the active language: the
    ``salutation``, and per ``CUSTOMER_FIGURE_FIELDS`` name ``(value or None, changed,
    previous value or None)`` (changed: it differs from ``previous_figures``, the customer's
    previous notice; ``None`` there means no earlier notice)."""
    own_changes = set(changed_figures(previous_figures, figures)) if previous_figures is not None else set()
    parts: dict[str, Any] = {"salutation": salutation(customer_name, language)}
    for name in CUSTOMER_FIGURE_FIELDS:
        changed = name in own_changes
        previous = display_value(name, (previous_figures or {}).get(name), language) if changed else None
        parts[name] = (display_value(name, figures.get(name), language), changed, previous)
    return parts


def render_notice(
    *,
    notice: Notice,
    content: dict[str, Any],
    withheld: dict[str, str],
    changes: list[str],
    customer: Customer,
    figures: dict[str, Any] | None,
    language: str,
    translations: dict[str, dict[str, str]] | None = None,
    previous_content: dict[str, Any] | None = None,
    previous_figures: dict[str, Any] | None = None,
    update_number: int | None = None,
    previous_translations: dict[str, dict[str, str]] | None = None,
) -> RenderedMessage:
    """Render ``notice`` for one customer in ``language`` (a code from ``settings.LANGUAGES``).

    ``content``: a ``notice_content`` snapshot; ``figures``: the customer's own figures
    (``customer_figures``; ``None``: not known, for a placeholder customer); ``withheld``:
    fields to leave out (their values never reach the templates); ``changes``: fields changed
    since the previous notice (the customer's own figures are compared with
    ``previous_figures``, the figures of the customer's previous notice); each changed field
    shows its previous value from ``previous_content`` / ``previous_figures``, a free text in
    the words the previous notice gave it in ``language`` (``previous_translations``: that
    notice's per-language texts), as the customer received it.
    ``translations``: ``{text name: {language: text}}``; a text without one goes out in the
    source language and is listed in ``RenderedMessage.untranslated``. ``update_number``:
    the number an update carries (update 1, 2, ...).
    """
    (message,) = render_notice_for_customers(
        notice=notice,
        content=content,
        withheld=withheld,
        changes=changes,
        customers=[(customer, figures, previous_figures)],
        language=language,
        translations=translations,
        previous_content=previous_content,
        update_number=update_number,
        batch=False,
        previous_translations=previous_translations,
    )
    return message


#: Stand-ins for what differs per customer, rendered once and replaced per customer
#: (Unicode private-use characters: no template filter or translation changes them).
_SALUTATION = "\ue000salutation\ue001"


def _stand_in(kind: str, name: str) -> str:
    return f"\ue000{kind}:{name}\ue001"


def render_notice_for_customers(
    *,
    notice: Notice,
    content: dict[str, Any],
    withheld: dict[str, str],
    changes: list[str],
    customers: list[tuple[Customer, dict[str, Any] | None, dict[str, Any] | None]],
    language: str,
    translations: dict[str, dict[str, str]] | None = None,
    previous_content: dict[str, Any] | None = None,
    update_number: int | None = None,
    batch: bool = True,
    previous_translations: dict[str, dict[str, str]] | None = None,
) -> list[RenderedMessage]:
    """``render_notice`` for many customers in one language: ``customers`` holds
    ``(customer, figures, previous_figures)``; returns one message each, in order.

    The templates run once per *shape* (which figures are known and which changed), with
    stand-ins for the salutation and the figures, which are then replaced by each customer's
    own text (escaped in the HTML part, as the templates escape it); a fan-out to thousands
    of customers renders a handful of times. ``tests/notifications/test_rendering_batch.py``
    checks that the result equals rendering each customer alone.
    """
    with translation.override(language):
        groups: dict[tuple, list[tuple[int, dict[str, Any]]]] = {}
        for index, (customer, figures, previous_figures) in enumerate(customers):
            parts = customer_parts(
                customer.name, figures or dict.fromkeys(CUSTOMER_FIGURE_FIELDS), previous_figures, language
            )
            shape = tuple(
                (parts[name][0] is None, parts[name][1], parts[name][2] is None)
                for name in CUSTOMER_FIGURE_FIELDS
            )
            groups.setdefault(shape if batch else (index,), []).append((index, parts))
        results: list[RenderedMessage | None] = [None] * len(customers)
        for members in groups.values():
            first = members[0][1]
            stand_ins: dict[str, Any] = {"salutation": _SALUTATION if batch else first["salutation"]}
            for name in CUSTOMER_FIGURE_FIELDS:
                value, changed, previous = first[name]
                if batch:
                    value = None if value is None else _stand_in("value", name)
                    previous = None if previous is None else _stand_in("previous", name)
                stand_ins[name] = (value, changed, previous)
            subject, text, html, untranslated = _render_parts(
                notice=notice,
                content=content,
                withheld=withheld,
                changes=changes,
                parts=stand_ins,
                language=language,
                translations=translations or {},
                previous_content=previous_content or {},
                update_number=update_number,
                previous_translations=previous_translations or {},
            )
            for index, parts in members:
                own_text, own_html = text, html
                if batch:
                    replacements = {_SALUTATION: parts["salutation"]}
                    for name in CUSTOMER_FIGURE_FIELDS:
                        value, _changed, previous = parts[name]
                        replacements[_stand_in("value", name)] = value or ""
                        replacements[_stand_in("previous", name)] = previous or ""
                    for stand_in, real in replacements.items():
                        own_text = own_text.replace(stand_in, real)
                        own_html = own_html.replace(stand_in, escape(real).replace("\n", "<br>"))
                results[index] = RenderedMessage(
                    subject=_one_line(subject),
                    text=_tidy(own_text),
                    html=own_html.strip(),
                    language=language,
                    untranslated=untranslated,
                )
    return [message for message in results if message is not None]


def _render_parts(
    *,
    notice: Notice,
    content: dict[str, Any],
    withheld: dict[str, str],
    changes: list[str],
    parts: dict[str, Any],
    language: str,
    translations: dict[str, dict[str, str]],
    previous_content: dict[str, Any],
    update_number: int | None,
    previous_translations: dict[str, dict[str, str]],
) -> tuple[str, str, str, tuple[str, ...]]:
    """The subject, text and HTML (before tidying) and the untranslated text names, with the
    per-customer ``parts`` (``customer_parts``) as given. Runs in the active translation."""
    incident = notice.incident
    localised, untranslated_texts = _localised(content, translations, language)
    # The previous values in the words the customer received them (the previous notice's own
    # translations), not in the source language.
    previous_localised, _previous_untranslated = _localised(previous_content, previous_translations, language)
    shareable = bool(content.get("incident_figures_shareable"))
    labels = FIELD_LABELS | LABELS_BY_KIND.get(notice.kind, {})
    untranslated_fields = {TEXT_FIELD[name] for name in untranslated_texts}
    fields = []
    for name in FIELDS_BY_KIND.get(notice.kind, NOTICE_FIELDS):
        is_withheld = name in withheld
        if name in CUSTOMER_FIGURE_FIELDS:
            value, changed, previous = parts[name]
            changed = changed and not is_withheld
            previous = previous if changed else None
        else:
            value = display_value(name, localised.get(name), language)
            changed = name in changes and not is_withheld
            previous = display_value(name, previous_localised.get(name), language) if changed else None
        incident_wide = None
        if shareable and name in ("records_affected", "data_subjects_affected") and not is_withheld:
            overall = content.get(name)
            if overall is not None:
                incident_wide = display_value(name, overall, language)
        fields.append(
            {
                "name": name,
                "label": str(labels[name]),
                "value": None if is_withheld else value,
                "withheld": is_withheld,
                "changed": changed,
                "previous": previous,
                "incident_wide": incident_wide,
                "source_language": (settings.NOTICE_SOURCE_LANGUAGE if name in untranslated_fields else None),
            }
        )
    changed_labels = [f["label"] for f in fields if f["changed"]]
    context = {
        "language": language,
        "source_language": settings.NOTICE_SOURCE_LANGUAGE,
        "incident_reference": incident.reference,
        "notice_number": notice.number,
        "update_number": update_number or notice.update_number or 1,
        "salutation": parts["salutation"],
        "declared_at": format_instant(incident.declared_at, language) if incident.declared_at else "",
        "fields": fields,
        "any_withheld": bool(withheld),
        "changed_labels": changed_labels,
        # Separator and colon differ by language (French "\u00a0:", Japanese "、" and "：").
        "changed_labels_text": pgettext("list separator", ", ").join(changed_labels),
        "label_suffix": pgettext("label suffix", ":"),
        "post_mortem_summary": localised.get("post_mortem_summary") or "",
        "post_mortem_summary_source_language": "post_mortem_summary" in untranslated_texts,
        "contact_point": localised.get("contact_point") or settings.NOTICE_CONTACT_POINT,
        "contact_point_source_language": "contact_point" in untranslated_texts,
    }
    folder = f"notices/{notice.kind}"
    subject: str = incident.email_subject(render_to_string(f"{folder}/subject.txt", context))
    context["subject"] = _one_line(subject)
    text: str = render_to_string(f"{folder}/body.txt", context)
    html: str = render_to_string(f"{folder}/body.html", context)
    if incident.is_drill:
        text, html = _mark_as_drill(text, html)
    shown = set(FIELDS_BY_KIND.get(notice.kind, NOTICE_FIELDS)) | {"post_mortem_summary", "contact_point"}
    untranslated = tuple(
        name
        for name in sorted(untranslated_texts)
        if TEXT_FIELD[name] in shown and TEXT_FIELD[name] not in withheld
    )
    return subject, text, html, untranslated


def render_templates(
    *, folder: str, context: dict[str, Any], language: str, incident: Incident | None = None
) -> RenderedMessage:
    """Render ``<folder>/subject.txt``, ``body.txt`` and ``body.html`` with ``context`` in
    ``language``: the subject is one line (``SUBJECT_MAX_LENGTH``), the HTML part autoescaped,
    blank-line runs in the text part collapsed. The templates see ``subject`` and ``language``.
    ``incident``: the incident a notice is about; a drill's subject and both parts then say it
    is an exercise. (Notices themselves render through ``render_notice_for_customers``.)
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
    """Subjects never carry line breaks (header injection), start or end with spaces, and stay
    short."""
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
