"""Fixtures for notification tests: a declared incident whose customers have contacts in several
languages (the real SMTP server, ``smtp_server``, is in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def multilingual_customers(db):
    """Three customers: Acme (contacts in de and en), Dupont (fr, via the customer's language),
    Yamada (ja), each with active administrative contacts, plus an inactive and a technical
    contact that must never be notified."""
    from incidents.models import Contact, Customer

    acme = Customer.objects.create(
        name="Acme Logistik GmbH", account_reference="ACME", preferred_language="de"
    )
    dupont = Customer.objects.create(
        name="Dupont & Fils SA", account_reference="DUPONT", preferred_language="fr"
    )
    yamada = Customer.objects.create(
        name="Yamada Shoji KK", account_reference="YAMADA", preferred_language="ja"
    )
    Contact.objects.create(customer=acme, name="Anna Admin", email="anna@acme.example", language="de")
    Contact.objects.create(customer=acme, name="Bob Boss", email="bob@acme.example", language="en")
    Contact.objects.create(customer=acme, name="Old Admin", email="old@acme.example", is_active=False)
    Contact.objects.create(
        customer=acme, name="Tech Person", email="tech@acme.example", role=Contact.Role.TECHNICAL
    )
    Contact.objects.create(customer=dupont, name="Claire Dupont", email="claire@dupont.example")
    Contact.objects.create(customer=yamada, name="Yamada Taro", email="taro@yamada.example", language="ja")
    return [acme, dupont, yamada]


@pytest.fixture
def declare_for(make_incident, manager, responder):
    """``declare_for(customers, **facts)``: a triaged incident with these affected customers,
    declared by the manager; returns the incident."""
    from incidents import services

    def declare(customers, **facts):
        incident = make_incident(state="triaged", **facts)
        for customer in customers:
            services.affected_customer_add(incident=incident, customer=customer, actor=responder)
        return services.incident_declare(
            incident=incident,
            actor=manager,
            nature_of_breach=facts.get("nature_of_breach")
            or "A support engineer's mailbox was accessed by an unknown party.",
        )

    return declare
