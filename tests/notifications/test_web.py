"""The customer-notification web pages: the panel on the incident page (deadlines, countdowns,
alerts), notices (draft, preview per language, approve), withheld details and deliveries, each
form for each role, CSRF, escaping and query counts."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import AffectedCustomer, AuditEvent, Contact, Customer
from notifications import services, views
from notifications.models import Clock, Delivery, Notice, Withholding
from notifications.sender import deliveries_send_due
from tests.notifications.support import approve, run_delivery_worker
from tests.queries import assert_query_count, assert_same_query_count, capture_queries


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _incident_page(incident) -> str:
    return reverse("incidents:incident_detail", args=[incident.pk])


def _notice_page(notice, language: str | None = None) -> str:
    url = reverse("notifications:notice_detail", args=[notice.incident_id, notice.number])
    return f"{url}?language={language}" if language else url


def _url(name: str, incident, *args) -> str:
    return reverse(f"notifications:{name}", args=[incident.pk, *args])


def _verbs(incident) -> list[str]:
    return list(
        AuditEvent.objects.filter(incident=incident).order_by("sequence").values_list("verb", flat=True)
    )


def _clock(incident, customer) -> Clock:
    return Clock.objects.get(incident=incident, customer=customer)


def _move_start(clock, manager, hours_ago: float) -> Clock:
    return services.clock_restart(
        clock=clock,
        actor=manager,
        starts_at=timezone.now() - timedelta(hours=hours_ago),
        reason="Found earlier.",
    )


def _draft(incident, actor, kind="initial", **written) -> Notice:
    return services.notice_draft(incident=incident, actor=actor, kind=kind, **written)


def _approve_form_data(page_response) -> dict[str, str]:
    form = page_response.context["approve_form"]
    return {
        "approve-confirm": "on",
        "approve-customers": str(form.initial["customers"]),
        "approve-contacts": str(form.initial["contacts"]),
    }


# --- The panel ----------------------------------------------------------------------------


def test_it_shows_each_deadline_in_utc_and_the_display_zone_with_a_countdown(
    declare_for, multilingual_customers, responder, settings
):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = declare_for(multilingual_customers)
    clock = _clock(incident, multilingual_customers[0])

    page = _client_for(responder).get(_incident_page(incident)).content.decode()

    panel = page[page.index('id="customer-notification"') :]
    berlin = clock.due_at.astimezone(views.display_zone())
    assert clock.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in panel
    assert berlin.strftime("%Y-%m-%d %H:%M %Z") + " (Europe/Berlin)" in panel
    assert panel.count("71 h 59 min left") == 3  # declared moments ago: 72 hours minus seconds
    assert 'class="badge clock-status status-open">Open<' in panel
    for customer in multilingual_customers:
        assert html.escape(customer.name) in panel


def test_it_words_the_countdown_in_hours_and_minutes_either_side_of_the_deadline():
    assert views.countdown(timedelta(hours=71, minutes=59, seconds=59)) == "71 h 59 min left"
    assert views.countdown(timedelta(seconds=0)) == "0 h 00 min left"
    assert views.countdown(timedelta(seconds=-1)) == "overdue by 0 h 00 min"
    assert views.countdown(-timedelta(hours=2, minutes=5)) == "overdue by 2 h 05 min"
    assert views.countdown(None) == ""


def test_it_shows_overdue_met_and_met_late_deadlines(
    smtp_server, declare_for, multilingual_customers, manager
):
    acme, dupont, yamada = multilingual_customers
    incident = declare_for(multilingual_customers)
    _move_start(_clock(incident, acme), manager, hours_ago=73)
    _move_start(_clock(incident, dupont), manager, hours_ago=80)
    client = _client_for(manager)

    overdue = client.get(_incident_page(incident)).content.decode()

    acme_row = overdue[overdue.index(f'id="clock-{_clock(incident, acme).pk}"') :]
    assert "overdue by 1 h 00 min" in acme_row.split("</tr>")[0]
    assert 'status-overdue">Overdue<' in acme_row.split("</tr>")[0]

    approve(_draft(incident, manager), manager)
    deliveries_send_due()
    settled = client.get(_incident_page(incident))
    statuses = {row.clock.customer: row.status for row in settled.context["clock_rows"]}

    assert statuses == {acme: "met_late", dupont: "met_late", yamada: "met"}
    page = settled.content.decode()
    assert page.count('status-met_late">Met late<') == 2
    assert 'status-met">Met<' in page
    assert "No reason for the delay recorded yet." in page
    assert page.count("Record the reason") == 2  # the late-reason form, only on clocks met late


def test_it_makes_a_customer_without_deliverable_contact_impossible_to_miss(declare_for, responder, db):
    silent = Customer.objects.create(name="Silent Partners AG", account_reference="SILENT")
    Contact.objects.create(customer=silent, name="Gone", email="gone@silent.example", is_active=False)
    incident = declare_for([silent])

    page = _client_for(responder).get(_incident_page(incident)).content.decode()

    alert = page[page.index('id="notification-alerts"') :].split("</div>")[0]
    assert "No deliverable contact:" in alert and "Silent Partners AG" in alert
    readiness_entry = reverse("contacts:customer_readiness", args=[silent.pk])
    assert f'<a href="{readiness_entry}">Silent Partners AG</a>' in alert  # links to its readiness entry
    assert f'href="{readiness_entry}">no deliverable contact</a>' in page  # on the clock's row too


def test_it_lists_notices_with_their_delivery_counts(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    smtp_server.refuse_permanently.add("claire@dupont.example")
    approve(_draft(incident, manager), manager)
    deliveries_send_due()
    _draft(incident, manager, kind="update")

    response = _client_for(manager).get(_incident_page(incident))

    first, second = response.context["notices"]
    assert (first.number, first.status, first.approved_by) == (1, "approved", manager)
    assert (first.deliveries_sent, first.deliveries_failed, first.deliveries_pending) == (3, 1, 0)
    assert (second.number, second.status, second.deliveries_sent) == (2, "draft", 0)
    page = response.content.decode()
    assert "Failed deliveries:" in page and "1 to Dupont &amp; Fils SA" in page
    assert "Notice 2</a>" in page


# --- Clock forms --------------------------------------------------------------------------


def test_a_manager_records_a_late_reason_and_it_is_audited(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[:1])
    clock = _move_start(_clock(incident, multilingual_customers[0]), manager, hours_ago=75)
    approve(_draft(incident, manager), manager)
    deliveries_send_due()
    client = _client_for(manager)

    response = client.post(
        _url("clock_late_reason", incident, clock.pk),
        {f"clock{clock.pk}-late_reason-reason": "The customer was found affected only on day 3."},
    )

    assert response.status_code == 302
    assert response["Location"] == _incident_page(incident) + "#customer-notification"
    clock.refresh_from_db()
    assert clock.late_reason == "The customer was found affected only on day 3."
    assert _verbs(incident)[-1] == "clock_late_reason_recorded"
    assert "Reason for the delay: The customer was found affected only on day 3." in (
        client.get(_incident_page(incident)).content.decode()
    )


def test_a_late_reason_on_a_clock_met_on_time_is_a_conflict_that_changes_nothing(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[:1])
    clock = _clock(incident, multilingual_customers[0])
    Clock.objects.filter(pk=clock.pk).update(met_at=timezone.now())
    before = _verbs(incident)

    response = _client_for(manager).post(
        _url("clock_late_reason", incident, clock.pk), {f"clock{clock.pk}-late_reason-reason": "Late?"}
    )

    assert response.status_code == 409
    assert "Only a clock met late takes a reason for the delay." in response.content.decode()
    assert _clock(incident, multilingual_customers[0]).late_reason == ""
    assert _verbs(incident) == before


def test_a_manager_waives_a_deadline_with_a_reason(declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers[:1])
    clock = _clock(incident, multilingual_customers[0])

    response = _client_for(manager).post(
        _url("clock_waive", incident, clock.pk), {f"clock{clock.pk}-waive-reason": "Customer ceased trading."}
    )

    assert response.status_code == 302
    clock.refresh_from_db()
    assert (clock.waived_by, clock.waiver_reason) == (manager, "Customer ceased trading.")
    assert "clock_waived" in _verbs(incident)
    page = _client_for(manager).get(_incident_page(incident)).content.decode()
    assert 'status-waived">Failure acknowledged<' in page and "Reason: Customer ceased trading." in page


def test_an_empty_waiver_reason_reshows_the_form_and_changes_nothing(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[:1])
    clock = _clock(incident, multilingual_customers[0])
    before = _verbs(incident)

    response = _client_for(manager).post(
        _url("clock_waive", incident, clock.pk), {f"clock{clock.pk}-waive-reason": "   "}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page
    assert "<details open>" in page  # the failed form is shown unfolded
    assert _clock(incident, multilingual_customers[0]).waived_at is None
    assert _verbs(incident) == before


def test_a_manager_moves_a_deadlines_start_read_in_the_display_zone(
    declare_for, multilingual_customers, manager, settings
):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = declare_for(multilingual_customers[:1])
    clock = _clock(incident, multilingual_customers[0])
    prefix = f"clock{clock.pk}-restart"

    response = _client_for(manager).post(
        _url("clock_restart", incident, clock.pk),
        # 03:30 CEST on the night Berlin's clocks go forward is 01:30 UTC.
        {f"{prefix}-starts_at": "2026-03-29T03:30", f"{prefix}-reason": "Customer affected from the start."},
    )

    assert response.status_code == 302
    clock.refresh_from_db()
    assert clock.starts_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert clock.due_at == datetime(2026, 4, 1, 1, 30, tzinfo=UTC)  # 72 real hours later
    event = AuditEvent.objects.filter(incident=incident).last()
    assert event is not None
    assert event.verb == "clock_restarted" and event.data["reason"] == "Customer affected from the start."


def test_a_start_that_does_not_exist_in_the_display_zone_is_refused(
    declare_for, multilingual_customers, manager, settings
):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = declare_for(multilingual_customers[:1])
    clock = _clock(incident, multilingual_customers[0])
    prefix = f"clock{clock.pk}-restart"

    response = _client_for(manager).post(
        _url("clock_restart", incident, clock.pk),
        {f"{prefix}-starts_at": "2026-03-29T02:30", f"{prefix}-reason": "Skipped hour."},
    )

    assert response.status_code == 400
    assert "Europe/Berlin" in response.content.decode()
    assert _clock(incident, multilingual_customers[0]).starts_at == clock.starts_at


def test_a_clock_of_another_incident_is_not_found(declare_for, multilingual_customers, manager):
    first = declare_for(multilingual_customers[:1])
    second = declare_for(multilingual_customers[1:2])
    other_clock = _clock(second, multilingual_customers[1])

    response = _client_for(manager).post(
        _url("clock_waive", first, other_clock.pk), {f"clock{other_clock.pk}-waive-reason": "x"}
    )

    assert response.status_code == 404
    assert _clock(second, multilingual_customers[1]).waived_at is None


# --- Notices ------------------------------------------------------------------------------


def test_a_responder_drafts_a_notice_and_lands_on_its_page(declare_for, multilingual_customers, responder):
    incident = declare_for(multilingual_customers)

    response = _client_for(responder).post(
        _url("notice_draft", incident),
        {"draft-kind": "initial", "draft-contact_point": "", "draft-likely_consequences": "Phishing risk."},
    )

    notice = Notice.objects.get(incident=incident)
    assert response.status_code == 302 and response["Location"] == _notice_page(notice)
    assert (notice.status, notice.kind, notice.created_by, notice.likely_consequences) == (
        "draft",
        "initial",
        responder,
        "Phishing risk.",
    )
    assert _verbs(incident)[-1] == "notice_drafted"


def test_an_update_before_any_initial_notice_reshows_the_draft_form(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)

    response = _client_for(manager).post(
        _url("notice_draft", incident), {"draft-kind": "update", "draft-likely_consequences": "Keep me"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "The first notice must be an initial notice." in page
    assert "Keep me" in page  # the input is not lost
    assert not Notice.objects.filter(incident=incident).exists()


def test_a_draft_is_edited_until_it_is_approved_then_read_only(declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, manager)
    client = _client_for(manager)

    edited = client.post(
        _url("notice_edit", incident, notice.number),
        {"notice-kind": "initial", "notice-likely_consequences": "Targeted phishing is likely."},
    )
    approve(notice, manager)
    refused = client.post(
        _url("notice_edit", incident, notice.number),
        {"notice-kind": "initial", "notice-likely_consequences": "Rewritten history."},
    )
    page = client.get(_notice_page(notice)).content.decode()

    assert edited.status_code == 302
    assert "notice_draft_changed" in _verbs(incident)
    assert refused.status_code == 409
    assert "An approved notice is immutable." in refused.content.decode()
    notice.refresh_from_db()
    assert notice.likely_consequences == "Targeted phishing is likely."
    assert "Save the draft" not in page and "Approve and send" not in page
    assert "Approved notices never change" in page


def test_the_notice_page_previews_each_language(declare_for, multilingual_customers, responder):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, responder)
    client = _client_for(responder)

    pages = {code: client.get(_notice_page(notice, code)) for code in ("en", "de", "fr", "es", "ja")}

    for code, response in pages.items():
        assert response.status_code == 200
        assert response.context["preview"].language == code
        page = response.content.decode()
        assert f'<pre class="notice-text" id="preview-text" lang="{code}">' in page
        assert 'aria-current="page">' in page and f'href="?language={code}#preview"' in page
    german = pages["de"].context["preview"]
    assert "Mitteilung" in german.subject and incident.reference in german.subject
    assert html.escape(german.subject) in pages["de"].content.decode()
    assert pages["en"].context["preview"].subject != german.subject


def test_the_notice_page_opens_in_the_language_the_previewed_customers_contacts_receive(
    declare_for, multilingual_customers, responder
):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, responder)
    client = _client_for(responder)
    url = reverse("notifications:notice_detail", args=[incident.pk, notice.number])

    for reference, language, named in (
        ("DUPONT", "fr", "fr"),
        ("YAMADA", "ja", "ja"),
        ("ACME", "de", "de, en"),
    ):
        response = client.get(url, {"customer": reference})
        assert response.status_code == 200
        assert response.context["preview"].language == language
        page = response.content.decode()
        assert f"This customer’s contacts receive it in: {named} (the preview opens in the first)." in page
    # A language chosen on the page still wins.
    assert client.get(url, {"customer": "DUPONT", "language": "en"}).context["preview"].language == "en"


def test_an_unknown_preview_language_is_a_clear_400(declare_for, multilingual_customers, responder):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, responder)

    response = _client_for(responder).get(_notice_page(notice, "xx"))

    assert response.status_code == 400
    assert "No preview language “xx”" in response.content.decode()
    assert response.context["preview"].language == "en"


def test_the_notice_page_names_unknown_withheld_and_changed_fields(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    approve(_draft(incident, manager), manager)
    from incidents import services as incident_services

    incident_services.incident_update(
        incident=incident, actor=manager, changes={"mitigation_measures": "Sessions revoked."}
    )
    services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="law_enforcement",
        requested_by="Police case 42",
        review_at=timezone.now() + timedelta(days=7),
    )
    update = _draft(incident, manager, kind="update")

    response = _client_for(manager).get(_notice_page(update))

    rows = {row["name"]: row for row in response.context["field_rows"]}
    assert rows["nature_of_breach"]["known"] and not rows["nature_of_breach"]["changed"]
    assert rows["mitigation_measures"]["known"] and rows["mitigation_measures"]["changed"]
    assert not rows["records_affected"]["known"]
    assert rows["sub_processor"]["withheld"] == "A law-enforcement request"
    page = response.content.decode()
    assert "changed since notice 1" in page
    assert "not yet known" in page and "withheld" in page


def test_a_manager_approves_after_confirming_how_many_will_receive_it(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, manager)
    client = _client_for(manager)
    page = client.get(_notice_page(notice))

    assert "3 customers</strong>" in page.content.decode() and "4 contacts</strong>" in page.content.decode()
    response = client.post(_url("notice_approve", incident, notice.number), _approve_form_data(page))

    assert response.status_code == 302
    notice.refresh_from_db()
    assert (notice.status, notice.approved_by, notice.delivery_creation) == ("approved", manager, "pending")
    assert _verbs(incident)[-1] == "notice_approved"
    progress = client.get(_notice_page(notice)).content.decode()
    assert "Creating deliveries: 0 of 3 customers done" in progress and 'http-equiv="refresh"' in progress

    assert run_delivery_worker() == 4  # the worker, after commit
    assert Delivery.objects.filter(notice=notice).count() == 4
    assert _verbs(incident)[-1] == "notice_deliveries_created"
    done = client.get(_notice_page(notice)).content.decode()
    assert "All 4 deliveries to 3 customers created" in done and 'http-equiv="refresh"' not in done


def test_approval_without_the_confirmation_or_with_a_stale_audience_changes_nothing(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    notice = _draft(incident, manager)
    client = _client_for(manager)
    data = _approve_form_data(client.get(_notice_page(notice)))
    before = _verbs(incident)

    unconfirmed = client.post(
        _url("notice_approve", incident, notice.number), {**data, "approve-confirm": ""}
    )
    Contact.objects.create(customer=multilingual_customers[2], name="New Admin", email="new@yamada.example")
    stale = client.post(_url("notice_approve", incident, notice.number), data)

    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm who will receive this notice." in unconfirmed.content.decode()
    assert stale.status_code == 409
    assert "now 3 customers and 5 contacts" in stale.content.decode()
    assert "5 contacts</strong>" in stale.content.decode()
    assert Notice.objects.get(pk=notice.pk).status == "draft"
    assert not Delivery.objects.exists()
    assert _verbs(incident) == before


def test_approving_before_declaration_is_a_conflict(make_incident, manager):
    incident = make_incident(state="triaged")
    notice = _draft(incident, manager)

    response = _client_for(manager).post(
        _url("notice_approve", incident, notice.number),
        {"approve-confirm": "on", "approve-customers": "0", "approve-contacts": "0"},
    )

    assert response.status_code == 409
    assert "Notices go out only for a declared personal data breach" in response.content.decode()
    assert Notice.objects.get(pk=notice.pk).status == "draft"


# --- Withheld details ---------------------------------------------------------------------


def test_a_manager_withholds_a_field_and_releases_it(declare_for, multilingual_customers, manager, settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = declare_for(multilingual_customers)
    client = _client_for(manager)

    created = client.post(
        _url("withholding_create", incident),
        {
            "withhold-field": "sub_processor",
            "withhold-reason": "law_enforcement",
            "withhold-explanation": "Investigation ongoing.",
            "withhold-requested_by": "Bundeskriminalamt, case 2026-117",
            "withhold-review_at": "2026-12-01T09:00",
        },
    )
    page = client.get(_incident_page(incident)).content.decode()
    withholding = Withholding.objects.get(incident=incident)
    released = client.post(_url("withholding_release", incident, withholding.pk))

    assert created.status_code == 302
    assert withholding.review_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert withholding.requested_by == "Bundeskriminalamt, case 2026-117"
    assert "Bundeskriminalamt, case 2026-117" in page and "A law-enforcement request" in page
    assert "2026-12-01 09:00 CET (Europe/Berlin)" in page
    assert ">Release</button>" in page
    assert released.status_code == 302
    assert Withholding.objects.get(pk=withholding.pk).released_by == manager
    assert _verbs(incident)[-2:] == ["notice_field_withheld", "notice_field_released"]


def test_withholding_a_field_twice_or_without_who_asked_changes_nothing(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="risk_to_others",
        requested_by="CISO",
        review_at=timezone.now() + timedelta(days=3),
    )
    client = _client_for(manager)
    data = {
        "withhold-field": "sub_processor",
        "withhold-reason": "other",
        "withhold-requested_by": "Someone",
        "withhold-review_at": "2026-12-01T09:00",
    }
    before = _verbs(incident)

    twice = client.post(_url("withholding_create", incident), data)
    anonymous = client.post(
        _url("withholding_create", incident),
        {**data, "withhold-field": "records_affected", "withhold-requested_by": ""},
    )
    unknown = client.post(_url("withholding_create", incident), {**data, "withhold-field": "password"})

    assert twice.status_code == 409 and "sub_processor is already withheld." in twice.content.decode()
    assert anonymous.status_code == 400 and "This field is required." in anonymous.content.decode()
    assert unknown.status_code == 400 and "Select a valid choice." in unknown.content.decode()
    assert Withholding.objects.filter(incident=incident).count() == 1
    assert _verbs(incident) == before


# --- Deliveries ---------------------------------------------------------------------------


def test_failed_deliveries_are_highlighted_and_a_manager_acknowledges_them(
    smtp_server, declare_for, multilingual_customers, manager
):
    acme, dupont, _yamada = multilingual_customers
    incident = declare_for(multilingual_customers)
    smtp_server.refuse_permanently.add("claire@dupont.example")
    notice = approve(_draft(incident, manager), manager)
    deliveries_send_due()
    client = _client_for(manager)

    page = client.get(_notice_page(notice))
    text = page.content.decode()
    assert text.count('<tr class="delivery failed">') == 1
    assert "550" in text and "claire@dupont.example" in text
    assert [entry["customer"] for entry in page.context["unreachable"]] == [dupont]
    assert f'id="acknowledge-{dupont.pk}"' in text and f'id="acknowledge-{acme.pk}"' not in text

    response = client.post(
        _url("deliveries_acknowledge_failure", incident, notice.number, dupont.pk),
        {f"ack{dupont.pk}-reason": "Both addresses bounce; customer informed by phone."},
    )

    assert response.status_code == 302 and response["Location"] == _notice_page(notice)
    clock = _clock(incident, dupont)
    assert clock.waived_by == manager and clock.waiver_reason.startswith("Both addresses bounce")
    assert Delivery.objects.get(notice=notice, customer=dupont).failure_acknowledged_at is not None
    assert _verbs(incident)[-2:] == ["clock_waived", "mark_notified"]  # every customer now settled
    assert "Failed deliveries:" not in client.get(_incident_page(incident)).content.decode()


def test_acknowledging_a_customer_the_notice_never_went_to_is_not_found(
    declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[:1])
    notice = approve(_draft(incident, manager), manager)

    response = _client_for(manager).post(
        _url("deliveries_acknowledge_failure", incident, notice.number, multilingual_customers[1].pk),
        {f"ack{multilingual_customers[1].pk}-reason": "x"},
    )

    assert response.status_code == 404


# --- Roles, CSRF, escaping ----------------------------------------------------------------


def _every_post(incident, notice, clock, withholding, customer) -> dict[str, dict[str, str]]:
    return {
        _url("clock_late_reason", incident, clock.pk): {f"clock{clock.pk}-late_reason-reason": "x"},
        _url("clock_waive", incident, clock.pk): {f"clock{clock.pk}-waive-reason": "x"},
        _url("clock_restart", incident, clock.pk): {
            f"clock{clock.pk}-restart-starts_at": "2026-01-01T10:00",
            f"clock{clock.pk}-restart-reason": "x",
        },
        _url("withholding_create", incident): {
            "withhold-field": "records_affected",
            "withhold-reason": "other",
            "withhold-requested_by": "x",
            "withhold-review_at": "2026-12-01T09:00",
        },
        _url("withholding_release", incident, withholding.pk): {},
        _url("notice_draft", incident): {"draft-kind": "update"},
        _url("notice_edit", incident, notice.number): {"notice-kind": "initial", "notice-contact_point": "x"},
        _url("notice_approve", incident, notice.number): {
            "approve-confirm": "on",
            "approve-customers": "1",
            "approve-contacts": "1",
        },
        _url("deliveries_acknowledge_failure", incident, notice.number, customer.pk): {
            f"ack{customer.pk}-reason": "x"
        },
    }


@pytest.fixture
def notification_scene(declare_for, multilingual_customers, manager):
    """A declared incident with an approved notice, a draft, a withheld field and clocks."""
    incident = declare_for(multilingual_customers[:1])
    approved = approve(_draft(incident, manager), manager)
    draft = _draft(incident, manager, kind="update")
    withholding = services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="other",
        requested_by="CISO",
        review_at=timezone.now() + timedelta(days=1),
    )
    return {
        "incident": incident,
        "approved": approved,
        "draft": draft,
        "withholding": withholding,
        "clock": _clock(incident, multilingual_customers[0]),
        "customer": multilingual_customers[0],
    }


def test_a_responder_may_draft_and_edit_but_gets_403_for_manager_actions(notification_scene, responder):
    scene = notification_scene
    incident = scene["incident"]
    client = _client_for(responder)
    before = _verbs(incident)
    posts = _every_post(incident, scene["draft"], scene["clock"], scene["withholding"], scene["customer"])
    allowed = {_url("notice_draft", incident), _url("notice_edit", incident, scene["draft"].number)}

    for url, data in posts.items():
        if url not in allowed:
            assert client.post(url, data).status_code == 403, url

    assert _verbs(incident) == before
    assert Notice.objects.get(pk=scene["draft"].pk).status == "draft"
    page = client.get(_notice_page(scene["draft"])).content.decode()
    assert "Save the draft" in page and "Approve and send" not in page
    panel = client.get(_incident_page(incident)).content.decode()
    assert (
        "Draft the notice" in panel and "Waive the deadline" not in panel and ">Release</button>" not in panel
    )
    edited = client.post(
        _url("notice_edit", incident, scene["draft"].number),
        {"notice-kind": "update", "notice-likely_consequences": "Phishing."},
    )
    assert edited.status_code == 302


def test_an_auditor_gets_403_on_every_post_and_sees_no_form(notification_scene, auditor):
    scene = notification_scene
    incident = scene["incident"]
    client = _client_for(auditor)
    before = _verbs(incident)

    for url, data in _every_post(
        incident, scene["draft"], scene["clock"], scene["withholding"], scene["customer"]
    ).items():
        assert client.post(url, data).status_code == 403, url

    assert _verbs(incident) == before
    for url in (
        _incident_page(incident),
        _url("incident_notification", incident),
        _notice_page(scene["draft"]),
    ):
        page = client.get(url)
        assert page.status_code == 200
        posting = re.findall(r'<form[^>]*method="post"', page.content.decode())
        assert len(posting) == 1, url  # the logout form only (reading forms use GET)


def test_an_outsider_gets_404_for_every_page_and_post(notification_scene, outsider):
    scene = notification_scene
    incident = scene["incident"]
    client = _client_for(outsider)

    for url in (
        _url("incident_notification", incident),
        _notice_page(scene["approved"]),
        _notice_page(scene["draft"]),
    ):
        assert client.get(url).status_code == 404, url
    for url, data in _every_post(
        incident, scene["draft"], scene["clock"], scene["withholding"], scene["customer"]
    ).items():
        assert client.post(url, data).status_code == 404, url
    assert Notice.objects.filter(incident=incident).count() == 2


def test_it_refuses_a_get_on_a_form_route(notification_scene, manager):
    scene = notification_scene

    response = _client_for(manager).get(_url("notice_approve", scene["incident"], scene["draft"].number))

    assert response.status_code == 405


def test_it_enforces_csrf_on_notification_forms(declare_for, multilingual_customers, responder):
    incident = declare_for(multilingual_customers)
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)

    refused = client.post(_url("notice_draft", incident), {"draft-kind": "initial"})
    client.get(_incident_page(incident))
    accepted = client.post(
        _url("notice_draft", incident),
        {"csrfmiddlewaretoken": client.cookies["csrftoken"].value, "draft-kind": "initial"},
    )

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert Notice.objects.filter(incident=incident).count() == 1


def test_a_script_in_the_incident_is_escaped_in_the_page_and_in_the_preview_frame(
    make_incident, multilingual_customers, responder, manager
):
    from incidents import services as incident_services

    attack = '<script>alert("x")</script>'
    incident = make_incident(state="triaged", title=f"Title {attack}")
    incident_services.affected_customer_add(
        incident=incident, customer=multilingual_customers[0], actor=responder
    )
    incident = incident_services.incident_declare(
        incident=incident, actor=manager, nature_of_breach=f"Nature {attack}"
    )
    notice = _draft(incident, manager, likely_consequences=f"Consequences {attack}")

    response = _client_for(manager).get(_notice_page(notice, "en"))
    page = response.content.decode()
    panel = _client_for(manager).get(_incident_page(incident)).content.decode()

    assert attack not in page and attack not in panel
    assert "Title &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    found = re.search(r'<iframe [^>]*sandbox="" [^>]*srcdoc="([^"]*)"', page)
    assert found is not None
    srcdoc = found.group(1)
    frame = html.unescape(srcdoc)  # what the browser puts in the sandboxed frame
    assert frame == response.context["preview"].html
    assert "Nature &lt;script&gt;" in frame and "<script" not in frame
    assert "Consequences &lt;script&gt;" in frame
    assert "Nature <script>" in response.context["preview"].text  # plain text, shown escaped in <pre>
    assert "Nature &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


# --- Query counts -------------------------------------------------------------------------


def _customers(count: int, prefix: str) -> list[Customer]:
    customers = []
    for number in range(count):
        customer = Customer.objects.create(
            name=f"Customer {prefix}{number:03d}", account_reference=f"{prefix}{number:03d}"
        )
        if number % 5:  # every fifth has no deliverable contact
            Contact.objects.create(customer=customer, name="Admin", email=f"admin{number}@{prefix}.example")
        customers.append(customer)
    return customers


def _scene_with(count, declare_for, manager, smtp_server):
    prefix = f"S{count}-"
    incident = declare_for(_customers(count, prefix))
    smtp_server.refuse_permanently.update({f"admin1@{prefix}.example", f"admin2@{prefix}.example"})
    notice = approve(_draft(incident, manager), manager)
    deliveries_send_due()
    _draft(incident, manager, kind="update")
    services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="other",
        requested_by="CISO",
        review_at=timezone.now() + timedelta(days=1),
    )
    return incident, notice


def _queries(client, url, label):
    with capture_queries(label) as log:
        assert client.get(url).status_code == 200
    return log


def test_the_incident_page_needs_as_many_queries_for_30_customers_as_for_3(declare_for, manager, smtp_server):
    small, small_notice = _scene_with(3, declare_for, manager, smtp_server)
    client = _client_for(manager)
    small_page = _queries(client, _incident_page(small), "the incident page with 3 customers")
    small_notice_page = _queries(client, _notice_page(small_notice), "the notice page with 3 customers")

    large, large_notice = _scene_with(30, declare_for, manager, smtp_server)
    assert Clock.objects.filter(incident=large).count() == 30
    large_page = _queries(client, _incident_page(large), "the incident page with 30 customers")
    large_notice_page = _queries(client, _notice_page(large_notice), "the notice page with 30 customers")

    assert_same_query_count(small_page, large_page)
    assert_same_query_count(small_notice_page, large_notice_page)
    # The panel itself: clocks, their escalations, notices with delivery counts, failed
    # deliveries per customer, customers without a contact, withheld fields.
    with assert_query_count(6, "the notification panel with 30 customers"):
        context = views.notification_panel_context(large, manager)
    assert len(context["clock_rows"]) == 30 and len(context["customers_without_contact"]) == 6


def test_the_fields_table_says_what_the_previewed_customers_own_message_states(
    declare_for, multilingual_customers, manager
):
    """A per-customer figure is "known" in the fields table exactly when the previewed
    customer's own message states it (found by a new-user trial: the table said "not yet
    known" for data subjects while the preview beside it stated the customer's 35)."""
    incident = declare_for(multilingual_customers)
    AffectedCustomer.objects.filter(incident=incident, customer__account_reference="ACME").update(
        records_affected=240, data_subjects_affected=180
    )
    notice = _draft(incident, manager)
    client = _client_for(manager)

    def rows_for(reference: str) -> dict[str, dict]:
        response = client.get(f"{_notice_page(notice)}?customer={reference}")
        assert response.status_code == 200
        return {row["name"]: row for row in response.context["field_rows"]}

    acme, dupont = rows_for("ACME"), rows_for("DUPONT")
    assert acme["records_affected"]["known"] and acme["data_subjects_affected"]["known"]
    assert not dupont["records_affected"]["known"] and not dupont["data_subjects_affected"]["known"]
    # The incident-wide fields do not depend on the customer shown.
    assert acme["nature_of_breach"] == dupont["nature_of_breach"]
