"""Should this personal data breach be notified, and to whom?

A recommendation on the controller's three duties after a personal data breach, with reasons:

1. Document it internally: always (GDPR Art. 33(5)).
2. Notify the supervisory authority: unless the breach is unlikely to result in a risk to the
   rights and freedoms of natural persons (Art. 33(1)).
3. Communicate it to the data subjects: when it is likely to result in a high risk (Art.
   34(1)), unless an Art. 34(3) exemption applies: (a) the data are unintelligible to anyone
   not authorised (state-of-the-art encryption, key safe); (b) subsequent measures ensure the
   high risk is no longer likely to materialise; (c) it would involve disproportionate effort,
   in which case a public communication informs them instead.

The rules follow the reasoning of the EDPB Guidelines 01/2021 on examples regarding personal
data breach notification (v2.0, 14 December 2021; "EDPB 01/2021" below) and of the WP29
guidelines on breach notification (WP250 rev.01). Risk is judged from the people's side, by the
likelihood and severity of the consequences (GDPR Recitals 75 and 76): nature, sensitivity and
volume of the data, ease of identification, vulnerability of the people, and what happened to
the data. The principles, one per breach type, then combined:

- P1 Unintelligible data cannot hurt through disclosure. When data are encrypted or hashed to
  the state of the art and the key or secret is safe, a loss of confidentiality is unlikely to
  result in a risk (EDPB 01/2021 case 6, salted hashes; case 10, encrypted stolen device), and
  Art. 34(3)(a) in any case spares the communication.
- P2 Trusted recipients bound to confidentiality who confirm deletion neutralise an accidental
  disclosure (EDPB case 9), unless special-category data went to them (then notify: the
  exemption in case 9 rests on no sensitive data having been sent).
- P3 Data in hostile hands (an attacker, a thief, an employee acting in bad faith; or a
  malicious breach where exfiltration is not ruled out) are at least a risk: the controller has
  no assurance about what they will do with it (EDPB case 8). It is a high risk when the data
  are special-category, about vulnerable people, enable fraud (identifiers, payment cards,
  credentials) or are financial, when many people are involved, or when serious consequences
  such as identity theft or fraud are likely (cases 4, 5, 7, 11, 12); and, by P8, while the
  consequences have not been assessed. Only an assessment that the consequences are limited
  (unsolicited marketing by a former employee, case 8) keeps ordinary data at "risk".
- P4 An accidental disclosure to the wrong recipients (mispostal, misdirected email) is judged
  by what it reveals: unlikely to result in a risk when it reveals ordinary data with negligible
  consequences (case 13); a risk when it reveals more (case 16); high when serious consequences
  are likely, when special-category data reach strangers with unknown or aggravated impact, or
  when fraud-enabling identifiers of many people leak (case 14).
- P5 Loss of availability is judged by how long it lasts and who depends on the data. Restored
  from a backup within a short time (up to a day), it is unlikely to result in a risk (cases 1
  and 10: "the timeliness of an effective data restoration ... is a key variable"). Longer or
  permanent, it is a risk (case 2: no proper backup, days to rebuild); a high risk when the
  people are vulnerable or the data special-category, such as patients waiting for treatment
  (case 3).
- P6 Loss of integrity is a risk unless the data were restored from a backup and nobody acted
  in bad faith; high when serious consequences are likely (altered bank details, case 18).
- P7 Likely consequences count: serious ones (Recital 75: identity theft or fraud, financial
  loss, discrimination, damage to reputation, harm to health, other significant disadvantage)
  make any non-neutralised part of the breach a high risk.
- P8 When in doubt, be careful (WP250): an unknown fact is assumed in the direction that does
  not understate the risk, and the reasons say so.
- The overall risk is the highest of the parts.

This module is pure (no database, no Django import): ``assess_notification(BreachFacts(...))``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from triage.scoring import DATA_CATEGORY_TO_ENISA

__all__ = [
    "FRAUD_ENABLING_CATEGORIES",
    "LARGE_SCALE_INDIVIDUALS",
    "PERMANENT_LOSS",
    "SHORT_UNAVAILABILITY",
    "SPECIAL_CATEGORIES",
    "BreachFacts",
    "BreachType",
    "Consequence",
    "Exfiltration",
    "NotificationAssessment",
    "Reason",
    "RiskLevel",
    "assess_notification",
]

# ``unavailability`` value for data that cannot be restored at all.
PERMANENT_LOSS = timedelta.max
# Up to this long, an unavailability restored from a backup is "a short time" (EDPB 01/2021
# case 1: a few hours; case 3: about two days in a hospital was already a high risk). Our
# choice: one day.
SHORT_UNAVAILABILITY = timedelta(hours=24)
# From this many people, a breach is "large scale" for our rules. Neither the GDPR nor the EDPB
# gives a number; EDPB 01/2021 treats "more than 60 000" (case 14) and "more than 100 000"
# (case 11) as aggravating. Our choice: 10 000.
LARGE_SCALE_INDIVIDUALS = 10_000

# Values of incidents.models.DataCategory (plain strings, as in triage.scoring).
SPECIAL_CATEGORIES = frozenset({"health", "special_category", "criminal"})
FRAUD_ENABLING_CATEGORIES = frozenset({"government_identifier", "payment_card", "credentials"})
FINANCIAL_CATEGORIES = frozenset({"financial"})


class RiskLevel(StrEnum):
    """Risk to the rights and freedoms of natural persons (GDPR Art. 33(1), 34(1))."""

    UNLIKELY = "unlikely"
    RISK = "risk"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0, 1, 2 in increasing order of risk."""
        return _RANK[self]


_RANK = {RiskLevel.UNLIKELY: 0, RiskLevel.RISK: 1, RiskLevel.HIGH: 2}


class BreachType(StrEnum):
    """The three kinds of personal data breach (WP250, after WP29 Opinion 03/2014)."""

    CONFIDENTIALITY = "confidentiality"
    INTEGRITY = "integrity"
    AVAILABILITY = "availability"


class Exfiltration(StrEnum):
    """Whether the data were copied out of the controller's hands."""

    CONFIRMED = "confirmed"
    SUSPECTED = "suspected"
    RULED_OUT = "ruled_out"


class Consequence(StrEnum):
    """Likely consequences for the people (GDPR Recital 75 names the damage to consider)."""

    NONE = "none"  # no or negligible effect on the people
    MINOR_INCONVENIENCE = "minor_inconvenience"  # short delays, re-entering information
    UNSOLICITED_CONTACT = "unsolicited_contact"  # marketing, spam
    LOSS_OF_CONTROL = "loss_of_control"  # someone not entitled learns ordinary data
    PHISHING = "phishing"  # targeted deception, a step towards fraud
    IDENTITY_THEFT_OR_FRAUD = "identity_theft_or_fraud"
    FINANCIAL_LOSS = "financial_loss"
    DISCRIMINATION = "discrimination"
    DAMAGE_TO_REPUTATION = "damage_to_reputation"
    HARM_TO_HEALTH = "harm_to_health"  # physical harm, treatment delayed or cancelled
    OTHER_SIGNIFICANT_DISADVANTAGE = "other_significant_disadvantage"


SERIOUS_CONSEQUENCES = frozenset(
    {
        Consequence.PHISHING,
        Consequence.IDENTITY_THEFT_OR_FRAUD,
        Consequence.FINANCIAL_LOSS,
        Consequence.DISCRIMINATION,
        Consequence.DAMAGE_TO_REPUTATION,
        Consequence.HARM_TO_HEALTH,
        Consequence.OTHER_SIGNIFICANT_DISADVANTAGE,
    }
)
# Serious consequences that a loss of availability can itself cause.
AVAILABILITY_HARMS = frozenset(
    {
        Consequence.FINANCIAL_LOSS,
        Consequence.HARM_TO_HEALTH,
        Consequence.OTHER_SIGNIFICANT_DISADVANTAGE,
    }
)
LIMITED_CONSEQUENCES = frozenset(
    {
        Consequence.MINOR_INCONVENIENCE,
        Consequence.UNSOLICITED_CONTACT,
        Consequence.LOSS_OF_CONTROL,
    }
)


def _frozen_enum_set(values: Iterable, kind: type[StrEnum], name: str) -> frozenset:
    try:
        return frozenset(kind(value) for value in values)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _check_optional_bool(name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be True, False or None, got {value!r}")


@dataclass(frozen=True)
class BreachFacts:
    """What is known about a personal data breach. ``None`` always means "not known".

    - ``breach_types``: at least one ``BreachType``.
    - ``data_categories``: values of ``incidents.models.DataCategory`` (``"identity"``,
      ``"health"``, ...); empty when not known yet.
    - ``individuals``: approximate number of people affected.
    - ``special_categories``: GDPR Art. 9 or 10 data are involved. Also true when
      ``data_categories`` holds ``health``, ``special_category`` or ``criminal``.
    - ``vulnerable_individuals``: children, patients or others needing particular protection.
    - ``malicious``: caused by an attacker or someone acting in bad faith.
    - ``data_unintelligible_to_recipient``: encrypted or hashed to the state of the art with the
      key or secret not compromised.
    - ``backup_available``: an up-to-date backup allows restoring the data.
    - ``unavailability``: how long the data were (or will be) unavailable to the controller;
      ``timedelta(0)`` for not at all, ``PERMANENT_LOSS`` when they cannot be restored.
    - ``exfiltration``: whether the data were copied out (``Exfiltration``).
    - ``recipients_known_and_trusted``: the data went only to identified recipients bound to
      confidentiality who confirmed deletion.
    - ``likely_consequences``: the consequences the controller expects for the people; None
      (or an empty set) while they have not been assessed.
    - ``high_risk_no_longer_likely``: measures taken since ensure a high risk will no longer
      materialise (Art. 34(3)(b)), e.g. every exposed password reset before any use.
    - ``individual_communication_disproportionate``: telling each person would involve
      disproportionate effort, e.g. no contact details (Art. 34(3)(c)).

    Iterables are stored as frozensets and enum values may be given as their strings. Raises
    ``ValueError`` for no breach type, an unknown data category or enum value, a negative count
    or duration, or a non-boolean flag.
    """

    breach_types: frozenset[BreachType]
    data_categories: frozenset[str] = frozenset()
    individuals: int | None = None
    special_categories: bool | None = None
    vulnerable_individuals: bool | None = None
    malicious: bool | None = None
    data_unintelligible_to_recipient: bool | None = None
    backup_available: bool | None = None
    unavailability: timedelta | None = None
    exfiltration: Exfiltration | None = None
    recipients_known_and_trusted: bool | None = None
    likely_consequences: frozenset[Consequence] | None = None
    high_risk_no_longer_likely: bool | None = None
    individual_communication_disproportionate: bool | None = None

    def __post_init__(self) -> None:
        breach_types = _frozen_enum_set(self.breach_types, BreachType, "breach_types")
        if not breach_types:
            raise ValueError("breach_types: at least one of confidentiality, integrity, availability")
        object.__setattr__(self, "breach_types", breach_types)

        categories = frozenset(self.data_categories)
        unknown = sorted(value for value in categories if value not in DATA_CATEGORY_TO_ENISA)
        if unknown:
            raise ValueError(f"data_categories: unknown value(s) {', '.join(map(repr, unknown))}")
        object.__setattr__(self, "data_categories", categories)

        if self.individuals is not None and (
            isinstance(self.individuals, bool)
            or not isinstance(self.individuals, int)
            or self.individuals < 0
        ):
            raise ValueError(f"individuals must be a count of people, got {self.individuals!r}")
        if self.unavailability is not None and (
            not isinstance(self.unavailability, timedelta) or self.unavailability < timedelta(0)
        ):
            raise ValueError(f"unavailability must be a positive timedelta, got {self.unavailability!r}")
        if self.exfiltration is not None:
            object.__setattr__(self, "exfiltration", Exfiltration(self.exfiltration))
        if self.likely_consequences is not None:
            object.__setattr__(
                self,
                "likely_consequences",
                _frozen_enum_set(self.likely_consequences, Consequence, "likely_consequences"),
            )
        for name in (
            "special_categories",
            "vulnerable_individuals",
            "malicious",
            "data_unintelligible_to_recipient",
            "backup_available",
            "recipients_known_and_trusted",
            "high_risk_no_longer_likely",
            "individual_communication_disproportionate",
        ):
            _check_optional_bool(name, getattr(self, name))

    @property
    def involves_special_categories(self) -> bool:
        """True when GDPR Art. 9 or 10 data are involved (flag or data categories)."""
        return bool(self.special_categories) or bool(self.data_categories & SPECIAL_CATEGORIES)

    @property
    def fraud_enabling_categories(self) -> frozenset[str]:
        """Data categories that directly enable identity theft or fraud, when present."""
        return self.data_categories & FRAUD_ENABLING_CATEGORIES

    @property
    def involves_financial_data(self) -> bool:
        """True when financial data (accounts, income, transactions) are involved."""
        return bool(self.data_categories & FINANCIAL_CATEGORIES)

    @property
    def large_scale(self) -> bool:
        """True when at least ``LARGE_SCALE_INDIVIDUALS`` people are affected."""
        return self.individuals is not None and self.individuals >= LARGE_SCALE_INDIVIDUALS


@dataclass(frozen=True)
class Reason:
    """One step of the reasoning: the article it applies, what was found, and the source.

    ``article`` is a GDPR citation such as ``"Art. 33(1) GDPR"``; ``guidance`` names the EDPB or
    WP29 reasoning relied on, or is empty.
    """

    article: str
    text: str
    guidance: str = ""

    def __str__(self) -> str:
        suffix = f" ({self.guidance})" if self.guidance else ""
        return f"{self.article}: {self.text}{suffix}"


@dataclass(frozen=True)
class NotificationAssessment:
    """The recommendation of ``assess_notification``.

    - ``risk``: the overall ``RiskLevel``.
    - ``document_internally``: always True (Art. 33(5)).
    - ``notify_supervisory_authority``: True unless the risk is ``unlikely`` (Art. 33(1)).
    - ``communicate_to_data_subjects``: True when the people must be told of a high risk (Art.
      34(1)) and neither Art. 34(3)(a) nor (b) spares it.
    - ``public_communication``: True when that communication is made publicly instead of to
      each person, for disproportionate effort (Art. 34(3)(c)).
    - ``reasons``: the reasoning, each citing an article; never empty.
    """

    risk: RiskLevel
    document_internally: bool
    notify_supervisory_authority: bool
    communicate_to_data_subjects: bool
    public_communication: bool
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class _Finding:
    """The risk found for one breach type, and why."""

    part: BreachType
    level: RiskLevel
    reason: Reason


_RISK_ARTICLES = "Art. 33(1) and 34(1) GDPR, Recitals 75-76"


def _consequence_severity(facts: BreachFacts) -> str | None:
    """``"serious"``, ``"limited"``, ``"none"``, or None when the consequences are not known."""
    consequences = facts.likely_consequences
    if not consequences:
        return None
    if consequences & SERIOUS_CONSEQUENCES:
        return "serious"
    if consequences & LIMITED_CONSEQUENCES:
        return "limited"
    return "none"


def _aggravating_for_hostile(facts: BreachFacts, severity: str | None) -> list[str]:
    found = []
    if facts.involves_special_categories:
        found.append("special-category data")
    if facts.vulnerable_individuals:
        found.append("vulnerable people")
    if facts.fraud_enabling_categories:
        found.append("data enabling fraud (" + ", ".join(sorted(facts.fraud_enabling_categories)) + ")")
    if facts.involves_financial_data:
        found.append("financial data")
    if facts.large_scale:
        found.append(f"a large number of people ({facts.individuals})")
    if severity == "serious":
        found.append("serious consequences likely (" + _serious_list(facts) + ")")
    return found


def _serious_list(facts: BreachFacts) -> str:
    # Only called for a "serious" severity, which needs the consequences to be known.
    consequences = facts.likely_consequences or frozenset()
    return ", ".join(sorted(c.value.replace("_", " ") for c in consequences & SERIOUS_CONSEQUENCES))


def _confidentiality(facts: BreachFacts, severity: str | None, notes: list[Reason]) -> _Finding | None:
    part = BreachType.CONFIDENTIALITY
    exfiltrated = facts.exfiltration in (Exfiltration.CONFIRMED, Exfiltration.SUSPECTED)
    # True when no loss of confidentiality is reported, only not excluded.
    assumed_only = part not in facts.breach_types and not exfiltrated
    if assumed_only:
        if facts.exfiltration is None and facts.malicious is not False:
            notes.append(
                Reason(
                    "Art. 33(1) GDPR",
                    "exfiltration has not been ruled out in a breach that may be malicious, so a "
                    "loss of confidentiality is assessed as possible",
                    "EDPB 01/2021 case 2: without logs the controller cannot exclude it; WP250",
                )
            )
        else:
            return None
    elif part not in facts.breach_types:
        # Here exfiltration (confirmed or suspected) is what brings confidentiality in.
        assert facts.exfiltration is not None
        notes.append(
            Reason(
                "Art. 33(1) GDPR",
                f"exfiltration is {facts.exfiltration.value.replace('_', ' ')}, so confidentiality "
                "is lost as well",
                "EDPB 01/2021 case 4",
            )
        )

    if facts.data_unintelligible_to_recipient:
        return _Finding(
            part,
            RiskLevel.UNLIKELY,
            Reason(
                "Art. 33(1) and 34(3)(a) GDPR",
                "confidentiality: the data are unintelligible to anyone not authorised "
                "(state-of-the-art encryption or hashing, key not compromised), so their "
                "disclosure is unlikely to result in a risk; Art. 34(3)(a) spares communication",
                "EDPB 01/2021 cases 6 and 10",
            ),
        )
    if facts.recipients_known_and_trusted:
        if facts.involves_special_categories:
            return _Finding(
                part,
                RiskLevel.RISK,
                Reason(
                    _RISK_ARTICLES,
                    "confidentiality: the recipients are known, trusted and confirmed deletion, "
                    "but special-category data reached them, so the breach is still a risk",
                    "EDPB 01/2021 case 9 rests on no sensitive data having been sent",
                ),
            )
        return _Finding(
            part,
            RiskLevel.UNLIKELY,
            Reason(
                "Art. 33(1) GDPR",
                "confidentiality: the data went only to known recipients bound to confidentiality "
                "who confirmed deletion; the disclosure is unlikely to result in a risk",
                "EDPB 01/2021 case 9",
            ),
        )

    hostile = facts.malicious is True or (
        facts.malicious is None and facts.exfiltration is not Exfiltration.RULED_OUT
    )
    if hostile:
        if facts.malicious is None:
            notes.append(
                Reason(
                    "Art. 33(1) GDPR",
                    "whether the breach is malicious is not known and exfiltration is not ruled "
                    "out: the data are assumed to be in hostile hands",
                    "WP250: when in doubt, err on the side of caution",
                )
            )
        aggravating = _aggravating_for_hostile(facts, severity)
        if severity is None and not assumed_only:
            aggravating.append("consequences not yet assessed (assumed serious until they are)")
        if aggravating:
            return _Finding(
                part,
                RiskLevel.HIGH,
                Reason(
                    _RISK_ARTICLES,
                    "confidentiality: the data are or may be in the hands of someone acting in bad "
                    "faith, with " + "; ".join(aggravating) + ": likely a high risk",
                    "EDPB 01/2021 cases 4, 5, 7, 11, 12",
                ),
            )
        return _Finding(
            part,
            RiskLevel.RISK,
            Reason(
                _RISK_ARTICLES,
                "confidentiality: the data are or may be in the hands of someone acting in bad "
                "faith; even ordinary data cannot be treated as unlikely to result in a risk, "
                "since the controller has no assurance about their intentions; nothing makes it "
                "a high risk",
                "EDPB 01/2021 case 8",
            ),
        )

    # Accidental disclosure to recipients who are not trusted (mispostal, misdirected email).
    special = facts.involves_special_categories
    fraud_enabling = facts.fraud_enabling_categories
    if severity == "serious":
        why = "serious consequences likely (" + _serious_list(facts) + ")"
    elif special and (facts.vulnerable_individuals or facts.large_scale or severity is None):
        why = "special-category data disclosed " + (
            "about vulnerable people"
            if facts.vulnerable_individuals
            else "about many people"
            if facts.large_scale
            else "with consequences not yet assessed"
        )
    elif fraud_enabling and facts.large_scale:
        why = (
            "data enabling fraud (" + ", ".join(sorted(fraud_enabling)) + f") of {facts.individuals} "
            "people disclosed"
        )
    else:
        why = ""
    if why:
        return _Finding(
            part,
            RiskLevel.HIGH,
            Reason(
                _RISK_ARTICLES,
                f"confidentiality: accidental disclosure to the wrong recipients, {why}: likely a high risk",
                "EDPB 01/2021 case 14",
            ),
        )
    if not special and not fraud_enabling and severity == "none":
        return _Finding(
            part,
            RiskLevel.UNLIKELY,
            Reason(
                "Art. 33(1) GDPR",
                "confidentiality: accidental disclosure of ordinary data to the wrong recipients "
                "with negligible consequences is unlikely to result in a risk",
                "EDPB 01/2021 case 13",
            ),
        )
    detail = []
    if special:
        detail.append("special-category data")
    if fraud_enabling:
        detail.append("data enabling fraud (" + ", ".join(sorted(fraud_enabling)) + ")")
    if severity is None:
        detail.append("consequences not yet assessed")
    elif severity == "limited":
        detail.append("limited consequences likely")
    elif severity == "none":
        detail.append("negligible consequences expected")
    return _Finding(
        part,
        RiskLevel.RISK,
        Reason(
            _RISK_ARTICLES,
            "confidentiality: accidental disclosure to recipients who are not bound to "
            "confidentiality (" + "; ".join(detail) + "): a risk, not a high one",
            "EDPB 01/2021 case 16",
        ),
    )


def _availability(facts: BreachFacts, severity: str | None, notes: list[Reason]) -> _Finding | None:
    part = BreachType.AVAILABILITY
    if part not in facts.breach_types:
        return None
    duration = facts.unavailability
    if duration is None:
        if facts.backup_available:
            duration = timedelta(0)
            notes.append(
                Reason(
                    "Art. 33(1) GDPR",
                    "duration of unavailability not recorded; a backup is available, so the data "
                    "are taken as restored promptly",
                )
            )
        else:
            duration = PERMANENT_LOSS
            notes.append(
                Reason(
                    "Art. 33(1) GDPR",
                    "duration of unavailability not recorded and no backup known: assessed as a lasting loss",
                    "WP250: when in doubt, err on the side of caution",
                )
            )
    sensitive_context = facts.vulnerable_individuals or facts.involves_special_categories
    who = "about vulnerable people" if facts.vulnerable_individuals else "(special-category data)"
    if duration == PERMANENT_LOSS:
        how_long = "cannot be restored" if facts.unavailability == PERMANENT_LOSS else "may be lost for good"
    elif duration == timedelta(0):
        how_long = "can be restored from the backup at once"
    else:
        how_long = f"were unavailable for {_humanize(duration)}"
    # Only some consequences follow from data being unavailable (a delayed treatment, a missed
    # payment); identity theft, say, comes from a disclosure and is weighed there.
    serious = (facts.likely_consequences or frozenset()) & AVAILABILITY_HARMS

    if serious:
        return _Finding(
            part,
            RiskLevel.HIGH,
            Reason(
                _RISK_ARTICLES,
                f"availability: the data {how_long} and serious consequences are likely "
                f"({', '.join(sorted(c.value.replace('_', ' ') for c in serious))}): "
                "likely a high risk",
                "EDPB 01/2021 case 3",
            ),
        )
    if duration <= SHORT_UNAVAILABILITY:
        if sensitive_context and severity is None and duration > timedelta(0):
            return _Finding(
                part,
                RiskLevel.RISK,
                Reason(
                    _RISK_ARTICLES,
                    f"availability: the data {who} {how_long}, a short time, but the consequences "
                    "for people who may depend on them are not assessed: a risk",
                    "WP250: even a short unavailability of patient data may be a risk",
                ),
            )
        return _Finding(
            part,
            RiskLevel.UNLIKELY,
            Reason(
                "Art. 33(1) GDPR",
                f"availability: the data {how_long}, within {_humanize(SHORT_UNAVAILABILITY)}, "
                "with no serious consequence likely: unlikely to result in a risk",
                "EDPB 01/2021 cases 1 and 10: timely restoration from a backup is the key variable",
            ),
        )
    if sensitive_context:
        return _Finding(
            part,
            RiskLevel.HIGH,
            Reason(
                _RISK_ARTICLES,
                f"availability: the data {who} {how_long}: likely a high risk",
                "EDPB 01/2021 case 3",
            ),
        )
    return _Finding(
        part,
        RiskLevel.RISK,
        Reason(
            _RISK_ARTICLES,
            f"availability: the data {how_long}, longer than {_humanize(SHORT_UNAVAILABILITY)}: a "
            "risk, not a high one (ordinary data, no serious consequence likely)",
            "EDPB 01/2021 case 2",
        ),
    )


def _integrity(facts: BreachFacts, severity: str | None) -> _Finding | None:
    part = BreachType.INTEGRITY
    if part not in facts.breach_types:
        return None
    if severity == "serious":
        return _Finding(
            part,
            RiskLevel.HIGH,
            Reason(
                _RISK_ARTICLES,
                "integrity: altered data with serious consequences likely "
                f"({_serious_list(facts)}): likely a high risk",
                "EDPB 01/2021 case 18",
            ),
        )
    if facts.malicious is False and facts.backup_available:
        return _Finding(
            part,
            RiskLevel.UNLIKELY,
            Reason(
                "Art. 33(1) GDPR",
                "integrity: data altered by mistake and restored from a backup; unlikely to result in a risk",
            ),
        )
    return _Finding(
        part,
        RiskLevel.RISK,
        Reason(
            _RISK_ARTICLES,
            "integrity: altered data may be used against the people"
            + (" and nobody acted in bad faith is not established" if facts.malicious is None else "")
            + "; a risk",
            "WP250",
        ),
    )


def _humanize(duration: timedelta) -> str:
    if duration == PERMANENT_LOSS:
        return "an unlimited time"
    hours = duration.total_seconds() / 3600
    if hours < 48:
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{hours / 24:g} days"


def assess_notification(facts: BreachFacts) -> NotificationAssessment:
    """Recommend internal documentation, notification and communication for a breach.

    Applies the principles in the module docstring (P1 to P8) to each breach type in
    ``facts``, takes the highest risk, then:
    - ``document_internally`` is always True (GDPR Art. 33(5));
    - ``notify_supervisory_authority`` unless the risk is unlikely (Art. 33(1));
    - ``communicate_to_data_subjects`` when the risk is high (Art. 34(1)), unless measures
      since the breach ensure the high risk will no longer materialise (Art. 34(3)(b));
      ``public_communication`` when telling each person would be disproportionate
      (Art. 34(3)(c)). Art. 34(3)(a) (unintelligible data) is applied through P1: it removes
      the risk of the disclosure itself, not that of a loss of availability or integrity.

    Returns a ``NotificationAssessment`` whose reasons each cite an article. Pure; raises
    nothing for a valid ``BreachFacts`` (which validates itself when built).
    """
    reasons: list[Reason] = [
        Reason(
            "Art. 33(5) GDPR",
            "document the breach internally in any case: the facts, its effects and the "
            "remedial action taken",
        )
    ]
    severity = _consequence_severity(facts)
    notes: list[Reason] = []
    findings = [
        finding
        for finding in (
            _confidentiality(facts, severity, notes),
            _availability(facts, severity, notes),
            _integrity(facts, severity),
        )
        if finding is not None
    ]
    reasons.extend(notes)
    reasons.extend(finding.reason for finding in findings)
    risk = max(
        (finding.level for finding in findings),
        key=lambda level: level.rank,
        default=RiskLevel.RISK,
    )
    if not findings:  # cannot happen with a valid BreachFacts; stay on the careful side
        reasons.append(
            Reason(
                "Art. 33(1) GDPR",
                "no part of the breach could be assessed: treated as a risk",
                "WP250",
            )
        )

    notify = risk is not RiskLevel.UNLIKELY
    if notify:
        reasons.append(
            Reason(
                "Art. 33(1) GDPR",
                "notify the supervisory authority without undue delay and, where feasible, within "
                "72 hours of becoming aware: the breach is not unlikely to result in a risk",
            )
        )
    else:
        reasons.append(
            Reason(
                "Art. 33(1) GDPR",
                "no notification to the supervisory authority: the breach is unlikely to result "
                "in a risk to the rights and freedoms of natural persons",
            )
        )

    communicate = False
    public = False
    if risk is RiskLevel.HIGH:
        high_parts = [finding.part for finding in findings if finding.level is RiskLevel.HIGH]
        if facts.high_risk_no_longer_likely:
            reasons.append(
                Reason(
                    "Art. 34(3)(b) GDPR",
                    "the high risk is no longer likely to materialise thanks to measures taken "
                    "since the breach: communication to the data subjects is not required",
                )
            )
        else:
            communicate = True
            reasons.append(
                Reason(
                    "Art. 34(1) GDPR",
                    "communicate the breach to the data subjects without undue delay: it is likely "
                    "to result in a high risk (" + ", ".join(part.value for part in high_parts) + ")",
                )
            )
            if facts.data_unintelligible_to_recipient:
                reasons.append(
                    Reason(
                        "Art. 34(3)(a) GDPR",
                        "unintelligible data do not spare the communication here: the high risk "
                        "comes from " + ", ".join(part.value for part in high_parts),
                    )
                )
            if facts.individual_communication_disproportionate:
                public = True
                reasons.append(
                    Reason(
                        "Art. 34(3)(c) GDPR",
                        "telling each person would involve disproportionate effort: inform them "
                        "by a public communication or a similar, equally effective measure instead",
                    )
                )
    else:
        reasons.append(
            Reason(
                "Art. 34(1) GDPR",
                "no communication to the data subjects is required: the breach is not likely to "
                "result in a high risk",
                "EDPB 01/2021: informing them may still be good practice",
            )
        )

    return NotificationAssessment(
        risk=risk,
        document_internally=True,
        notify_supervisory_authority=notify,
        communicate_to_data_subjects=communicate,
        public_communication=public,
        reasons=tuple(reasons),
    )
