"""Fan-out to a real SMTP server: one message per contact, in its language, with every required
field or its "not yet known" line; withheld details never leak; faults lose nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from incidents import services as incident_services
from notifications.models import Clock, Delivery, Escalation, Notice
from notifications.sender import deliveries_send_due
from notifications.services import (
    notice_draft,
    withholding_create,
    withholding_release,
)
from tests.notifications.support import approve

NOT_YET_KNOWN = {
    "en": "Not yet known; a follow-up notice will come.",
}


def _approve(incident, manager, kind="initial", **written):
    return approve(notice_draft(incident=incident, actor=manager, kind=kind, **written), manager)


def _by_address(sink):
    return {received.recipients[0]: received for received in sink.received}


def test_every_active_administrative_contact_gets_exactly_one_message_in_its_language(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)

    _approve(incident, manager)
    report = deliveries_send_due()

    assert report.sent == 4
    messages = _by_address(smtp_server)
    assert sorted(messages) == [
        "anna@acme.example",
        "bob@acme.example",
        "claire@dupont.example",
        "taro@yamada.example",
    ]
    assert len(smtp_server.received) == 4
    assert {address: m.message["Content-Language"] for address, m in messages.items()} == {
        "anna@acme.example": "de",
        "bob@acme.example": "en",
        "claire@dupont.example": "fr",
        "taro@yamada.example": "ja",
    }
    assert "Personal data breach notice" in messages["bob@acme.example"].message["Subject"]
    assert incident.reference in messages["taro@yamada.example"].message["Subject"]


def test_the_message_carries_each_required_field_or_says_it_is_not_yet_known(
    smtp_server, declare_for, multilingual_customers, manager
):
    from incidents.models import Product, Supplier

    incident = declare_for(multilingual_customers[:1])
    incident_services.incident_update(
        incident=incident,
        actor=manager,
        changes={
            "mitigation_measures": "Mailbox password reset; sessions revoked.",
            "products": [Product.objects.create(name="Support Portal")],
            "exposure_started_at": datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
            "exposure_ended_at": datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
            "sub_processor": Supplier.objects.create(name="MailHost Ltd", country="IE"),
        },
    )

    _approve(incident, manager, likely_consequences="")
    deliveries_send_due()

    english = _by_address(smtp_server)["bob@acme.example"]
    for part in (english.text(), english.html()):
        assert "A support engineer&#x27;s mailbox" in part or "A support engineer's mailbox" in part
        assert "Mailbox password reset" in part
        assert "Support Portal" in part
        assert "1 day, 2 hours, and 30 minutes" in part
        assert "from November 20, 2026, 8:00" in part  # Babel: localised, always in UTC
        assert "MailHost Ltd (Ireland)" in part
        assert "Likely consequences" in part and NOT_YET_KNOWN["en"] in part
        assert "Contact point for questions" in part


def test_withheld_fields_do_not_leak_into_any_part_and_return_when_released(
    smtp_server, declare_for, multilingual_customers, manager, responder
):
    from incidents.models import Supplier

    incident = declare_for(multilingual_customers[:1])
    incident_services.incident_update(
        incident=incident,
        actor=manager,
        changes={
            "sub_processor": Supplier.objects.create(name="Secretive Hosting BV", country="NL"),
            "sub_processor_details": "Their backup server in Rotterdam",
        },
    )
    withholding = withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="law_enforcement",
        requested_by="Politie Rotterdam, case 2026-4411",
        review_at=timezone.now() + timedelta(days=14),
    )

    _approve(incident, manager)
    deliveries_send_due()

    for received in smtp_server.received:
        raw = received.message.as_string()
        assert "Secretive Hosting" not in raw and "Rotterdam" not in raw and "Politie" not in raw
        assert "withheld" in received.text().lower() or received.message["Content-Language"] != "en"

    smtp_server.received.clear()
    withholding_release(withholding=withholding, actor=manager)
    update = _approve(incident, manager, kind="update")
    deliveries_send_due()

    assert update.changes == ["sub_processor"]
    english = _by_address(smtp_server)["bob@acme.example"]
    assert "Secretive Hosting BV (Netherlands): Their backup server in Rotterdam" in english.text()
    assert "Changed since our previous notice: Sub-processor or supplier involved" in english.text()


def test_html_escapes_every_value_and_subjects_stay_on_one_line(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(
        multilingual_customers[:1],
        title="x",
        nature_of_breach='<script>alert("x")</script>\r\nBcc: evil@example.com',
    )

    _approve(incident, manager)
    deliveries_send_due()

    english = _by_address(smtp_server)["bob@acme.example"]
    assert "<script>" not in english.html()
    assert "&lt;script&gt;" in english.html()
    assert "\n" not in english.message["Subject"] and "evil" not in str(english.message["Bcc"] or "")
    assert len(smtp_server.received) == 4 or len(smtp_server.received) == 2


def test_sending_meets_the_clocks_and_moves_the_incident_to_notified(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)

    _approve(incident, manager)
    deliveries_send_due()

    incident.refresh_from_db()
    assert incident.state == "notified"
    assert {c.status_at() for c in incident.clocks.all()} == {Clock.Status.MET}
    assert incident.audit_events.last().verb == "mark_notified"


def test_a_temporary_refusal_is_retried_until_it_goes_through(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers[1:2])
    smtp_server.refuse_temporarily = True

    _approve(incident, manager)
    report = deliveries_send_due()

    delivery = Delivery.objects.get()
    assert (report.retried, delivery.status, delivery.attempts) == (1, "pending", 1)
    assert delivery.last_error.startswith("451")
    assert smtp_server.received == []

    smtp_server.refuse_temporarily = False
    Delivery.objects.update(next_attempt_at=timezone.now())  # the backoff has passed
    deliveries_send_due()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(smtp_server.received) == 1


def test_a_permanent_refusal_fails_one_address_without_holding_up_the_others(
    smtp_server, declare_for, multilingual_customers, manager
):
    incident = declare_for(multilingual_customers)
    smtp_server.refuse_permanently = {"anna@acme.example"}

    _approve(incident, manager)
    report = deliveries_send_due()

    assert (report.sent, report.failed) == (3, 1)
    failed = Delivery.objects.get(status="failed")
    assert failed.address == "anna@acme.example" and failed.last_error.startswith("550")
    assert Clock.objects.get(customer__account_reference="ACME").met_at is not None  # Bob got it
    assert not Escalation.objects.filter(threshold="delivery_failed").exists()


def test_a_customer_whose_every_delivery_fails_escalates_and_can_be_acknowledged(
    smtp_server, declare_for, multilingual_customers, manager
):
    from notifications.services import deliveries_acknowledge_failure

    incident = declare_for(multilingual_customers[1:3])
    smtp_server.refuse_permanently = {"claire@dupont.example"}
    _approve(incident, manager)
    deliveries_send_due()

    incident.refresh_from_db()
    assert incident.state == "declared"  # Dupont is not notified
    assert Escalation.objects.get(threshold="delivery_failed").clock.customer_reference == "DUPONT"

    deliveries_acknowledge_failure(
        incident=incident,
        customer=multilingual_customers[1],
        actor=manager,
        reason="Address bounced; customer's account manager informed by phone.",
    )

    incident.refresh_from_db()
    assert incident.state == "notified"


def test_a_declaration_rolled_back_after_queuing_sends_nothing(
    smtp_server, make_incident, multilingual_customers, manager, responder, django_capture_on_commit_callbacks
):
    from django.db import transaction

    incident = make_incident(state="triaged")
    incident_services.affected_customer_add(
        incident=incident, customer=multilingual_customers[0], actor=responder
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                declared = incident_services.incident_declare(
                    incident=incident, actor=manager, nature_of_breach="x"
                )
                _approve(declared, manager)
                raise RuntimeError("the request failed after queuing")

    assert callbacks == []
    assert not Notice.objects.exists() and not Delivery.objects.exists() and not Clock.objects.exists()
    assert deliveries_send_due().sent == 0
    assert smtp_server.received == []


def test_an_approved_notice_is_immutable(declare_for, multilingual_customers, manager):
    from incidents.exceptions import LifecycleConflict
    from notifications.services import notice_update_draft

    notice = _approve(declare_for(multilingual_customers[:1]), manager)

    with pytest.raises(LifecycleConflict):
        notice_update_draft(notice=notice, actor=manager, changes={"contact_point": "someone else"})
    notice.contact_point = "someone else"
    with pytest.raises(ValueError):
        notice.save()


def test_message_ids_are_deterministic_and_unique_per_contact(declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers)

    notice = _approve(incident, manager)

    ids = list(Delivery.objects.filter(notice=notice).values_list("message_id", "contact_id"))
    assert len({message_id for message_id, _ in ids}) == 4
    for message_id, contact_id in ids:
        assert message_id == f"<{incident.reference}.n1.c{contact_id}@localhost>"


def test_a_customer_with_a_delivery_on_its_way_cannot_be_written_off(
    declare_for, multilingual_customers, manager
):
    from incidents.exceptions import LifecycleConflict
    from notifications.services import deliveries_acknowledge_failure

    incident = declare_for(multilingual_customers[:1])
    _approve(incident, manager)

    with pytest.raises(LifecycleConflict):
        deliveries_acknowledge_failure(
            incident=incident, customer=multilingual_customers[0], actor=manager, reason="x"
        )
    assert incident.clocks.get().waived_at is None


def test_a_sender_with_a_backlog_wakes_one_more_sender(
    declare_for, multilingual_customers, manager, smtp_server, settings, monkeypatch, request
):
    """With more than a chunk due, the send task queues a second sender before it starts, so
    several worker processes share one notice; with a chunk or less it does not."""
    from config.celery import app
    from notifications import tasks

    woken = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: woken.append(task.name))
    app.conf.task_always_eager = False
    request.addfinalizer(lambda: setattr(app.conf, "task_always_eager", True))
    incident = declare_for(multilingual_customers)
    _approve(incident, manager)  # 4 deliveries due

    settings.NOTICE_SEND_CHUNK_SIZE = 3
    first = tasks.send_due_deliveries()
    settings.NOTICE_SEND_CHUNK_SIZE = 4
    _approve(incident, manager, kind="update")  # 4 more
    second = tasks.send_due_deliveries()

    assert woken == ["notifications.tasks.send_due_deliveries"]
    assert (first["sent"], second["sent"]) == (4, 4)
    assert len(smtp_server.received) == 8


@pytest.mark.postgresql
def test_the_planner_knows_the_deliveries_as_soon_as_they_are_created(
    declare_for, multilingual_customers, manager
):
    # notice_deliveries_create ends with ANALYZE of the delivery table: without statistics the
    # sender's first claims of a large fan-out were planned for an empty table (bench/fanout.py:
    # one-process send of 10,000 notices 25.2 s without, 16.3 s with).
    from django.db import connection

    incident = declare_for(multilingual_customers)

    notice = _approve(incident, manager)

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Delivery._meta.db_table])
        (estimated,) = cursor.fetchone()
    assert Delivery.objects.filter(notice=notice).count() == 4
    assert estimated == Delivery.objects.count()  # analysed: an exact count for a small table
