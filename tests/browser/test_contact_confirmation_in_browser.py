"""Contact confirmation clicked through in a real browser: a confirmation request arrives at a
real SMTP server; its link opens the customer's page without a login; the contact corrects a
colleague's name and adds a colleague (who gets a link of her own); a bounced address then
shows on the readiness page an incident manager sees."""

from __future__ import annotations

import re

import pytest

PASSWORD = "correct horse battery"
LINK = re.compile(r"https?://[^\s]+/contacts/confirm/[^/\s]+/")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_contact_corrects_a_name_and_adds_a_colleague_through_the_emailed_link(
    chromium_browser, live_server, manager, settings, tmp_path, request
):
    from playwright.sync_api import expect

    from incidents.models import Contact, Customer
    from notifications.confirmations import contacts_confirmation_request
    from notifications.sender import outbox_send_due

    sink = request.getfixturevalue("smtp_server")
    settings.SITE_URL = live_server.url
    customer = Customer.objects.create(
        name="Nordlicht Versand GmbH", account_reference="NORD", preferred_language="de"
    )
    Contact.objects.create(customer=customer, name="Ina Admin", email="ina@nordlicht.example", language="en")
    typo = Contact.objects.create(
        customer=customer, name="Jan Mueler", email="jan@nordlicht.example", language="de"
    )
    gone = Contact.objects.create(customer=customer, name="Old Address", email="old@nordlicht.example")
    sink.refuse_permanently.add("old@nordlicht.example")

    contacts_confirmation_request(customer=customer)
    outbox_send_due()

    (email,) = [m for m in sink.received if m.recipients == ["ina@nordlicht.example"]]
    assert email.message["Subject"] == "Please confirm the administrative contacts of Nordlicht Versand GmbH"
    link = LINK.findall(email.text())[0]
    page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(link)
    expect(
        page.get_by_role("heading", name="Administrative contacts of Nordlicht Versand GmbH")
    ).to_be_visible()
    expect(page.locator(f"#contact-{gone.pk}")).to_contain_text("refused by the receiving mail server")

    # Correct a colleague's name.
    row = page.locator(f"#contact-{typo.pk}")
    row.get_by_text("Correct", exact=True).click()
    row.get_by_label("Name").fill("Jan Müller")
    row.get_by_role("button", name="Save the correction").click()
    expect(page.locator(".messages")).to_contain_text("Jan Müller is corrected.")
    expect(page.locator(f"#contact-{typo.pk}")).to_contain_text("Jan Müller")

    # Add a colleague: she counts once her own address confirms.
    add = page.locator("form:has(input[name=action][value=add])")
    add.get_by_label("Name").fill("Klara Kollegin")
    add.get_by_label("Email address").fill("klara@nordlicht.example")
    add.get_by_label("Language of our emails").select_option("de")
    add.get_by_role("button", name="Add the contact").click()
    expect(page.locator(".messages")).to_contain_text("We sent klara@nordlicht.example a link")
    expect(page.locator("table.contacts")).to_contain_text("Waiting for this address to confirm itself.")
    page.screenshot(path=str(tmp_path / "confirmation-page.png"), full_page=True)

    outbox_send_due()
    (klara_email,) = [m for m in sink.received if m.recipients == ["klara@nordlicht.example"]]
    assert klara_email.message["Content-Language"] == "de"
    assert "Ina Admin" in klara_email.text()
    klara_page = chromium_browser.new_context().new_page()
    klara_page.goto(LINK.findall(klara_email.text())[0])
    klara_page.get_by_role("button", name="Meine Adresse bestätigen").click()
    expect(klara_page.get_by_role("heading", name="Vielen Dank")).to_be_visible()
    assert Contact.objects.get(email="klara@nordlicht.example").is_deliverable

    # The bounced address shows on the readiness entry an incident manager sees.
    staff = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    staff.goto(f"{live_server.url}/accounts/login/")
    staff.get_by_label("Username").fill(manager.username)
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    staff.wait_for_url(f"{live_server.url}/incidents/")
    staff.get_by_role("link", name="Contact readiness").click()
    expect(staff.locator("#count-undeliverable")).to_have_text("1")
    staff.goto(f"{live_server.url}/contacts/customers/{customer.pk}/")
    expect(staff.locator(f"#contact-{gone.pk}")).to_contain_text("refused")
    expect(staff.locator(f"#contact-{gone.pk}")).to_contain_text("550")
    expect(staff.locator("#audit")).to_contain_text("link recipient ina@nordlicht.example")
    screenshot = tmp_path / "readiness-entry.png"
    staff.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    typo.refresh_from_db()
    assert typo.name == "Jan Müller"
