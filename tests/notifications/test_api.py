"""The notification routes of the REST API: clocks, notices (draft, preview, approve), withheld
details and deliveries; every write route for every role; bad input; invisible objects; a
pinned query count on the deliveries list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import AuditEvent, Incident
from notifications import services
from notifications.models import Clock, Delivery, Escalation, Notice, Withholding
from notifications.sender import deliveries_send_due
from tests.conftest import errors
from tests.notifications.support import approve, run_delivery_worker
from tests.queries import assert_query_count, assert_same_query_count, capture_queries

LANGUAGES = ["en", "de", "fr", "es", "ja"]


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def as_user(api, user):
    api.force_login(user)
    return api


def clocks_url(incident) -> str:
    return f"/api/incidents/{incident.pk}/clocks/"


def notices_url(incident, number: int | str | None = None, action: str = "") -> str:
    path = f"/api/incidents/{incident.pk}/notices/"
    if number is not None:
        path += f"{number}/"
    return path + (f"{action}/" if action else "")


def withholdings_url(incident) -> str:
    return f"/api/incidents/{incident.pk}/withholdings/"


def acknowledge_url(incident) -> str:
    return f"/api/incidents/{incident.pk}/acknowledge-delivery-failure/"


def clock_of(incident, account_reference: str) -> Clock:
    return Clock.objects.get(incident=incident, customer__account_reference=account_reference)


def stored(incident) -> tuple:
    """Everything the notification routes can change on ``incident``, with its audit trail."""
    events = AuditEvent.objects.filter(incident_id=incident.pk).order_by("-sequence")
    last = events.first()
    return (
        events.count(),
        last.hash if last else None,
        Incident.objects.filter(pk=incident.pk).values("state", "notified_at").get(),
        list(Notice.objects.filter(incident=incident).order_by("pk").values()),
        list(Clock.objects.filter(incident=incident).order_by("pk").values()),
        list(Withholding.objects.filter(incident=incident).order_by("pk").values()),
        list(Delivery.objects.filter(notice__incident=incident).order_by("pk").values()),
    )


def review_at() -> str:
    return (timezone.now() + timedelta(days=14)).astimezone(UTC).isoformat()


# Clocks ---------------------------------------------------------------------------------------


def test_it_lists_an_incidents_clocks_with_customer_times_and_status(
    api, declare_for, multilingual_customers, responder
):
    incident = declare_for(multilingual_customers)
    acme = clock_of(incident, "ACME")
    services.escalation_raise(clock=acme, threshold=Escalation.Threshold.HOURS_48, notify=False)

    response = as_user(api, responder).get(clocks_url(incident))

    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [row["customer"]["account_reference"] for row in results] == ["ACME", "DUPONT", "YAMADA"]
    first = results[0]
    assert first["customer"] == {
        "id": acme.customer_id,
        "account_reference": "ACME",
        "name": "Acme Logistik GmbH",
    }
    assert first["kind"] == "customer_notice"
    assert first["status"] == "open"
    assert first["starts_at"] == acme.starts_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert first["due_at"].endswith("Z")
    assert datetime.fromisoformat(first["due_at"]) - datetime.fromisoformat(first["starts_at"]) == timedelta(
        hours=72
    )
    assert 72 * 3600 - 60 < first["remaining_seconds"] <= 72 * 3600
    assert first["met_at"] is None and first["waived_at"] is None and first["late_reason"] == ""
    assert [(e["threshold"], e["raised_at"].endswith("Z")) for e in first["escalations"]] == [("48h", True)]


def test_it_shows_each_clock_status_judged_from_the_stored_times(
    api, declare_for, multilingual_customers, auditor, manager
):
    incident = declare_for(multilingual_customers)
    acme, dupont, yamada = (clock_of(incident, ref) for ref in ("ACME", "DUPONT", "YAMADA"))
    Clock.objects.filter(pk=acme.pk).update(met_at=acme.due_at)  # exactly at the deadline: on time
    Clock.objects.filter(pk=dupont.pk).update(met_at=dupont.due_at + timedelta(seconds=1))
    past_start = timezone.now() - timedelta(hours=73)
    Clock.objects.filter(pk=yamada.pk).update(starts_at=past_start, due_at=past_start + timedelta(hours=72))

    rows = {
        row["customer"]["account_reference"]: row
        for row in as_user(api, auditor).get(clocks_url(incident)).json()["results"]
    }

    assert rows["ACME"]["status"] == "met" and rows["ACME"]["remaining_seconds"] is None
    assert rows["DUPONT"]["status"] == "met_late" and rows["DUPONT"]["remaining_seconds"] is None
    assert rows["YAMADA"]["status"] == "overdue"
    assert -3600 - 60 <= rows["YAMADA"]["remaining_seconds"] <= -3600

    api.force_login(manager)
    waived = api.post(
        f"/api/clocks/{yamada.pk}/waive/", {"reason": "Customer ceased trading."}, format="json"
    )
    assert waived.status_code == 200, waived.json()
    # Waived after its deadline: late stays late.
    assert waived.json()["status"] == "waived_late" and waived.json()["remaining_seconds"] is None
    assert waived.json()["waiver_reason"] == "Customer ceased trading."
    assert waived.json()["waived_by"] == manager.username


def test_it_records_a_late_reason_on_a_clock_met_late(api, declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers[:1])
    clock = clock_of(incident, "ACME")
    Clock.objects.filter(pk=clock.pk).update(met_at=clock.due_at + timedelta(hours=2))

    response = as_user(api, manager).post(
        f"/api/clocks/{clock.pk}/late-reason/",
        {"reason": "  Contact list was outdated.  "},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["late_reason"] == "Contact list was outdated."
    assert response.json()["status"] == "met_late"
    clock.refresh_from_db()
    assert clock.late_reason == "Contact list was outdated."
    assert AuditEvent.objects.filter(incident_id=incident.pk, verb="clock_late_reason_recorded").count() == 1


def test_it_restarts_a_clock_from_an_instant_with_offset_stored_in_utc(
    api, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[:1])
    clock = clock_of(incident, "ACME")

    response = as_user(api, manager).post(
        f"/api/clocks/{clock.pk}/restart/",
        # 30 March 2026 is the day after the EU's spring DST change: still exactly 72 hours.
        {"starts_at": "2026-03-28T10:00:00+01:00", "reason": "Found affected a day later."},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["starts_at"] == "2026-03-28T09:00:00Z"
    assert response.json()["due_at"] == "2026-03-31T09:00:00Z"
    clock.refresh_from_db()
    assert clock.due_at == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    event = AuditEvent.objects.filter(incident_id=incident.pk, verb="clock_restarted").get()
    assert event.data["reason"] == "Found affected a day later."


def test_it_answers_404_for_the_clocks_of_an_unknown_or_invisible_incident(
    api, declare_for, multilingual_customers, responder, outsider
):
    incident = declare_for(multilingual_customers[:1])

    assert as_user(api, outsider).get(clocks_url(incident)).status_code == 404
    api.force_login(responder)
    assert api.get("/api/incidents/99999999/clocks/").status_code == 404
    assert api.get("/api/incidents/abc/clocks/").status_code == 404
    assert api.get("/api/incidents/99999999999999999999999999/clocks/").status_code == 404


# The whole notice flow ------------------------------------------------------------------------


def test_it_takes_a_notice_from_draft_through_preview_and_approval_to_sent_and_notified(
    api, smtp_server, declare_for, multilingual_customers, responder, manager
):
    incident = declare_for(multilingual_customers)

    drafted = as_user(api, responder).post(
        notices_url(incident),
        {
            "kind": "initial",
            "contact_point": "privacy@breachdesk.test",
            "likely_consequences": "Phishing risk.",
        },
        format="json",
    )
    assert drafted.status_code == 201, drafted.json()
    notice = drafted.json()
    assert (notice["number"], notice["kind"], notice["status"]) == (1, "initial", "draft")
    assert notice["created_by"] == responder.username
    assert notice["content"] == {} and notice["deliveries"]["total"] == 0

    changed = api.patch(
        notices_url(incident, 1), {"likely_consequences": "Targeted phishing."}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["likely_consequences"] == "Targeted phishing."

    subjects = set()
    for language in LANGUAGES:
        preview = api.get(notices_url(incident, 1, "preview"), {"language": language})
        assert preview.status_code == 200, preview.json()
        body = preview.json()
        assert body["language"] == language
        assert incident.reference in body["subject"] and "\n" not in body["subject"]
        assert "Targeted phishing." in body["text"] and "Targeted phishing." in body["html"]
        assert "<html" in body["html"].lower() or "<p" in body["html"].lower()
        subjects.add(body["subject"])
    assert len(subjects) == len(LANGUAGES)  # each rendered in its own language

    approved = as_user(api, manager).post(notices_url(incident, 1, "approve"), {}, format="json")
    assert approved.status_code == 200, approved.json()
    data = approved.json()
    assert data["status"] == "approved" and data["approved_by"] == manager.username
    assert data["approved_at"].endswith("Z")
    assert data["content"]["likely_consequences"] == {"consequences": [], "description": "Targeted phishing."}
    # The approval answers at once; a worker creates the deliveries from the committed approval.
    assert data["deliveries"]["total"] == 0
    assert data["delivery_creation"] == {
        "status": "pending",
        "customers_total": 3,
        "customers_done": 0,
        "deliveries_created": 0,
        "completed_at": None,
    }
    assert run_delivery_worker() == 4
    data = api.get(notices_url(incident, 1)).json()
    assert data["deliveries"] == {"pending": 4, "sending": 0, "sent": 0, "failed": 0, "total": 4}
    assert data["delivery_creation"]["status"] == "done" and data["delivery_creation"]["customers_done"] == 3

    listed = api.get("/api/deliveries/", {"incident": incident.pk})
    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert sorted(row["address"] for row in rows) == [
        "anna@acme.example",
        "bob@acme.example",
        "claire@dupont.example",
        "taro@yamada.example",
    ]
    assert {row["status"] for row in rows} == {"pending"}
    assert rows[0]["notice"] == {
        "incident": incident.pk,
        "incident_reference": incident.reference,
        "number": 1,
        "kind": "initial",
    }
    assert "text" not in rows[0] and "html" not in rows[0]
    assert {row["customer"] for row in rows} == {"ACME", "DUPONT", "YAMADA"}

    report = deliveries_send_due()

    assert report.sent == 4 and len(smtp_server.received) == 4
    sent = api.get("/api/deliveries/", {"incident": incident.pk, "status": "sent"}).json()["results"]
    assert len(sent) == 4 and all(row["sent_at"] and row["attempts"] == 1 for row in sent)
    detail = api.get(f"/api/deliveries/{sent[0]['id']}/").json()
    assert "Targeted phishing." in detail["text"] and detail["html"].strip()
    received = {m.recipients[0]: m for m in smtp_server.received}
    assert received[detail["address"]].message_id == detail["message_id"]
    clocks = api.get(clocks_url(incident)).json()["results"]
    assert {clock["status"] for clock in clocks} == {"met"}
    assert api.get(notices_url(incident, 1)).json()["deliveries"]["sent"] == 4
    assert api.get(f"/api/incidents/{incident.pk}/").json()["state"] == "notified"


def test_it_lists_notices_in_number_order_with_their_delivery_counts(
    api, declare_for, multilingual_customers, manager, auditor
):
    incident = declare_for(multilingual_customers[:1])
    first = services.notice_draft(incident=incident, actor=manager, kind="initial")
    approve(first, manager)
    services.notice_draft(incident=incident, actor=manager, kind="update")

    response = as_user(api, auditor).get(notices_url(incident))

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(row["number"], row["kind"], row["status"]) for row in rows] == [
        (1, "initial", "approved"),
        (2, "update", "draft"),
    ]
    assert rows[0]["deliveries"]["pending"] == 2 and rows[1]["deliveries"]["total"] == 0
    assert rows[0]["delivery_creation"]["status"] == "done" and rows[1]["delivery_creation"]["status"] == ""
    assert (
        rows[0]["delivery_creation"]["customers_done"],
        rows[0]["delivery_creation"]["deliveries_created"],
    ) == (1, 2)


def test_the_notice_list_runs_as_many_queries_for_one_notice_as_for_three(
    api, declare_for, multilingual_customers, manager, auditor
):
    incident = declare_for(multilingual_customers)
    approve(services.notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    client = as_user(api, auditor)
    client.get(notices_url(incident))  # warm the session

    with capture_queries("the list with 1 notice") as one:
        client.get(notices_url(incident))
    approve(services.notice_draft(incident=incident, actor=manager, kind="update"), manager)
    services.notice_draft(incident=incident, actor=manager, kind="update")
    with capture_queries("the list with 3 notices") as three:
        rows = client.get(notices_url(incident)).json()["results"]

    assert [row["delivery_creation"]["customers_total"] for row in rows] == [3, 3, 0]
    assert_same_query_count(one, three)


def test_it_shows_withheld_fields_by_name_and_reason_and_keeps_their_values_out_of_messages(
    api, declare_for, multilingual_customers, manager
):
    from incidents import services as incident_services
    from incidents.models import Supplier

    incident = declare_for(multilingual_customers[:1])
    incident_services.incident_update(
        incident=incident,
        actor=manager,
        changes={"sub_processor": Supplier.objects.create(name="Secretive Hosting BV", country="NL")},
    )
    api.force_login(manager)
    created = api.post(
        withholdings_url(incident),
        {
            "field": "sub_processor",
            "reason": "law_enforcement",
            "review_at": review_at(),
            "requested_by": "Politie Rotterdam, case 2026-4411",
            "explanation": "Investigation ongoing.",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["is_active"] is True
    assert created.json()["reason_label"] == "A law-enforcement request"
    services.notice_draft(incident=incident, actor=manager, kind="initial")

    preview = api.get(notices_url(incident, 1, "preview"), {"language": "en"}).json()
    approved = api.post(notices_url(incident, 1, "approve"), format="json").json()

    assert "Secretive" not in preview["text"] and "Secretive" not in preview["html"]
    assert approved["withheld"] == [
        {
            "field": "sub_processor",
            "reason": "law_enforcement",
            "reason_label": "A law-enforcement request",
        }
    ]
    for row in api.get("/api/deliveries/", {"incident": incident.pk}).json()["results"]:
        detail = api.get(f"/api/deliveries/{row['id']}/").json()
        assert all("Secretive" not in detail[part] for part in ("subject", "text", "html"))
    listed = api.get(withholdings_url(incident)).json()["results"]
    assert [(row["field"], row["requested_by"]) for row in listed] == [
        ("sub_processor", "Politie Rotterdam, case 2026-4411")
    ]

    released = api.post(f"/api/withholdings/{created.json()['id']}/release/", format="json")
    assert released.status_code == 200
    assert released.json()["is_active"] is False and released.json()["released_by"] == manager.username


def test_it_acknowledges_a_customer_whose_every_delivery_failed(
    api, smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[1:2])  # Dupont: one contact
    approve(services.notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    smtp_server.refuse_permanently = {"claire@dupont.example"}
    deliveries_send_due()
    api.force_login(manager)
    failed = api.get("/api/deliveries/", {"status": "failed"}).json()["results"]
    assert [row["address"] for row in failed] == ["claire@dupont.example"]
    assert "550" in failed[0]["last_error"]

    response = api.post(
        acknowledge_url(incident),
        {"customer": "DUPONT", "reason": "Mailbox gone; told by phone."},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "waived"
    assert response.json()["waiver_reason"] == "Mailbox gone; told by phone."
    assert Delivery.objects.get(address="claire@dupont.example").failure_acknowledged_at is not None
    assert api.get(f"/api/incidents/{incident.pk}/").json()["state"] == "notified"


# Every write route, for every role ------------------------------------------------------------


@pytest.fixture
def scene(declare_for, multilingual_customers, manager):
    """A declared incident (Acme, Dupont, Yamada) with draft notice 1, ``sub_processor``
    withheld, and Yamada's clock met two hours late."""
    incident = declare_for(multilingual_customers)
    services.notice_draft(incident=incident, actor=manager, kind="initial")
    withholding = services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="other",
        requested_by="Legal",
        review_at=timezone.now() + timedelta(days=7),
    )
    yamada = clock_of(incident, "YAMADA")
    Clock.objects.filter(pk=yamada.pk).update(met_at=yamada.due_at + timedelta(hours=2))
    return {
        "incident": incident,
        "withholding": withholding,
        "acme_clock": clock_of(incident, "ACME"),
        "yamada_clock": yamada,
    }


MANAGERS_ONLY = {"incident_manager": 200, "responder": 403, "auditor": 403, "outsider": 404}

WRITE_ROUTES = {
    "draft_notice": (
        "post",
        lambda s: notices_url(s["incident"]),
        {"kind": "initial", "contact_point": "dpo@example.test"},
        {"incident_manager": 201, "responder": 201, "auditor": 403, "outsider": 404},
    ),
    "edit_draft": (
        "patch",
        lambda s: notices_url(s["incident"], 1),
        {"likely_consequences": "Spam."},
        {"incident_manager": 200, "responder": 200, "auditor": 403, "outsider": 404},
    ),
    "approve_notice": (
        "post",
        lambda s: notices_url(s["incident"], 1, "approve"),
        {},
        MANAGERS_ONLY,
    ),
    "withhold_field": (
        "post",
        lambda s: withholdings_url(s["incident"]),
        {
            "field": "records_affected",
            "reason": "risk_to_others",
            "requested_by": "CISO",
            "review_at": "2030-01-01T00:00:00Z",
        },
        {**MANAGERS_ONLY, "incident_manager": 201},
    ),
    "release_field": (
        "post",
        lambda s: f"/api/withholdings/{s['withholding'].pk}/release/",
        {},
        MANAGERS_ONLY,
    ),
    "late_reason": (
        "post",
        lambda s: f"/api/clocks/{s['yamada_clock'].pk}/late-reason/",
        {"reason": "Outdated contacts."},
        MANAGERS_ONLY,
    ),
    "waive_clock": (
        "post",
        lambda s: f"/api/clocks/{s['acme_clock'].pk}/waive/",
        {"reason": "Insolvent."},
        MANAGERS_ONLY,
    ),
    "restart_clock": (
        "post",
        lambda s: f"/api/clocks/{s['acme_clock'].pk}/restart/",
        {"starts_at": "2030-01-01T00:00:00Z", "reason": "Added late."},
        MANAGERS_ONLY,
    ),
    "acknowledge_delivery_failure": (
        "post",
        lambda s: acknowledge_url(s["incident"]),
        {"customer": "DUPONT", "reason": "Unreachable."},
        MANAGERS_ONLY,
    ),
}


@pytest.mark.parametrize("role", ["incident_manager", "responder", "auditor", "outsider"])
@pytest.mark.parametrize("route", list(WRITE_ROUTES))
def test_every_write_route_answers_each_role_and_refusals_change_nothing(api, scene, personas, route, role):
    method, path, body, expected = WRITE_ROUTES[route]
    before = stored(scene["incident"])

    response = getattr(as_user(api, personas[role]), method)(path(scene), body, format="json")

    assert response.status_code == expected[role], (response.status_code, response.json())
    if response.status_code < 300:
        assert stored(scene["incident"]) != before
    else:
        assert response.json()["detail"]
        assert stored(scene["incident"]) == before
    if response.status_code == 403:
        assert "notifications." in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        lambda s: clocks_url(s["incident"]),
        lambda s: notices_url(s["incident"]),
        lambda s: notices_url(s["incident"], 1),
        lambda s: notices_url(s["incident"], 1, "preview"),
        lambda s: withholdings_url(s["incident"]),
        lambda s: f"/api/clocks/{s['acme_clock'].pk}/",
        lambda s: f"/api/withholdings/{s['withholding'].pk}/",
    ],
)
def test_reads_are_open_to_every_role_but_invisible_to_outsiders(api, scene, personas, path):
    for role in ("incident_manager", "responder", "auditor"):
        assert as_user(api, personas[role]).get(path(scene)).status_code == 200, role
    assert as_user(api, personas["outsider"]).get(path(scene)).status_code == 404


def test_outsiders_may_not_list_or_read_deliveries(
    api, declare_for, multilingual_customers, manager, outsider
):
    incident = declare_for(multilingual_customers[:1])
    approve(services.notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    delivery = Delivery.objects.first()
    assert delivery is not None

    api.force_login(outsider)
    assert api.get("/api/deliveries/").status_code == 403
    assert api.get(f"/api/deliveries/{delivery.pk}/").status_code == 404
    anonymous = APIClient().get("/api/deliveries/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == 'Token realm="api"'


# Bad input: 400 with a message, nothing changed ------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "field", "message"),
    [
        ("draft_notice", {"kind": "initial", "sender": "x"}, "sender", "Unknown field."),
        ("draft_notice", {"kind": "teaser"}, "kind", "not a valid choice"),
        ("draft_notice", {}, "kind", "required"),
        ("draft_notice", {"kind": "update"}, "kind", "first notice must be an initial notice"),
        ("edit_draft", {"content": {"nature_of_breach": "x"}}, "content", "Unknown field."),
        ("edit_draft", {}, "detail", "Nothing to change"),
        ("approve_notice", {"force": True}, "force", "Unknown field."),
        (
            "withhold_field",
            {
                "field": "password",
                "reason": "other",
                "requested_by": "CISO",
                "review_at": "2030-01-01T00:00:00Z",
            },
            "field",
            'Unknown field "password"',
        ),
        (
            "withhold_field",
            {
                "field": "sub_processor",
                "reason": "because",
                "requested_by": "CISO",
                "review_at": "2030-01-01T00:00:00Z",
            },
            "reason",
            "not a valid choice",
        ),
        (
            "withhold_field",
            {
                "field": "records_affected",
                "reason": "other",
                "requested_by": "  ",
                "review_at": "2030-01-01T00:00:00Z",
            },
            "requested_by",
            "blank",
        ),
        (
            "withhold_field",
            {
                "field": "records_affected",
                "reason": "other",
                "requested_by": "CISO",
                "review_at": "2030-01-01T00:00:00",
            },
            "review_at",
            "timezone offset required",
        ),
        ("release_field", {"now": True}, "now", "Unknown field."),
        ("late_reason", {"reason": ""}, "reason", "blank"),
        ("late_reason", {}, "reason", "required"),
        ("waive_clock", {"reason": "   "}, "reason", "blank"),
        (
            "waive_clock",
            {"reason": "Insolvent.", "waived_at": "2030-01-01T00:00:00Z"},
            "waived_at",
            "Unknown field.",
        ),
        (
            "restart_clock",
            {"starts_at": "2030-01-01T00:00:00", "reason": "Added late."},
            "starts_at",
            "timezone offset required",
        ),
        (
            "restart_clock",
            {"starts_at": "next tuesday", "reason": "Added late."},
            "starts_at",
            "format",
        ),
        ("restart_clock", {"starts_at": "2030-01-01T00:00:00Z", "reason": ""}, "reason", "blank"),
        ("acknowledge_delivery_failure", {"customer": "DUPONT", "reason": ""}, "reason", "blank"),
        (
            "acknowledge_delivery_failure",
            {"customer": "NOBODY", "reason": "x"},
            "customer",
            "No customer",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    api, scene, manager, route, body, field, message
):
    method, path, _body, _expected = WRITE_ROUTES[route]
    before = stored(scene["incident"])

    response = getattr(as_user(api, manager), method)(path(scene), body, format="json")

    assert response.status_code == 400, errors(response)
    assert message in " ".join(errors(response)[field])
    assert stored(scene["incident"]) == before


def test_it_refuses_acknowledging_a_customer_without_a_clock_on_the_incident(api, scene, manager, customer):
    before = stored(scene["incident"])

    response = as_user(api, manager).post(
        acknowledge_url(scene["incident"]),
        {"customer": customer.account_reference, "reason": "x"},
        format="json",
    )

    assert response.status_code == 400
    assert "has no notice clock" in errors(response)["customer"][0]
    assert stored(scene["incident"]) == before


@pytest.mark.parametrize("language", ["xx", "EN", "de-AT", "%00"])
def test_it_refuses_a_preview_language_not_offered(api, scene, responder, language):
    response = as_user(api, responder).get(
        notices_url(scene["incident"], 1, "preview") + f"?language={language}"
    )

    assert response.status_code == 400
    assert "language" in errors(response)


def test_a_preview_is_by_customer_in_its_contacts_language_and_refuses_unknown_parameters(
    api, scene, responder
):
    api.force_login(responder)
    url = notices_url(scene["incident"], 1, "preview")

    first = api.get(url).json()  # Acme, the first affected: one contact in de, one in en
    assert (first["customer"], first["language"]) == ("ACME", "de")
    dupont = api.get(url, {"customer": "DUPONT"})
    assert dupont.status_code == 200, dupont.json()
    assert (dupont.json()["customer"], dupont.json()["language"]) == ("DUPONT", "fr")
    assert "Dupont & Fils SA" in dupont.json()["text"]
    chosen = api.get(url, {"customer": "YAMADA", "language": "en"}).json()
    assert (chosen["customer"], chosen["language"]) == ("YAMADA", "en")
    refused = api.get(notices_url(scene["incident"], 1, "preview"), {"lang": "de"})
    assert refused.status_code == 400
    assert list(errors(refused)) == ["lang"]


@pytest.mark.parametrize(
    ("route", "prepare", "message"),
    [
        (
            "approve_notice",
            lambda s, m: approve(Notice.objects.get(incident=s["incident"]), m),
            "already approved",
        ),
        (
            "edit_draft",
            lambda s, m: approve(Notice.objects.get(incident=s["incident"]), m),
            "immutable",
        ),
        (
            "withhold_field",
            lambda s, m: services.withholding_create(
                incident=s["incident"],
                actor=m,
                field="records_affected",
                reason="other",
                requested_by="CISO",
                review_at=timezone.now(),
            ),
            "already withheld",
        ),
        (
            "release_field",
            lambda s, m: services.withholding_release(withholding=s["withholding"], actor=m),
            "Already released",
        ),
        (
            "waive_clock",
            lambda s, m: services.clock_waive(clock=s["acme_clock"], actor=m, reason="x"),
            "no longer open",
        ),
        (
            "restart_clock",
            lambda s, m: Clock.objects.filter(pk=s["acme_clock"].pk).update(met_at=timezone.now()),
            "cannot be moved",
        ),
        (
            "late_reason",
            lambda s, m: Clock.objects.filter(pk=s["yamada_clock"].pk).update(
                met_at=s["yamada_clock"].due_at
            ),
            "met late",
        ),
    ],
)
def test_actions_that_do_not_fit_the_current_state_answer_409_and_change_nothing(
    api, scene, manager, route, prepare, message
):
    method, path, body, _expected = WRITE_ROUTES[route]
    prepare(scene, manager)
    before = stored(scene["incident"])

    response = getattr(as_user(api, manager), method)(path(scene), body, format="json")

    assert response.status_code == 409, response.json()
    assert message in response.json()["detail"]
    assert stored(scene["incident"]) == before


def test_it_answers_409_for_approving_a_notice_of_an_undeclared_incident(api, make_incident, manager):
    incident = make_incident(state="triaged")
    services.notice_draft(incident=incident, actor=manager, kind="initial")

    response = as_user(api, manager).post(notices_url(incident, 1, "approve"), format="json")

    assert response.status_code == 409
    assert "declared" in response.json()["detail"]
    assert Notice.objects.get(incident=incident).status == "draft"


def test_it_answers_409_when_nobody_is_waiting_for_an_initial_notice(api, scene, manager):
    Clock.objects.filter(incident=scene["incident"]).update(met_at=timezone.now())

    response = as_user(api, manager).post(notices_url(scene["incident"], 1, "approve"), format="json")

    assert response.status_code == 409
    assert "No affected customer is waiting" in response.json()["detail"]
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=bogus", "status"),
        ("status=%00", "status"),
        ("incident=abc", "incident"),
        ("incident=99999999999999999999999999", "incident"),
        ("customer=99999999", "customer"),
    ],
)
def test_the_deliveries_list_refuses_bad_filters_naming_the_parameter(api, responder, query, parameter):
    response = as_user(api, responder).get(f"/api/deliveries/?{query}")

    assert response.status_code == 400
    assert "valid choice" in errors(response)[parameter][0]


def test_the_deliveries_list_filters_by_customer_and_status(
    api, declare_for, multilingual_customers, manager
):
    acme, dupont, _yamada = multilingual_customers
    incident = declare_for(multilingual_customers)
    approve(services.notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    api.force_login(manager)

    by_customer = api.get("/api/deliveries/", {"customer": dupont.pk}).json()["results"]
    pending = api.get("/api/deliveries/", {"status": ["pending", "failed"]}).json()["results"]
    sent = api.get("/api/deliveries/", {"status": "sent"}).json()["results"]

    assert [row["address"] for row in by_customer] == ["claire@dupont.example"]
    assert len(pending) == 4 and sent == []


# Unknown and invisible objects -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", lambda s: notices_url(s["incident"], 99)),
        ("get", lambda s: notices_url(s["incident"], "abc")),
        ("patch", lambda s: notices_url(s["incident"], 99)),
        ("post", lambda s: notices_url(s["incident"], 99, "approve")),
        ("get", lambda s: notices_url(s["incident"], 99, "preview")),
        ("get", lambda s: "/api/clocks/99999999/"),
        ("post", lambda s: "/api/clocks/99999999/waive/"),
        ("post", lambda s: "/api/clocks/abc/restart/"),
        ("post", lambda s: "/api/withholdings/99999999/release/"),
        ("get", lambda s: "/api/deliveries/99999999/"),
        ("get", lambda s: "/api/incidents/99999999/notices/"),
        ("post", lambda s: "/api/incidents/99999999/notices/"),
        ("get", lambda s: "/api/incidents/99999999/withholdings/"),
        ("post", lambda s: "/api/incidents/99999999/acknowledge-delivery-failure/"),
        (
            "post",
            lambda s: "/api/incidents/99999999999999999999999999/acknowledge-delivery-failure/",
        ),
    ],
)
def test_unknown_objects_answer_404_and_change_nothing(api, scene, manager, method, path):
    before = stored(scene["incident"])

    body = {} if method == "get" else {"reason": "x"}
    response = getattr(as_user(api, manager), method)(path(scene), body, format="json")

    assert response.status_code == 404, response.content[:300]
    assert stored(scene["incident"]) == before


def test_a_notice_of_another_incident_is_not_found_by_number(api, scene, make_incident, manager):
    other = make_incident(state="triaged")

    response = as_user(api, manager).get(notices_url(other, 1))

    assert response.status_code == 404


# Query counts -----------------------------------------------------------------------------------


def test_the_deliveries_list_runs_a_fixed_number_of_queries(
    api, declare_for, multilingual_customers, manager, responder
):
    first = declare_for(multilingual_customers[:1])
    approve(services.notice_draft(incident=first, actor=manager, kind="initial"), manager)
    api.force_login(responder)
    api.get("/api/deliveries/")  # warm the session

    # Session, user with its account facts (auditor? expiry), the user's permissions, the page.
    with assert_query_count(4, "the deliveries list with 2 rows"):
        small = api.get("/api/deliveries/")
    second = declare_for(multilingual_customers[1:])
    approve(services.notice_draft(incident=second, actor=manager, kind="initial"), manager)
    with assert_query_count(4, "the deliveries list with 4 rows"):
        large = api.get("/api/deliveries/")

    assert len(small.json()["results"]) == 2 and len(large.json()["results"]) == 4


def test_the_clocks_list_runs_a_fixed_number_of_queries(api, declare_for, multilingual_customers, responder):
    incident = declare_for(multilingual_customers)
    for clock in Clock.objects.filter(incident=incident):
        services.escalation_raise(clock=clock, threshold=Escalation.Threshold.HOURS_48, notify=False)
    api.force_login(responder)

    # Session, user with its account facts (auditor? expiry), the user's permissions, the
    # incident, the page, its escalations.
    with assert_query_count(6, "the clocks list"):
        response = api.get(clocks_url(incident))

    assert all(len(row["escalations"]) == 1 for row in response.json()["results"])


def test_the_lists_found_by_schemathesis_answer_for_every_status_and_page(
    api, declare_for, multilingual_customers, manager
):
    """Regressions: a clock status added later (``waived_late``) and the translations list's
    page order answered 500."""
    incident = declare_for(multilingual_customers)
    api.force_login(manager)

    for status in [value for value, _label in Clock.Status.choices]:
        answer = api.get("/api/clocks/", {"status": status, "page_size": 1})
        assert answer.status_code == 200, (status, answer.json())
    translations = api.get(f"/api/incidents/{incident.pk}/translations/", {"page_size": 1})
    assert translations.status_code == 200, translations.json()
