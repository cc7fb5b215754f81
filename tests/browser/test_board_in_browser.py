"""The response team's pages in a real browser: the due-next board (order, a moving countdown,
filter, sort, search), a note on the incident's timeline, a customer and a contact created,
the metrics with their charts and CSV, an auditor without write controls, long text that wraps,
a phone-sized board, and no content-security-policy violation anywhere.

Screenshots of each main page go to a temporary folder, or to ``docs/screenshots/`` (the README
shows them) with ``BREACHDESK_SCREENSHOTS=1``.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.browser.test_lifecycle_in_browser import _log_in

VCDB = Path(__file__).resolve().parents[2] / "incidents" / "fixtures" / "vcdb"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _screenshots(tmp_path: Path) -> Path:
    if os.environ.get("BREACHDESK_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


def _realistic_board(responder, manager):
    """Real VCDB incidents: three declared for customers with deadlines overdue, in 5 h and in
    40 h, one triaged, the rest detected; metrics computed."""
    from incidents import services
    from incidents.models import Contact, Customer, Incident
    from notifications.models import Clock

    files = sorted(VCDB.iterdir())[:10]
    call_command("import_veris", *[str(f) for f in files], verbosity=0)
    customers = []
    for reference, name, language in (
        ("NW-001", "Northwind Traders Ltd", "en"),
        ("RB-002", "Rheinblick Logistik GmbH", "de"),
        ("AD-003", "Atelier Dupont SARL", "fr"),
        ("YS-004", "Yamada Shoji KK", "ja"),
    ):
        customer = Customer.objects.create(
            name=name, account_reference=reference, preferred_language=language
        )
        Contact.objects.create(
            customer=customer, name=f"Admin of {name}", email=f"admin@{reference.lower()}.example"
        )
        customers.append(customer)
    incidents = list(Incident.objects.filter(external_reference__isnull=False).order_by("id"))
    declared = []
    for incident, hours, affected, severity in (
        (incidents[0], -2, customers[:2], "high"),
        (incidents[1], 5, customers[2:3], "very_high"),
        (incidents[2], 40, customers[1:4], "medium"),
    ):
        incident = services.incident_triage(
            incident=incident, actor=responder, severity=severity, malicious="unknown"
        )
        for customer in affected:
            services.affected_customer_add(incident=incident, customer=customer, actor=responder)
        incident = services.incident_declare(
            incident=incident, actor=manager, nature_of_breach="Customer data reached an unauthorised party."
        )
        due = timezone.now() + timedelta(hours=hours)
        Clock.objects.filter(incident=incident).update(starts_at=due - timedelta(hours=72), due_at=due)
        declared.append(incident)
    services.incident_triage(incident=incidents[3], actor=responder, severity="low", malicious="no")
    return declared, customers


def _history(make_incident):
    """Closed breaches over the last six months with varying response times, for the charts."""
    from incidents.models import Incident
    from notifications.models import Clock

    now = timezone.now()
    scenarios = [
        "misdirected_communication",
        "unauthorised_access",
        "lost_or_stolen_device",
        "malware_or_ransomware",
    ]
    for number in range(12):
        incident = make_incident(
            state="closed", title=f"Closed breach {number + 1}", scenario=scenarios[number % 4]
        )
        created = now - timedelta(days=15 + 14 * number)
        triaged = created + timedelta(hours=2 + number % 5)
        declared = triaged + timedelta(hours=6 + 3 * (number % 4))
        notified = declared + timedelta(hours=20 + 9 * (number % 7))
        Incident.objects.filter(pk=incident.pk).update(
            created_at=created,
            triaged_at=triaged,
            declared_at=declared,
            notified_at=notified,
            severity=["low", "medium", "high", "very_high"][number % 4],
        )
        Clock.objects.filter(incident=incident).update(
            starts_at=declared, due_at=declared + timedelta(hours=72), met_at=notified
        )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_response_team_works_the_board_the_workspace_customers_and_metrics_in_the_browser(  # noqa: PLR0915
    chromium_browser, live_server, responder, manager, auditor, make_incident, tmp_path
):
    from playwright.sync_api import expect

    from dashboard.metrics import metrics_refresh

    _history(make_incident)
    (overdue, soon, later), customers = _realistic_board(responder, manager)
    metrics_refresh()
    shots = _screenshots(tmp_path)
    base_url = live_server.url
    context = chromium_browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    # The board is the home page: deadlines in order, overdue first, a countdown that moves.
    _log_in(page, base_url, manager.username)
    rows = page.locator("#board-rows tr.board-row")
    expect(rows.first).to_contain_text(overdue.reference)
    assert [rows.nth(n).get_attribute("id") for n in range(3)] == [
        f"board-{i.pk}" for i in (overdue, soon, later)
    ]
    expect(rows.first).to_have_attribute("data-urgency", "overdue")
    expect(rows.nth(1)).to_have_attribute("data-urgency", "critical")
    countdown = rows.nth(1).locator(".countdown")
    first = countdown.inner_text()
    page.wait_for_timeout(2200)
    assert countdown.inner_text() != first and countdown.inner_text().endswith("s left")
    expect(rows.first.locator(".countdown")).to_contain_text("overdue by 2 h 00 min")
    page.screenshot(path=str(shots / "board.png"), full_page=True)

    # Filter, sort and search, all in the URL.
    page.get_by_label("Severity").select_option("very_high")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(soon.reference)
    assert "severity=very_high" in page.url
    page.goto(f"{base_url}/")
    page.get_by_role("link", name="Recorded").click()
    assert "sort=newest" in page.url
    page.get_by_label("Search").fill("Rheinblick")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Search").fill("")
    page.get_by_label("Overdue only").check()
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)

    # The workspace: add a note, see it on the timeline with when it happened.
    page.goto(f"{base_url}/incidents/{soon.pk}/")
    expect(page.locator("#breach-meter-label")).to_contain_text("of 6 required breach fields known")
    page.locator("#add-note > summary").click()
    page.locator("#id_note-text").fill("The customer's DPO confirmed the mailbox was accessed on Monday.")
    page.get_by_label("When it happened").fill("2026-11-30T09:15")
    page.get_by_role("button", name="Add the note").click()
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("The customer's DPO confirmed the mailbox was accessed on Monday.")
    expect(timeline).to_contain_text("2026-11-30 09:15 UTC")
    expect(timeline).to_contain_text("Note added")
    # A deadline's forms load when opened (htmx, under the content security policy).
    panel = page.locator("#customer-notification")
    panel.get_by_text("Manage the deadline for Atelier Dupont SARL").click()
    expect(panel.get_by_role("button", name="Waive the deadline")).to_be_visible()
    page.screenshot(path=str(shots / "incident.png"), full_page=True)

    # Customers: create one and a contact for it.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.locator("#customers")).to_contain_text("Northwind Traders Ltd")
    page.screenshot(path=str(shots / "customers.png"), full_page=True)
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("Name").fill("Contoso Pharma AG")
    page.get_by_label("Account reference").fill("CP-005")
    page.get_by_label("Country").fill("CH")
    page.get_by_label("Preferred language").select_option("de")
    page.get_by_label("Notification window (hours)").fill("24")
    page.get_by_role("button", name="Create customer").click()
    expect(page.locator(".messages")).to_contain_text("Contoso Pharma AG created")
    page.locator("#add-contact > summary").click()
    page.get_by_label("Name").fill("Lena Keller")
    page.get_by_label("Email").fill("lena.keller@contoso.example")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#contacts")).to_contain_text("lena.keller@contoso.example")
    page.screenshot(path=str(shots / "customer.png"), full_page=True)

    # Metrics: charts drawn, the table, and the CSV download with the same numbers.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Metrics").click()
    expect(page.locator("html")).to_have_attribute("data-charts", "drawn")
    expect(page.locator("#table-months")).to_be_visible()
    with page.expect_download() as download_info:
        page.locator("#metrics-csv").click()
    download = download_info.value
    rows_csv = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert rows_csv[0][0] == "month" and download.suggested_filename.endswith(".csv")
    assert sum(int(row[1]) for row in rows_csv[1:] if row and row[0][:2] == "20") == 22
    page.screenshot(path=str(shots / "metrics.png"), full_page=True)

    # On a phone the board is usable: nothing wider than the screen but the table, which scrolls.
    phone = chromium_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    _log_in(phone, base_url, manager.username)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(shots / "board-phone.png"), full_page=True)

    # Long unbroken text wraps: the page is never wider than the window.
    from incidents.models import Incident

    Incident.objects.filter(pk=later.pk).update(summary="x" * 100_000, title="y" * 300)
    page.goto(f"{base_url}/incidents/{later.pk}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1360, width
    page.goto(f"{base_url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1360

    # An auditor sees the board, the incident and the customers, and no write control.
    auditor_page = chromium_browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    _log_in(auditor_page, base_url, auditor.username)
    expect(auditor_page.locator("#board-rows tr.board-row").first).to_be_visible()
    for path in (f"/incidents/{soon.pk}/", f"/customers/{customers[0].pk}/", "/"):
        auditor_page.goto(f"{base_url}{path}")
        assert auditor_page.locator("form[method=post]").count() == 1, path  # logging out only
        assert auditor_page.get_by_role("button", name="Add the note").count() == 0
    expect(auditor_page.get_by_role("link", name="New customer")).to_have_count(0)

    assert violations == [], violations
    assert (shots / "board.png").stat().st_size > 10_000
