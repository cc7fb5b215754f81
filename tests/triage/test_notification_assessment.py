"""Breach notification rules (triage.notification_assessment) against the EDPB examples.

The reference cases live in /work/shared/data/edpb/cases.json: structured readings of examples
in the EDPB Guidelines 01/2021 on examples regarding personal data breach notification, each
with the guidelines' conclusion. ``facts_from_json`` below translates a case's facts (some of
them free text) into ``BreachFacts`` with one generic function, so that a case added to the
file is checked too. The translation reads only the facts, never the conclusion.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import shared_data_dir, skip_or_fail
from triage.notification_assessment import (
    PERMANENT_LOSS,
    BreachFacts,
    BreachType,
    Consequence,
    Exfiltration,
    RiskLevel,
    assess_notification,
)

CASES_PATH = shared_data_dir() / "edpb" / "cases.json"


# --- Translation of the JSON facts into BreachFacts -------------------------------------------

# Free-text data categories -> incidents.models.DataCategory values; every matching row counts.
CATEGORY_KEYWORDS = (
    (("health", "medical", "diagnos", "addiction", "lactose"), "health"),
    (("criminal", "conviction", "offence"), "criminal"),
    (
        ("religio", "political", "ethnic", "sexual", "trade union", "biometric", "genetic"),
        "special_category",
    ),
    (
        ("social security", "id card", "identity card", "passport", "national id", "fiscal number"),
        "government_identifier",
    ),
    (("credit card", "payment card", "card number"), "payment_card"),
    (("password", "credential", "login"), "credentials"),
    (
        (
            "financial",
            "bank",
            "balance",
            "transaction",
            "invoice",
            "insurance rate",
            "salary",
            "income",
            "payroll",
        ),
        "financial",
    ),
    (("location", "purchase", "mileage", "habit", "preference", "browsing"), "behavioural"),
    (("call record", "message content", "communications"), "communications"),
    (("employee", "employment", "cv", "education", "job"), "employment"),
    (
        (
            "name",
            "contact",
            "address",
            "identity",
            "date of birth",
            "dates of birth",
            "sex",
            "email",
            "e-mail",
            "phone",
        ),
        "identity",
    ),
)

# Free-text likely consequences -> Consequence; every matching row counts.
CONSEQUENCE_KEYWORDS = (
    (
        ("identity theft", "identity fraud", "fraud", "impersonat"),
        Consequence.IDENTITY_THEFT_OR_FRAUD,
    ),
    (("phishing",), Consequence.PHISHING),
    (("financial loss", "loss of money", "funds"), Consequence.FINANCIAL_LOSS),
    (("discriminat", "stigma"), Consequence.DISCRIMINATION),
    (("reputation", "embarrass", "humiliat"), Consequence.DAMAGE_TO_REPUTATION),
    (
        ("treatments delayed", "treatment delayed", "harm to health", "physical harm"),
        Consequence.HARM_TO_HEALTH,
    ),
    (("marketing", "spam", "unsolicited", "advertis"), Consequence.UNSOLICITED_CONTACT),
    (("loss of confidentiality", "loss of control"), Consequence.LOSS_OF_CONTROL),
    (("delay", "inconvenien"), Consequence.MINOR_INCONVENIENCE),
)
NO_EFFECT_PHRASES = ("none likely", "no effect", "negligible", "no consequence")

QUANTITY_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple": 2,
    "few": 3,
    "several": 5,
    "many": 5,
}
COUNT_UNITS = {"dozen": 12, "hundred": 100, "thousand": 1_000, "million": 1_000_000}
DURATION_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
}
QUANTITY = r"\b(\d+(?:[ ,.]\d{3})*|" + "|".join(QUANTITY_WORDS) + r")"


def _quantity(word: str) -> int:
    return QUANTITY_WORDS[word] if word in QUANTITY_WORDS else int(re.sub(r"[ ,.]", "", word))


def parse_individuals(text: str | None) -> int | None:
    """ "a few dozen" -> 36, "more than 100,000" -> 100000; a range counts by its upper end."""
    if text is None:
        return None
    lowered = text.lower()
    counts = [
        _quantity(q) * COUNT_UNITS[u]
        for q, u in re.findall(QUANTITY + r"\s+(dozen|hundred|thousand|million)", lowered)
    ]
    counts += [_quantity(n) for n in re.findall(r"\d+(?:[ ,.]\d{3})*", lowered)]
    counts += [
        COUNT_UNITS[u] for u in re.findall(r"\b(dozen|hundred|thousand|million)s\b", lowered)
    ]  # "hundreds"
    return max(counts) if counts else None


def parse_unavailability(text: str | None) -> timedelta | None:
    """ "a few hours" -> 3 h, "about two days" -> 2 days, "permanent" -> PERMANENT_LOSS."""
    if text is None:
        return None
    lowered = text.lower()
    if any(word in lowered for word in ("permanent", "for good", "cannot be restored", "not recoverable")):
        return PERMANENT_LOSS
    if lowered.strip() in ("none", "no", "not at all"):
        return timedelta(0)
    found = [
        _quantity(q) * DURATION_UNITS[u]
        for q, u in re.findall(QUANTITY + r"\s+(minute|hour|day|week|month)s?", lowered)
    ]
    return max(found) if found else None


def parse_categories(descriptions: list[str], special: bool | None) -> frozenset[str]:
    categories: set[str] = set()
    for description in descriptions:
        lowered = description.lower()
        matched = {category for words, category in CATEGORY_KEYWORDS if any(w in lowered for w in words)}
        categories |= matched or {"other"}
    if special and not categories & {"health", "special_category", "criminal"}:
        categories.add("special_category")
    return frozenset(categories)


def parse_consequences(text: str | None) -> frozenset[Consequence] | None:
    if text is None:
        return None
    lowered = text.lower()
    found = {consequence for words, consequence in CONSEQUENCE_KEYWORDS if any(w in lowered for w in words)}
    if any(phrase in lowered for phrase in NO_EFFECT_PHRASES):
        # The case says the people are not affected; keep only serious harms it still names.
        found = {
            c
            for c in found
            if c
            not in (
                Consequence.MINOR_INCONVENIENCE,
                Consequence.LOSS_OF_CONTROL,
                Consequence.UNSOLICITED_CONTACT,
            )
        } or {Consequence.NONE}
    return frozenset(found) or None


def facts_from_json(facts: dict) -> BreachFacts:
    """Translate one case's ``facts`` object (cases.json schema) into ``BreachFacts``."""
    return BreachFacts(
        breach_types=frozenset(BreachType(t) for t in facts["breach_types"]),
        data_categories=parse_categories(facts.get("data_categories") or [], facts.get("special_categories")),
        individuals=parse_individuals(facts.get("individuals")),
        special_categories=facts.get("special_categories"),
        vulnerable_individuals=facts.get("vulnerable_individuals"),
        malicious=facts.get("malicious"),
        data_unintelligible_to_recipient=facts.get("data_unintelligible_to_recipient"),
        backup_available=facts.get("backup_available"),
        unavailability=parse_unavailability(facts.get("unavailability")),
        exfiltration=Exfiltration(facts["exfiltration"]) if facts.get("exfiltration") else None,
        recipients_known_and_trusted=facts.get("recipients_known_and_trusted"),
        likely_consequences=parse_consequences(facts.get("likely_consequences")),
    )


def expected_risk(text: str) -> RiskLevel:
    """The conclusion's wording ("unlikely", "low", "risk, not high", "high") as a RiskLevel."""
    lowered = text.lower()
    if "not high" in lowered:
        return RiskLevel.RISK
    if "high" in lowered:
        return RiskLevel.HIGH
    if lowered in ("unlikely", "low", "none") or "unlikely" in lowered:
        return RiskLevel.UNLIKELY
    return RiskLevel.RISK


def load_cases() -> list[dict[str, Any]]:
    if not CASES_PATH.exists():
        return []
    return json.loads(CASES_PATH.read_text(encoding="utf-8"))["cases"]


def assert_matches_conclusion(case: dict) -> None:
    assessment = assess_notification(facts_from_json(case["facts"]))
    conclusion = case["conclusion"]
    got = {
        "document_internally": assessment.document_internally,
        "notify_supervisory_authority": assessment.notify_supervisory_authority,
        "communicate_to_data_subjects": assessment.communicate_to_data_subjects,
        "risk": assessment.risk,
    }
    want = {
        "document_internally": conclusion["document_internally"],
        "notify_supervisory_authority": conclusion["notify_supervisory_authority"],
        "communicate_to_data_subjects": conclusion["communicate_to_data_subjects"],
        "risk": expected_risk(conclusion["risk"]),
    }
    reasons = "\n".join(map(str, assessment.reasons))
    assert got == want, f"{case['id']} {case['title']}\n{reasons}"
    assert assessment.reasons
    for reason in assessment.reasons:
        assert re.match(r"Art\. \d+\(\d\)", reason.article), reason
        assert str(reason).startswith(reason.article)


# --- The EDPB cases of the shared data set ----------------------------------------------------

CASES = load_cases()
#: The shared cases, or one ``None`` that skips (fails in CI) when the data set is absent.
CASE_PARAMS: list[dict[str, Any] | None] = list(CASES) or [None]


@pytest.mark.parametrize("case", CASE_PARAMS, ids=[c["id"] for c in CASES] or ["cases.json missing"])
def test_it_matches_the_edpb_conclusion_for_each_shared_case(case):
    if case is None:
        skip_or_fail(f"{CASES_PATH} is absent: no shared EDPB cases to check")
    assert_matches_conclusion(case)


def test_it_translates_the_shared_facts_honestly():
    if not CASES:
        skip_or_fail(f"{CASES_PATH} is absent")
    by_id = {case["id"]: facts_from_json(case["facts"]) for case in CASES}
    ransomware = by_id.get("EDPB-01-2021-case-01")
    hospital = by_id.get("EDPB-01-2021-case-03")
    insurance = by_id.get("EDPB-01-2021-case-16")
    if ransomware:
        assert ransomware.unavailability == timedelta(hours=3)
        assert ransomware.individuals == 36
        assert ransomware.likely_consequences == frozenset({Consequence.NONE})
    if hospital:
        assert "health" in hospital.data_categories
        assert hospital.unavailability == timedelta(days=2)
        assert hospital.likely_consequences is not None
        assert Consequence.HARM_TO_HEALTH in hospital.likely_consequences
    if insurance:
        assert insurance.individuals == 3000
        assert insurance.likely_consequences == frozenset({Consequence.LOSS_OF_CONTROL})


# --- Further examples from the same guidelines, as we read them --------------------------------

# Other examples of EDPB Guidelines 01/2021 (v2.0), written in the cases.json schema from our
# reading of the guidelines' facts and conclusions. Unknown facts are null.
EXTRA_CASES: list[dict[str, Any]] = [
    {
        "id": "EDPB-01-2021-case-04",
        "title": "Ransomware without backup and with exfiltration",
        "facts": {
            "data_categories": [
                "client and employee identity data",
                "ID card numbers",
                "credit card details",
            ],
            "individuals": "several thousand",
            "special_categories": False,
            "vulnerable_individuals": False,
            "breach_types": ["availability", "confidentiality"],
            "malicious": True,
            "data_unintelligible_to_recipient": False,
            "backup_available": False,
            "unavailability": None,
            "exfiltration": "confirmed",
            "recipients_known_and_trusted": False,
            "likely_consequences": "identity theft and fraud with the card details",
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": True,
            "risk": "high",
        },
    },
    {
        "id": "EDPB-01-2021-case-07",
        "title": "Credential stuffing attack on a banking website",
        "facts": {
            "data_categories": ["customer names", "account balances and transactions"],
            "individuals": None,
            "special_categories": False,
            "vulnerable_individuals": False,
            "breach_types": ["confidentiality"],
            "malicious": True,
            "data_unintelligible_to_recipient": False,
            "backup_available": None,
            "unavailability": None,
            "exfiltration": "confirmed",
            "recipients_known_and_trusted": False,
            "likely_consequences": "fraud and financial loss through the accessed accounts",
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": True,
            "risk": "high",
        },
    },
    {
        "id": "EDPB-01-2021-case-08",
        "title": "Exfiltration of business data by a former employee",
        "facts": {
            "data_categories": ["client names and business contact data"],
            "individuals": None,
            "special_categories": False,
            "vulnerable_individuals": False,
            "breach_types": ["confidentiality"],
            "malicious": True,
            "data_unintelligible_to_recipient": False,
            "backup_available": None,
            "unavailability": None,
            "exfiltration": "confirmed",
            "recipients_known_and_trusted": False,
            "likely_consequences": (
                "unsolicited marketing by the former employee; further abuse cannot be ruled out"
            ),
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": False,
            "risk": "risk, not high",
        },
    },
    {
        "id": "EDPB-01-2021-case-10",
        "title": "Stolen material storing encrypted personal data",
        "facts": {
            "data_categories": ["children's names", "dates of birth", "education records"],
            "individuals": None,
            "special_categories": False,
            "vulnerable_individuals": True,
            "breach_types": ["confidentiality", "availability"],
            "malicious": True,
            "data_unintelligible_to_recipient": True,
            "backup_available": True,
            "unavailability": None,
            "exfiltration": "suspected",
            "recipients_known_and_trusted": False,
            "likely_consequences": (
                "none likely: the devices were encrypted and the data restored from backup"
            ),
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": False,
            "communicate_to_data_subjects": False,
            "risk": "unlikely",
        },
    },
    {
        "id": "EDPB-01-2021-case-12",
        "title": "Stolen paper files with sensitive data",
        "facts": {
            "data_categories": ["patient names", "health data about addiction treatment"],
            "individuals": None,
            "special_categories": True,
            "vulnerable_individuals": True,
            "breach_types": ["confidentiality", "availability"],
            "malicious": True,
            "data_unintelligible_to_recipient": False,
            "backup_available": False,
            "unavailability": "permanent",
            "exfiltration": "confirmed",
            "recipients_known_and_trusted": False,
            "likely_consequences": ("discrimination and damage to reputation if the treatment became known"),
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": True,
            "risk": "high",
        },
    },
    {
        "id": "EDPB-01-2021-case-14",
        "title": "Highly confidential personal data sent by email by mistake",
        "facts": {
            "data_categories": [
                "names",
                "email addresses",
                "postal addresses",
                "social security numbers",
            ],
            "individuals": "more than 60 000",
            "special_categories": False,
            "vulnerable_individuals": False,
            "breach_types": ["confidentiality"],
            "malicious": False,
            "data_unintelligible_to_recipient": False,
            "backup_available": None,
            "unavailability": None,
            "exfiltration": "ruled_out",
            "recipients_known_and_trusted": False,
            "likely_consequences": None,
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": True,
            "risk": "high",
        },
    },
    {
        "id": "EDPB-01-2021-case-17",
        "title": "Identity theft through a telecom contact centre",
        "facts": {
            "data_categories": [
                "customer identity data",
                "fiscal number",
                "billing data and call records",
            ],
            "individuals": "1",
            "special_categories": False,
            "vulnerable_individuals": False,
            "breach_types": ["confidentiality"],
            "malicious": True,
            "data_unintelligible_to_recipient": False,
            "backup_available": None,
            "unavailability": None,
            "exfiltration": "confirmed",
            "recipients_known_and_trusted": False,
            "likely_consequences": "identity theft and fraud against the customer",
        },
        "conclusion": {
            "document_internally": True,
            "notify_supervisory_authority": True,
            "communicate_to_data_subjects": True,
            "risk": "high",
        },
    },
]


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[c["id"] for c in EXTRA_CASES])
def test_it_generalises_to_the_other_edpb_examples(case):
    assert_matches_conclusion(case)


# --- The principles one at a time ---------------------------------------------------------------


def ransomware(**overrides: Any) -> BreachFacts:
    values: dict[str, Any] = {
        "breach_types": {BreachType.AVAILABILITY},
        "data_categories": {"identity"},
        "individuals": 40,
        "special_categories": False,
        "vulnerable_individuals": False,
        "malicious": True,
        "backup_available": True,
        "unavailability": timedelta(hours=4),
        "exfiltration": Exfiltration.RULED_OUT,
    }
    values.update(overrides)
    return BreachFacts(**values)


def test_it_always_documents_internally_and_cites_article_33_5():
    assessment = assess_notification(ransomware())

    assert assessment.document_internally is True
    assert assessment.reasons[0].article == "Art. 33(5) GDPR"


def test_it_needs_no_notification_for_a_short_outage_restored_from_backup():
    assessment = assess_notification(ransomware())

    assert assessment.risk is RiskLevel.UNLIKELY
    assert not assessment.notify_supervisory_authority
    assert not assessment.communicate_to_data_subjects


def test_it_notifies_the_authority_when_the_outage_lasts_days():
    assessment = assess_notification(ransomware(backup_available=False, unavailability=timedelta(days=4)))

    assert assessment.risk is RiskLevel.RISK
    assert assessment.notify_supervisory_authority
    assert not assessment.communicate_to_data_subjects


def test_it_treats_a_long_outage_of_patient_data_as_high_risk():
    assessment = assess_notification(
        ransomware(
            data_categories={"identity", "health"},
            vulnerable_individuals=True,
            unavailability=timedelta(days=2),
        )
    )

    assert assessment.risk is RiskLevel.HIGH
    assert assessment.communicate_to_data_subjects
    assert any("Art. 34(1)" in reason.article for reason in assessment.reasons)


def test_it_takes_the_outage_boundary_at_one_day():
    at_boundary = assess_notification(ransomware(unavailability=timedelta(hours=24)))
    past_boundary = assess_notification(ransomware(unavailability=timedelta(hours=24, minutes=1)))

    assert at_boundary.risk is RiskLevel.UNLIKELY
    assert past_boundary.risk is RiskLevel.RISK


def test_it_lets_unintelligible_data_neutralise_a_theft_but_not_a_permanent_loss_of_patient_data():
    stolen_encrypted_laptop: dict[str, Any] = {
        "breach_types": {BreachType.CONFIDENTIALITY, BreachType.AVAILABILITY},
        "data_categories": {"identity", "health"},
        "vulnerable_individuals": True,
        "malicious": True,
        "data_unintelligible_to_recipient": True,
        "exfiltration": Exfiltration.CONFIRMED,
        "recipients_known_and_trusted": False,
    }
    with_backup = assess_notification(BreachFacts(**stolen_encrypted_laptop, backup_available=True))
    without_backup = assess_notification(
        BreachFacts(**stolen_encrypted_laptop, backup_available=False, unavailability=PERMANENT_LOSS)
    )

    assert with_backup.risk is RiskLevel.UNLIKELY
    assert any(reason.article == "Art. 33(1) and 34(3)(a) GDPR" for reason in with_backup.reasons)
    assert without_backup.risk is RiskLevel.HIGH
    assert without_backup.communicate_to_data_subjects
    assert any(
        reason.article == "Art. 34(3)(a) GDPR" and "availability" in reason.text
        for reason in without_backup.reasons
    )


def test_it_treats_special_category_data_in_an_attackers_hands_as_high_risk():
    assessment = assess_notification(
        BreachFacts(
            breach_types=frozenset({BreachType.CONFIDENTIALITY}),
            data_categories=frozenset({"identity", "criminal"}),
            malicious=True,
            exfiltration=Exfiltration.SUSPECTED,
        )
    )

    assert assessment.risk is RiskLevel.HIGH
    assert assessment.communicate_to_data_subjects


def test_it_never_treats_data_in_hostile_hands_as_unlikely_to_matter():
    assessment = assess_notification(
        BreachFacts(
            breach_types=frozenset({BreachType.CONFIDENTIALITY}),
            data_categories=frozenset({"identity"}),
            individuals=50,
            malicious=True,
            exfiltration=Exfiltration.CONFIRMED,
            likely_consequences=frozenset({Consequence.NONE}),
        )
    )

    assert assessment.risk is RiskLevel.RISK
    assert any("EDPB 01/2021 case 8" in reason.guidance for reason in assessment.reasons)


def test_it_assumes_a_high_risk_while_the_consequences_of_a_theft_are_not_assessed():
    stolen: dict[str, Any] = {
        "breach_types": {BreachType.CONFIDENTIALITY},
        "data_categories": {"identity"},
        "individuals": 50,
        "malicious": True,
        "exfiltration": Exfiltration.CONFIRMED,
    }

    assert assess_notification(BreachFacts(**stolen)).risk is RiskLevel.HIGH
    assert (
        assess_notification(
            BreachFacts(**stolen, likely_consequences=frozenset({Consequence.UNSOLICITED_CONTACT}))
        ).risk
        is RiskLevel.RISK
    )


def test_it_spares_the_authority_when_trusted_recipients_deleted_ordinary_data_only():
    misdirected: dict[str, Any] = {
        "breach_types": {BreachType.CONFIDENTIALITY},
        "malicious": False,
        "exfiltration": Exfiltration.RULED_OUT,
        "recipients_known_and_trusted": True,
    }

    assert (
        assess_notification(BreachFacts(**misdirected, data_categories=frozenset({"identity"}))).risk
        is RiskLevel.UNLIKELY
    )
    assert (
        assess_notification(BreachFacts(**misdirected, data_categories=frozenset({"health"}))).risk
        is RiskLevel.RISK
    )


def test_it_judges_an_accidental_disclosure_by_what_it_reveals():
    mispostal: dict[str, Any] = {
        "breach_types": {BreachType.CONFIDENTIALITY},
        "malicious": False,
        "exfiltration": Exfiltration.RULED_OUT,
        "recipients_known_and_trusted": False,
    }
    trivial = BreachFacts(
        **mispostal,
        data_categories=frozenset({"identity"}),
        individuals=2,
        likely_consequences=frozenset({Consequence.NONE}),
    )
    unassessed = BreachFacts(**mispostal, data_categories=frozenset({"identity"}), individuals=2)
    identifiers = BreachFacts(
        **mispostal, data_categories=frozenset({"identity", "government_identifier"}), individuals=20_000
    )
    diagnosis = BreachFacts(
        **mispostal,
        data_categories=frozenset({"health"}),
        individuals=1,
        likely_consequences=frozenset({Consequence.DISCRIMINATION}),
    )

    assert assess_notification(trivial).risk is RiskLevel.UNLIKELY
    assert assess_notification(unassessed).risk is RiskLevel.RISK  # when in doubt, notify
    assert assess_notification(identifiers).risk is RiskLevel.HIGH
    assert assess_notification(diagnosis).risk is RiskLevel.HIGH


def test_it_assumes_the_careful_side_when_facts_are_unknown():
    assessment = assess_notification(BreachFacts(breach_types=frozenset({BreachType.AVAILABILITY})))

    assert assessment.risk is RiskLevel.RISK
    assert assessment.notify_supervisory_authority
    assert any("WP250" in reason.guidance for reason in assessment.reasons)


def test_it_drops_the_communication_when_later_measures_remove_the_high_risk():
    assessment = assess_notification(
        BreachFacts(
            breach_types=frozenset({BreachType.CONFIDENTIALITY}),
            data_categories=frozenset({"identity", "credentials"}),
            malicious=True,
            exfiltration=Exfiltration.CONFIRMED,
            high_risk_no_longer_likely=True,
        )
    )

    assert assessment.risk is RiskLevel.HIGH
    assert assessment.notify_supervisory_authority
    assert not assessment.communicate_to_data_subjects
    assert any(reason.article == "Art. 34(3)(b) GDPR" for reason in assessment.reasons)


def test_it_recommends_a_public_communication_when_telling_each_person_is_disproportionate():
    assessment = assess_notification(
        BreachFacts(
            breach_types=frozenset({BreachType.CONFIDENTIALITY}),
            data_categories=frozenset({"identity", "payment_card"}),
            malicious=True,
            exfiltration=Exfiltration.CONFIRMED,
            individual_communication_disproportionate=True,
        )
    )

    assert assessment.communicate_to_data_subjects
    assert assessment.public_communication
    assert any(reason.article == "Art. 34(3)(c) GDPR" for reason in assessment.reasons)


def test_it_rejects_facts_it_cannot_assess():
    with pytest.raises(ValueError, match="breach_types"):
        BreachFacts(breach_types=frozenset())
    with pytest.raises(ValueError, match="data_categories"):
        BreachFacts(
            breach_types=frozenset({BreachType.CONFIDENTIALITY}), data_categories=frozenset({"shoe_size"})
        )
    with pytest.raises(ValueError, match="individuals"):
        BreachFacts(breach_types=frozenset({BreachType.CONFIDENTIALITY}), individuals=-1)
    with pytest.raises(ValueError, match="unavailability"):
        BreachFacts(breach_types=frozenset({BreachType.AVAILABILITY}), unavailability=timedelta(hours=-1))
    with pytest.raises(ValueError, match="malicious"):
        # Wrong types on purpose: the runtime checks for untyped callers are under test.
        BreachFacts(breach_types=frozenset({BreachType.AVAILABILITY}), malicious="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BreachFacts(breach_types=frozenset({BreachType.AVAILABILITY}), exfiltration="maybe")  # type: ignore[arg-type]
