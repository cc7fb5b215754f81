"""Customer notification clicked through in a real browser: an incident manager drafts the
initial notice of a declared breach, previews it in German, approves it; the sender delivers it
to a real SMTP server, and the pages then show the deliveries sent, the deadlines met and the
incident notified."""

from __future__ import annotations

import pytest

# The notification fixtures live beside the notification tests; importing them makes them
# available to this module (pytest finds fixtures in a test module's namespace). The test asks
# for them by name (request.getfixturevalue) so the imported names are not shadowed.
from tests.notifications.conftest import declare_for, multilingual_customers  # noqa: F401

PASSWORD = "correct horse battery"


def _log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_drafts_previews_approves_and_delivers_a_notice_in_the_browser(  # noqa: PLR0915
    chromium_browser, live_server, manager, monkeypatch, settings, tmp_path, request
):
    from playwright.sync_api import expect

    import notifications.services
    from notifications.models import Clock, Delivery
    from notifications.sender import deliveries_send_due
    from tests.notifications.support import run_delivery_worker

    declare = request.getfixturevalue("declare_for")
    customers = request.getfixturevalue("multilingual_customers")
    sink = request.getfixturevalue("smtp_server")
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    # Approval wakes the sender after commit; here the test process sends instead, so the page
    # can be seen with the deliveries still pending first.
    woken = []
    monkeypatch.setattr(notifications.services, "enqueue", lambda task, *args: woken.append(task))
    incident = declare(
        customers,
        title="Support mailbox accessed by an unknown party",
        nature_of_breach="A support engineer's mailbox was accessed by an unknown party.",
    )
    base_url = live_server.url
    page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _log_in(page, base_url, manager.username)

    # The incident page shows one running deadline per customer, in UTC and Berlin time.
    page.goto(f"{base_url}/incidents/{incident.pk}/")
    panel = page.locator("#customer-notification")
    expect(panel.get_by_role("heading", name="Customer notification")).to_be_visible()
    expect(panel.locator(".countdown")).to_have_count(3)
    expect(panel.locator(".countdown").first).to_contain_text("71 h 59 min left")
    expect(panel.locator("table.clocks")).to_contain_text("(Europe/Berlin)")

    # Draft the initial notice.
    panel.get_by_text("Draft a notice").click()
    panel.get_by_label("Likely consequences").fill("Targeted phishing against your staff is likely.")
    panel.get_by_role("button", name="Draft the notice").click()
    expect(page.locator(".messages")).to_contain_text("Notice 1 drafted")
    expect(page.locator("#notice-status")).to_have_text("Draft")

    # Preview it in German: subject, plain text and the HTML part in its sandboxed frame.
    page.get_by_role("link", name="Deutsch (de)").click()
    expect(page.locator("#preview-subject")).to_contain_text("Mitteilung")
    expect(page.locator("#preview-subject")).to_contain_text(incident.reference)
    expect(page.locator("#preview-text")).to_contain_text("support engineer's mailbox")
    expect(page.frame_locator("#preview-html").locator("body")).to_contain_text("Acme Logistik GmbH")
    page.screenshot(path=str(tmp_path / "notice-preview-de.png"), full_page=True)

    # Approve after seeing who will receive it.
    approve = page.locator("#approve")
    expect(approve.locator("#approve-audience")).to_contain_text("3 customers")
    expect(approve.locator("#approve-audience")).to_contain_text("4 contacts")
    approve.get_by_label("I have checked the preview and want it sent").check()
    approve.get_by_role("button", name="Approve and send").click()
    expect(page.locator(".messages")).to_contain_text("Notice 1 approved")
    expect(page.locator("#notice-status")).to_have_text("Approved")
    # The approval answered at once; the worker that creates the deliveries was queued.
    assert woken == ["notifications.tasks.create_notice_deliveries"]
    expect(page.locator("#delivery-progress")).to_contain_text("Creating deliveries: 0 of 3 customers done")
    assert run_delivery_worker() == 4  # the worker (here, in the test process)
    page.reload()
    expect(page.locator("#delivery-progress")).to_contain_text("All 4 deliveries to 3 customers created")
    expect(page.locator("#deliveries tr.delivery")).to_have_count(4)
    expect(page.locator("#deliveries")).to_contain_text("Pending")

    # The sender runs (here, in the test process) against the real SMTP server.
    report = deliveries_send_due()
    assert report.sent == 4

    page.reload()
    expect(page.locator("#deliveries .badge.status-sent")).to_have_count(4)
    page.screenshot(path=str(tmp_path / "notice-sent.png"), full_page=True)
    page.get_by_role("link", name="Back to the incident").click()
    expect(page.locator(".page-head .state")).to_have_text("Notified")
    expect(page.locator("#customer-notification .clock-status.status-met")).to_have_count(3)
    expect(page.locator("#customer-notification table.notices")).to_contain_text("Approved")
    screenshot = tmp_path / "incident-notified.png"
    page.screenshot(path=str(screenshot), full_page=True)

    assert screenshot.stat().st_size > 10_000
    incident.refresh_from_db()
    assert incident.state == "notified"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert not Clock.objects.filter(incident=incident, met_at__isnull=True).exists()
    # The sink also holds the declaration alert to the incident managers; the notices are these.
    received = {
        m.recipients[0]: m for m in sink.received if m.message_id.startswith(f"<{incident.reference}.")
    }
    assert sorted(received) == [
        "anna@acme.example",
        "bob@acme.example",
        "claire@dupont.example",
        "taro@yamada.example",
    ]
    german = received["anna@acme.example"]
    assert german.message["Content-Language"] == "de"
    assert "Mitteilung" in german.message["Subject"]
    assert "Targeted phishing against your staff is likely." in german.text()
