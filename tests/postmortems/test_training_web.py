"""The overdue training page and ``GET /api/training/overdue/`` for each role; courses and
records in ``/admin/`` (through the audited services) and in the read-only ``/audit/``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from postmortems.models import Course, TrainingAuditEvent, TrainingRecord
from postmortems.training_views import encode_cursor
from tests.queries import assert_query_count, assert_same_query_count, capture_queries

PAGE = "/training/overdue/"
API = "/api/training/overdue/"


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api_for(user) -> APIClient:
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(user)
    return client


@pytest.fixture
def lapsed_team(make_course, record_completions, personas):
    """DP-101 mandatory: the manager's lapsed, the responder's valid, the auditor untrained
    (not on the response team), and one lapsed staff member without an account."""
    now = timezone.now()
    make_course("DP-101", name="Data protection essentials")
    record_completions(
        [
            (personas["incident_manager"].email, "DP-101", now - timedelta(days=400), "81"),
            (personas["responder"].email, "DP-101", now - timedelta(days=3), "95"),
            ("staff.only@staff.example", "DP-101", now - timedelta(days=500), None),
        ]
    )
    return personas


def test_the_routes_are_the_documented_ones():
    assert reverse("training:overdue") == PAGE
    assert reverse("training_api:overdue") == API


@pytest.mark.parametrize("role", ["incident_manager", "auditor"])
def test_managers_and_auditors_see_everyone_overdue(lapsed_team, role):
    response = _client_for(lapsed_team[role]).get(PAGE)

    assert response.status_code == 200
    body = response.content.decode()
    assert "max.manager@breachdesk.test" in body
    assert "staff.only@staff.example" in body
    assert "rita.responder@breachdesk.test" not in body  # trained
    assert "DP-101 · Data protection essentials" in body
    assert "<form" not in body.split("<main", 1)[1]  # read-only: nothing to submit


def test_a_responder_sees_only_their_own_standing(lapsed_team, make_course):
    make_course("IR-201", name="Breach response")

    response = _client_for(lapsed_team["responder"]).get(PAGE)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Your training (rita.responder@breachdesk.test)" in body
    assert "Never completed" in body  # IR-201
    assert "max.manager@breachdesk.test" not in body
    assert "staff.only@staff.example" not in body
    assert response.context["scope"] == "own"


def test_an_outsider_is_refused_and_a_visitor_is_sent_to_log_in(lapsed_team):
    assert _client_for(lapsed_team["outsider"]).get(PAGE).status_code == 403

    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["incident_manager", "auditor", "responder"])
def test_the_page_answers_no_write(lapsed_team, role):
    assert _client_for(lapsed_team[role]).post(PAGE).status_code == 405


def test_a_bad_page_link_answers_400(lapsed_team):
    client = _client_for(lapsed_team["incident_manager"])

    assert client.get(PAGE, {"cursor": "%%%"}).status_code == 400
    assert client.get(PAGE, {"cursor": encode_cursor("Not Normalised")}).status_code == 400
    assert _api_for(lapsed_team["auditor"]).get(API, {"cursor": "!!"}).status_code == 400


def test_the_navigation_links_the_page_for_those_who_may_see_it(lapsed_team):
    for role in ("responder", "incident_manager", "auditor"):
        assert f'href="{PAGE}"' in _client_for(lapsed_team[role]).get("/incidents/").content.decode()
    assert _client_for(lapsed_team["outsider"]).get("/incidents/").status_code == 403


def test_the_page_runs_as_many_queries_for_many_people_as_for_few(make_course, record_completions, manager):
    now = timezone.now()
    make_course("DP-101")
    make_course("IR-201")
    record_completions([(f"a{n}@staff.example", "DP-101", now - timedelta(days=400), None) for n in range(2)])
    client = _client_for(manager)
    client.get(PAGE)  # session and permission caches warm

    with capture_queries("2 people") as few:
        client.get(PAGE)
    record_completions(
        [(f"b{n}@staff.example", "IR-201", now - timedelta(days=900), None) for n in range(60)]
    )
    with capture_queries("63 people") as many:
        response = client.get(PAGE)

    assert len(response.context["people"]) == 63
    assert_same_query_count(few, many)
    # Session, user with its account facts (auditor? expiry: also the navigation's audit-site check),
    # the permissions (one query), mandatory courses, the manager's own standing, 2 candidate
    # queries, the page's accounts and their completions, accounts without an email, and the
    # yearly-drill banner's check.
    with assert_query_count(11, "the overdue page"):
        client.get(PAGE)


def test_the_api_lists_everyone_overdue_in_the_documented_shape(lapsed_team):
    response = _api_for(lapsed_team["auditor"]).get(API)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"as_of", "scope", "next", "results"}
    assert body["scope"] == "everyone"
    assert body["next"] is None
    assert body["as_of"].endswith("Z")
    manager_entry = body["results"][0]
    assert manager_entry["email"] == "max.manager@breachdesk.test"
    assert manager_entry["user"] == "max.manager"
    record = TrainingRecord.objects.get(email="max.manager@breachdesk.test")
    assert manager_entry["courses"] == [
        {
            "code": "DP-101",
            "name": "Data protection essentials",
            "status": "lapsed",
            "since": record.expires_at.isoformat().replace("+00:00", "Z"),
            "last_completed_at": record.completed_at.isoformat().replace("+00:00", "Z"),
            "expires_at": record.expires_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert [person["email"] for person in body["results"]] == [
        "max.manager@breachdesk.test",
        "staff.only@staff.example",
    ]
    assert body["results"][1]["user"] is None


def test_the_api_pages_with_next(make_course, record_completions, manager):
    now = timezone.now()
    make_course("DP-101")
    record_completions(
        [(f"p{n:03d}@staff.example", "DP-101", now - timedelta(days=400), None) for n in range(105)]
    )
    client = _api_for(manager)

    first = client.get(API).json()
    second = client.get(first["next"]).json()

    # The manager (no record) and the 105 staff: 106 people.
    assert len(first["results"]) == 100
    assert len(second["results"]) == 6
    assert second["next"] is None
    emails = [p["email"] for p in first["results"] + second["results"]]
    assert emails == sorted(set(emails))


def test_the_api_shows_a_responder_only_themselves(lapsed_team, make_course):
    client = _api_for(lapsed_team["responder"])

    trained = client.get(API).json()
    assert (trained["scope"], trained["results"]) == ("own", [])

    make_course("IR-201")
    untrained = client.get(API).json()
    assert [(p["email"], [c["code"] for c in p["courses"]]) for p in untrained["results"]] == [
        ("rita.responder@breachdesk.test", ["IR-201"])
    ]


def test_the_api_refuses_outsiders_visitors_and_writes(lapsed_team):
    assert _api_for(lapsed_team["outsider"]).get(API).status_code == 403
    visitor = APIClient()
    assert visitor.get(API).status_code in (401, 403)
    assert _api_for(lapsed_team["incident_manager"]).post(API, {}).status_code == 405
    assert _api_for(lapsed_team["auditor"]).delete(API).status_code == 405


def test_the_api_schema_documents_the_route(manager):
    response = _api_for(manager).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert "/api/training/overdue/" in response.json()["paths"]


# --- /admin/ and /audit/ ------------------------------------------------------------------

#: The course form's read-only inline (its audit chain) still posts its management form.
INLINE_MANAGEMENT = {"audit_events-TOTAL_FORMS": "0", "audit_events-INITIAL_FORMS": "0"}


def test_a_superuser_adds_and_changes_a_course_in_the_admin_through_the_audited_services(superuser):
    client = _client_for(superuser)

    added = client.post(
        "/admin/postmortems/course/add/",
        {
            "code": "DP-101",
            "name": "Data protection essentials",
            "is_mandatory": "on",
            "validity_days": "365",
            **INLINE_MANAGEMENT,
        },
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    course = Course.objects.get(code="DP-101")
    assert course.is_mandatory and course.mandatory_since is not None

    changed = client.post(
        f"/admin/postmortems/course/{course.pk}/change/",
        {
            "code": "DP-101",
            "name": "Data protection essentials",
            "validity_days": "180",
            **INLINE_MANAGEMENT,
        },
    )
    assert changed.status_code == 302, changed.content.decode()[:3000]
    changed_course = Course.objects.get(pk=course.pk)
    assert (changed_course.validity_days, changed_course.is_mandatory, changed_course.mandatory_since) == (
        180,
        False,
        None,
    )
    events = list(TrainingAuditEvent.objects.filter(course=course).order_by("sequence"))
    assert [(e.verb, e.actor_username) for e in events] == [
        ("course_created", "sam.super"),
        ("course_updated", "sam.super"),
    ]
    assert events[1].data == {"changes": {"is_mandatory": [True, False], "validity_days": [365, 180]}}
    assert client.get(f"/admin/postmortems/course/{course.pk}/delete/").status_code == 403


def test_records_imports_and_the_chain_are_read_only_in_the_admin(superuser, make_course, record_completions):
    make_course("DP-101")
    record_completions([("a@staff.example", "DP-101", timezone.now() - timedelta(days=1), None)])
    record = TrainingRecord.objects.get()
    client = _client_for(superuser)

    assert client.get("/admin/postmortems/trainingrecord/").status_code == 200
    assert client.get(f"/admin/postmortems/trainingrecord/{record.pk}/change/").status_code == 200
    assert client.get("/admin/postmortems/trainingrecord/add/").status_code == 403
    assert (
        client.post(f"/admin/postmortems/trainingrecord/{record.pk}/change/", {"score": "1"}).status_code
        == 403
    )
    assert client.get("/admin/postmortems/trainingimport/add/").status_code == 403
    assert client.get("/admin/postmortems/trainingauditevent/add/").status_code == 403
    assert client.get("/admin/postmortems/trainingauditevent/").status_code == 200


def test_auditors_read_courses_records_imports_and_the_chain_in_the_audit_site(
    auditor, make_course, record_completions
):
    course = make_course("DP-101")
    record_completions([("a@staff.example", "DP-101", timezone.now() - timedelta(days=1), "90")])
    client = _client_for(auditor)

    for model in ("course", "trainingrecord", "trainingimport", "trainingauditevent"):
        assert client.get(f"/audit/postmortems/{model}/").status_code == 200, model
        assert client.get(f"/audit/postmortems/{model}/add/").status_code == 403, model
    page = client.get(f"/audit/postmortems/course/{course.pk}/change/")
    assert page.status_code == 200
    assert "training_imported" in page.content.decode()
    assert client.post(f"/audit/postmortems/course/{course.pk}/change/", {"name": "x"}).status_code == 403
    assert Course.objects.get(pk=course.pk).name == "Course DP-101"


def test_an_auditor_reading_the_overdue_list_leaves_one_read_log_row_per_view(lapsed_team):
    from incidents.models import ReadLogEntry

    auditor = lapsed_team["auditor"]
    _client_for(auditor).get(PAGE)
    _api_for(auditor).get(API)
    _client_for(lapsed_team["incident_manager"]).get(PAGE)  # not an auditor: not logged

    assert list(ReadLogEntry.objects.order_by("id").values_list("username", "route", "path")) == [
        ("aude.auditor", "training:overdue", PAGE),
        ("aude.auditor", "training_api:overdue", API),
    ]
