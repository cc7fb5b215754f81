"""ENISA 2013 severity scoring (triage.scoring): pure rules, no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from triage.scoring import (
    DATA_CATEGORY_TO_ENISA,
    AvailabilityLoss,
    ConfidentialityLoss,
    Credentials,
    DpcAdjustment,
    DpcFactor,
    EaseOfIdentification,
    EnisaDataCategory,
    IntegrityLoss,
    SeverityBand,
    SeverityInputs,
    SeverityResult,
    assess_severity,
    band_for_score,
    enisa_categories_for,
)

SIMPLE = EnisaDataCategory.SIMPLE
BEHAVIOURAL = EnisaDataCategory.BEHAVIOURAL
FINANCIAL = EnisaDataCategory.FINANCIAL
SENSITIVE = EnisaDataCategory.SENSITIVE


def score(**overrides: Any) -> SeverityResult:
    values: dict[str, Any] = {
        "data_categories": {SIMPLE},
        "ease_of_identification": EaseOfIdentification.MAXIMUM,
    }
    values.update(overrides)
    return assess_severity(SeverityInputs(**values))


@pytest.mark.parametrize(
    ("value", "band"),
    [
        ("0", SeverityBand.LOW),
        ("1.99", SeverityBand.LOW),
        ("2", SeverityBand.MEDIUM),
        ("2.0", SeverityBand.MEDIUM),
        ("2.99", SeverityBand.MEDIUM),
        ("3", SeverityBand.HIGH),
        ("3.99", SeverityBand.HIGH),
        ("4", SeverityBand.VERY_HIGH),
        ("6", SeverityBand.VERY_HIGH),
    ],
)
def test_it_places_each_band_boundary_on_the_right_side(value, band):
    assert band_for_score(Decimal(value)) is band


def test_it_does_not_let_floats_blur_the_band_boundaries():
    assert band_for_score(1.99) is SeverityBand.LOW
    assert band_for_score(2.0) is SeverityBand.MEDIUM
    assert band_for_score(0.1 + 0.2 + 1.7) is SeverityBand.MEDIUM  # 2.0000000000000004 as a float
    with pytest.raises(ValueError):
        band_for_score("not a number")
    with pytest.raises(ValueError):
        band_for_score(Decimal("NaN"))


def test_it_uses_the_band_values_of_the_incident_model():
    from incidents.models import Incident

    assert {band.value for band in SeverityBand} == set(Incident.Severity.values)


@pytest.mark.parametrize(
    ("inputs", "expected_score", "band"),
    [
        # 1 × 1 + 0.5 + 0.25 = 1.75: just below medium.
        (
            {
                "confidentiality_loss": ConfidentialityLoss.UNKNOWN_RECIPIENTS,
                "availability_loss": AvailabilityLoss.TEMPORARY,
            },
            "1.75",
            SeverityBand.LOW,
        ),
        # 1 × 1 + 0.5 + 0.5 = 2: exactly medium.
        (
            {
                "confidentiality_loss": ConfidentialityLoss.UNKNOWN_RECIPIENTS,
                "malicious_intent": True,
            },
            "2",
            SeverityBand.MEDIUM,
        ),
        # 2 × 1 + 0.5 + 0.25 = 2.75: still medium.
        (
            {
                "data_categories": {BEHAVIOURAL},
                "confidentiality_loss": ConfidentialityLoss.UNKNOWN_RECIPIENTS,
                "integrity_loss": IntegrityLoss.RECOVERABLE,
            },
            "2.75",
            SeverityBand.MEDIUM,
        ),
        # 3 × 1 + 0 = 3: exactly high.
        ({"data_categories": {FINANCIAL}}, "3", SeverityBand.HIGH),
        # 4 × 0.75 + 0.75 = 3.75: high.
        (
            {
                "data_categories": {SENSITIVE},
                "ease_of_identification": EaseOfIdentification.SIGNIFICANT,
                "confidentiality_loss": ConfidentialityLoss.KNOWN_RECIPIENTS,
                "malicious_intent": True,
            },
            "3.75",
            SeverityBand.HIGH,
        ),
        # 4 × 1 + 0 = 4: exactly very high.
        ({"data_categories": {SENSITIVE}}, "4", SeverityBand.VERY_HIGH),
        # 4 × 1 + 2 = 6: the maximum.
        (
            {
                "data_categories": {SENSITIVE},
                "confidentiality_loss": ConfidentialityLoss.UNKNOWN_RECIPIENTS,
                "integrity_loss": IntegrityLoss.NOT_RECOVERABLE,
                "availability_loss": AvailabilityLoss.PERMANENT,
                "malicious_intent": True,
            },
            "6",
            SeverityBand.VERY_HIGH,
        ),
    ],
)
def test_it_scores_dpc_times_ei_plus_cb_and_bands_the_result(inputs, expected_score, band):
    result = score(**inputs)

    assert result.score == Decimal(expected_score)
    assert result.band is band
    assert result.score == Decimal(result.dpc) * result.ease_of_identification + result.circumstances


@pytest.mark.parametrize(
    ("ease", "value"),
    [
        (EaseOfIdentification.NEGLIGIBLE, "0.25"),
        (EaseOfIdentification.LIMITED, "0.5"),
        (EaseOfIdentification.SIGNIFICANT, "0.75"),
        (EaseOfIdentification.MAXIMUM, "1"),
    ],
)
def test_it_weights_dpc_by_the_ease_of_identification(ease, value):
    result = score(data_categories={SENSITIVE}, ease_of_identification=ease)

    assert result.ease_of_identification == Decimal(value)
    assert result.score == 4 * Decimal(value)


def test_it_counts_the_highest_category_present():
    result = score(data_categories={SIMPLE, FINANCIAL, BEHAVIOURAL})

    assert result.base_dpc == 3
    assert result.dpc == 3
    assert "highest category present is financial data" in result.reasons[0]


def test_it_scores_credentials_as_the_data_they_give_access_to():
    banking = score(data_categories={Credentials(FINANCIAL)})
    music_shop = score(data_categories={Credentials(SIMPLE)})
    health_portal = score(data_categories={SIMPLE, Credentials(SENSITIVE)})

    assert banking.dpc == 3
    assert music_shop.dpc == 1
    assert health_portal.dpc == 4
    assert any("credentials" in reason.lower() for reason in health_portal.reasons)


def test_it_raises_and_lowers_dpc_by_the_recorded_factors():
    raised = score(
        data_categories={BEHAVIOURAL},
        dpc_adjustments=(DpcAdjustment(DpcFactor.DATA_VOLUME),),
    )
    lowered = score(
        data_categories={FINANCIAL},
        dpc_adjustments=(DpcAdjustment(DpcFactor.INVALID_OR_INACCURATE, steps=2),),
    )
    netted = score(
        data_categories={SENSITIVE},
        dpc_adjustments=(
            DpcAdjustment(DpcFactor.INDIVIDUALS_CHARACTERISTICS),
            DpcAdjustment(DpcFactor.NATURE_REVEALS_LESS, steps=2),
        ),
    )

    assert (raised.base_dpc, raised.dpc) == (2, 3)
    assert (lowered.base_dpc, lowered.dpc) == (3, 1)
    assert (netted.base_dpc, netted.dpc) == (4, 3)  # clamp applies to the net result only
    assert any("DPC +1: volume of data" in reason for reason in raised.reasons)
    assert any("DPC -2: data known to be invalid" in reason for reason in lowered.reasons)


def test_it_clamps_dpc_at_four():
    result = score(
        data_categories={FINANCIAL},
        dpc_adjustments=(
            DpcAdjustment(DpcFactor.DATA_VOLUME, steps=2),
            DpcAdjustment(DpcFactor.CONTROLLER_CHARACTERISTICS),
        ),
    )

    assert result.base_dpc == 3
    assert result.dpc == 4
    assert result.score == Decimal(4)
    assert any("DPC 6 clamped to 4" in reason for reason in result.reasons)


def test_it_clamps_dpc_at_one():
    result = score(
        data_categories={SIMPLE},
        dpc_adjustments=(
            DpcAdjustment(DpcFactor.PUBLICLY_AVAILABLE, steps=2),
            DpcAdjustment(DpcFactor.INVALID_OR_INACCURATE),
        ),
    )

    assert result.dpc == 1
    assert result.score == Decimal(1)
    assert any("DPC -2 clamped to 1" in reason for reason in result.reasons)


def test_it_adds_one_half_for_malicious_intent():
    accidental = score(data_categories={FINANCIAL})
    malicious = score(data_categories={FINANCIAL}, malicious_intent=True)

    assert malicious.score - accidental.score == Decimal("0.5")
    assert malicious.circumstances == Decimal("0.5")
    assert any("malicious intent" in reason for reason in malicious.reasons)


@pytest.mark.parametrize(
    ("field", "level", "added"),
    [
        ("confidentiality_loss", ConfidentialityLoss.NONE, "0"),
        ("confidentiality_loss", ConfidentialityLoss.KNOWN_RECIPIENTS, "0.25"),
        ("confidentiality_loss", ConfidentialityLoss.UNKNOWN_RECIPIENTS, "0.5"),
        ("integrity_loss", IntegrityLoss.NONE, "0"),
        ("integrity_loss", IntegrityLoss.RECOVERABLE, "0.25"),
        ("integrity_loss", IntegrityLoss.NOT_RECOVERABLE, "0.5"),
        ("availability_loss", AvailabilityLoss.NONE, "0"),
        ("availability_loss", AvailabilityLoss.TEMPORARY, "0.25"),
        ("availability_loss", AvailabilityLoss.PERMANENT, "0.5"),
    ],
)
def test_it_adds_each_circumstance_level(field, level, added):
    result = score(data_categories={BEHAVIOURAL}, **{field: level})

    assert result.circumstances == Decimal(added)
    assert result.score == Decimal(2) + Decimal(added)


# ENISA 2013, Assessment Table 1: examples of how context moves a category's base score.
@pytest.mark.parametrize(
    ("example", "category", "adjustments", "expected_dpc"),
    [
        ("customer list of a supermarket", SIMPLE, (), 1),
        (
            "customer list of a luxury goods seller (implies wealth)",
            SIMPLE,
            (DpcAdjustment(DpcFactor.CONTROLLER_CHARACTERISTICS),),
            2,
        ),
        (
            "delivery addresses of an adult book shop (implies sexual preferences)",
            SIMPLE,
            (DpcAdjustment(DpcFactor.CONTROLLER_CHARACTERISTICS, steps=2),),
            3,
        ),
        (
            "list of undercover police officers (their safety)",
            SIMPLE,
            (DpcAdjustment(DpcFactor.INDIVIDUALS_CHARACTERISTICS, steps=3),),
            4,
        ),
        (
            "one year of call history rather than one week",
            BEHAVIOURAL,
            (DpcAdjustment(DpcFactor.DATA_VOLUME),),
            3,
        ),
        (
            "credit card data expired long ago",
            FINANCIAL,
            (DpcAdjustment(DpcFactor.INVALID_OR_INACCURATE, steps=2),),
            1,
        ),
        (
            "'performed general blood tests', no result",
            SENSITIVE,
            (DpcAdjustment(DpcFactor.NATURE_REVEALS_LESS, steps=3),),
            1,
        ),
    ],
)
def test_it_reproduces_the_enisa_dpc_examples(example, category, adjustments, expected_dpc):
    assert score(data_categories={category}, dpc_adjustments=adjustments).dpc == expected_dpc, example


def test_it_scores_a_worked_breach_end_to_end():
    # Online banking credentials of identified customers stolen by an attacker and published:
    # DPC 3 (financial), EI 1, CB 0.5 (unknown recipients) + 0.5 (malicious) -> 4, very high.
    result = score(
        data_categories={SIMPLE, Credentials(FINANCIAL)},
        confidentiality_loss=ConfidentialityLoss.UNKNOWN_RECIPIENTS,
        malicious_intent=True,
    )

    assert (result.dpc, result.ease_of_identification, result.circumstances) == (
        3,
        Decimal(1),
        Decimal(1),
    )
    assert result.score == Decimal(4)
    assert result.band is SeverityBand.VERY_HIGH
    assert result.reasons[-1].startswith("SE = DPC × EI + CB = 3 × 1.00 + 1.00 = 4.00: very high")


def test_it_explains_every_part_of_the_score():
    result = score(
        data_categories={BEHAVIOURAL},
        ease_of_identification=EaseOfIdentification.LIMITED,
        availability_loss=AvailabilityLoss.TEMPORARY,
    )

    text = "\n".join(result.reasons)
    assert "DPC base 2" in text
    assert "EI 0.50" in text
    assert "CB +0.25: loss of availability (temporary" in text
    assert "SE = DPC × EI + CB = 2 × 0.50 + 0.25 = 1.25: low" in text


def test_it_rejects_inputs_it_cannot_score():
    with pytest.raises(ValueError, match="at least one data category"):
        SeverityInputs(data_categories=frozenset(), ease_of_identification=EaseOfIdentification.MAXIMUM)
    # Wrong types on purpose below: the runtime checks for untyped callers are under test.
    with pytest.raises(ValueError):
        SeverityInputs(
            data_categories=frozenset({"medical"}),  # type: ignore[arg-type]
            ease_of_identification=EaseOfIdentification.MAXIMUM,
        )
    with pytest.raises(ValueError, match="ease_of_identification"):
        SeverityInputs(
            data_categories=frozenset({SIMPLE}),
            ease_of_identification=Decimal("0.3"),  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="1 to 3"):
        DpcAdjustment(DpcFactor.DATA_VOLUME, steps=4)
    with pytest.raises(ValueError, match="1 to 3"):
        DpcAdjustment(DpcFactor.DATA_VOLUME, steps=0)


def test_it_maps_every_incident_data_category_to_an_enisa_category():
    from incidents.models import DataCategory

    assert set(DATA_CATEGORY_TO_ENISA) == set(DataCategory.values)
    assert enisa_categories_for(["identity", "employment"]) == {SIMPLE}
    assert enisa_categories_for(["behavioural", "communications"]) == {BEHAVIOURAL}
    assert enisa_categories_for(["financial", "payment_card"]) == {FINANCIAL}
    assert enisa_categories_for(["health", "special_category", "criminal"]) == {SENSITIVE}


def test_it_maps_credentials_only_once_told_what_they_unlock():
    assert enisa_categories_for(["identity", "credentials"], credentials_give_access_to=FINANCIAL) == {
        SIMPLE,
        Credentials(FINANCIAL),
    }
    with pytest.raises(ValueError, match="credentials_give_access_to"):
        enisa_categories_for(["credentials"])
    with pytest.raises(ValueError, match="unknown data category"):
        enisa_categories_for(["shoe_size"])
