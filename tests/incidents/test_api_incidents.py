"""The incident routes of the REST API: create, read, edit, list (filters, search, keyset
pagination, pinned query count), affected customers, and every write route for every role."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from incidents import services
from incidents.models import AuditEvent, Customer, Incident, Product, Supplier
from tests.conftest import errors
from tests.queries import assert_query_count

LIST = "/api/incidents/"


def detail(incident) -> str:
    return f"/api/incidents/{incident.pk}/"


def affected(incident) -> str:
    return f"/api/incidents/{incident.pk}/affected-customers/"


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def as_user(api, user):
    api.force_login(user)
    return api


def trail(incident) -> tuple[int, str | None]:
    """(number of audit events, hash of the last one) of ``incident``."""
    events = AuditEvent.objects.filter(incident_id=incident.pk).order_by("-sequence")
    last = events.first()
    return events.count(), (last.hash if last else None)


def test_it_creates_an_incident_in_detected_through_the_service(api, responder):
    Product.objects.create(name="Support portal")
    supplier = Supplier.objects.create(name="MailCo")
    body = {
        "title": "Ticket attachments visible to another customer",
        "detection_source": "customer_report",
        "summary": "A customer saw another customer's attachment.",
        "detected_at": "2026-03-29T03:30:00+02:00",
        "occurred_on": "2026-03-01",
        "occurred_on_precision": "month",
        "severity": "high",
        "products": ["Support portal"],
        "exposure_started_at": "2026-03-28T00:00:00Z",
        "exposure_ended_at": "2026-03-29T12:00:00Z",
        "records_affected": 120,
        "records_affected_is_estimate": True,
        "data_categories": ["identity", "customer_supplied"],
        "sub_processor": supplier.pk,
        "owner": responder.username,
    }

    response = as_user(api, responder).post(LIST, body, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    incident = Incident.objects.get(pk=data["id"])
    assert data["state"] == incident.state == "detected"
    assert incident.reference is not None and incident.reference.startswith("BD-")
    assert data["reference"] == incident.reference
    assert data["detected_at"] == "2026-03-29T01:30:00Z"  # stored and returned in UTC
    assert data["products"] == ["Support portal"]
    assert data["exposure_duration_hours"] == 36.0
    assert data["sub_processor"] == supplier.pk
    assert data["owner"] == "rita.responder"
    assert data["available_transitions"] == [
        "triage",
        "rule_out_of_scope",
        "classify_as_customer_event",
    ]
    assert "source_record" in data
    assert incident.created_by == responder
    assert list(AuditEvent.objects.filter(incident=incident).values_list("verb", flat=True)) == ["created"]


def test_it_shows_the_whole_representation_on_the_detail(api, auditor, make_incident):
    incident = make_incident("declared")

    response = as_user(api, auditor).get(detail(incident))

    assert response.status_code == 200
    data = response.json()
    expected_keys = {
        "id",
        "reference",
        "state",
        "title",
        "summary",
        "detection_source",
        "detected_at",
        "occurred_on",
        "occurred_on_precision",
        "reported_by",
        "owner",
        "scenario",
        "severity",
        "malicious",
        "is_drill",
        "nature_of_breach",
        "mitigation_measures",
        "products",
        "exposure_started_at",
        "exposure_ended_at",
        "exposure_duration_hours",
        "records_affected",
        "records_affected_is_estimate",
        "data_categories",
        "data_subject_categories",
        "data_subjects_affected",
        "data_subjects_affected_is_estimate",
        "likely_consequences",
        "adverse_effect_measures",
        "incident_figures_shareable",
        "sub_processor",
        "sub_processor_details",
        "out_of_scope_category",
        "scope_rationale",
        "customer_informed_at",
        "triaged_at",
        "declared_at",
        "declared_by",
        "notified_at",
        "closed_at",
        "merged_into",
        "merged_at",
        "external_reference",
        "affected_customers",
        "available_transitions",
        "created_at",
        "updated_at",
        "source_record",
    }
    assert set(data) == expected_keys
    assert data["state"] == "declared"
    assert data["affected_customers"] == ["FIXTURE-001"]
    assert data["declared_by"] == incident.declared_by.username
    assert data["declared_at"].endswith("Z")
    assert data["exposure_duration_hours"] is None
    assert data["available_transitions"] == []  # an auditor may take none


def test_it_leaves_source_record_out_of_the_list(api, responder, make_incident):
    services.incident_create(
        actor=None,
        fields={"title": "Imported alert", "detection_source": "automated_alert"},
        external_reference="SIEM-1",
        source_record={"raw": "x" * 100},
    )

    data = as_user(api, responder).get(LIST).json()

    assert data["results"][0]["external_reference"] == "SIEM-1"
    assert "source_record" not in data["results"][0]
    detail_data = api.get(detail(Incident.objects.get(external_reference="SIEM-1"))).json()
    assert detail_data["source_record"] == {"raw": "x" * 100}


def test_it_patches_facts_through_the_service_and_audits_them(api, responder, make_incident):
    incident = make_incident("triaged")
    before = trail(incident)

    response = as_user(api, responder).patch(
        detail(incident), {"summary": "Wider than thought.", "records_affected": 40}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["summary"] == "Wider than thought."
    incident.refresh_from_db()
    assert incident.records_affected == 40
    assert trail(incident)[0] == before[0] + 1
    last = AuditEvent.objects.filter(incident=incident).order_by("-sequence").first()
    assert last is not None
    assert last.verb == "updated" and last.data["changes"]["records_affected"] == [None, 40]


def test_it_refuses_a_patch_that_sets_state(api, manager, make_incident):
    incident = make_incident("triaged")
    before = trail(incident)

    response = as_user(api, manager).patch(detail(incident), {"state": "declared"}, format="json")

    assert response.status_code == 400
    assert "only through transitions" in errors(response)["state"][0]
    incident.refresh_from_db()
    assert incident.state == "triaged"
    assert trail(incident) == before


def test_it_answers_409_when_editing_a_closed_incident(api, manager, make_incident):
    incident = make_incident("out_of_scope")

    response = as_user(api, manager).patch(detail(incident), {"summary": "late"}, format="json")

    assert response.status_code == 409
    incident.refresh_from_db()
    assert incident.summary == ""


def test_it_has_no_put_or_delete_on_an_incident(api, superuser, make_incident):
    incident = make_incident()
    as_user(api, superuser)

    assert api.put(detail(incident), {"title": "x"}, format="json").status_code == 405
    assert api.delete(detail(incident)).status_code == 405
    assert Incident.objects.filter(pk=incident.pk).exists()


# Reading: who sees what --------------------------------------------------------------------


def test_it_hides_incidents_from_an_outsider(api, outsider, make_incident):
    incident = make_incident()
    as_user(api, outsider)

    assert api.get(detail(incident)).status_code == 404
    assert api.get(LIST).status_code == 403
    assert api.get(affected(incident)).status_code == 404


def test_it_lets_an_auditor_read(api, auditor, make_incident):
    incident = make_incident("declared")
    as_user(api, auditor)

    assert api.get(LIST).json()["results"][0]["id"] == incident.pk
    assert api.get(detail(incident)).status_code == 200
    rows = api.get(affected(incident)).json()["results"]
    assert [row["customer"]["account_reference"] for row in rows] == ["FIXTURE-001"]


def test_it_refuses_anonymous_requests(api, make_incident):
    incident = make_incident()

    for response in (api.get(LIST), api.get(detail(incident))):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Token realm="api"'
        assert response["Content-Type"] == "application/problem+json"


def test_it_answers_404_for_an_unknown_incident(api, responder):
    as_user(api, responder)

    assert api.get("/api/incidents/999999/").status_code == 404
    assert api.patch("/api/incidents/999999/", {"title": "x"}, format="json").status_code == 404


# Affected customers ----------------------------------------------------------------------------


def test_it_adds_an_affected_customer_by_account_reference_or_id(api, responder, make_incident, customer):
    incident = make_incident("triaged")
    other = Customer.objects.create(name="Beta BV", account_reference="BETA-7")
    as_user(api, responder)

    by_reference = api.post(
        affected(incident),
        {"customer": "ACME-001", "records_affected": 12, "notes": "HR data"},
        format="json",
    )
    by_id = api.post(affected(incident), {"customer": other.pk}, format="json")

    assert by_reference.status_code == 201, by_reference.json()
    assert by_reference.json()["customer"]["account_reference"] == "ACME-001"
    assert by_reference.json()["records_affected"] == 12
    assert by_reference.json()["added_by"] == "rita.responder"
    assert by_id.status_code == 201
    assert set(incident.affected_customers.values_list("customer__account_reference", flat=True)) == {
        "ACME-001",
        "BETA-7",
    }
    assert api.get(detail(incident)).json()["affected_customers"] == ["ACME-001", "BETA-7"]


def test_it_answers_409_for_a_customer_already_affected(api, responder, make_incident, customer):
    incident = make_incident("triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)
    before = trail(incident)

    response = as_user(api, responder).post(affected(incident), {"customer": "ACME-001"}, format="json")

    assert response.status_code == 409
    assert incident.affected_customers.count() == 1
    assert trail(incident) == before


def test_it_answers_409_when_adding_to_a_final_incident(api, responder, make_incident, customer):
    incident = make_incident("customer_event")

    response = as_user(api, responder).post(affected(incident), {"customer": "ACME-001"}, format="json")

    assert response.status_code == 409
    assert not incident.affected_customers.exists()


def test_it_answers_400_for_an_unknown_customer(api, responder, make_incident):
    incident = make_incident("triaged")

    response = as_user(api, responder).post(affected(incident), {"customer": "NOPE-1"}, format="json")

    assert response.status_code == 400
    assert "NOPE-1" in errors(response)["customer"][0]


def test_it_removes_an_affected_customer_by_body_or_query(api, responder, make_incident, customer):
    incident = make_incident("triaged")
    other = Customer.objects.create(name="Beta BV", account_reference="BETA-7")
    for each in (customer, other):
        services.affected_customer_add(incident=incident, customer=each, actor=responder)
    as_user(api, responder)

    by_body = api.delete(affected(incident), {"customer": "ACME-001"}, format="json")
    by_query = api.delete(affected(incident) + f"?customer={other.pk}")

    assert by_body.status_code == 204
    assert by_query.status_code == 204
    assert not incident.affected_customers.exists()
    assert AuditEvent.objects.filter(incident=incident, verb="affected_customer_removed").count() == 2


def test_it_answers_409_when_removing_after_declaration(api, manager, make_incident):
    incident = make_incident("declared")
    before = trail(incident)

    response = as_user(api, manager).delete(affected(incident), {"customer": "FIXTURE-001"}, format="json")

    assert response.status_code == 409
    assert incident.affected_customers.count() == 1
    assert trail(incident) == before


def test_it_paginates_affected_customers_oldest_first(api, responder, make_incident):
    incident = make_incident("triaged")
    for number in range(3):
        each = Customer.objects.create(name=f"Customer {number}", account_reference=f"C-{number}")
        services.affected_customer_add(incident=incident, customer=each, actor=responder)
    as_user(api, responder)

    first = api.get(affected(incident) + "?page_size=2").json()
    second = api.get(first["next"]).json()

    references = [row["customer"]["account_reference"] for row in first["results"] + second["results"]]
    assert references == ["C-0", "C-1", "C-2"]
    assert second["next"] is None


# Every write route for every role --------------------------------------------------------------

EXPECTED_WRITE_STATUS = {
    # role: (create, patch, add affected customer, remove affected customer)
    "responder": (201, 200, 201, 204),
    "incident_manager": (201, 200, 201, 204),
    "auditor": (403, 403, 403, 403),
    # No view permission: the list route says 403, an incident is invisible (404).
    "outsider": (403, 404, 404, 404),
}


@pytest.mark.parametrize("role", list(EXPECTED_WRITE_STATUS))
def test_it_allows_each_incident_write_only_to_the_roles_that_may(
    api, personas, make_incident, customer, role
):
    create_status, patch_status, add_status, remove_status = EXPECTED_WRITE_STATUS[role]
    incident = make_incident("triaged")
    removable = Customer.objects.create(name="Beta BV", account_reference="BETA-7")
    services.affected_customer_add(incident=incident, customer=removable, actor=personas["responder"])
    incidents_before = Incident.objects.count()
    trail_before = trail(incident)
    as_user(api, personas[role])

    created = api.post(LIST, {"title": "New signal", "detection_source": "staff_escalation"}, format="json")
    patched = api.patch(detail(incident), {"summary": "Edited"}, format="json")
    added = api.post(affected(incident), {"customer": "ACME-001"}, format="json")
    removed = api.delete(affected(incident), {"customer": "BETA-7"}, format="json")

    assert (created.status_code, patched.status_code, added.status_code, removed.status_code) == (
        create_status,
        patch_status,
        add_status,
        remove_status,
    )
    incident.refresh_from_db()
    references = set(incident.affected_customers.values_list("customer__account_reference", flat=True))
    if create_status == 201:
        assert Incident.objects.count() == incidents_before + 1
        assert incident.summary == "Edited"
        assert references == {"ACME-001"}
        assert trail(incident)[0] == trail_before[0] + 3
    else:
        assert Incident.objects.count() == incidents_before
        assert incident.summary == ""
        assert references == {"BETA-7"}
        assert trail(incident) == trail_before


# Lists: filters, search, keyset pagination, query count --------------------------------------


def ids(response) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


def test_it_filters_incidents_by_state_severity_and_detection_source(api, responder, make_incident):
    detected = make_incident("detected", detection_source="customer_report", severity="high")
    triaged = make_incident("triaged")  # severity medium, staff escalation
    ruled_out = make_incident("out_of_scope", detection_source="automated_alert")
    as_user(api, responder)

    assert ids(api.get(LIST + "?state=triaged")) == [triaged.pk]
    assert set(ids(api.get(LIST + "?state=detected&state=out_of_scope"))) == {
        detected.pk,
        ruled_out.pk,
    }
    assert ids(api.get(LIST + "?severity=high")) == [detected.pk]
    assert ids(api.get(LIST + "?detection_source=automated_alert")) == [ruled_out.pk]
    assert ids(api.get(LIST + "?severity=medium&detection_source=staff_escalation")) == [triaged.pk]
    refused = api.get(LIST + "?state=exploded")
    assert refused.status_code == 400 and "state" in errors(refused)


def test_it_searches_title_summary_and_reference(api, responder, make_incident):
    payroll = make_incident(title="Payroll file misdirected")
    laptop = make_incident(title="Lost device", summary="A LAPTOP left on the train")
    make_incident(title="Unrelated")
    as_user(api, responder)

    assert ids(api.get(LIST + "?search=payroll")) == [payroll.pk]
    assert ids(api.get(LIST + "?search=laptop")) == [laptop.pk]
    assert ids(api.get(LIST + f"?search={laptop.reference}")) == [laptop.pk]
    assert ids(api.get(LIST + "?search=nothing-like-this")) == []


def test_it_pages_with_cursors_that_do_not_overlap(api, responder, make_incident):
    created = [make_incident(title=f"Incident {number}").pk for number in range(5)]
    as_user(api, responder)

    seen: list[int] = []
    response = api.get(LIST + "?page_size=2")
    pages = 0
    while True:
        assert response.status_code == 200
        body = response.json()
        assert "count" not in body  # keyset pages never count the table
        assert len(body["results"]) <= 2
        seen += [item["id"] for item in body["results"]]
        pages += 1
        if not body["next"]:
            break
        response = api.get(body["next"])

    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert seen == list(reversed(created))  # newest first


def test_it_lists_with_a_constant_number_of_queries(api, responder, make_incident, customer):
    product = Product.objects.create(name="Support portal")

    def add_incidents(count):
        for number in range(count):
            incident = make_incident("triaged", title=f"Incident {number}", products=[product])
            services.affected_customer_add(incident=incident, customer=customer, actor=responder)

    add_incidents(2)
    as_user(api, responder)
    api.get(LIST)  # warm the session

    # session, user with its account facts (auditor? expiry), the permissions, the page, its products
    # and affected customers (one query: incidents.api.listing)
    with assert_query_count(5, "the API list with 2 rows"):
        small = api.get(LIST)
    add_incidents(10)
    with assert_query_count(5, "the API list with 12 rows"):
        large = api.get(LIST)

    assert len(small.json()["results"]) == 2
    assert len(large.json()["results"]) == 12
    assert all(item["affected_customers"] == ["ACME-001"] for item in large.json()["results"])
    assert all(item["products"] == ["Support portal"] for item in large.json()["results"])


def test_it_shows_the_transitions_each_role_may_take_now(api, personas, superuser, make_incident):
    detected = make_incident("detected")
    triaged = make_incident("triaged")
    declared = make_incident("declared")

    def available(user, incident):
        return as_user(api, user).get(detail(incident)).json()["available_transitions"]

    assert available(personas["responder"], detected) == [
        "triage",
        "rule_out_of_scope",
        "classify_as_customer_event",
    ]
    assert available(personas["responder"], triaged) == [
        "rule_out_of_scope",
        "classify_as_customer_event",
    ]
    assert available(personas["incident_manager"], triaged) == [
        "rule_out_of_scope",
        "classify_as_customer_event",
        "declare",
    ]
    assert available(personas["incident_manager"], declared) == []
    assert available(superuser, declared) == ["mark_notified"]
    assert available(personas["auditor"], detected) == []


def test_it_renders_the_openapi_schema(api, responder):
    response = as_user(api, responder).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/incidents/{id}/transitions/{transition_name}/" in paths
    assert set(paths["/api/incidents/{id}/affected-customers/"]) == {"get", "post", "patch", "delete"}
    assert "/api/customers/{id}/" in paths and "delete" not in paths["/api/customers/{id}/"]


@pytest.mark.parametrize("role", ["responder", "incident_manager", "superuser", "auditor"])
def test_a_listed_incident_is_its_detail_without_the_source_record(
    api, personas, superuser, make_incident, customer, role
):
    """The list reads products and affected customers for the page in one query of values
    (``incidents.api.listing``) and each user's permissions once; what it shows must be what
    the detail (prefetched model instances, ``has_perm`` per transition) shows."""
    incident = make_incident("triaged", title="Two of each", products=[])
    incident.products.set(
        [Product.objects.create(name="Webmail"), Product.objects.create(name="Billing portal")]
    )
    second = Customer.objects.create(name="Aardvark Foods", account_reference="AARD-7", country="FR")
    for affected_customer in (customer, second):
        services.affected_customer_add(
            incident=incident, customer=affected_customer, actor=personas["responder"]
        )
    user = superuser if role == "superuser" else personas[role]
    as_user(api, user)

    listed = next(item for item in api.get(LIST).json()["results"] if item["id"] == incident.pk)
    shown = api.get(detail(incident)).json()

    assert listed["products"] == ["Billing portal", "Webmail"]
    assert listed["affected_customers"] == ["AARD-7", "ACME-001"]  # by customer name
    assert "source_record" in shown and "source_record" not in listed
    del shown["source_record"]
    assert listed == shown
