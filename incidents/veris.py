"""Intake from VERIS incident records (the VERIS Community Database, repository ``vz-risk/VCDB``).

VERIS (Vocabulary for Event Recording and Incident Sharing, repository ``vz-risk/veris``) codes one
security incident per JSON object. This module has two halves:

- ``map_veris_record``: the pure mapping from one record (a ``dict``) to incident fields. It
  touches no database, so it is tested on small hand-written dicts.
- ``veris_files``, ``import_veris_file`` and ``import_veris_files``: reading files and creating
  ``detected`` incidents through ``services.incident_create`` (used by the ``import_veris`` and
  ``seed_demo`` management commands).

The record's ``incident_id`` is the idempotency key (``Incident.external_reference``): importing
the same record twice creates nothing the second time. The whole record is kept as
``Incident.source_record``.

The mapping was written against VERIS schema versions 1.3.x to 1.4.x (``verisc-enum.json`` and
the schema changelogs of ``vz-risk/veris``) and the sample in ``incidents/fixtures/vcdb/``. Fields
vary between versions, so every field is optional and a value the mapping does not recognise is
treated as unknown. Unknown stays unknown: it maps to ``None`` (or an empty string where the
model field is a string), never to a guessed value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from incidents import services
from incidents.models import DataCategory, Incident, Supplier

# ---------------------------------------------------------------------------------------------
# The pure mapping
# ---------------------------------------------------------------------------------------------

#: Where a record's discovery method is unknown (or absent), the detection source it gets. VCDB
#: records are coded from public reports (news articles, regulators' breach lists), so an
#: incident of unknown discovery reached us as an external report.
DEFAULT_DETECTION_SOURCE = Incident.DetectionSource.EXTERNAL_REPORT

#: Longest title the mapping makes from a summary (characters, ellipsis included).
TITLE_MAX_LENGTH = 120

#: ``Incident.external_reference`` holds at most this many characters.
_external_reference_max_length = Incident._meta.get_field("external_reference").max_length
assert _external_reference_max_length is not None  # a CharField always has one
EXTERNAL_REFERENCE_MAX_LENGTH: int = _external_reference_max_length

#: VERIS ``attribute.confidentiality.data.variety`` (lower case) -> personal data category.
#: "Sensitive Personal" (VERIS 1.4) is sensitive personal information, treated as an Art. 9 GDPR
#: special category until triage says otherwise.
PERSONAL_DATA_VARIETIES: dict[str, str] = {
    "personal": DataCategory.IDENTITY,
    "sensitive personal": DataCategory.SPECIAL_CATEGORY,
    "medical": DataCategory.HEALTH,
    "bank": DataCategory.FINANCIAL,
    "virtual currency": DataCategory.FINANCIAL,
    "payment": DataCategory.PAYMENT_CARD,
    "credentials": DataCategory.CREDENTIALS,
}

#: Data varieties that are not personal data: the organisation's own information.
NON_PERSONAL_DATA_VARIETIES: frozenset[str] = frozenset(
    {
        "internal",
        "secrets",
        "system",
        "classified",
        "copyrighted",
        "source code",
        "digital certificate",
    }
)

#: ``attribute.confidentiality.data_victim`` values that are people (data subjects): "Other" data
#: about them is personal data.
PERSON_DATA_VICTIMS: frozenset[str] = frozenset({"customer", "employee", "patient", "student"})

#: VERIS actor motives that mean the actor meant harm or gain.
MALICIOUS_MOTIVES: frozenset[str] = frozenset(
    {"financial", "espionage", "grudge", "ideology", "fun", "fear", "secondary"}
)

#: VERIS actor motives of an unintentional or merely expedient act ("NA": not applicable,
#: unintentional action).
NON_MALICIOUS_MOTIVES: frozenset[str] = frozenset({"na", "convenience"})

#: Internal discovery varieties that are a tool raising an alarm rather than a person noticing.
AUTOMATED_INTERNAL_DISCOVERY: frozenset[str] = frozenset(
    {
        "antivirus",
        "hids",
        "nids",
        "log review",
        "data loss prevention",
        "infrastructure monitoring",
        "security alarm",
        "fraud detection",
    }
)

#: NAICS 2022 sectors (the first two digits of a VERIS industry code).
NAICS_SECTORS: dict[str, str] = {
    "11": "Agriculture, Forestry, Fishing and Hunting",
    "21": "Mining, Quarrying, and Oil and Gas Extraction",
    "22": "Utilities",
    "23": "Construction",
    "31": "Manufacturing",
    "32": "Manufacturing",
    "33": "Manufacturing",
    "42": "Wholesale Trade",
    "44": "Retail Trade",
    "45": "Retail Trade",
    "48": "Transportation and Warehousing",
    "49": "Transportation and Warehousing",
    "51": "Information",
    "52": "Finance and Insurance",
    "53": "Real Estate and Rental and Leasing",
    "54": "Professional, Scientific, and Technical Services",
    "55": "Management of Companies and Enterprises",
    "56": "Administrative and Support and Waste Management and Remediation Services",
    "61": "Educational Services",
    "62": "Health Care and Social Assistance",
    "71": "Arts, Entertainment, and Recreation",
    "72": "Accommodation and Food Services",
    "81": "Other Services (except Public Administration)",
    "92": "Public Administration",
}


class VerisRecordError(ValueError):
    """A VERIS record that cannot be imported at all; the message says why in one line."""


@dataclass(frozen=True)
class PartnerSupplier:
    """The sub-processor a record's partner actor stands for.

    ``name``: unique per record, since VERIS does not name partners; ``country``: ISO 3166-1
    alpha-2 code or ``""`` when unknown; ``services``: what the record says the partner is;
    ``details``: everything the record says about the partner, for ``sub_processor_details``.
    """

    name: str
    country: str
    services: str
    details: str


@dataclass(frozen=True)
class VerisMapping:
    """What one VERIS record maps to.

    ``external_reference``: the record's ``incident_id``. ``fields``: ``incidents.services``
    ``EDITABLE_FIELDS`` for ``incident_create`` (without ``sub_processor``, a database row: the
    importer makes it from ``partner``). ``partner``: ``None`` when the record codes no partner
    actor. ``notes``: where the mapping had to judge (disagreeing totals, approximate dates),
    recorded in the ``created`` audit event.
    """

    external_reference: str
    fields: dict[str, Any]
    partner: PartnerSupplier | None
    notes: list[str] = field(default_factory=list)


def map_veris_record(record: Mapping[str, Any]) -> VerisMapping:
    """Map one VERIS record to incident fields (pure: no database access).

    ``record``: a parsed VERIS JSON object (schema 1.3.x to 1.4.x; every field optional except
    ``incident_id``). Returns a ``VerisMapping`` whose ``fields`` hold:

    - ``title``: the summary's first sentence, shortened at a word to ``TITLE_MAX_LENGTH``
      characters; without a summary "VERIS incident at <victim_id>", or
      "VERIS incident <incident_id>" when the victim is unknown too.
    - ``summary``: the record's summary as written (VCDB summaries are press text and may carry
      stray web-page text; they are not cleaned, so nothing is lost).
    - ``occurred_on`` and ``occurred_on_precision``: from ``timeline.incident`` year, month and
      day. A missing or invalid day gives the first of the month with precision ``month``; a
      missing or invalid month gives 1 January with precision ``year``; no year gives ``None``
      and ``""``. A partial date is approximate, never an invented exact day.
    - ``records_affected`` and ``records_affected_is_estimate``: ``data_total`` as an exact
      count when it is at least every per-variety ``amount``; when a per-variety amount exceeds
      the total the sources disagree and the largest figure is kept as an estimate; without a
      total the per-variety amounts are summed as an estimate (an upper bound: one record may
      hold several varieties); nothing known: ``None``.
    - ``data_categories``: ``DataCategory`` values from the data varieties (see
      ``PERSONAL_DATA_VARIETIES``; "Other" counts as other personal data only when
      ``data_victim`` names people). ``[]`` when every variety is non-personal (Internal,
      Secrets, System, ...): no personal data. ``None`` (unknown) when there are no varieties,
      or the only ones are "Unknown" or "Other" of unknown owner besides non-personal ones.
    - ``malicious``: see ``malicious_from_record``. ``scenario``: see ``scenario_from_record``.
    - ``detection_source``: see ``detection_source_from_record``.
    - ``reported_by``: "VERIS Community Database", the public source of the record.
    - ``sub_processor_details``: what the record says about its partner actor, if any.

    Raises ``VerisRecordError`` when ``record`` is not a JSON object or has no usable
    ``incident_id`` (a non-empty string of at most 100 characters).
    """
    if not isinstance(record, Mapping):
        raise VerisRecordError(f"not a JSON object (found {_json_type_name(record)})")
    incident_id = record.get("incident_id")
    if not isinstance(incident_id, str) or not incident_id.strip():
        raise VerisRecordError("no incident_id (the record's identifier is required)")
    incident_id = incident_id.strip()
    if len(incident_id) > EXTERNAL_REFERENCE_MAX_LENGTH:
        raise VerisRecordError(f"incident_id is longer than {EXTERNAL_REFERENCE_MAX_LENGTH} characters")

    notes: list[str] = []
    raw_summary = record.get("summary")
    summary = raw_summary if isinstance(raw_summary, str) else ""
    victim_id = _victim_id(record)
    occurred_on, precision = _occurred_on(record, notes)
    records_affected, is_estimate = _records_affected(record, notes)
    partner = _partner_supplier(record, incident_id)

    fields: dict[str, Any] = {
        "title": _title(summary, victim_id=victim_id, incident_id=incident_id),
        "summary": summary.strip(),
        "detection_source": detection_source_from_record(record),
        "reported_by": "VERIS Community Database",
        "occurred_on": occurred_on,
        "occurred_on_precision": precision,
        "records_affected": records_affected,
        "records_affected_is_estimate": is_estimate,
        "data_categories": data_categories_from_record(record),
        "malicious": malicious_from_record(record),
        "scenario": scenario_from_record(record),
        "sub_processor_details": partner.details if partner else "",
    }
    security_incident = record.get("security_incident")
    if isinstance(security_incident, str) and security_incident.lower() in (
        "near miss",
        "false positive",
    ):
        notes.append(f"The record codes this as a {security_incident.lower()}, not a confirmed incident.")
    return VerisMapping(external_reference=incident_id, fields=fields, partner=partner, notes=notes)


def data_categories_from_record(record: Mapping[str, Any]) -> list[str] | None:
    """The personal data categories (``DataCategory`` values, in declaration order) of a record.

    ``[]``: the record names only non-personal data (no personal data involved). ``None``:
    unknown (no data varieties, or only "Unknown", or "Other" not known to be about people).
    Categories found beside "Unknown" are returned: they are known, though maybe incomplete.
    """
    confidentiality = _confidentiality(record)
    varieties = [
        entry["variety"].strip().lower()
        for entry in _list(confidentiality.get("data"))
        if isinstance(entry, Mapping) and isinstance(entry.get("variety"), str)
    ]
    if not varieties:
        return None
    about_people = bool(_lower_set(confidentiality.get("data_victim")) & PERSON_DATA_VICTIMS)
    found: set[str] = set()
    undetermined = False
    for variety in varieties:
        if variety in PERSONAL_DATA_VARIETIES:
            found.add(PERSONAL_DATA_VARIETIES[variety])
        elif variety == "other" and about_people:
            found.add(DataCategory.OTHER)
        elif variety in NON_PERSONAL_DATA_VARIETIES:
            continue
        else:  # "Unknown", "Other" of unknown owner, or a variety this mapping does not know.
            undetermined = True
    if found:
        return [category.value for category in DataCategory if category in found]
    return None if undetermined else []


def malicious_from_record(record: Mapping[str, Any]) -> str | None:
    """Whether the record's incident was malicious: ``"yes"``, ``"no"`` or ``None``.

    - ``"yes"``: an external actor (other than force majeure, or one whose every motive is
      unintentional), or an internal or partner actor with a malicious motive (financial,
      espionage, grudge, ideology, fun, fear, secondary).
    - ``"no"``: otherwise, when the action is an error or environmental, or an internal or
      partner actor's motive is unintentional ("NA") or convenience.
    - ``None``: not yet assessed (for example misuse by an insider of unknown motive); triage
      records ``unknown`` or decides.
    """
    actors = _mapping(record.get("actor"))
    external = actors.get("external")
    if external is not None:
        external = _mapping(external)
        varieties = _lower_set(external.get("variety"))
        motives = _lower_set(external.get("motive"))
        force_majeure_only = bool(varieties) and varieties <= {"force majeure"}
        unintentional_only = bool(motives) and motives <= NON_MALICIOUS_MOTIVES
        if not force_majeure_only and not unintentional_only:
            return Incident.Malicious.YES
    insider_motives: set[str] = set()
    for kind in ("internal", "partner"):
        insider_motives |= _lower_set(_mapping(actors.get(kind)).get("motive"))
    if insider_motives & MALICIOUS_MOTIVES:
        return Incident.Malicious.YES
    actions = _mapping(record.get("action"))
    if "error" in actions or "environmental" in actions or insider_motives & NON_MALICIOUS_MOTIVES:
        return Incident.Malicious.NO
    return None


def scenario_from_record(record: Mapping[str, Any]) -> str | None:
    """The breach scenario (``Incident.Scenario`` value) of a record's actions and actors.

    The first rule that applies wins:

    1. a partner actor -> ``supplier_breach`` (the breach happened at or through a supplier);
    2. malware (ransomware, RAM scrapers, backdoors) -> ``malware_or_ransomware``;
    3. error "Misdelivery" -> ``misdirected_communication``;
    4. error "Publishing error" -> ``accidental_publication``;
    5. physical "Theft" or error "Loss" -> ``lost_or_stolen_device``;
    6. misuse by an internal actor -> ``malicious_insider``;
    7. hacking -> ``unauthorised_access``;
    8. any other known action (other errors such as misconfiguration, social, environmental)
       -> ``other``.

    ``None`` when the record has no actions or only ``action.unknown``.
    """
    actions = {key.lower(): _mapping(value) for key, value in _mapping(record.get("action")).items()}
    actors = _mapping(record.get("actor"))
    known_actions = set(actions) - {"unknown"}
    if "partner" in actors:
        return Incident.Scenario.SUPPLIER_BREACH
    if not known_actions:
        return None
    error = _lower_set(actions.get("error", {}).get("variety"))
    physical = _lower_set(actions.get("physical", {}).get("variety"))
    if "malware" in actions:
        return Incident.Scenario.MALWARE_OR_RANSOMWARE
    if "misdelivery" in error:
        return Incident.Scenario.MISDIRECTED_COMMUNICATION
    if "publishing error" in error:
        return Incident.Scenario.ACCIDENTAL_PUBLICATION
    if "theft" in physical or "loss" in error:
        return Incident.Scenario.LOST_OR_STOLEN_DEVICE
    if "misuse" in actions and "internal" in actors:
        return Incident.Scenario.MALICIOUS_INSIDER
    if "hacking" in actions:
        return Incident.Scenario.UNAUTHORISED_ACCESS
    return Incident.Scenario.OTHER


def detection_source_from_record(record: Mapping[str, Any]) -> str:
    """How the incident was detected (``Incident.DetectionSource`` value), from
    ``discovery_method``; never ``None`` since the field is required.

    - internal, "Reported by employee" -> ``staff_escalation``;
    - internal monitoring (antivirus, HIDS, NIDS, log review, data loss prevention,
      infrastructure monitoring, security alarm, fraud detection) -> ``automated_alert``;
    - other internal (audits, IT review, incident response, offboarding, unknown) ->
      ``staff_escalation``: a person inside raised it;
    - external "Customer" -> ``customer_report``; any other external -> ``external_report``;
    - partner -> ``external_report``;
    - unknown, other or absent -> ``DEFAULT_DETECTION_SOURCE`` (``external_report``: VCDB
      records come from public reports).

    Internal is looked at first, then external, then partner. Also reads the VERIS 1.2 string
    form ("Int - reported by employee", "Ext - customer", "Prt - audit").
    """
    method = record.get("discovery_method")
    if isinstance(method, str):
        kind, _, variety = method.partition(" - ")
        prefix = {"int": "internal", "ext": "external", "prt": "partner"}.get(kind.strip().lower())
        method = {prefix: {"variety": [variety]}} if prefix else {}
    method = _mapping(method)
    if "internal" in method:
        varieties = _lower_set(_mapping(method["internal"]).get("variety"))
        if "reported by employee" in varieties:
            return Incident.DetectionSource.STAFF_ESCALATION
        if varieties & AUTOMATED_INTERNAL_DISCOVERY:
            return Incident.DetectionSource.AUTOMATED_ALERT
        return Incident.DetectionSource.STAFF_ESCALATION
    if "external" in method:
        varieties = _lower_set(_mapping(method["external"]).get("variety"))
        if "customer" in varieties:
            return Incident.DetectionSource.CUSTOMER_REPORT
        return Incident.DetectionSource.EXTERNAL_REPORT
    if "partner" in method:
        return Incident.DetectionSource.EXTERNAL_REPORT
    return DEFAULT_DETECTION_SOURCE


def _title(summary: str, *, victim_id: str, incident_id: str) -> str:
    text = " ".join(summary.split())
    if not text:
        return f"VERIS incident at {victim_id}" if victim_id else f"VERIS incident {incident_id}"
    title = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    if len(title) > TITLE_MAX_LENGTH:
        cut = title[: TITLE_MAX_LENGTH - 1]
        if " " in cut:
            cut = cut[: cut.rindex(" ")]
        title = cut.rstrip(" ,;:-") + "…"
    elif title.endswith(".") and not title.endswith(".."):
        title = title[:-1]
    return title[0].upper() + title[1:] if title[0].islower() else title


def _victim_id(record: Mapping[str, Any]) -> str:
    victim = record.get("victim")
    if isinstance(victim, list):  # VERIS 1.2 allowed a list of victims.
        victim = victim[0] if victim else {}
    value = _mapping(victim).get("victim_id")
    if isinstance(value, str) and value.strip() and value.strip().lower() != "unknown":
        return " ".join(value.split())
    return ""


def _occurred_on(record: Mapping[str, Any], notes: list[str]) -> tuple[date | None, str]:
    incident = _mapping(_mapping(record.get("timeline")).get("incident"))
    year, month, day = (_whole_number(incident.get(key)) for key in ("year", "month", "day"))
    if year is None or not 1 <= year <= 9999:
        return None, ""
    if month is None or not 1 <= month <= 12:
        if month is not None or day is not None:
            notes.append("The incident date's month is missing or invalid: recorded as the year only.")
        return date(year, 1, 1), Incident.DatePrecision.YEAR
    if day is None:
        return date(year, month, 1), Incident.DatePrecision.MONTH
    try:
        return date(year, month, day), Incident.DatePrecision.DAY
    except ValueError:
        notes.append(
            f"The incident day {day} is not a day of {year}-{month:02d}: recorded as the month only."
        )
        return date(year, month, 1), Incident.DatePrecision.MONTH


def _records_affected(record: Mapping[str, Any], notes: list[str]) -> tuple[int | None, bool]:
    confidentiality = _confidentiality(record)
    total = _whole_number(confidentiality.get("data_total"))
    amounts: list[tuple[str, int]] = []
    for entry in _list(confidentiality.get("data")):
        if isinstance(entry, Mapping):
            amount = _whole_number(entry.get("amount"))
            if amount is not None:
                amounts.append((str(entry.get("variety", "unknown variety")), amount))
    if total is not None:
        largest = max(amounts, key=lambda pair: pair[1], default=None)
        if largest is not None and largest[1] > total:
            notes.append(
                f"data_total {total} is below the {largest[0]} amount {largest[1]}; the larger "
                "figure is kept as an estimate."
            )
            return largest[1], True
        return total, False
    if amounts:
        notes.append("No data_total: records affected is the sum of the per-variety amounts, an estimate.")
        return sum(amount for _, amount in amounts), True
    return None, False


def _partner_supplier(record: Mapping[str, Any], incident_id: str) -> PartnerSupplier | None:
    actors = _mapping(record.get("actor"))
    if "partner" not in actors:
        return None
    partner = _mapping(actors["partner"])
    countries = [
        code.strip().upper()
        for code in _list(partner.get("country"))
        if isinstance(code, str) and re.fullmatch(r"[A-Za-z]{2}", code.strip())
    ]
    industry = str(partner.get("industry") or "").strip()
    if industry and set(industry) != {"0"}:
        sector = NAICS_SECTORS.get(industry[:2])
        industry_text = f"NAICS {industry}" + (f" ({sector})" if sector else "")
    else:
        industry_text = "unknown"
    motives = sorted(_text_set(partner.get("motive"))) or ["unknown"]
    lines = [
        f"VERIS record {incident_id} codes a partner of the victim (a supplier or other "
        "business partner) as an actor; the record does not name the partner.",
        f"Industry: {industry_text}.",
        f"Country: {', '.join(countries) if countries else 'unknown'}.",
        f"Motive: {', '.join(motives)}.",
    ]
    partner_notes = partner.get("notes")
    if isinstance(partner_notes, str) and partner_notes.strip():
        lines.append(f"Notes in the record: {' '.join(partner_notes.split())}")
    services = f"Partner of the victim in VERIS record {incident_id}; industry {industry_text}."
    return PartnerSupplier(
        name=f"Partner named in VERIS record {incident_id}",
        country=countries[0] if len(countries) == 1 else "",
        services=services,
        details="\n".join(lines),
    )


def _confidentiality(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(record.get("attribute")).get("confidentiality"))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _text_set(value: Any) -> set[str]:
    return {item.strip() for item in _list(value) if isinstance(item, str) and item.strip()}


def _lower_set(value: Any) -> set[str]:
    return {item.lower() for item in _text_set(value)}


def _whole_number(value: Any) -> int | None:
    """A non-negative integer from an int or a string of digits; anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _json_type_name(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Importing files
# ---------------------------------------------------------------------------------------------

ImportStatus = Literal["imported", "already_present", "failed"]


@dataclass(frozen=True)
class FileOutcome:
    """The result of importing one file: ``status`` and, when it failed, a one-line
    ``reason``; ``incident`` is the new or existing incident (``None`` when it failed)."""

    path: Path
    status: ImportStatus
    incident: Incident | None = None
    reason: str = ""


@dataclass
class ImportSummary:
    """Counts of one import run, and every file's outcome in the order imported."""

    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: ImportStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def line(self) -> str:
        """ "N imported, M already present, K failed"."""
        return (
            f"{self.count('imported')} imported, {self.count('already_present')} already present, "
            f"{self.count('failed')} failed"
        )


def veris_files(paths: Iterable[Path]) -> list[Path]:
    """The files to import for ``paths``: a file as given (whatever its name), a folder's files
    whose names end in ``.json`` in any letter case (not its subfolders), sorted by name.

    Raises ``FileNotFoundError`` naming the first path that does not exist, before anything is
    imported, and ``OSError`` for a folder that cannot be listed.
    """
    paths = list(paths)
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                (child for child in path.iterdir() if child.is_file() and child.suffix.lower() == ".json"),
                key=lambda child: child.name,
            )
        else:
            files.append(path)
    return files


def read_veris_file(path: Path) -> dict[str, Any]:
    """Read and parse one VERIS file (UTF-8, a byte-order mark allowed).

    Raises ``VerisRecordError`` with a one-line reason: unreadable, not UTF-8, invalid JSON
    (with line and column), or not a JSON object.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise VerisRecordError(f"cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise VerisRecordError(f"is not UTF-8 text (byte {error.start})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise VerisRecordError(
            f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise VerisRecordError("invalid JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise VerisRecordError(f"not a JSON object (found {_json_type_name(record)})")
    return record


def import_veris_record(record: Mapping[str, Any], *, source_name: str = "") -> tuple[ImportStatus, Incident]:
    """Import one parsed VERIS record as a ``detected`` incident, in one transaction.

    Returns ``("imported", incident)``, or ``("already_present", incident)`` when an incident
    with the record's ``incident_id`` as ``external_reference`` exists (the idempotency key; a
    concurrent import of the same record also ends here). A partner actor becomes a
    ``Supplier`` (created once, named per record) set as the incident's ``sub_processor``.
    The ``created`` audit event (actor: the system) carries ``import``: the source, file name,
    schema version and the mapping's notes. Raises ``VerisRecordError`` for a record that
    cannot be mapped and ``django.core.exceptions.ValidationError`` for values the model
    refuses; nothing is stored then.
    """
    mapping = map_veris_record(record)
    existing = Incident.objects.filter(external_reference=mapping.external_reference).first()
    if existing is not None:
        return "already_present", existing
    fields = dict(mapping.fields)
    try:
        with transaction.atomic():
            if mapping.partner is not None:
                # No supplier service exists yet; the sub-processor register is plain rows.
                supplier, _ = Supplier.objects.get_or_create(
                    name=mapping.partner.name,
                    defaults={
                        "country": mapping.partner.country,
                        "services": mapping.partner.services,
                    },
                )
                fields["sub_processor"] = supplier
            incident = services.incident_create(
                actor=None,
                fields=fields,
                external_reference=mapping.external_reference,
                source_record=json.loads(json.dumps(record)),
                audit_data={
                    "import": {
                        "source": "VERIS Community Database",
                        "file": source_name,
                        "schema_version": str(record.get("schema_version", "")),
                        "notes": mapping.notes,
                    }
                },
            )
    except (IntegrityError, ValidationError):
        existing = Incident.objects.filter(external_reference=mapping.external_reference).first()
        if existing is not None:
            return "already_present", existing
        raise
    return "imported", incident


def import_veris_file(path: Path) -> FileOutcome:
    """Import one VERIS file in its own transaction and return its ``FileOutcome``.

    Never raises for a bad file: unreadable, invalid JSON, not an object, no ``incident_id``
    or values the model refuses give ``status="failed"`` with a one-line ``reason``, and store
    nothing.
    """
    try:
        record = read_veris_file(path)
        status, incident = import_veris_record(record, source_name=path.name)
    except VerisRecordError as error:
        return FileOutcome(path=path, status="failed", reason=str(error))
    except ValidationError as error:
        return FileOutcome(path=path, status="failed", reason=f"refused: {_validation_text(error)}")
    return FileOutcome(path=path, status=status, incident=incident)


def import_veris_files(
    files: Iterable[Path], *, on_outcome: Callable[[FileOutcome], None] | None = None
) -> ImportSummary:
    """Import each file of ``files`` (see ``import_veris_file``), one transaction per file, so
    a bad file fails alone. ``on_outcome`` is called after each file (to report progress)."""
    summary = ImportSummary()
    for path in files:
        outcome = import_veris_file(path)
        summary.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return summary


def _validation_text(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in sorted(error.message_dict.items())
        )
    return " ".join(error.messages)
