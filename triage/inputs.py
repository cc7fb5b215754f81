"""The recorded shapes of an assessment's severity inputs and notification facts, and their
conversion into the pure rule modules' inputs (``SeverityInputs``, ``BreachFacts``).

Both are plain JSON mappings so that the web form, the API and the stored ``Assessment`` use
one shape. No database access; every error is a ``ValueError`` whose message names the key.

Severity inputs (ENISA 2013, see ``triage.scoring``)::

    {
      "credentials_give_access_to": "financial" | null,   # needed when credentials are breached
      "dpc_adjustments": [{"factor": "data_volume", "steps": 1}, ...],
      "ease_of_identification": "negligible" | "limited" | "significant" | "maximum",
      "confidentiality_loss": "none" | "known_recipients" | "unknown_recipients",
      "integrity_loss": "none" | "recoverable" | "not_recoverable",
      "availability_loss": "none" | "temporary" | "permanent"
    }

Notification facts (GDPR Art. 33 and 34, see ``triage.notification_assessment``); ``null``
always means "not known"::

    {
      "breach_types": ["confidentiality", "integrity", "availability"],   # at least one
      "individuals": 1200 | null,
      "special_categories": true | false | null,
      "vulnerable_individuals": ..., "data_unintelligible_to_recipient": ...,
      "backup_available": ..., "recipients_known_and_trusted": ...,
      "high_risk_no_longer_likely": ..., "individual_communication_disproportionate": ...,
      "unavailability_hours": 6.5 | null, "data_permanently_lost": false,
      "exfiltration": "confirmed" | "suspected" | "ruled_out" | null,
      "likely_consequences": ["phishing", ...] | null
    }

The data categories (``incidents.models.DataCategory`` values) and whether the breach was
malicious are recorded once on the assessment and feed both: a malicious breach (``yes``) adds
ENISA's malicious-intent circumstance (CB +0.5) and is ``malicious=True`` for the notification
rules; ``unknown`` adds nothing to CB (ENISA scores established intent) and is ``None`` for the
notification rules (which then assume the worse, WP250).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from triage.notification_assessment import (
    PERMANENT_LOSS,
    BreachFacts,
    BreachType,
    Consequence,
    Exfiltration,
)
from triage.scoring import (
    DATA_CATEGORY_TO_ENISA,
    AvailabilityLoss,
    ConfidentialityLoss,
    DpcAdjustment,
    DpcFactor,
    EaseOfIdentification,
    EnisaDataCategory,
    IntegrityLoss,
    SeverityInputs,
    enisa_categories_for,
)

#: ENISA enum -> its choices as (value, label) pairs, the values being lower-case member names.
LEVEL_CHOICES: dict[str, list[tuple[str, str]]] = {
    "ease_of_identification": [
        ("negligible", "Negligible (0.25): practically impossible to tell who the data are about"),
        ("limited", "Limited (0.5): only with considerable effort or outside information"),
        ("significant", "Significant (0.75): with moderate effort"),
        ("maximum", "Maximum (1): immediate, e.g. full name with date of birth"),
    ],
    "confidentiality_loss": [
        ("none", "None (0): exposed, no evidence of unlawful processing"),
        ("known_recipients", "Known recipients (0.25): a known number of known recipients"),
        ("unknown_recipients", "Unknown recipients (0.5): published, sold, taken by an attacker"),
    ],
    "integrity_loss": [
        ("none", "None (0): altered, no evidence of unlawful use"),
        ("recoverable", "Recoverable (0.25): altered, the original can be restored"),
        ("not_recoverable", "Not recoverable (0.5): altered, the original is lost"),
    ],
    "availability_loss": [
        ("none", "None (0): recovered without difficulty"),
        ("temporary", "Temporary (0.25): recoverable, but it takes time"),
        ("permanent", "Permanent (0.5): cannot be recovered"),
    ],
}
_LEVEL_ENUMS = {
    "ease_of_identification": EaseOfIdentification,
    "confidentiality_loss": ConfidentialityLoss,
    "integrity_loss": IntegrityLoss,
    "availability_loss": AvailabilityLoss,
}
ENISA_CATEGORY_CHOICES: list[tuple[str, str]] = [
    ("simple", "Simple data (1)"),
    ("behavioural", "Behavioural data (2)"),
    ("financial", "Financial data (3)"),
    ("sensitive", "Sensitive data (4)"),
]
#: DPC contextual factors (ENISA 2013, Annex A2) with their labels, raising ones first.
DPC_FACTOR_CHOICES: list[tuple[str, str]] = [
    ("data_volume", "Volume of data about each person (raises)"),
    ("controller_characteristics", "Special characteristics of the controller (raises)"),
    ("individuals_characteristics", "Special characteristics of the individuals (raises)"),
    ("invalid_or_inaccurate", "Data known to be invalid or inaccurate (lowers)"),
    ("publicly_available", "Data already public before the breach (lowers)"),
    ("nature_reveals_less", "Data reveal less than their category suggests (lowers)"),
]
BREACH_TYPE_CHOICES: list[tuple[str, str]] = [
    (BreachType.CONFIDENTIALITY.value, "Confidentiality: unauthorised disclosure or access"),
    (BreachType.INTEGRITY.value, "Integrity: unauthorised alteration"),
    (BreachType.AVAILABILITY.value, "Availability: loss of access or destruction"),
]
EXFILTRATION_CHOICES: list[tuple[str, str]] = [
    (Exfiltration.CONFIRMED.value, "Confirmed"),
    (Exfiltration.SUSPECTED.value, "Suspected"),
    (Exfiltration.RULED_OUT.value, "Ruled out"),
]
CONSEQUENCE_CHOICES: list[tuple[str, str]] = [
    (consequence.value, consequence.value.replace("_", " ").capitalize())
    for consequence in Consequence
    if consequence is not Consequence.NONE
] + [(Consequence.NONE.value, "None or negligible")]
SEVERITY_KEYS = frozenset({"credentials_give_access_to", "dpc_adjustments", *_LEVEL_ENUMS})
_OPTIONAL_BOOLEANS = (
    "special_categories",
    "vulnerable_individuals",
    "data_unintelligible_to_recipient",
    "backup_available",
    "recipients_known_and_trusted",
    "high_risk_no_longer_likely",
    "individual_communication_disproportionate",
)
NOTIFICATION_KEYS = frozenset(
    {
        "breach_types",
        "individuals",
        "unavailability_hours",
        "data_permanently_lost",
        "exfiltration",
        "likely_consequences",
        *_OPTIONAL_BOOLEANS,
    }
)
MALICIOUS_VALUES = ("yes", "no", "unknown")


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be an object")
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(unknown)}")


def data_categories_from(values: Iterable[str] | None) -> list[str]:
    """The data category values, checked and sorted; ``ValueError`` naming an unknown one."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError("data_categories must be a list")
    values = list(values)
    if not all(isinstance(value, str) for value in values):
        raise ValueError("data_categories must be a list of category names")
    result = sorted(set(values))
    unknown = [value for value in result if value not in DATA_CATEGORY_TO_ENISA]
    if unknown:
        raise ValueError(f"data_categories: unknown value(s) {', '.join(map(str, unknown))}")
    return result


def severity_inputs_from(
    data: Mapping[str, Any], *, data_categories: Iterable[str], malicious: str | None
) -> tuple[dict[str, Any], SeverityInputs]:
    """Check recorded severity inputs; return their canonical JSON and ``SeverityInputs``.

    ``data`` has the shape in the module docstring (missing loss levels default to ``none``;
    ``ease_of_identification`` is required). ``data_categories``: ``DataCategory`` values, at
    least one (ENISA scores the highest category present); ``credentials`` needs
    ``credentials_give_access_to``. ``malicious`` ``"yes"`` adds malicious intent (ENISA CB).
    The canonical JSON holds every key, plus ``data_categories`` and ``malicious_intent``.
    Raises ``ValueError`` naming the key at fault.
    """
    _check_keys(data, SEVERITY_KEYS, "severity inputs")
    categories = data_categories_from(data_categories)
    if not categories:
        raise ValueError("data_categories: at least one is needed to score the severity")
    access = data.get("credentials_give_access_to") or None
    if access is not None and access not in {value for value, _ in ENISA_CATEGORY_CHOICES}:
        raise ValueError(f"credentials_give_access_to: unknown ENISA category {access!r}")
    if "credentials" not in categories:
        access = None
    enisa = enisa_categories_for(
        categories, credentials_give_access_to=EnisaDataCategory(access) if access else None
    )
    levels: dict[str, Any] = {}
    for key, kind in _LEVEL_ENUMS.items():
        value = data.get(key)
        if value in (None, ""):
            if key == "ease_of_identification":
                raise ValueError("ease_of_identification: required")
            value = "none"
        known = [name.lower() for name in kind.__members__]
        if value not in known:
            raise ValueError(f"{key}: {value!r} is not one of {', '.join(known)}")
        levels[key] = value
    raw_adjustments = data.get("dpc_adjustments") or []
    if not isinstance(raw_adjustments, list | tuple):
        raise ValueError("dpc_adjustments must be a list")
    adjustments = []
    for item in raw_adjustments:
        if not isinstance(item, Mapping) or set(item) - {"factor", "steps"} or "factor" not in item:
            raise ValueError('dpc_adjustments: each is {"factor": ..., "steps": 1 to 3}')
        try:
            adjustments.append(DpcAdjustment(DpcFactor(item["factor"]), item.get("steps", 1)))
        except ValueError as error:
            raise ValueError(f"dpc_adjustments: {error}") from None
    if len({adjustment.factor for adjustment in adjustments}) != len(adjustments):
        raise ValueError("dpc_adjustments: each factor at most once")
    if malicious not in (None, "", *MALICIOUS_VALUES):
        raise ValueError(f"malicious: {malicious!r} is not one of yes, no, unknown")
    inputs = SeverityInputs(
        data_categories=enisa,
        ease_of_identification=EaseOfIdentification[levels["ease_of_identification"].upper()],
        dpc_adjustments=tuple(adjustments),
        confidentiality_loss=ConfidentialityLoss[levels["confidentiality_loss"].upper()],
        integrity_loss=IntegrityLoss[levels["integrity_loss"].upper()],
        availability_loss=AvailabilityLoss[levels["availability_loss"].upper()],
        malicious_intent=malicious == "yes",
    )
    canonical = {
        "data_categories": categories,
        "credentials_give_access_to": access,
        "dpc_adjustments": [
            {"factor": adjustment.factor.value, "steps": adjustment.steps} for adjustment in adjustments
        ],
        **levels,
        "malicious_intent": malicious == "yes",
    }
    return canonical, inputs


def _optional_bool(key: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{key} must be true, false or null (not known)")


def breach_facts_from(
    data: Mapping[str, Any], *, data_categories: Iterable[str], malicious: str | None
) -> tuple[dict[str, Any], BreachFacts]:
    """Check recorded notification facts; return their canonical JSON and ``BreachFacts``.

    ``data`` has the shape in the module docstring; missing keys are "not known" (``null``).
    ``unavailability_hours`` is hours of elapsed time (a number, at least 0);
    ``data_permanently_lost`` true means the data cannot be restored (and wins over the hours).
    ``malicious``: ``"yes"`` -> True, ``"no"`` -> False, ``"unknown"`` or empty -> None.
    The canonical JSON holds every key, plus ``data_categories`` and ``malicious``.
    Raises ``ValueError`` naming the key at fault.
    """
    _check_keys(data, NOTIFICATION_KEYS, "notification facts")
    categories = data_categories_from(data_categories)
    breach_types = data.get("breach_types") or []
    if isinstance(breach_types, str) or not isinstance(breach_types, Iterable):
        raise ValueError("breach_types must be a list")
    breach_types = list(breach_types)
    if not all(isinstance(value, str) for value in breach_types):
        raise ValueError("breach_types must be a list of breach type names")
    breach_types = sorted(set(breach_types))
    individuals = data.get("individuals")
    if individuals is not None and (
        isinstance(individuals, bool) or not isinstance(individuals, int) or individuals < 0
    ):
        raise ValueError("individuals must be a count of people (0 or more) or null")
    hours = data.get("unavailability_hours")
    if hours is not None and (
        isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours < 10**6
    ):
        raise ValueError("unavailability_hours must be a number of hours (0 or more) or null")
    lost = data.get("data_permanently_lost") or False
    if not isinstance(lost, bool):
        raise ValueError("data_permanently_lost must be true or false")
    if lost:
        unavailability: timedelta | None = PERMANENT_LOSS
    elif hours is not None:
        unavailability = timedelta(hours=hours)
    else:
        unavailability = None
    exfiltration = data.get("exfiltration") or None
    if exfiltration is not None and exfiltration not in {value for value, _ in EXFILTRATION_CHOICES}:
        raise ValueError(f"exfiltration: {exfiltration!r} is not one of confirmed, suspected, ruled_out")
    consequences = data.get("likely_consequences")
    if consequences is not None and (isinstance(consequences, str) or not isinstance(consequences, Iterable)):
        raise ValueError("likely_consequences must be a list or null")
    if consequences is not None:
        consequences = list(consequences)
        if not all(isinstance(value, str) for value in consequences):
            raise ValueError("likely_consequences must be a list of consequence names")
    booleans = {key: _optional_bool(key, data.get(key)) for key in _OPTIONAL_BOOLEANS}
    malicious_flag = {"yes": True, "no": False}.get(malicious or "")
    facts = BreachFacts(
        breach_types=frozenset(breach_types),
        data_categories=frozenset(categories),
        individuals=individuals,
        malicious=malicious_flag,
        unavailability=unavailability,
        exfiltration=exfiltration,
        likely_consequences=frozenset(consequences) if consequences is not None else None,
        **booleans,
    )
    canonical = {
        "breach_types": breach_types,
        "data_categories": categories,
        "individuals": individuals,
        "malicious": malicious_flag,
        "unavailability_hours": hours,
        "data_permanently_lost": lost,
        "exfiltration": exfiltration,
        "likely_consequences": sorted(set(consequences)) if consequences is not None else None,
        **booleans,
    }
    return canonical, facts
