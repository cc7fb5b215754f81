"""``GET /api/incidents/`` builds its page from rows of values (``incidents.api.listing``): each
listed incident must be exactly what ``IncidentSerializer`` makes of the same incident (keys and
their order, instants, nulls, the order of nested lists, the transitions the user may take), for
incidents in every state, with and without owner, products and affected customers, restricted
ones included for their members only; and a page costs the same queries for 1 or 50 rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from incidents import services
from incidents.api.listing import listed_fields
from incidents.api.serializers import IncidentSerializer
from incidents.merging import incident_merge
from incidents.models import Customer, Incident, Product, Supplier
from tests.queries import assert_query_count

LIST = "/api/incidents/"


def serialized(incident_ids: list[int], user) -> dict[int, dict]:
    """``IncidentSerializer``'s own representation (model instances, prefetched relations, as
    the detail reads them), through the API's JSON renderer, by incident id."""
    incidents = (
        Incident.objects.filter(pk__in=incident_ids)
        .select_related("owner", "declared_by")
        .prefetch_related("products", "affected_customers__customer")
    )
    data = IncidentSerializer(incidents, many=True, context={"request": SimpleNamespace(user=user)}).data
    return {item["id"]: item for item in json.loads(JSONRenderer().render(data))}


def listed(api, user, query: str = "") -> list[dict]:
    """Every incident ``user`` lists (following the pages), as the API's JSON."""
    api.force_login(user)
    items, url = [], LIST + query
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        items += body["results"]
        url = body["next"]
    return items


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


@pytest.fixture
def varied(make_incident, personas, superuser, customer):
    """Incidents in every state, with and without owner, products (named so that their order
    is not their creation order), affected customers (ordered by name, not by reference),
    facts with microsecond and whole-second instants, a merged duplicate, and two restricted
    incidents: one whose members include the responder, one the responder is not a member of."""
    responder, manager = personas["responder"], personas["incident_manager"]
    webmail, billing = Product.objects.create(name="Webmail"), Product.objects.create(name="Billing portal")
    supplier = Supplier.objects.create(name="MailCo")
    aardvark = Customer.objects.create(name="Aardvark Foods", account_reference="ZZ-9", country="FR")
    incidents = {state: make_incident(state) for state in (
        "detected", "triaged", "declared", "notified", "post_mortem", "closed", "out_of_scope",
        "customer_event",
    )}  # fmt: skip
    full = make_incident(
        "triaged",
        title="Ticket attachments visible to another customer – ünïcode",
        summary="Line one\nline two",
        detected_at=datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC),
        occurred_on="2026-03-01",
        occurred_on_precision="month",
        exposure_started_at=datetime(2026, 3, 28, tzinfo=UTC),
        exposure_ended_at=datetime(2026, 3, 29, 12, 0, 0, 500000, tzinfo=UTC),
        records_affected=120,
        records_affected_is_estimate=True,
        data_categories=["identity", "customer_supplied"],
        data_subject_categories=[],
        likely_consequences=None,
        sub_processor=supplier,
        owner=manager,
    )
    full.products.set([webmail, billing])
    for affected_customer in (customer, aardvark):
        services.affected_customer_add(incident=full, customer=affected_customer, actor=responder)
    duplicate = make_incident("detected", title="The same report, twice")
    incident_merge(incident=duplicate, into=incidents["triaged"], actor=manager)
    shared = make_incident("declared", title="Restricted, the responder is a member")
    services.incident_restriction_set(incident=shared, actor=manager, members=[responder])
    hidden = make_incident("triaged", title="Restricted, the responder is no member")
    services.incident_restriction_set(incident=hidden, actor=manager, members=[])
    return SimpleNamespace(full=full, shared=shared, hidden=hidden, all=Incident.objects.count())


@pytest.mark.parametrize("role", ["responder", "incident_manager", "auditor", "superuser"])
def test_it_lists_each_incident_as_the_serializer_represents_it(api, personas, superuser, varied, role):
    user = superuser if role == "superuser" else personas[role]

    items = listed(api, user)
    expected = serialized([item["id"] for item in items], user)

    assert len(items) == len(expected) >= 10  # restricted ones only for members
    for item in items:
        assert list(item) == list(expected[item["id"]])  # the same keys in the same order
        assert item == expected[item["id"]]
    full = next(item for item in items if item["id"] == varied.full.pk)
    assert full["products"] == ["Billing portal", "Webmail"]
    assert full["affected_customers"] == ["ZZ-9", "ACME-001"]  # by customer name
    assert full["detected_at"] == "2026-03-29T01:30:00.123456Z"
    assert full["exposure_duration_hours"] == 36.000138888888891
    assert any(item["merged_into"] is not None and item["merged_at"] for item in items)
    assert any(item["owner"] is None for item in items) and full["owner"] == "max.manager"


def test_it_lists_restricted_incidents_to_their_members_only(api, personas, manager, varied):
    responder_sees = {item["id"] for item in listed(api, personas["responder"])}
    manager_sees = {item["id"] for item in listed(api, manager)}
    auditor_sees = {item["id"] for item in listed(api, personas["auditor"])}

    assert varied.shared.pk in responder_sees and varied.hidden.pk not in responder_sees
    assert {varied.shared.pk, varied.hidden.pk} <= manager_sees  # who restricted them
    assert not {varied.shared.pk, varied.hidden.pk} & auditor_sees  # auditors only when granted
    assert len(manager_sees) == varied.all


def test_it_lists_filtered_and_searched_pages_as_the_serializer(api, personas, varied):
    responder = personas["responder"]

    for query in ("?state=triaged", "?severity=medium&page_size=3", "?search=ünïcode", "?is_drill=false"):
        items = listed(api, responder, query)
        expected = serialized([item["id"] for item in items], responder)
        assert items and items == [expected[item["id"]] for item in items], query


def test_every_serializer_field_is_listed_in_the_serializer_order():
    assert [field.name for field in listed_fields()] == list(IncidentSerializer().fields)


def test_a_page_costs_the_same_queries_for_one_or_fifty_rows(api, responder, make_incident, customer):
    product = Product.objects.create(name="Support portal")
    first = make_incident("triaged", title="Incident 0", products=[product])
    services.affected_customer_add(incident=first, customer=customer, actor=responder)
    api.force_login(responder)
    api.get(LIST)  # warm the session

    # session, user with its account facts (auditor? expiry), the permissions, the page, its relations
    with assert_query_count(5, "the API list with 1 row"):
        one = api.get(LIST)
    for number in range(1, 51):
        incident = make_incident("declared" if number % 5 == 0 else "detected", title=f"Incident {number}")
        incident.products.set([product])
    with assert_query_count(5, "the API list with 50 rows"):
        fifty = api.get(LIST)

    assert len(one.json()["results"]) == 1
    assert len(fifty.json()["results"]) == 50 and fifty.json()["next"]
    assert all(item["products"] == ["Support portal"] for item in fifty.json()["results"])
