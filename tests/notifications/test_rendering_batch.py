"""Rendering a fan-out once per shape and filling in each customer's own salutation and figures
gives exactly the message that rendering each customer alone gives, in every part and language."""

from __future__ import annotations

from typing import Any

import pytest

from incidents.models import Customer
from notifications.rendering import render_notice, render_notice_for_customers
from notifications.services import notice_content_for, notice_draft

LANGUAGES = ["en", "de", "fr", "es", "ja"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_renders_many_customers_exactly_as_one_by_one(declare_for, manager, language):
    customers = [
        Customer.objects.create(name=name, account_reference=f"C{n}", preferred_language=language)
        for n, name in enumerate(["Atelier <Dupont> & Fils", "Özdemir Bau GmbH", "山田商事", "O'Brien Ltd"])
    ]
    incident = declare_for(customers, nature_of_breach="A <b>mailbox</b> & a share were opened.")
    figures: list[dict[str, Any] | None] = [
        {
            "records_affected": {"count": 40, "is_estimate": True},
            "data_subjects_affected": None,
            "exposure_duration": None,
        },
        {
            "records_affected": {"count": 1200, "is_estimate": False},
            "data_subjects_affected": {"count": 7, "is_estimate": False},
            "exposure_duration": None,
        },
        {"records_affected": None, "data_subjects_affected": None, "exposure_duration": None},
        {
            "records_affected": {"count": 40, "is_estimate": True},
            "data_subjects_affected": None,
            "exposure_duration": None,
        },
    ]
    previous: list[dict[str, Any] | None] = [
        {
            "records_affected": {"count": 30, "is_estimate": True},
            "data_subjects_affected": None,
            "exposure_duration": None,
        },
        None,
        {
            "records_affected": {"count": 5, "is_estimate": False},
            "data_subjects_affected": None,
            "exposure_duration": None,
        },
        figures[3],
    ]
    notice = notice_draft(incident=incident, actor=manager, kind="initial")
    content = notice_content_for(notice, incident)
    common = {"notice": notice, "content": content, "withheld": {}, "changes": [], "language": language}

    batch = render_notice_for_customers(
        customers=list(zip(customers, figures, previous, strict=True)), **common
    )
    one_by_one = [
        render_notice(customer=customer, figures=own, previous_figures=before, **common)
        for customer, own, before in zip(customers, figures, previous, strict=True)
    ]

    assert batch == one_by_one
    assert "&lt;Dupont&gt; &amp; Fils" in batch[0].html and "<Dupont> & Fils" in batch[0].text
    assert len({message.text for message in batch}) == 4  # each customer's own
