"""Readiness: who could not be reached if a breach were declared today, on a page for incident
managers, in ``GET /api/customers/?deliverable=false`` and ``?unconfirmed=true``, and as counts
(``GET /api/customers/readiness/``); each route for each role."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import Contact, Customer
from incidents.readiness import readiness_figures
from notifications import confirmations
from notifications.sender import outbox_send_due


@pytest.fixture
def customers(db, smtp_server):
    """Bounced (its only contact refused the confirmation email), Fine (deliverable), Empty (no
    contact), Pending (only a new address that has not confirmed itself), Quiet (deliverable,
    but marked unconfirmed)."""
    bounced = Customer.objects.create(name="Bounced BV", account_reference="BOUNCED")
    Contact.objects.create(customer=bounced, name="Gone", email="gone@bounced.example")
    fine = Customer.objects.create(name="Fine SA", account_reference="FINE")
    Contact.objects.create(customer=fine, name="Here", email="here@fine.example")
    empty = Customer.objects.create(name="Empty Ltd", account_reference="EMPTY")
    pending = Customer.objects.create(name="Pending AG", account_reference="PENDING")
    Contact.objects.create(
        customer=pending, name="New", email="new@pending.example", pending_confirmation=True
    )
    quiet = Customer.objects.create(
        name="Quiet KK", account_reference="QUIET", contacts_unconfirmed_since=timezone.now()
    )
    Contact.objects.create(customer=quiet, name="Silent", email="silent@quiet.example")
    smtp_server.refuse_permanently.add("gone@bounced.example")
    confirmations.contacts_confirmation_request(customer=bounced)
    outbox_send_due()
    return {"bounced": bounced, "fine": fine, "empty": empty, "pending": pending, "quiet": quiet}


def _api(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def _references(response) -> list[str]:
    return sorted(item["account_reference"] for item in response.json()["results"])


def test_the_readiness_route_lists_a_customer_whose_only_contact_bounced(customers, manager):
    response = _api(manager).get("/api/customers/?deliverable=false")

    assert response.status_code == 200
    assert _references(response) == ["BOUNCED", "EMPTY", "PENDING"]
    bounced = next(item for item in response.json()["results"] if item["account_reference"] == "BOUNCED")
    assert bounced["deliverable"] is False
    assert _references(_api(manager).get("/api/customers/?deliverable=true")) == ["FINE", "QUIET"]
    assert _references(_api(manager).get("/api/customers/?unconfirmed=true")) == ["QUIET"]
    assert _api(manager).get("/api/customers/?deliverable=maybe").status_code == 400


def test_the_api_counts_them(customers, manager):
    response = _api(manager).get("/api/customers/readiness/")

    assert response.status_code == 200
    assert response.json() == {
        "customers_unreachable": 3,
        "customers_unconfirmed": 1,
        "contacts_undeliverable": 1,
        "contacts_pending_confirmation": 1,
    }
    assert readiness_figures().as_dict() == response.json()


def test_the_page_shows_the_counts_and_the_bounced_customer(customers, manager):
    client = Client()
    client.force_login(manager)

    page = client.get(reverse("contacts:readiness")).content.decode()

    assert '<dd id="count-unreachable"><strong>3</strong></dd>' in page
    assert '<dd id="count-unconfirmed"><strong>1</strong></dd>' in page
    unreachable = page[page.index('id="unreachable"') : page.index('id="refused"')]
    refused = page[page.index('id="refused"') : page.index('id="unconfirmed"')]
    assert "gone@bounced.example" in refused and "550" in refused  # the bounced address itself
    for name in ("Bounced BV", "Empty Ltd", "Pending AG"):
        assert name in unreachable
    assert "Fine SA" not in page
    entry = reverse("contacts:customer_readiness", args=[customers["bounced"].pk])
    assert f'href="{entry}"' in unreachable
    detail = client.get(entry).content.decode()
    assert "gone@bounced.example" in detail and "refused" in detail and "550" in detail
    assert "contact_undeliverable" in detail  # its audit chain


def test_the_lists_are_paged_by_name(customers, manager, monkeypatch):
    from notifications import contact_views

    monkeypatch.setattr(contact_views, "READINESS_PAGE_SIZE", 2)
    client = Client()
    client.force_login(manager)

    first = client.get(reverse("contacts:readiness"))
    cursor = first.context["unreachable_next"]
    second = client.get(reverse("contacts:readiness"), {"unreachable": cursor})

    assert [c.name for c in first.context["unreachable"]] == ["Bounced BV", "Empty Ltd"]
    assert [c.name for c in second.context["unreachable"]] == ["Pending AG"]
    assert client.get(reverse("contacts:readiness"), {"unreachable": "!!"}).status_code == 400
    assert client.get(reverse("contacts:readiness"), {"refused": "!!"}).status_code == 400


@pytest.mark.parametrize(
    ("role", "page", "api_list", "api_counts", "send"),
    [
        ("incident_manager", 200, 200, 200, 302),
        ("auditor", 200, 200, 200, 403),
        ("responder", 404, 200, 403, 404),
        ("outsider", 404, 403, 403, 404),
    ],
)
def test_each_role_gets_what_it_may(customers, personas, role, page, api_list, api_counts, send):
    user = personas[role]
    client = Client()
    client.force_login(user)
    fine = customers["fine"]

    assert client.get(reverse("contacts:readiness")).status_code == page
    assert client.get(reverse("contacts:customer_readiness", args=[fine.pk])).status_code == page
    assert _api(user).get("/api/customers/?deliverable=false").status_code == api_list
    assert _api(user).get("/api/customers/readiness/").status_code == api_counts
    sent = client.post(reverse("contacts:customer_confirmation_send", args=[fine.pk]))
    assert sent.status_code == send
    asked = confirmations.ContactConfirmationRequest.objects.filter(customer=fine).exists()
    assert asked == (send == 302)


def test_asking_a_customer_with_nobody_to_ask_says_so(customers, manager):
    client = Client()
    client.force_login(manager)

    response = client.post(reverse("contacts:customer_confirmation_send", args=[customers["empty"].pk]))

    assert response.status_code == 409
    assert "Nobody to ask" in response.content.decode()


def test_anonymous_users_are_sent_to_the_login(customers):
    response = Client().get(reverse("contacts:readiness"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_refused_addresses_are_paged_newest_first(db, manager, monkeypatch):
    from datetime import timedelta

    from incidents.services import contact_mark_undeliverable
    from notifications import contact_views

    monkeypatch.setattr(contact_views, "READINESS_PAGE_SIZE", 2)
    customer = Customer.objects.create(name="Many BV", account_reference="MANY")
    now = timezone.now()
    for hours in (3, 2, 1):
        contact = Contact.objects.create(
            customer=customer, name=f"Gone {hours}", email=f"gone{hours}@many.example"
        )
        contact_mark_undeliverable(
            contact_id=contact.pk, address=contact.email, reason="550", at=now - timedelta(hours=hours)
        )
    client = Client()
    client.force_login(manager)

    first = client.get(reverse("contacts:readiness"))
    second = client.get(reverse("contacts:readiness"), {"refused": first.context["refused_next"]})

    assert [c.email for c in first.context["refused"]] == ["gone1@many.example", "gone2@many.example"]
    assert [c.email for c in second.context["refused"]] == ["gone3@many.example"]
    assert second.context["refused_next"] is None
