"""Triage in a real browser: a responder triages a real VCDB incident (a stolen laptop with
patient data), watches the ENISA severity follow the inputs, records the assessment, and sees
the severity, the notification assessment with its reasons, the stakeholder alerts and the
playbook's tasks on the incident page, then ticks a task done."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from tests.browser.test_lifecycle_in_browser import _log_in

VCDB_FILE = (
    Path(__file__).resolve().parents[2]
    / "incidents"
    / "fixtures"
    / "vcdb"
    / "002599D4-A872-433B-9980-BD9F257B283F.json"
)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_responder_triages_a_real_vcdb_incident_in_the_browser(
    chromium_browser, live_server, responder, tmp_path
):
    from playwright.sync_api import expect

    from incidents.models import Incident
    from triage.models import ResponseTask, StakeholderAlert, StakeholderGroup

    StakeholderGroup.objects.filter(name__in=["privacy", "security", "legal"]).update(
        email_addresses="dpo@breachdesk.test"
    )
    call_command("import_veris", str(VCDB_FILE), verbosity=0)
    incident = Incident.objects.get()
    assert "laptop" in incident.summary
    base_url = live_server.url

    page = chromium_browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
    _log_in(page, base_url, responder.username)
    page.goto(f"{base_url}/incidents/{incident.pk}/")
    expect(page.locator("#triage")).to_contain_text("Not assessed yet.")
    page.get_by_role("link", name="Triage this incident").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(incident.reference)

    form = page.locator("#assessment-form")
    score, band = page.locator("#severity-score"), page.locator("#severity-band")
    form.get_by_label("In scope: a possible personal data breach").check()
    form.get_by_label("Rationale of the scope decision").fill(
        "A laptop with patient records of the Sutter Medical Foundation was stolen from its offices."
    )
    form.locator("#id_malicious").select_option("no")
    form.get_by_label("Scenario").select_option("lost_or_stolen_device")
    for box in form.locator("input[name=data_categories]").all():
        box.uncheck()
    form.get_by_label("Identity and contact details").check()
    form.get_by_label("Ease of identification (EI)").select_option("maximum")
    expect(score).to_have_text("1.00")  # simple data (1) x maximum (1), no circumstances
    expect(band).to_have_text("Low")

    form.get_by_label("Health data").check()
    expect(score).to_have_text("4.00")  # sensitive data (4) counts
    expect(band).to_have_text("Very high")

    form.get_by_label("Ease of identification (EI)").select_option("limited")
    form.get_by_label("Loss of confidentiality").select_option("unknown_recipients")
    expect(score).to_have_text("2.50")  # 4 x 0.5 + 0.5
    expect(band).to_have_text("Medium")

    form.locator("#id_malicious").select_option("yes")
    expect(score).to_have_text("3.00")  # + 0.5 malicious intent
    expect(band).to_have_text("High")
    expect(page.locator("#severity-reasons")).to_contain_text("malicious intent")
    form.get_by_label("Basis").fill("The laptop was stolen from the headquarters.")
    page.screenshot(path=str(tmp_path / "triage-form.png"), full_page=True)

    form.get_by_label("Confidentiality: unauthorised disclosure or access").check()
    form.get_by_label("People affected").fill("4243434")
    form.get_by_label("Data unintelligible to others").select_option("false")
    form.get_by_role("button", name="Record assessment").click()

    expect(page.locator(".messages")).to_contain_text("Assessment v1 recorded: in scope")
    expect(page.locator(".page-head .state")).to_have_text("Triaged")
    panel = page.locator("#triage")
    expect(panel.locator("#triage-severity")).to_contain_text("High")
    expect(panel.locator("#triage-severity")).to_contain_text("3.00")
    expect(panel).to_contain_text("SE = DPC × EI + CB = 4 × 0.50 + 1.00 = 3.00")
    notification = panel.locator("#triage-notification")
    expect(notification).to_contain_text("Notify the supervisory authority (Art. 33(1))")
    expect(notification).to_contain_text("Communicate to the data subjects (Art. 34(1))")
    expect(notification).to_contain_text("Art. 33(5) GDPR")
    alerts = panel.locator("table").nth(1)
    for group in ("privacy", "security", "legal"):
        expect(alerts).to_contain_text(group)
    expect(alerts).to_contain_text("dpo@breachdesk.test")
    expect(panel).to_contain_text("Trigger a remote wipe")

    first_task = ResponseTask.objects.filter(incident=incident).order_by("due_at", "order").first()
    assert first_task is not None
    page.locator(f"#task-{first_task.pk}").get_by_role("button", name="Done").click()
    expect(page.locator(".messages")).to_contain_text("done")
    expect(page.locator(f"#task-{first_task.pk}")).to_contain_text(f"by {responder.username}")
    panel.screenshot(path=str(tmp_path / "triage-panel.png"))
    screenshot = tmp_path / "incident-triaged.png"
    page.screenshot(path=str(screenshot), full_page=True)

    assert screenshot.stat().st_size > 10_000
    incident.refresh_from_db()
    assert (incident.state, incident.severity, incident.malicious) == ("triaged", "high", "yes")
    assert sorted(
        StakeholderAlert.objects.filter(incident=incident).values_list("group__name", flat=True)
    ) == [
        "legal",
        "privacy",
        "security",
    ]
    first_task.refresh_from_db()
    assert first_task.done_by == responder
