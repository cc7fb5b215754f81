"""Fixtures for triage tests: a helper that records an assessment through the real service, and
email addresses for the seeded stakeholder groups."""

from __future__ import annotations

import pytest

#: A minimal in-scope assessment: identity data, identification immediate -> ENISA score 1 (low).
IN_SCOPE = {
    "scope": "in_scope",
    "scope_rationale": "Customer personal data reached someone not entitled to it.",
    "malicious": "no",
    "scenario": "misdirected_communication",
    "data_categories": ["identity"],
    "severity_inputs": {"ease_of_identification": "maximum"},
    "notification_facts": {"breach_types": ["confidentiality"]},
}

#: Inputs that give each ENISA band (SE = DPC x EI + CB, no circumstances).
BANDS = {
    "low": {"data_categories": ["identity"], "severity_inputs": {"ease_of_identification": "maximum"}},
    "medium": {"data_categories": ["behavioural"], "severity_inputs": {"ease_of_identification": "maximum"}},
    "high": {"data_categories": ["health"], "severity_inputs": {"ease_of_identification": "significant"}},
    "very_high": {"data_categories": ["health"], "severity_inputs": {"ease_of_identification": "maximum"}},
}


@pytest.fixture
def assess(responder):
    """``assess(incident, actor=responder, band="low", **overrides)``: record an assessment
    through ``triage.services.assessment_record``, in scope by default."""
    from triage.services import assessment_record

    def record(incident, actor=None, band=None, **overrides):
        values = {**IN_SCOPE, **(BANDS[band] if band else {}), **overrides}
        return assessment_record(incident=incident, actor=actor or responder, **values)

    return record


@pytest.fixture
def stakeholder_addresses(db):
    """Give each seeded stakeholder group one address, ``<name>@breachdesk.test``; returns
    ``{name: address}``."""
    from tests.conftest import ensure_groups
    from triage.models import StakeholderGroup

    ensure_groups()
    addresses = {}
    for group in StakeholderGroup.objects.all():
        group.email_addresses = f"{group.name}@breachdesk.test"
        group.save()
        addresses[group.name] = group.email_addresses
    return addresses
