"""The incident lifecycle clicked through in a real browser: a responder triages and adds an
affected customer, an incident manager declares, and the page's audit trail shows both."""

from __future__ import annotations

import pytest

PASSWORD = "correct horse battery"


def _log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_takes_an_incident_from_triage_to_declaration_in_the_browser(
    chromium_browser, live_server, responder, manager, customer, make_incident, tmp_path
):
    from playwright.sync_api import expect

    incident = make_incident(title="Payroll export sent to the wrong customer")
    base_url = live_server.url

    # A responder logs in, opens the incident from the list, triages it, adds a customer.
    responder_page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _log_in(responder_page, base_url, responder.username)
    responder_page.get_by_role("link", name=incident.reference).click()
    expect(responder_page.get_by_role("heading", level=1)).to_contain_text(incident.title)
    responder_page.screenshot(path=str(tmp_path / "incident-detected.png"), full_page=True)
    responder_page.locator("#step-triage > summary").click()
    # Triage is one path: the incident page's step opens the assessment form.
    responder_page.locator("#transition-triage").get_by_role("link", name="Assess and triage").click()
    form = responder_page.locator("#assessment-form")
    form.get_by_label("In scope: a possible personal data breach").check()
    form.get_by_label("Rationale of the scope decision").fill("A payroll export reached another customer.")
    form.locator("#id_malicious").select_option("no")
    form.get_by_label("Scenario").select_option("misdirected_communication")
    for box in form.locator("input[name=data_categories]").all():
        box.uncheck()
    form.get_by_label("Financial (bank account) data").check()
    form.get_by_label("Ease of identification (EI)").select_option("maximum")
    form.get_by_label("Loss of confidentiality").select_option("known_recipients")
    form.get_by_label("Confidentiality: unauthorised disclosure or access").check()
    form.get_by_role("button", name="Record assessment").click()
    expect(responder_page.locator(".messages")).to_contain_text("Assessment v1 recorded: in scope")
    expect(responder_page.locator(".page-head .state")).to_have_text("Triaged")
    responder_page.get_by_label("Customer (account reference or name)").fill(customer.account_reference)
    responder_page.get_by_label("Records affected (this customer)").fill("1200")
    responder_page.get_by_role("button", name="Add affected customer").click()
    expect(responder_page.locator("#affected-customers")).to_contain_text("Acme Logistics GmbH")
    responder_page.get_by_role("button", name="Log out").click()
    responder_page.wait_for_url(f"{base_url}/accounts/login/")

    # An incident manager logs in and declares it.
    manager_page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _log_in(manager_page, base_url, manager.username)
    manager_page.goto(f"{base_url}/incidents/{incident.pk}/")
    # Declaring cannot be undone: the page asks for confirmation first.
    questions: list[str] = []

    def confirm(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    manager_page.on("dialog", confirm)
    manager_page.locator("#step-declare > summary").click()
    declare = manager_page.locator("#transition-declare")
    declare.get_by_label("Nature of the breach").fill(
        "A payroll export was emailed to another customer's administrator."
    )
    declare.get_by_role("button", name="Declare a personal data breach").click()
    expect(manager_page.locator(".page-head .state")).to_have_text("Declared")
    assert questions and "cannot be undone" in questions[0]

    trail = manager_page.locator("#audit-trail")
    expect(trail).to_contain_text("triage")
    expect(trail).to_contain_text("detected → triaged")
    expect(trail).to_contain_text("declare")
    expect(trail).to_contain_text("triaged → declared")
    expect(trail).to_contain_text(responder.username)
    expect(trail).to_contain_text(manager.username)
    screenshot = tmp_path / "incident-declared.png"
    manager_page.screenshot(path=str(screenshot), full_page=True)

    assert screenshot.stat().st_size > 10_000
    assert "Acme Logistics GmbH" in manager_page.inner_text("#affected-customers")
    incident.refresh_from_db()
    assert (incident.state, incident.declared_by) == ("declared", manager)
    assert incident.severity == incident.assessments.get().band
