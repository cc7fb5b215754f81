"""Customers and contacts in the browser: list, search, create, edit, deactivate, import a CSV,
and a customer's page with its incidents and notices; for each role."""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from incidents import services
from incidents.management.commands.import_customers import COLUMNS
from incidents.models import Contact, Customer, CustomerAuditEvent
from tests.queries import assert_same_query_count, capture_queries


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_lists_and_searches_customers_flagging_those_without_a_contact(manager, customer):
    Customer.objects.create(name="Zenith Bank", account_reference="ZEN-9")
    client = _client_for(manager)

    everything = client.get(reverse("dashboard:customer_list"))
    found = client.get(reverse("dashboard:customer_list"), {"q": "zen"})

    assert [c.name for c in everything.context["customers"]] == ["Acme Logistics GmbH", "Zenith Bank"]
    assert "none: notices cannot reach it" in everything.content.decode()
    assert [c.name for c in found.context["customers"]] == ["Zenith Bank"]


def test_it_pages_customers_by_name_without_counting(manager, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "CUSTOMER_PAGE_SIZE", 2)
    for name in ("Delta", "Alpha", "Charlie", "Bravo", "Echo"):
        Customer.objects.create(name=name, account_reference=name.upper())
    client = _client_for(manager)

    seen: list[str] = []
    query: dict[str, str] = {}
    while True:
        response = client.get(reverse("dashboard:customer_list"), query)
        seen += [c.name for c in response.context["customers"]]
        if not response.context["next_after"]:
            break
        query = {"after": response.context["next_after"]}

    assert seen == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]


def test_it_creates_a_customer_and_a_contact_and_logs_both(manager):
    client = _client_for(manager)

    created = client.post(
        reverse("dashboard:customer_new"),
        {
            "name": "Atelier Dupont SARL",
            "account_reference": "DUP-7",
            "country": "fr",
            "preferred_language": "fr",
            "notification_window_hours": "48",
        },
    )
    customer = Customer.objects.get(account_reference="DUP-7")
    added = client.post(
        reverse("dashboard:contact_new", args=[customer.pk]),
        {
            "contact-name": "Claire Dupont",
            "contact-email": "claire@dupont.example",
            "contact-role": "administrative",
            "contact-language": "",
            "contact-is_active": "on",
        },
    )

    assert created.status_code == 302 and created["Location"] == reverse(
        "dashboard:customer_detail", args=[customer.pk]
    )
    assert (customer.country, customer.notification_window_hours) == ("FR", 48)
    assert added.status_code == 302
    contact = Contact.objects.get(customer=customer)
    assert (contact.email, contact.is_active) == ("claire@dupont.example", True)
    assert LogEntry.objects.filter(user=manager).count() == 1  # the customer (reference data)
    event = CustomerAuditEvent.objects.get(customer=customer, verb="contact_added")
    assert event.actor == manager  # the contact, on the customer's own audit chain


def test_it_refuses_bad_values_and_duplicates_with_the_reason_and_stores_nothing(manager, customer):
    client = _client_for(manager)

    window = client.post(
        reverse("dashboard:customer_new"),
        {
            "name": "X",
            "account_reference": "X-1",
            "preferred_language": "en",
            "notification_window_hours": "96",
        },
    )
    duplicate_reference = client.post(
        reverse("dashboard:customer_new"),
        {
            "name": "Y",
            "account_reference": "ACME-001",
            "preferred_language": "en",
            "notification_window_hours": "72",
        },
    )
    duplicate_email = client.post(
        reverse("dashboard:contact_new", args=[customer.pk]),
        {
            "contact-name": "Anna again",
            "contact-email": "ANNA@acme.example",
            "contact-role": "administrative",
        },
    )

    assert window.status_code == 400 and "less than or equal to 72" in window.content.decode()
    assert duplicate_reference.status_code == 400 and "already exists" in duplicate_reference.content.decode()
    assert duplicate_email.status_code == 400
    assert "is already a contact of this customer" in duplicate_email.content.decode()
    assert Customer.objects.count() == 1 and Contact.objects.count() == 1


def test_it_edits_and_deactivates_a_contact_who_then_gets_no_notice(manager, customer):
    contact = customer.contacts.get()
    client = _client_for(manager)

    edited = client.post(
        reverse("dashboard:contact_edit", args=[customer.pk, contact.pk]),
        {
            "contact-name": "Anna Schmidt",
            "contact-email": contact.email,
            "contact-role": "administrative",
            "contact-language": "de",
            "contact-is_active": "on",
        },
    )
    deactivated = client.post(reverse("dashboard:contact_deactivate", args=[customer.pk, contact.pk]))

    contact.refresh_from_db()
    assert edited.status_code == 302 and deactivated.status_code == 302
    assert contact.name == "Anna Schmidt" and contact.is_active is False
    page = client.get(reverse("dashboard:customer_detail", args=[customer.pk])).content.decode()
    assert "inactive" in page


def test_it_shows_a_customers_incidents_and_notices(manager, make_incident, customer):
    incident = make_incident(state="triaged", title="Support mailbox exposed")
    services.affected_customer_add(incident=incident, customer=customer, actor=manager)

    page = _client_for(manager).get(reverse("dashboard:customer_detail", args=[customer.pk])).content.decode()

    assert "Support mailbox exposed" in page and incident.reference in page
    assert "No notice has been sent to this customer." in page


def _csv(rows: list[dict[str, str]]) -> SimpleUploadedFile:
    lines = [",".join(COLUMNS)] + [",".join(row.get(name, "") for name in COLUMNS) for row in rows]
    return SimpleUploadedFile("customers.csv", ("\n".join(lines) + "\n").encode(), content_type="text/csv")


def test_it_imports_a_csv_and_lists_per_row_problems_storing_nothing_on_any(manager):
    client = _client_for(manager)
    good = {
        "account_reference": "IMP-1",
        "customer_name": "Imported Ltd",
        "contact_name": "Ivy",
        "contact_email": "ivy@imported.example",
    }
    bad = {
        "account_reference": "IMP-2",
        "customer_name": "Broken Ltd",
        "contact_name": "Bo",
        "contact_email": "not-an-address",
    }

    refused = client.post(reverse("dashboard:customer_import"), {"file": _csv([good, bad])})
    assert refused.status_code == 400
    assert (
        "row 3: contact_email &#x27;not-an-address&#x27; is not a valid email address"
        in refused.content.decode()
    )
    assert not Customer.objects.exists()

    accepted = client.post(reverse("dashboard:customer_import"), {"file": _csv([good])}, follow=True)
    assert "Imported. Customers: 1 created" in accepted.content.decode()
    assert Contact.objects.get().email == "ivy@imported.example"


def test_it_refuses_a_file_that_is_not_utf8_csv(manager):
    upload = SimpleUploadedFile("customers.csv", b"\xff\xfe\x00garbage", content_type="text/csv")

    response = _client_for(manager).post(reverse("dashboard:customer_import"), {"file": upload})

    assert response.status_code == 400 and "not UTF-8" in response.content.decode()


def test_an_auditor_sees_customers_but_no_form_and_gets_403_on_every_post(auditor, customer):
    contact = customer.contacts.get()
    client = _client_for(auditor)

    listing = client.get(reverse("dashboard:customer_list")).content.decode()
    page = client.get(reverse("dashboard:customer_detail", args=[customer.pk])).content.decode()

    assert "Acme Logistics GmbH" in listing and reverse("dashboard:customer_new") not in listing
    assert page.count("<form") == 1  # logout only
    for url, data in {
        reverse("dashboard:customer_new"): {"name": "X", "account_reference": "X"},
        reverse("dashboard:customer_edit", args=[customer.pk]): {"name": "Changed"},
        reverse("dashboard:contact_new", args=[customer.pk]): {"contact-name": "X"},
        reverse("dashboard:contact_edit", args=[customer.pk, contact.pk]): {"contact-name": "X"},
        reverse("dashboard:contact_deactivate", args=[customer.pk, contact.pk]): {},
        reverse("dashboard:customer_import"): {},
    }.items():
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "may" in response.content.decode()
    assert client.get(reverse("dashboard:customer_new")).status_code == 403
    contact.refresh_from_db()
    customer.refresh_from_db()
    assert contact.is_active and customer.name == "Acme Logistics GmbH"


def test_an_outsider_gets_403_for_the_list_and_404_for_a_customer(outsider, customer):
    client = _client_for(outsider)

    assert client.get(reverse("dashboard:customer_list")).status_code == 403
    response = client.get(reverse("dashboard:customer_detail", args=[customer.pk]))
    assert response.status_code == 404 and "No such customer" in response.content.decode()
    contact = customer.contacts.get()
    assert (
        client.post(reverse("dashboard:contact_deactivate", args=[customer.pk, contact.pk])).status_code
        == 404
    )


def test_the_customer_pages_read_in_a_fixed_number_of_queries(manager, make_incident):
    client = _client_for(manager)
    customer = Customer.objects.create(name="Many Incidents Ltd", account_reference="MANY-1")
    Contact.objects.create(customer=customer, name="One", email="one@many.example")
    client.get(reverse("dashboard:customer_detail", args=[customer.pk]))
    with capture_queries("1 contact") as few:
        client.get(reverse("dashboard:customer_detail", args=[customer.pk]))
    for number in range(5):
        incident = make_incident(state="triaged", title=f"Incident {number}")
        services.affected_customer_add(incident=incident, customer=customer, actor=manager)
        Contact.objects.create(customer=customer, name=f"Contact {number}", email=f"c{number}@many.example")
    with capture_queries("5 incidents and 6 contacts") as many:
        client.get(reverse("dashboard:customer_detail", args=[customer.pk]))
    assert_same_query_count(few, many)
