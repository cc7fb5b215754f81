"""The incident workspace: notes on a timeline with the audit trail, the breach-field meter,
transitions as buttons with confirmation, and the page's query count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.exceptions import ActionForbidden
from incidents.models import AuditEvent, Customer, Note
from tests.queries import assert_same_query_count, capture_queries


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _detail(incident) -> str:
    return reverse("incidents:incident_detail", args=[incident.pk])


def test_a_note_is_audited_and_keeps_when_it_happened_apart_from_when_we_learned_it(
    responder, make_incident, settings
):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = make_incident()
    client = _client_for(responder)

    response = client.post(
        reverse("incidents:note_add", args=[incident.pk]),
        {
            "note-text": "The customer says the mail went out at 09:00.",
            "note-occurred_at": "2026-11-02T09:00",
        },
    )

    assert response.status_code == 302 and response["Location"].endswith("#timeline")
    note = Note.objects.get(incident=incident)
    assert note.author == responder and note.author_username == "rita.responder"
    assert note.occurred_at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    event = AuditEvent.objects.filter(incident=incident).last()
    assert event is not None
    assert (event.verb, event.actor, event.data["note"]) == ("note_added", responder, note.pk)
    page = client.get(_detail(incident)).content.decode()
    timeline = page[page.index('id="timeline"') : page.index('id="audit-trail"')]
    assert "The customer says the mail went out at 09:00." in timeline
    assert "2026-11-02 09:00 CET (Europe/Berlin)" in timeline  # when it happened, with its zone
    assert note.created_at.strftime("%Y-%m-%d %H:%M:%S UTC") in timeline  # when we learned it
    assert timeline.index("Created") < timeline.index("rita.responder</strong> wrote a note")


def test_it_refuses_a_blank_note_or_one_from_the_future_and_stores_nothing(responder, make_incident):
    incident = make_incident()
    client = _client_for(responder)
    url = reverse("incidents:note_add", args=[incident.pk])

    blank = client.post(url, {"note-text": "   "})
    future = client.post(url, {"note-text": "Tomorrow", "note-occurred_at": "2099-01-01T00:00"})

    assert blank.status_code == 400 and "This field is required." in blank.content.decode()
    assert future.status_code == 400 and "cannot be in the future" in future.content.decode()
    assert not Note.objects.exists()
    with pytest.raises(ValidationError):
        services.note_add(incident=incident, actor=responder, text="")


def test_an_auditor_reads_notes_but_may_not_add_one(auditor, responder, make_incident):
    incident = make_incident()
    services.note_add(incident=incident, actor=responder, text="Called the customer.")
    client = _client_for(auditor)

    page = client.get(_detail(incident)).content.decode()
    response = client.post(reverse("incidents:note_add", args=[incident.pk]), {"note-text": "Sneaky"})

    assert "Called the customer." in page and "Add a note" not in page
    assert response.status_code == 403 and "may read this incident" in response.content.decode()
    assert Note.objects.count() == 1
    with pytest.raises(ActionForbidden):
        services.note_add(incident=incident, actor=auditor, text="Sneaky")


def test_an_outsider_gets_404_for_the_note_route(outsider, make_incident):
    incident = make_incident()

    assert (
        _client_for(outsider)
        .post(reverse("incidents:note_add", args=[incident.pk]), {"note-text": "x"})
        .status_code
        == 404
    )
    assert not Note.objects.exists()


def test_the_breach_meter_counts_the_six_required_fields(manager, make_incident):
    start = timezone.now() - timedelta(days=2)
    incident = make_incident(
        state="triaged",
        nature_of_breach="Wrong recipient",
        exposure_started_at=start,
        exposure_ended_at=start + timedelta(hours=3),
        sub_processor_details="Mailer Ltd sent it.",
    )

    page = _client_for(manager).get(_detail(incident)).content.decode()

    assert "3 of 6 required breach fields known" in page
    assert 'class="unknown">Mitigation measures' in page
    assert 'class="known">How long personal data was exposed' in page


def test_irreversible_transitions_ask_for_confirmation_and_open_as_buttons(manager, make_incident):
    incident = make_incident(state="triaged")

    page = _client_for(manager).get(_detail(incident)).content.decode()

    assert '<details class="transition-panel" id="step-declare">' in page
    assert "<summary>Declare a personal data breach</summary>" in page
    declare_form = page[page.index('id="transition-declare"') :].split(">", 1)[0]
    assert "data-confirm=" in declare_form and "cannot be undone" in declare_form


def test_the_incident_page_reads_in_the_same_number_of_queries_with_1_or_50_customers(manager, make_incident):
    """Each customer declared, with a clock and a note; the page's count does not grow."""

    def declared_with(customers: int, tag: str):
        incident = make_incident(state="triaged")
        for number in range(customers):
            customer = Customer.objects.create(
                name=f"Customer {tag}{number:02d}", account_reference=f"{tag}-{number:02d}"
            )
            services.affected_customer_add(incident=incident, customer=customer, actor=manager)
            services.note_add(incident=incident, actor=manager, text=f"Note {number}")
        return services.incident_declare(
            incident=incident, actor=manager, nature_of_breach="Wrong recipient."
        )

    small, large = declared_with(1, "S"), declared_with(50, "L")
    client = _client_for(manager)
    client.get(_detail(small))
    with capture_queries("the incident page with 1 customer") as one:
        assert len(client.get(_detail(small)).context["affected_customers"]) == 1
    with capture_queries("the incident page with 50 customers") as fifty:
        assert len(client.get(_detail(large)).context["affected_customers"]) == 50
    assert_same_query_count(one, fifty)


def test_the_deadline_forms_of_an_open_clock_load_when_opened(manager, responder, make_incident):
    from notifications.models import Clock

    incident = make_incident(state="declared")
    clock = Clock.objects.get(incident=incident)
    url = reverse("notifications:clock_manage", args=[incident.pk, clock.pk])

    page = _client_for(manager).get(_detail(incident)).content.decode()
    fragment = _client_for(manager).get(url, headers={"HX-Request": "true"})
    full = _client_for(manager).get(url)

    assert f'hx-get="{url}"' in page and "Waive the deadline" not in page
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert "Waive the deadline" in fragment.content.decode() and "Move the start" in fragment.content.decode()
    assert "<html" in full.content.decode() and "Waive the deadline" in full.content.decode()
    assert _client_for(responder).get(url).status_code == 403
    Clock.objects.filter(pk=clock.pk).update(met_at=timezone.now())
    assert _client_for(manager).get(url).status_code == 409
