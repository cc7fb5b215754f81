"""The deadline scanner: escalations exactly once per clock and threshold, automatic initial
notices at the lead time, expired claims re-queued; a second scanner is harmless."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command

from notifications.models import Clock, Delivery, Escalation, Notice
from notifications.scanner import deadlines_scan
from tests.notifications.support import approve, run_delivery_worker

THRESHOLDS = [("48h", 48), ("24h", 24), ("12h", 12), ("6h", 6), ("1h", 1)]
MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock(declare_for, multilingual_customers, settings):
    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0  # escalations alone here
    incident = declare_for(multilingual_customers[:1])
    mail.outbox.clear()
    return incident.clocks.get()


def test_declaring_starts_one_clock_per_affected_customer_due_72_hours_later(
    declare_for, multilingual_customers
):
    incident = declare_for(multilingual_customers)

    clocks = list(incident.clocks.order_by("customer__account_reference"))
    assert [c.customer.account_reference for c in clocks] == ["ACME", "DUPONT", "YAMADA"]
    for clock in clocks:
        assert clock.starts_at == incident.declared_at
        assert clock.due_at - clock.starts_at == timedelta(hours=72)
        assert clock.status_at() == Clock.Status.OPEN


def test_a_customers_shorter_contractual_window_gives_an_earlier_deadline(
    declare_for, multilingual_customers
):
    acme = multilingual_customers[0]
    acme.notification_window_hours = 24
    acme.save()

    incident = declare_for([acme])

    assert incident.clocks.get().due_at == incident.declared_at + timedelta(hours=24)


@pytest.mark.parametrize(("threshold", "hours"), THRESHOLDS)
def test_each_threshold_fires_once_at_its_instant(clock, threshold, hours):
    instant = clock.due_at - timedelta(hours=hours)

    deadlines_scan(now=instant - MINUTE)
    assert not clock.escalations.filter(threshold=threshold).exists()

    deadlines_scan(now=instant)
    deadlines_scan(now=instant)
    deadlines_scan(now=instant + MINUTE)

    assert clock.escalations.filter(threshold=threshold).count() == 1


def test_overdue_fires_once_just_after_the_due_time(clock):
    deadlines_scan(now=clock.due_at)
    assert not clock.escalations.filter(threshold="overdue").exists()

    deadlines_scan(now=clock.due_at + MINUTE)
    deadlines_scan(now=clock.due_at + 2 * MINUTE)

    assert clock.escalations.filter(threshold="overdue").count() == 1
    assert clock.status_at(clock.due_at + MINUTE) == Clock.Status.OVERDUE


def test_escalations_email_the_owner_and_the_incident_managers_once(
    clock, manager, responder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deadlines_scan(now=clock.due_at - timedelta(hours=24))
        deadlines_scan(now=clock.due_at - timedelta(hours=24) + MINUTE)

    # 48h and 24h reached in one pass: only the most urgent is sent, one outbox row (and email)
    # per recipient.
    assert len(mail.outbox) == 2
    assert all("24 hours left" in m.subject for m in mail.outbox)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([manager.email, responder.email])
    assert list(clock.escalations.values_list("threshold", flat=True)) == ["48h", "24h"]


def test_a_met_clock_raises_nothing(clock):
    Clock.objects.filter(pk=clock.pk).update(met_at=clock.starts_at + timedelta(hours=1))

    deadlines_scan(now=clock.due_at + timedelta(hours=5))

    assert not Escalation.objects.exists()


def test_a_customer_without_deliverable_contact_escalates_at_once(declare_for, db):
    from incidents.models import Customer

    orphan = Customer.objects.create(name="No Contacts Ltd", account_reference="ORPHAN")

    incident = declare_for([orphan])

    escalation = Escalation.objects.get(clock__incident=incident)
    assert escalation.threshold == "no_contact"


@pytest.mark.parametrize("lead_hours", [6, 2])
def test_it_issues_the_initial_notice_at_the_lead_time(
    declare_for, multilingual_customers, settings, lead_hours
):
    settings.NOTICE_AUTO_SEND_LEAD_HOURS = lead_hours
    incident = declare_for(multilingual_customers)
    due = incident.clocks.first().due_at

    deadlines_scan(now=due - timedelta(hours=lead_hours) - MINUTE)
    assert not Notice.objects.filter(incident=incident).exists()

    deadlines_scan(now=due - timedelta(hours=lead_hours))
    report = deadlines_scan(now=due - timedelta(hours=lead_hours) + MINUTE)

    notice = Notice.objects.get(incident=incident)
    assert (notice.kind, notice.status, notice.is_automatic) == ("initial", "approved", True)
    assert report.notices_awaiting_deliveries == [notice.pk]  # a worker is queued for it
    assert run_delivery_worker() == 4
    assert Delivery.objects.filter(notice=notice).count() == 4


def test_zero_lead_time_disables_automatic_notices(declare_for, multilingual_customers, settings):
    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    incident = declare_for(multilingual_customers)

    deadlines_scan(now=incident.clocks.first().due_at - timedelta(minutes=5))

    assert not Notice.objects.exists()


def test_it_requeues_deliveries_whose_claim_expired(declare_for, multilingual_customers, manager, settings):
    from django.utils import timezone

    from notifications.services import notice_draft

    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    incident = declare_for(multilingual_customers)
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    now = timezone.now()
    Delivery.objects.update(status="sending", claimed_until=now - MINUTE, claim_token="dead-worker")

    report = deadlines_scan(now=now)

    assert report.requeued == 4
    assert report.deliveries_due
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}


def test_the_command_runs_one_pass(clock, capsys):
    call_command("check_deadlines")

    assert "escalations" in capsys.readouterr().out


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_scanners_at_once_record_and_send_each_escalation_once(
    declare_for, multilingual_customers, settings, manager
):
    """Two beat processes (or a beat and ``check_deadlines``) scanning the same instant: the
    unique constraint lets one record each escalation, and only the recorder emails it."""
    import threading

    from django.db import connection

    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    incident = declare_for(multilingual_customers)
    mail.outbox.clear()
    instant = incident.clocks.first().due_at - timedelta(hours=12)
    barrier = threading.Barrier(2)
    reports = []

    def scan():
        try:
            barrier.wait()
            reports.append(deadlines_scan(now=instant))
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert Escalation.objects.count() == 3 * 3  # 48h, 24h and 12h for each of the 3 clocks
    assert sum(report.escalations for report in reports) == 9
    # Each clock's 12-hour escalation once, one email per recipient (the manager and the owner).
    urgent = [m for m in mail.outbox if "12 hours left" in m.subject]
    assert len(urgent) == 3 * 2
    assert len({(m.subject, m.to[0]) for m in urgent}) == 3 * 2
    assert not [m for m in mail.outbox if "48 hours left" in m.subject or "24 hours left" in m.subject]
