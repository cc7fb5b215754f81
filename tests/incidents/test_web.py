"""The incident web pages: login, list, incident page, forms and transitions, for each role."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services, views
from incidents.models import AffectedCustomer, AuditEvent, Customer, Incident, WorkerHeartbeat
from tests.conftest import complete_post_mortem
from tests.queries import assert_query_count

PASSWORD = "correct horse battery"


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _detail(incident) -> str:
    return reverse("incidents:incident_detail", args=[incident.pk])


def _transition(incident, name: str) -> str:
    return reverse("incidents:incident_transition", args=[incident.pk, name])


def _state(incident) -> str:
    return Incident.objects.get(pk=incident.pk).state


def _audit_count(incident) -> int:
    return AuditEvent.objects.filter(incident=incident).count()


# --- Login --------------------------------------------------------------------------------


def test_it_renders_the_login_page(db):
    response = Client().get(reverse("login"))

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_it_logs_in_through_the_form_and_lands_on_the_board(responder):
    client = Client()

    response = client.post(
        reverse("login"), {"username": responder.username, "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("dashboard:board")
    assert response.context["user"] == responder


def test_it_sends_anonymous_visitors_to_the_login_page(make_incident):
    incident = make_incident()

    for url in (reverse("incidents:incident_list"), _detail(incident), "/"):
        response = Client().get(url, follow=True)
        assert response.redirect_chain[-1][0].startswith(reverse("login")), url


def test_it_logs_out_on_post(responder):
    client = _client_for(responder)

    client.post(reverse("logout"))

    assert client.get(reverse("incidents:incident_list")).status_code == 302


# --- Who sees what ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["responder", "incident_manager", "auditor"])
def test_it_shows_the_list_and_the_incident_page_to_every_role_that_may_view(personas, make_incident, role):
    incident = make_incident(title="Laptop left on a train")
    client = _client_for(personas[role])

    listing = client.get(reverse("incidents:incident_list"))
    page = client.get(_detail(incident))

    assert listing.status_code == 200
    assert incident.reference in listing.content.decode()
    assert page.status_code == 200
    assert "Laptop left on a train" in page.content.decode()


def test_it_answers_an_outsider_403_for_the_list_and_404_for_an_incident(outsider, make_incident):
    incident = make_incident()
    client = _client_for(outsider)

    assert client.get(reverse("incidents:incident_list")).status_code == 403
    assert client.get(_detail(incident)).status_code == 404
    assert client.get(reverse("incidents:incident_edit", args=[incident.pk])).status_code == 404
    response = client.post(_transition(incident, "triage"), {"triage-severity": "low"})
    assert response.status_code == 404
    assert _state(incident) == "detected"


def test_it_answers_404_for_an_incident_that_does_not_exist(responder):
    assert _client_for(responder).get("/incidents/999999/").status_code == 404


def test_it_shows_only_the_transitions_the_user_may_take_now(personas, make_incident):
    incident = make_incident(state="triaged")

    def forms_for(role):
        page = _client_for(personas[role]).get(_detail(incident))
        return {panel["name"] for panel in page.context["transitions"]}

    assert forms_for("responder") == {"rule_out_of_scope", "classify_as_customer_event"}
    assert forms_for("incident_manager") == {"rule_out_of_scope", "classify_as_customer_event", "declare"}
    assert forms_for("auditor") == set()


def test_it_names_the_facts_a_transition_still_needs_next_to_its_button(manager, make_incident):
    incident = make_incident(state="triaged")

    page = _client_for(manager).get(_detail(incident)).content.decode()

    assert "Still needed: at least one affected customer" in page


# --- The list -----------------------------------------------------------------------------


def test_it_filters_the_list_by_state_severity_source_and_text(responder, make_incident):
    detected = make_incident(title="Phishing mail to support", detection_source="customer_report")
    triaged = make_incident(state="triaged", title="Misrouted backup tape")
    client = _client_for(responder)

    def references(query):
        response = client.get(reverse("incidents:incident_list"), query)
        assert response.status_code == 200
        return {incident.reference for incident in response.context["incidents"]}

    assert references({"state": "triaged"}) == {triaged.reference}
    assert references({"severity": "medium"}) == {triaged.reference}
    assert references({"detection_source": "customer_report"}) == {detected.reference}
    assert references({"q": "backup"}) == {triaged.reference}
    assert references({"q": detected.reference}) == {detected.reference}
    assert references({}) == {detected.reference, triaged.reference}


def test_it_answers_400_for_an_unknown_filter_value_or_a_forged_cursor(responder, make_incident):
    make_incident()
    client = _client_for(responder)

    bad_state = client.get(reverse("incidents:incident_list"), {"state": "exploded"})
    bad_cursor = client.get(reverse("incidents:incident_list"), {"cursor": "not-a-cursor"})

    assert bad_state.status_code == 400
    assert "Select a valid choice" in bad_state.content.decode()
    assert bad_cursor.status_code == 400
    assert "page link is not valid" in bad_cursor.content.decode()


def test_it_pages_to_older_incidents_with_an_opaque_cursor(responder, make_incident, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    created = [make_incident(title=f"Incident {number}") for number in range(5)]
    # Two incidents created in the same instant are still ordered (by id) and never skipped.
    Incident.objects.filter(pk__in=[created[1].pk, created[2].pk]).update(created_at=created[1].created_at)
    client = _client_for(responder)

    seen: list[str] = []
    response = client.get(reverse("incidents:incident_list"))
    while True:
        assert response.status_code == 200
        seen += [incident.reference for incident in response.context["incidents"]]
        cursor = response.context["older_cursor"]
        if cursor is None:
            break
        assert str(created[0].pk) not in cursor.split("-")  # opaque, not a raw id
        response = client.get(reverse("incidents:incident_list"), {"cursor": cursor})

    assert sorted(seen) == sorted(incident.reference for incident in created)
    assert len(seen) == len(set(seen)) == 5


def test_it_keeps_filters_on_the_older_link(responder, make_incident, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    make_incident(title="Alpha one")
    make_incident(title="Alpha two")

    response = _client_for(responder).get(reverse("incidents:incident_list"), {"q": "Alpha"})

    assert "q=Alpha&amp;cursor=" in response.content.decode()


def test_it_lists_incidents_in_a_fixed_number_of_queries(responder, make_incident):
    client = _client_for(responder)
    make_incident()
    # session, user with its account facts (auditor? expiry: the navigation and the expiry
    # check share it), the permissions (one query), heartbeat, incidents
    with assert_query_count(5, "the incident list with 1 row"):
        client.get(reverse("incidents:incident_list"))
    for _ in range(10):
        make_incident()
    client = _client_for(responder)
    with assert_query_count(5, "the incident list with 11 rows"):
        response = client.get(reverse("incidents:incident_list"))
    assert len(response.context["incidents"]) == 11


def test_it_shows_when_the_background_worker_last_sent_its_heartbeat(responder, settings):
    settings.WORKER_HEARTBEAT_STALE_SECONDS = 120
    client = _client_for(responder)

    page = client.get(reverse("incidents:incident_list")).content.decode()
    assert 'class="heartbeat down"' in page and "no heartbeat ever seen" in page

    WorkerHeartbeat.objects.create(name="beat", beat_at=timezone.now() - timedelta(seconds=30))
    page = client.get(reverse("incidents:incident_list")).content.decode()
    assert 'class="heartbeat ok"' in page and "last heartbeat" in page and "is down" not in page

    # Older than the threshold: a worker is gone, and the page says so in red.
    WorkerHeartbeat.objects.filter(name="beat").update(beat_at=timezone.now() - timedelta(minutes=3))
    page = client.get(reverse("incidents:incident_list")).content.decode()
    assert 'class="heartbeat down"' in page
    assert "Background worker is down:" in page and "no heartbeat since" in page
    assert "more than 2 minutes ago" in page


def test_it_offers_new_incident_only_to_users_who_may_add(responder, auditor):
    new_link = reverse("incidents:incident_new")

    assert new_link in _client_for(responder).get(reverse("incidents:incident_list")).content.decode()
    assert new_link not in _client_for(auditor).get(reverse("incidents:incident_list")).content.decode()


# --- Intake and editing -------------------------------------------------------------------


def test_it_records_a_new_incident_reading_detected_at_in_the_display_time_zone(responder, settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    client = _client_for(responder)

    form_page = client.get(reverse("incidents:incident_new")).content.decode()
    response = client.post(
        reverse("incidents:incident_new"),
        {
            "title": "Customer reports exposed invoices",
            "summary": "Invoices visible to another tenant.",
            "detection_source": "customer_report",
            # 03:30 CEST on the day clocks went forward is 01:30 UTC.
            "detected_at": "2025-03-30T03:30",
            "reported_by": "Anna Admin (Acme)",
            "scenario": "unauthorised_access",
        },
    )

    assert "Time zone: Europe/Berlin" in form_page
    incident = Incident.objects.get(title="Customer reports exposed invoices")
    assert response.status_code == 302 and response["Location"] == _detail(incident)
    assert incident.detected_at == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert incident.created_by == responder
    assert AuditEvent.objects.get(incident=incident).verb == "created"


def test_it_refuses_a_wall_clock_time_that_does_not_exist_in_the_display_zone(responder, settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"

    response = _client_for(responder).post(
        reverse("incidents:incident_new"),
        {"title": "Skipped hour", "detection_source": "staff_escalation", "detected_at": "2025-03-30T02:30"},
    )

    assert response.status_code == 400
    assert "Europe/Berlin" in response.content.decode()
    assert not Incident.objects.filter(title="Skipped hour").exists()


def test_it_reshows_the_new_incident_form_with_errors_and_the_input(responder):
    response = _client_for(responder).post(
        reverse("incidents:incident_new"), {"title": "Half a report", "detection_source": ""}
    )

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert 'value="Half a report"' in response.content.decode()
    assert not Incident.objects.exists()


def test_it_refuses_the_new_incident_form_to_an_auditor(auditor):
    client = _client_for(auditor)

    assert client.get(reverse("incidents:incident_new")).status_code == 403
    response = client.post(
        reverse("incidents:incident_new"), {"title": "Nope", "detection_source": "staff_escalation"}
    )
    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_it_edits_facts_through_the_service_and_audits_the_change(responder, make_incident, settings):
    settings.DISPLAY_TIME_ZONE = "America/New_York"
    incident = make_incident()
    client = _client_for(responder)
    form = client.get(reverse("incidents:incident_edit", args=[incident.pk])).context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        {
            "title": "Misdirected payroll email (confirmed)",
            "records_affected": "1200",
            "records_affected_is_estimate": "on",
            "data_categories": ["identity", "financial"],
            "exposure_started_at": "2025-11-02T01:30:00",
            "exposure_ended_at": "2025-11-03T09:00:00",
        }
    )
    data["detected_at"] = ""
    data.pop("products", None)

    ambiguous = client.post(reverse("incidents:incident_edit", args=[incident.pk]), data)
    assert ambiguous.status_code == 400  # 01:30 happens twice that night in New York
    assert _audit_count(incident) == 1

    data["exposure_started_at"] = "2025-11-01T22:00:00"
    response = client.post(reverse("incidents:incident_edit", args=[incident.pk]), data)

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Misdirected payroll email (confirmed)"
    assert incident.records_affected == 1200 and incident.records_affected_is_estimate
    assert incident.data_categories == ["identity", "financial"]
    assert incident.exposure_started_at == datetime(2025, 11, 2, 2, 0, tzinfo=UTC)
    event = AuditEvent.objects.filter(incident=incident).last()
    assert event is not None
    assert event.verb == "updated" and event.actor == responder
    assert set(event.data["changes"]) == {
        "title",
        "records_affected",
        "records_affected_is_estimate",
        "data_categories",
        "exposure_started_at",
        "exposure_ended_at",
    }


def test_it_refuses_to_edit_a_closed_incident(manager, make_incident):
    incident = make_incident(state="out_of_scope")

    response = _client_for(manager).post(
        reverse("incidents:incident_edit", args=[incident.pk]), {"title": "Reopened?"}
    )

    assert response.status_code == 409
    assert "cannot be edited" in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).title != "Reopened?"


# --- Transitions --------------------------------------------------------------------------


def test_it_sends_triage_to_the_assessment_form(responder, make_incident):
    from triage.services import TRIAGE_NEEDS_ASSESSMENT

    incident = make_incident()
    client = _client_for(responder)

    page = client.get(_detail(incident)).content.decode()
    refused = client.post(
        _transition(incident, "triage"),
        {"triage-severity": "high", "triage-malicious": "yes", "triage-scenario": "unauthorised_access"},
    )

    assert f'href="/incidents/{incident.pk}/triage/"' in page and "Assess and triage" in page
    assert refused.status_code == 400  # one triage path: an assessment, as in the API
    assert html.escape(TRIAGE_NEEDS_ASSESSMENT) in refused.content.decode()
    incident.refresh_from_db()
    assert (incident.state, incident.severity) == ("detected", None)
    assert _audit_count(incident) == 1


def test_it_lets_a_manager_declare_after_a_responder_adds_an_affected_customer(
    responder, manager, customer, make_incident
):
    incident = make_incident(state="triaged")

    added = _client_for(responder).post(
        reverse("incidents:affected_customer_add", args=[incident.pk]),
        {"affected-account_reference": "ACME-001", "affected-records_affected": "40"},
    )
    declared = _client_for(manager).post(
        _transition(incident, "declare"),
        {"declare-nature_of_breach": "Payroll export sent to the wrong customer."},
    )

    assert added.status_code == 302 and declared.status_code == 302
    assert AffectedCustomer.objects.get(incident=incident).customer == customer
    incident.refresh_from_db()
    assert incident.state == "declared" and incident.declared_by == manager
    verbs = list(AuditEvent.objects.filter(incident=incident).values_list("verb", flat=True))
    assert verbs[-2:] == ["affected_customer_added", "declare"]


def test_it_reshows_the_form_naming_the_missing_fact_when_the_guard_fails(responder, make_incident):
    incident = make_incident()

    response = _client_for(responder).post(
        _transition(incident, "rule_out_of_scope"),
        {"rule_out_of_scope-out_of_scope_category": "policy_question"},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "needs" in page and "rationale" in page
    assert '<option value="policy_question" selected>' in page  # the input is not lost
    incident.refresh_from_db()
    assert (incident.state, incident.out_of_scope_category) == ("detected", "")
    assert _audit_count(incident) == 1


def test_it_names_a_missing_affected_customer_when_declaring(manager, make_incident):
    incident = make_incident(state="triaged")

    response = _client_for(manager).post(
        _transition(incident, "declare"), {"declare-nature_of_breach": "Wrong recipient."}
    )

    assert response.status_code == 400
    assert "Declare a personal data breach needs at least one affected customer" in response.content.decode()
    incident.refresh_from_db()
    assert incident.state == "triaged" and incident.nature_of_breach == ""


def test_it_answers_409_when_the_transition_is_not_available_from_the_state(manager, make_incident):
    incident = make_incident()

    response = _client_for(manager).post(_transition(incident, "declare"), {"declare-nature_of_breach": "x"})

    assert response.status_code == 409
    assert "is not possible: the incident is detected" in response.content.decode()
    assert _state(incident) == "detected"


def test_it_answers_403_when_the_role_may_not_take_the_transition(responder, make_incident, customer):
    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)

    response = _client_for(responder).post(
        _transition(incident, "declare"), {"declare-nature_of_breach": "x"}
    )

    assert response.status_code == 403
    assert _state(incident) == "triaged"


def test_it_answers_404_for_an_unknown_transition(responder, make_incident):
    incident = make_incident()

    assert _client_for(responder).post(_transition(incident, "explode")).status_code == 404


def test_it_refuses_a_get_on_a_transition(responder, make_incident):
    incident = make_incident()

    assert _client_for(responder).get(_transition(incident, "triage")).status_code == 405


def test_it_closes_once_the_post_mortem_is_completed(manager, make_incident):
    incident = make_incident(state="post_mortem")

    missing = _client_for(manager).post(_transition(incident, "close"), {})
    complete_post_mortem(incident, manager)
    closed = _client_for(manager).post(_transition(incident, "close"), {})

    assert missing.status_code == 400
    assert "Close needs the post-mortem completed" in missing.content.decode()
    assert closed.status_code == 302
    assert _state(incident) == "closed"


def test_it_rules_out_of_scope_and_classifies_with_the_guard_inputs(responder, make_incident, settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    out = make_incident()
    customer_event = make_incident()
    client = _client_for(responder)

    client.post(
        _transition(out, "rule_out_of_scope"),
        {
            "rule_out_of_scope-out_of_scope_category": "data_subject_request",
            "rule_out_of_scope-scope_rationale": "An access request, not a breach.",
        },
    )
    client.post(
        _transition(customer_event, "classify_as_customer_event"),
        {
            "classify_as_customer_event-scope_rationale": "Customer shared its own password.",
            "classify_as_customer_event-customer_informed_at": "2025-07-01T10:00",
        },
    )

    out.refresh_from_db()
    customer_event.refresh_from_db()
    assert (out.state, out.out_of_scope_category) == ("out_of_scope", "data_subject_request")
    assert customer_event.state == "customer_event"
    assert customer_event.customer_informed_at == datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


# --- Affected customers -------------------------------------------------------------------


def test_it_removes_an_affected_customer_before_declaration_only(responder, customer, make_incident):
    triaged = make_incident(state="triaged")
    declared = make_incident(state="declared")
    services.affected_customer_add(incident=triaged, customer=customer, actor=responder)
    services.affected_customer_add(incident=declared, customer=customer, actor=responder)
    client = _client_for(responder)

    removed = client.post(reverse("incidents:affected_customer_remove", args=[triaged.pk, customer.pk]))
    refused = client.post(reverse("incidents:affected_customer_remove", args=[declared.pk, customer.pk]))

    assert removed.status_code == 302
    assert not AffectedCustomer.objects.filter(incident=triaged).exists()
    assert refused.status_code == 409
    assert "only before declaration" in refused.content.decode()
    assert AffectedCustomer.objects.filter(incident=declared, customer=customer).exists()


def test_it_names_an_unknown_or_duplicate_affected_customer(responder, customer, make_incident):
    incident = make_incident(state="triaged")
    client = _client_for(responder)
    url = reverse("incidents:affected_customer_add", args=[incident.pk])

    unknown = client.post(url, {"affected-account_reference": "NOPE-404"})
    client.post(url, {"affected-account_reference": "ACME-001"})
    duplicate = client.post(url, {"affected-account_reference": "ACME-001"})

    assert unknown.status_code == 400
    assert "No customer has the account reference or name “NOPE-404”" in unknown.content.decode()
    assert duplicate.status_code == 409
    assert "already recorded" in duplicate.content.decode()
    assert AffectedCustomer.objects.filter(incident=incident).count() == 1


def test_it_finds_the_customer_by_name_or_reference_in_any_case_and_refuses_absurd_counts(
    responder, customer, make_incident
):
    incident = make_incident(state="triaged")
    client = _client_for(responder)
    url = reverse("incidents:affected_customer_add", args=[incident.pk])

    page = client.get(reverse("incidents:incident_detail", args=[incident.pk])).content.decode()
    too_many = client.post(
        url, {"affected-account_reference": "acme-001", "affected-records_affected": "9" * 23}
    )
    by_name = client.post(url, {"affected-account_reference": "acme logistics gmbh"})

    assert '<option value="ACME-001">Acme Logistics GmbH</option>' in page
    assert too_many.status_code == 400
    assert by_name.status_code == 302
    assert AffectedCustomer.objects.get(incident=incident).customer == customer


# --- Read-only users, CSRF, escaping ------------------------------------------------------


def test_it_answers_403_to_every_post_by_an_auditor(auditor, responder, customer, make_incident):
    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)
    Customer.objects.create(name="Other", account_reference="OTHER-1")
    client = _client_for(auditor)
    before = _audit_count(incident)

    posts = {
        _transition(incident, "rule_out_of_scope"): {
            "rule_out_of_scope-out_of_scope_category": "policy_question",
            "rule_out_of_scope-scope_rationale": "x",
        },
        _transition(incident, "declare"): {"declare-nature_of_breach": "x"},
        reverse("incidents:incident_edit", args=[incident.pk]): {"title": "Changed"},
        reverse("incidents:affected_customer_add", args=[incident.pk]): {
            "affected-account_reference": "OTHER-1"
        },
        reverse("incidents:affected_customer_remove", args=[incident.pk, customer.pk]): {},
        reverse("incidents:incident_new"): {"title": "New", "detection_source": "staff_escalation"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url

    assert client.get(reverse("incidents:incident_edit", args=[incident.pk])).status_code == 403
    incident.refresh_from_db()
    assert incident.state == "triaged" and incident.title != "Changed"
    assert _audit_count(incident) == before
    assert Incident.objects.count() == 1


def test_it_shows_no_write_forms_to_an_auditor(auditor, make_incident):
    incident = make_incident(state="triaged")

    page = _client_for(auditor).get(_detail(incident)).content.decode()

    assert "<form" in page  # the logout form only
    assert page.count("<form") == 1
    assert "Edit facts" not in page


def test_it_enforces_csrf_on_forms(responder, make_incident):
    incident = make_incident()
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)

    response = client.post(
        _transition(incident, "triage"), {"triage-severity": "low", "triage-malicious": "no"}
    )

    assert response.status_code == 403
    assert _state(incident) == "detected"


def test_it_accepts_a_form_with_its_csrf_token(responder, make_incident):
    incident = make_incident()
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    client.get(_detail(incident))
    token = client.cookies["csrftoken"].value

    response = client.post(
        _transition(incident, "rule_out_of_scope"),
        {
            "csrfmiddlewaretoken": token,
            "rule_out_of_scope-out_of_scope_category": "policy_question",
            "rule_out_of_scope-scope_rationale": "A question about our retention policy.",
        },
    )

    assert response.status_code == 302
    assert _state(incident) == "out_of_scope"


def test_it_escapes_what_users_typed(responder, make_incident):
    incident = make_incident(title="<script>alert(1)</script>", summary="<b>bold</b>")
    client = _client_for(responder)

    for url in (reverse("incidents:incident_list"), _detail(incident)):
        page = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in client.get(_detail(incident)).content.decode()


# --- The incident page --------------------------------------------------------------------


def test_it_shows_the_audit_trail_in_utc_with_actor_states_and_data(manager, make_incident):
    incident = make_incident(state="declared")
    events = list(AuditEvent.objects.filter(incident=incident).order_by("sequence"))

    page = _client_for(manager).get(_detail(incident)).content.decode()

    declare = next(event for event in events if event.verb == "declare")
    assert declare.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in page
    assert "triaged → declared" in page
    assert "max.manager" in page
    assert "Nature of breach</span>: — → Payroll file emailed to a wrong recipient." in page
    assert "FIXTURE-001" in page


def test_it_shows_system_for_events_without_an_actor(manager, make_incident):
    incident = make_incident(state="notified")

    page = _client_for(manager).get(_detail(incident)).content.decode()

    assert "<td>system</td>" in page
    assert "declared → notified" in page


def test_it_shows_the_breach_fields_and_exposure_duration(responder, make_incident):
    start = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
    incident = make_incident(
        nature_of_breach="Misconfigured bucket",
        exposure_started_at=start,
        exposure_ended_at=start + timedelta(days=2, hours=3, minutes=5),
        records_affected=5000,
        records_affected_is_estimate=True,
        data_categories=["health"],
    )

    page = _client_for(responder).get(_detail(incident)).content.decode()

    assert "Misconfigured bucket" in page
    assert "duration 2 d 3 h 5 min" in page
    assert "5000 (estimate)" in page
    assert "Health data" in page


def test_it_tells_a_superuser_why_an_incident_cannot_be_marked_notified_yet(superuser, make_incident):
    incident = make_incident(state="declared")

    response = _client_for(superuser).post(_transition(incident, "mark_notified"))

    assert response.status_code == 400
    assert "Mark notified needs every affected customer&#x27;s initial notice delivered" in (
        response.content.decode()
    )
    assert _state(incident) == "declared"


def test_it_refuses_an_exposure_that_ends_before_it_starts(responder, make_incident):
    incident = make_incident()

    response = _client_for(responder).post(
        reverse("incidents:incident_edit", args=[incident.pk]),
        {
            "title": incident.title,
            "detection_source": incident.detection_source,
            "exposure_started_at": "2025-01-02T00:00",
            "exposure_ended_at": "2025-01-01T00:00",
        },
    )

    assert response.status_code == 400
    assert "The exposure cannot end before it started." in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).exposure_started_at is None
