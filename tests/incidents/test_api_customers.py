"""Customers and contacts through the REST API: list (keyset pages, filters), create, retrieve,
update, no delete, and every write for every role."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from incidents.models import Contact, Customer
from tests.conftest import errors

CUSTOMERS = "/api/customers/"
CONTACTS = "/api/contacts/"


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def test_it_creates_and_reads_a_customer(api, responder):
    api.force_login(responder)

    created = api.post(
        CUSTOMERS,
        {
            "name": "Beta BV",
            "account_reference": "BETA-7",
            "country": "NL",
            "notification_window_hours": 48,
        },
        format="json",
    )

    assert created.status_code == 201, created.json()
    customer = Customer.objects.get(account_reference="BETA-7")
    assert customer.notification_window_hours == 48
    data = api.get(f"{CUSTOMERS}{customer.pk}/").json()
    assert data == {
        "id": customer.pk,
        "name": "Beta BV",
        "account_reference": "BETA-7",
        "country": "NL",
        "preferred_language": "en",
        "notification_window_hours": 48,
        "is_drill_customer": False,
        "created_at": customer.created_at.isoformat().replace("+00:00", "Z"),
        "deliverable": False,  # no contact yet
        "unconfirmed": False,
        "contacts_confirmation_requested_at": None,
        "contacts_confirmed_at": None,
        "contacts_unconfirmed_since": None,
    }


def test_it_updates_a_customer_with_put_and_patch(api, responder, customer):
    api.force_login(responder)
    path = f"{CUSTOMERS}{customer.pk}/"

    put = api.put(
        path,
        {
            "name": "Acme Logistics SE",
            "account_reference": "ACME-001",
            "country": "DE",
            "preferred_language": "de",
            "notification_window_hours": 24,
        },
        format="json",
    )
    patch = api.patch(path, {"preferred_language": "en"}, format="json")

    assert put.status_code == 200, put.json()
    assert patch.status_code == 200, patch.json()
    customer.refresh_from_db()
    assert (customer.name, customer.notification_window_hours, customer.preferred_language) == (
        "Acme Logistics SE",
        24,
        "en",
    )


def test_it_refuses_invalid_customer_values(api, responder, customer):
    api.force_login(responder)

    duplicate = api.post(CUSTOMERS, {"name": "Copy", "account_reference": "ACME-001"}, format="json")
    too_long_window = api.patch(
        f"{CUSTOMERS}{customer.pk}/", {"notification_window_hours": 96}, format="json"
    )

    assert duplicate.status_code == 409 and "account_reference" in errors(duplicate)  # a conflict
    assert too_long_window.status_code == 400 and "notification_window_hours" in errors(too_long_window)
    customer.refresh_from_db()
    assert customer.notification_window_hours == 72
    assert Customer.objects.count() == 1


def test_it_has_no_delete(api, superuser, customer):
    api.force_login(superuser)
    contact = customer.contacts.get()

    assert api.delete(f"{CUSTOMERS}{customer.pk}/").status_code == 405
    assert api.delete(f"{CONTACTS}{contact.pk}/").status_code == 405
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_it_pages_customers_with_cursors(api, responder):
    for number in range(5):
        Customer.objects.create(name=f"Customer {number}", account_reference=f"C-{number}")
    api.force_login(responder)

    first = api.get(CUSTOMERS + "?page_size=3").json()
    second = api.get(first["next"]).json()

    references = [item["account_reference"] for item in first["results"] + second["results"]]
    assert references == ["C-4", "C-3", "C-2", "C-1", "C-0"]  # newest first, no overlap
    assert second["next"] is None


def test_it_searches_customers(api, responder, customer):
    Customer.objects.create(name="Beta BV", account_reference="BETA-7")
    api.force_login(responder)

    found = api.get(CUSTOMERS + "?search=acme").json()["results"]

    assert [item["account_reference"] for item in found] == ["ACME-001"]


def test_it_creates_and_updates_a_contact(api, responder, customer):
    api.force_login(responder)

    created = api.post(
        CONTACTS,
        {
            "customer": customer.pk,
            "name": "Dana DPO",
            "email": "dpo@acme.example",
            "role": "privacy",
        },
        format="json",
    )
    contact = Contact.objects.get(email="dpo@acme.example")
    deactivated = api.patch(f"{CONTACTS}{contact.pk}/", {"is_active": False}, format="json")

    assert created.status_code == 201, created.json()
    assert created.json()["customer"] == customer.pk
    assert deactivated.status_code == 200
    contact.refresh_from_db()
    assert contact.is_active is False and contact.role == "privacy"


def test_it_refuses_a_second_contact_with_the_same_email_at_a_customer(api, responder, customer):
    api.force_login(responder)

    response = api.post(
        CONTACTS,
        {"customer": customer.pk, "name": "Anna again", "email": "anna@acme.example"},
        format="json",
    )

    assert response.status_code == 409  # a conflict with the stored contact, not a bad body
    assert response.json()["code"] == "conflict" and response.json()["errors"]
    assert customer.contacts.count() == 1


def test_it_filters_contacts_by_customer(api, responder, customer):
    other = Customer.objects.create(name="Beta BV", account_reference="BETA-7")
    theirs = Contact.objects.create(customer=other, name="Bert", email="bert@beta.example")
    api.force_login(responder)

    response = api.get(f"{CONTACTS}?customer={other.pk}")
    unknown = api.get(f"{CONTACTS}?customer=999999")

    assert [item["id"] for item in response.json()["results"]] == [theirs.pk]
    assert len(api.get(CONTACTS).json()["results"]) == 2
    assert unknown.status_code == 400 and "customer" in errors(unknown)


# Every write for every role ----------------------------------------------------------------------

EXPECTED = {
    # role: (create customer, update customer, create contact, update contact, read list)
    "responder": (201, 200, 201, 200, 200),
    "incident_manager": (201, 200, 201, 200, 200),
    "auditor": (403, 403, 403, 403, 200),
    # No view permission: lists say 403, objects are invisible (404).
    "outsider": (403, 404, 403, 404, 403),
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_it_allows_customer_and_contact_writes_only_to_the_roles_that_may(api, personas, customer, role):
    contact = customer.contacts.get()
    api.force_login(personas[role])

    statuses = (
        api.post(CUSTOMERS, {"name": "Beta BV", "account_reference": "BETA-7"}, format="json").status_code,
        api.patch(f"{CUSTOMERS}{customer.pk}/", {"name": "Renamed"}, format="json").status_code,
        api.post(
            CONTACTS,
            {"customer": customer.pk, "name": "New", "email": "new@acme.example"},
            format="json",
        ).status_code,
        api.patch(f"{CONTACTS}{contact.pk}/", {"name": "Anna Renamed"}, format="json").status_code,
        api.get(CUSTOMERS).status_code,
    )

    assert statuses == EXPECTED[role]
    customer.refresh_from_db()
    contact.refresh_from_db()
    if EXPECTED[role][0] == 201:
        assert Customer.objects.count() == 2 and customer.name == "Renamed"
        assert Contact.objects.count() == 2 and contact.name == "Anna Renamed"
    else:
        assert Customer.objects.count() == 1 and customer.name == "Acme Logistics GmbH"
        assert Contact.objects.count() == 1 and contact.name == "Anna Admin"
