"""Severity of a personal data breach by the ENISA methodology.

Source: ENISA, "Recommendations for a methodology of the assessment of severity of personal
data breaches", working document v1.0, December 2013 (https://www.enisa.europa.eu/publications/
dbn-severity), written by the Greek and German data protection authorities with ENISA. Below,
"ENISA 2013" means that document.

The method scores three criteria and combines them (ENISA 2013, "Calculation of the severity"):

    SE = DPC × EI + CB

- DPC, data processing context (1 to 4): how critical the breached data set is. A base score by
  data category (simple 1, behavioural 2, financial 3, sensitive 4; the highest category present
  counts; credentials score as the data they give access to), then raised or lowered by
  contextual factors, always kept within 1 to 4.
- EI, ease of identification (0.25, 0.5, 0.75 or 1): a correcting factor on DPC; the harder it is
  to tell who the data are about, the lower the severity.
- CB, circumstances of the breach: added on top; loss of confidentiality, integrity and
  availability (0, 0.25 or 0.5 each) and malicious intent (0.5). CB can only add.

Bands (ENISA 2013, severity levels): low below 2; medium from 2 to below 3; high from 3 to below
4; very high from 4. The band values are those of ``incidents.models.Incident.Severity``.

Everything is pure: no database, no Django import. Arithmetic is in ``Decimal`` so that a score
of exactly 2 is medium and never 1.9999999 (low).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum

__all__ = [
    "DATA_CATEGORY_TO_ENISA",
    "AvailabilityLoss",
    "ConfidentialityLoss",
    "Credentials",
    "DpcAdjustment",
    "DpcFactor",
    "EaseOfIdentification",
    "EnisaDataCategory",
    "IntegrityLoss",
    "SeverityBand",
    "SeverityInputs",
    "SeverityResult",
    "assess_severity",
    "band_for_score",
    "enisa_categories_for",
]

DPC_MIN = 1
DPC_MAX = 4
MALICIOUS_INTENT_SCORE = Decimal("0.5")


class EnisaDataCategory(StrEnum):
    """The four data categories of ENISA 2013 (Annex A1), each with its base DPC score.

    - simple (1): biographical data, contact details, full name, education, family life,
      professional experience.
    - behavioural (2): location, traffic data, personal preferences and habits.
    - financial (3): income, transactions, bank statements, invoices, investments, credit
      cards, social welfare.
    - sensitive (4): health, political opinions, religious or philosophical beliefs, sexual
      life, criminal records and the other data of GDPR Art. 9 and 10.
    """

    SIMPLE = "simple"
    BEHAVIOURAL = "behavioural"
    FINANCIAL = "financial"
    SENSITIVE = "sensitive"

    @property
    def base_score(self) -> int:
        """The preliminary DPC score of this category (ENISA 2013, DPC step 1): 1 to 4."""
        return _BASE_SCORE[self]


_BASE_SCORE = {
    EnisaDataCategory.SIMPLE: 1,
    EnisaDataCategory.BEHAVIOURAL: 2,
    EnisaDataCategory.FINANCIAL: 3,
    EnisaDataCategory.SENSITIVE: 4,
}


@dataclass(frozen=True)
class Credentials:
    """Breached credentials (user names with passwords, tokens, keys).

    ENISA 2013 (DPC step 1): credentials are not a data category of their own; they are scored
    as the data processed by the system they give access to. Online banking credentials score as
    financial data; credentials of a music shop account as simple data.
    """

    gives_access_to: EnisaDataCategory

    def __post_init__(self) -> None:
        object.__setattr__(self, "gives_access_to", EnisaDataCategory(self.gives_access_to))


class DpcFactor(StrEnum):
    """Contextual factors that raise or lower the base DPC score (ENISA 2013, Annex A2).

    Raising factors:
    - ``data_volume``: more data about each person, in time (a year of traffic data rather than
      a week) or in content (a bank's complete customer file rather than one document).
    - ``controller_characteristics``: the controller's field reveals more (the customer list of
      an online pharmacy rather than of a stationery shop).
    - ``individuals_characteristics``: the people belong to a group with particular needs or
      exposure (minors, protected witnesses, known members of parliament).

    Lowering factors:
    - ``invalid_or_inaccurate``: the controller knows for certain that the data are invalid or
      inaccurate (credit cards expired years ago), so they matter less.
    - ``publicly_available``: the data were already public before the breach (a public
      directory), so the breach reveals less.
    - ``nature_reveals_less``: the data reveal less than their category suggests (that someone
      had "general blood tests", not a diagnosis).
    """

    DATA_VOLUME = "data_volume"
    CONTROLLER_CHARACTERISTICS = "controller_characteristics"
    INDIVIDUALS_CHARACTERISTICS = "individuals_characteristics"
    INVALID_OR_INACCURATE = "invalid_or_inaccurate"
    PUBLICLY_AVAILABLE = "publicly_available"
    NATURE_REVEALS_LESS = "nature_reveals_less"

    @property
    def direction(self) -> int:
        """+1 for a factor that raises DPC, -1 for one that lowers it."""
        return 1 if self in _RAISING_FACTORS else -1


_RAISING_FACTORS = frozenset(
    {
        DpcFactor.DATA_VOLUME,
        DpcFactor.CONTROLLER_CHARACTERISTICS,
        DpcFactor.INDIVIDUALS_CHARACTERISTICS,
    }
)
_FACTOR_LABEL = {
    DpcFactor.DATA_VOLUME: "volume of data about each person",
    DpcFactor.CONTROLLER_CHARACTERISTICS: "special characteristics of the controller",
    DpcFactor.INDIVIDUALS_CHARACTERISTICS: "special characteristics of the individuals",
    DpcFactor.INVALID_OR_INACCURATE: "data known to be invalid or inaccurate",
    DpcFactor.PUBLICLY_AVAILABLE: "data already public before the breach",
    DpcFactor.NATURE_REVEALS_LESS: "data reveal less than their category suggests",
}


@dataclass(frozen=True)
class DpcAdjustment:
    """One recorded contextual factor and its size in DPC steps (1 to 3).

    ENISA 2013 gives no fixed size per factor: its Assessment Table 1 shows, per category, how
    far examples move the score, anywhere within 1 to 4. Examples from that table (simple
    data, base 1): a supermarket's customer list stays 1; a luxury goods seller's list is 2
    (controller characteristics, +1: implies wealth); an adult book shop's delivery addresses
    are 3 (+2: implies sexual preferences); a list of undercover officers is 4 (+3: their
    safety). So the assessor records the size: ``steps`` is 1 by default, at most 3 (the
    whole range), and its sign comes from the factor (``DpcFactor.direction``).

    Raises ``ValueError`` when ``steps`` is not an integer from 1 to 3.
    """

    factor: DpcFactor
    steps: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", DpcFactor(self.factor))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ValueError(f"DPC adjustment steps must be an integer, got {self.steps!r}")
        if not 1 <= self.steps <= DPC_MAX - DPC_MIN:
            raise ValueError(f"DPC adjustment steps must be 1 to 3, got {self.steps}")

    @property
    def delta(self) -> int:
        """The signed change to DPC: +steps for a raising factor, -steps for a lowering one."""
        return self.factor.direction * self.steps


class EaseOfIdentification(Enum):
    """EI: how easily the people can be identified from the breached data (ENISA 2013).

    - negligible (0.25): practically impossible to tell who the data are about.
    - limited (0.5): possible only with considerable effort or outside information.
    - significant (0.75): possible with moderate effort (for example a full name among a
      population where it is not unique).
    - maximum (1): immediate (a full name with a date of birth or a national number).
    """

    NEGLIGIBLE = Decimal("0.25")
    LIMITED = Decimal("0.5")
    SIGNIFICANT = Decimal("0.75")
    MAXIMUM = Decimal("1")


class ConfidentialityLoss(Enum):
    """CB, loss of confidentiality (ENISA 2013): how widely the data were disclosed.

    - none (0): data exposed to a confidentiality risk, with no evidence of unlawful processing.
    - known_recipients (0.25): disclosed to a known number of known recipients.
    - unknown_recipients (0.5): disclosed to an unknown number of unknown recipients (published
      on the internet, sold, taken by an attacker).
    """

    NONE = Decimal("0")
    KNOWN_RECIPIENTS = Decimal("0.25")
    UNKNOWN_RECIPIENTS = Decimal("0.5")


class IntegrityLoss(Enum):
    """CB, loss of integrity (ENISA 2013): data altered and possibly used against the person.

    - none (0): altered, with no evidence of incorrect or unlawful use.
    - recoverable (0.25): altered and possibly used, but the original can be restored.
    - not_recoverable (0.5): altered and possibly used, and the original cannot be restored.
    """

    NONE = Decimal("0")
    RECOVERABLE = Decimal("0.25")
    NOT_RECOVERABLE = Decimal("0.5")


class AvailabilityLoss(Enum):
    """CB, loss of availability (ENISA 2013): the data could not be used when needed.

    - none (0): the data can be recovered without difficulty.
    - temporary (0.25): recoverable, but it takes time, which can harm the person.
    - permanent (0.5): the data cannot be recovered.
    """

    NONE = Decimal("0")
    TEMPORARY = Decimal("0.25")
    PERMANENT = Decimal("0.5")


class SeverityBand(StrEnum):
    """ENISA 2013 severity levels; the values match ``incidents.models.Incident.Severity``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"


# Lower bound of each band, highest first (ENISA 2013: SE < 2 low, 2 <= SE < 3 medium,
# 3 <= SE < 4 high, 4 <= SE very high).
_BAND_FLOORS = (
    (Decimal(4), SeverityBand.VERY_HIGH),
    (Decimal(3), SeverityBand.HIGH),
    (Decimal(2), SeverityBand.MEDIUM),
)

_BAND_MEANING = {
    SeverityBand.LOW: "individuals either will not be affected or may encounter a few "
    "inconveniences, which they will overcome without any problem",
    SeverityBand.MEDIUM: "individuals may encounter significant inconveniences, which they will "
    "be able to overcome despite a few difficulties",
    SeverityBand.HIGH: "individuals may encounter significant consequences, which they should "
    "be able to overcome albeit with serious difficulties",
    SeverityBand.VERY_HIGH: "individuals may encounter significant, or even irreversible, "
    "consequences, which they may not overcome",
}


def band_for_score(score: Decimal | int | str | float) -> SeverityBand:
    """Return the ENISA 2013 band of a severity score ``SE``.

    Bands: below 2 low; 2 to below 3 medium; 3 to below 4 high; 4 and above very high.
    ``score`` is converted through ``str`` to ``Decimal``, so ``1.99`` stays 1.99 and ``2.0``
    is exactly 2 (medium). Raises ``ValueError`` for a value that is not a finite number.
    """
    try:
        value = score if isinstance(score, Decimal) else Decimal(str(score))
    except ArithmeticError as error:
        raise ValueError(f"severity score must be a number, got {score!r}") from error
    if not value.is_finite():
        raise ValueError(f"severity score must be a finite number, got {score!r}")
    for floor, band in _BAND_FLOORS:
        if value >= floor:
            return band
    return SeverityBand.LOW


@dataclass(frozen=True)
class SeverityInputs:
    """What the assessor records to score a breach by ENISA 2013.

    - ``data_categories``: the ENISA categories of the breached data, and ``Credentials`` for
      credentials (scored as the category they give access to). At least one; the highest
      counts. Any iterable is accepted and stored as a ``frozenset``.
    - ``dpc_adjustments``: contextual factors (``DpcAdjustment``), in any order; their net sum
      is applied to the highest base score and the result clamped to 1 to 4.
    - ``ease_of_identification``: EI.
    - ``confidentiality_loss``, ``integrity_loss``, ``availability_loss``: CB parts, default
      none.
    - ``malicious_intent``: the breach was caused deliberately to harm (theft, hacking, sale of
      data), adding 0.5 to CB.

    Raises ``ValueError`` when no data category is given or a value has the wrong kind.
    """

    data_categories: frozenset[EnisaDataCategory | Credentials]
    ease_of_identification: EaseOfIdentification
    dpc_adjustments: tuple[DpcAdjustment, ...] = ()
    confidentiality_loss: ConfidentialityLoss = ConfidentialityLoss.NONE
    integrity_loss: IntegrityLoss = IntegrityLoss.NONE
    availability_loss: AvailabilityLoss = AvailabilityLoss.NONE
    malicious_intent: bool = False

    def __post_init__(self) -> None:
        categories = frozenset(
            item if isinstance(item, Credentials) else EnisaDataCategory(item)
            for item in self.data_categories
        )
        if not categories:
            raise ValueError("at least one data category is needed to score DPC")
        object.__setattr__(self, "data_categories", categories)
        adjustments = tuple(self.dpc_adjustments)
        for adjustment in adjustments:
            if not isinstance(adjustment, DpcAdjustment):
                raise ValueError(f"DPC adjustments must be DpcAdjustment, got {adjustment!r}")
        object.__setattr__(self, "dpc_adjustments", adjustments)
        for name, kind in (
            ("ease_of_identification", EaseOfIdentification),
            ("confidentiality_loss", ConfidentialityLoss),
            ("integrity_loss", IntegrityLoss),
            ("availability_loss", AvailabilityLoss),
        ):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}")
        if not isinstance(self.malicious_intent, bool):
            raise ValueError(f"malicious_intent must be True or False, got {self.malicious_intent!r}")


@dataclass(frozen=True)
class SeverityResult:
    """The outcome of ``assess_severity``.

    - ``base_dpc``: highest base score of the categories present (1 to 4).
    - ``dpc``: after the contextual adjustments, clamped to 1 to 4.
    - ``ease_of_identification``: EI as a number (0.25 to 1).
    - ``circumstances``: CB, the sum of its parts (0 to 2).
    - ``score``: SE = DPC × EI + CB, exact (a multiple of 0.25, 0.25 to 6).
    - ``band``: the ENISA band of ``score``.
    - ``reasons``: human-readable lines explaining each part, in the order DPC, EI, CB, SE.
    """

    base_dpc: int
    dpc: int
    ease_of_identification: Decimal
    circumstances: Decimal
    score: Decimal
    band: SeverityBand
    reasons: tuple[str, ...] = field(default=())


def _category_score(item: EnisaDataCategory | Credentials) -> int:
    if isinstance(item, Credentials):
        return item.gives_access_to.base_score
    return item.base_score


def _describe(item: EnisaDataCategory | Credentials) -> str:
    if isinstance(item, Credentials):
        return f"credentials giving access to {item.gives_access_to.value} data"
    return f"{item.value} data"


def _format(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def assess_severity(inputs: SeverityInputs) -> SeverityResult:
    """Score a breach by ENISA 2013: ``SE = DPC × EI + CB`` and its band.

    Steps:
    1. Base DPC: the highest base score among the data categories (ENISA 2013, DPC step 1;
       "if the data match more than one category ... the highest score" counts). Credentials
       take the score of the category they give access to.
    2. Adjusted DPC: base plus the net sum of the contextual adjustments (DPC step 2), clamped
       to 1 to 4 ("the DPC scoring of any data type can always vary from 1 to 4").
    3. EI: the recorded ease of identification (0.25, 0.5, 0.75 or 1).
    4. CB: confidentiality + integrity + availability loss + 0.5 for malicious intent.
    5. SE and its band (``band_for_score``).

    Returns a ``SeverityResult``; pure, no side effects. ``inputs`` are validated when built
    (``SeverityInputs`` raises ``ValueError``), so this raises nothing for valid inputs.
    """
    reasons: list[str] = []

    highest = max(inputs.data_categories, key=lambda item: (_category_score(item), str(item)))
    base_dpc = _category_score(highest)
    present = ", ".join(sorted(_describe(item) for item in inputs.data_categories))
    reasons.append(
        f"DPC base {base_dpc}: highest category present is {_describe(highest)} "
        f"(present: {present}; ENISA 2013, DPC step 1)."
    )
    for item in sorted((i for i in inputs.data_categories if isinstance(i, Credentials)), key=str):
        reasons.append(
            f"Credentials scored as the {item.gives_access_to.value} data they give access to "
            f"(base {item.gives_access_to.base_score}; ENISA 2013: credentials are not a "
            "category of their own)."
        )

    raw_dpc = base_dpc
    for adjustment in inputs.dpc_adjustments:
        raw_dpc += adjustment.delta
        reasons.append(
            f"DPC {adjustment.delta:+d}: {_FACTOR_LABEL[adjustment.factor]} "
            "(ENISA 2013, DPC step 2, contextual factors)."
        )
    dpc = min(DPC_MAX, max(DPC_MIN, raw_dpc))
    if dpc != raw_dpc:
        reasons.append(
            f"DPC {raw_dpc} clamped to {dpc}: DPC always stays within {DPC_MIN} to {DPC_MAX} (ENISA 2013)."
        )
    if inputs.dpc_adjustments:
        reasons.append(f"DPC after adjustments: {dpc}.")

    ei = inputs.ease_of_identification.value
    reasons.append(
        f"EI {_format(ei)}: {inputs.ease_of_identification.name.lower()} ease of identification (ENISA 2013)."
    )

    circumstances = Decimal(0)
    for label, loss in (
        ("loss of confidentiality", inputs.confidentiality_loss),
        ("loss of integrity", inputs.integrity_loss),
        ("loss of availability", inputs.availability_loss),
    ):
        amount = loss.value
        circumstances += amount
        if amount:
            detail = loss.name.lower().replace("_", " ")
            reasons.append(f"CB +{_format(amount)}: {label} ({detail}; ENISA 2013).")
    if inputs.malicious_intent:
        circumstances += MALICIOUS_INTENT_SCORE
        reasons.append(f"CB +{_format(MALICIOUS_INTENT_SCORE)}: malicious intent (ENISA 2013).")
    if not circumstances:
        reasons.append("CB 0.00: no aggravating circumstance recorded (ENISA 2013).")

    score = Decimal(dpc) * ei + circumstances
    band = band_for_score(score)
    reasons.append(
        f"SE = DPC × EI + CB = {dpc} × {_format(ei)} + {_format(circumstances)} = "
        f"{_format(score)}: {band.value.replace('_', ' ')} ({_BAND_MEANING[band]}; ENISA 2013)."
    )
    return SeverityResult(
        base_dpc=base_dpc,
        dpc=dpc,
        ease_of_identification=ei,
        circumstances=circumstances,
        score=score,
        band=band,
        reasons=tuple(reasons),
    )


# Our data categories (the values of incidents.models.DataCategory, repeated here as plain
# strings so this module imports no Django model) and their ENISA 2013 category (Annex A1).
# ``credentials`` maps to None: ENISA scores credentials as the data they give access to, which
# only the assessor knows (see ``enisa_categories_for``).
DATA_CATEGORY_TO_ENISA: dict[str, EnisaDataCategory | None] = {
    # Name, contact details: ENISA's example of simple data.
    "identity": EnisaDataCategory.SIMPLE,
    # National or passport numbers identify; ENISA lists no separate category for them, so
    # they are simple data; raise DPC (DpcAdjustment) when they enable identity theft.
    "government_identifier": EnisaDataCategory.SIMPLE,
    # Bank accounts, income, transactions: ENISA financial data.
    "financial": EnisaDataCategory.FINANCIAL,
    # Credit cards are ENISA's own example of financial data.
    "payment_card": EnisaDataCategory.FINANCIAL,
    "credentials": None,
    # Health, GDPR Art. 9 and Art. 10 data: ENISA sensitive data.
    "health": EnisaDataCategory.SENSITIVE,
    "special_category": EnisaDataCategory.SENSITIVE,
    "criminal": EnisaDataCategory.SENSITIVE,
    # Location, traffic data, preferences and habits: ENISA behavioural data.
    "behavioural": EnisaDataCategory.BEHAVIOURAL,
    # Communications reveal traffic data and habits (behavioural in ENISA); their content may
    # reveal more, which a DPC adjustment records.
    "communications": EnisaDataCategory.BEHAVIOURAL,
    # Professional experience is ENISA's example of simple data.
    "employment": EnisaDataCategory.SIMPLE,
    # Support or consulting material: content varies; simple unless the assessor records the
    # real category (or raises DPC) once the content is known.
    "customer_supplied": EnisaDataCategory.SIMPLE,
    "other": EnisaDataCategory.SIMPLE,
}


def enisa_categories_for(
    data_categories: Iterable[str],
    *,
    credentials_give_access_to: EnisaDataCategory | None = None,
) -> frozenset[EnisaDataCategory | Credentials]:
    """Map our data category values to ENISA 2013 categories, for ``SeverityInputs``.

    ``data_categories`` are values of ``incidents.models.DataCategory`` (``"identity"``,
    ``"health"``, ...), see ``DATA_CATEGORY_TO_ENISA``. ``"credentials"`` becomes
    ``Credentials(credentials_give_access_to)``, since ENISA scores credentials as the data
    they unlock.

    Returns a frozenset (empty for an empty input). Raises ``ValueError`` for an unknown value,
    or when ``"credentials"`` is present without ``credentials_give_access_to``.
    """
    result: set[EnisaDataCategory | Credentials] = set()
    for value in data_categories:
        if value not in DATA_CATEGORY_TO_ENISA:
            raise ValueError(f"unknown data category {value!r}")
        enisa = DATA_CATEGORY_TO_ENISA[value]
        if enisa is None:
            if credentials_give_access_to is None:
                raise ValueError(
                    "credentials are scored as the data they give access to: "
                    "say which ENISA category (credentials_give_access_to)"
                )
            result.add(Credentials(credentials_give_access_to))
        else:
            result.add(enisa)
    return frozenset(result)
