"""Two people declaring the same incident at once: one succeeds, the other gets a conflict, and
the side effects (audit event, declaration alert) happen once. Needs PostgreSQL's row locks and
real concurrent connections."""

import threading

import pytest
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from incidents.models import AuditEvent


def _in_parallel(*calls):
    """Run each call in its own thread (own database connection), started together; return
    their results (or the exception raised) in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_it_lets_exactly_one_of_two_simultaneous_declarations_through(make_incident, manager, attempt):
    incident = make_incident(state="triaged")
    from incidents.models import Customer
    from incidents.services import affected_customer_add

    affected_customer_add(
        incident=incident,
        customer=Customer.objects.create(name="Initech", account_reference="INI-1"),
        actor=manager,
    )
    mail.outbox.clear()
    url = f"/api/incidents/{incident.pk}/transitions/declare/"
    body = {"nature_of_breach": "Customer database exported by an unknown party."}

    def declare():
        client = APIClient()
        client.force_login(manager)
        return client.post(url, body, format="json").status_code

    statuses = _in_parallel(declare, declare)

    assert sorted(statuses) == [200, 409]
    assert AuditEvent.objects.filter(incident=incident, verb="declare").count() == 1
    # One declaration, so one alert per recipient (the manager and the owner), each once.
    alerts = [m for m in mail.outbox if "declared" in m.subject]
    assert sorted(m.to[0] for m in alerts) == sorted([manager.email, incident.owner.email])
    assert len({m.extra_headers["Message-ID"] for m in alerts}) == 2
    incident.refresh_from_db()
    assert incident.state == "declared"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_unbroken_chain(make_incident, responder):
    """Edits racing on one incident serialise on its row lock, so the chain never forks."""
    from incidents.audit import verify_chain
    from incidents.services import incident_update

    incident = make_incident()

    def edit(value):
        return lambda: incident_update(
            incident=incident, actor=responder, changes={"records_affected": value}
        )

    results = _in_parallel(*(edit(n) for n in range(1, 7)))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert incident.audit_events.count() == 7
    assert verify_chain(incident_ids=[incident.pk]) == []
