"""Shared fixtures: personas (one user per group, an outsider, a superuser), data built
through the real services, and the rules for tests that need real servers.

Tests marked ``postgresql``, ``redis`` or ``browser`` skip with a stated reason when the server
is not there (a newcomer's laptop). With ``BREACHDESK_REQUIRE_ALL=1`` (CI), such a test fails
instead of skipping, so CI cannot go green without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

REQUIRE_ALL = os.environ.get("BREACHDESK_REQUIRE_ALL") == "1"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def shared_data_dir() -> Path:
    """The team's shared test data (``shared/data``, read-only): beside this checkout
    (``../shared``), else beside the local repository it was cloned from (a clean clone of
    ``/work/main`` made elsewhere). Returns the first candidate even when neither exists, so a
    test can name the path it looked for."""
    repository = Path(__file__).resolve().parents[1]
    candidates = [repository.parent / "shared" / "data"]
    origin = subprocess.run(
        ["git", "-C", str(repository), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and "://" not in origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    return next((candidate for candidate in candidates if candidate.is_dir()), candidates[0])


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under ``BREACHDESK_REQUIRE_ALL=1`` fail instead."""
    if REQUIRE_ALL:
        pytest.fail(f"BREACHDESK_REQUIRE_ALL=1 but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on 127.0.0.1 that the application sends to; yields its ``MailSink``
    (``.received``, ``.refuse_permanently``, ``.refuse_temporarily``)."""
    from notifications.mail_sink import MailSink

    yield from serve_mail_sink(settings, MailSink())


def serve_mail_sink(settings, sink):
    """Start ``sink`` (a ``MailSink``) on 127.0.0.1, point the default mailer at it, yield it
    and stop it afterwards: the body of a mail-server fixture."""
    from notifications.mail_sink import start_mail_sink

    controller = start_mail_sink(sink)
    settings.MAILERS = {
        "default": {
            "BACKEND": "incidents.mail.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 5},
        }
    }
    yield sink
    controller.stop()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Personas are created in most tests; the production hasher would cost ~0.3 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _second_factor_not_required(settings):
    """Tests log personas in with ``client.force_login`` (a password, no second factor); the
    sign-in tests (``tests/incidents/test_signin.py``) turn ``TWO_FACTOR_REQUIRED`` back on."""
    settings.TWO_FACTOR_REQUIRED = False


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in Django's cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def shared_redis_cache(settings):
    """Django's cache in the Redis of ``CELERY_BROKER_URL`` (as several server processes share
    it), under a key prefix of this test's own; cleared afterwards. For ``redis``-marked tests."""
    import time

    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CELERY_BROKER_URL"],
            "KEY_PREFIX": f"test-cache-{os.getpid()}-{time.time_ns()}",
        }
    }
    try:
        yield caches["default"]
    finally:
        caches["default"].clear()


@pytest.fixture(autouse=True, scope="session")
def _celery_tasks_run_in_process():
    """Tasks queued on commit run in the test process; tests that need a real worker start one
    and switch this off themselves."""
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


def _redis_reachable() -> bool:
    url = urlparse(os.environ.get("CELERY_BROKER_URL", ""))
    if url.scheme not in ("redis", "rediss"):
        return False
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _server_requirements(request):
    if request.node.get_closest_marker("postgresql"):
        from django.db import connection

        if connection.vendor != "postgresql":
            skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://... (runs in CI)")
    if request.node.get_closest_marker("redis") and not _redis_reachable():
        skip_or_fail("needs Redis: set CELERY_BROKER_URL=redis://... to a running server (runs in CI)")
    if request.node.get_closest_marker("browser") and not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; runs in CI)")


def ensure_groups() -> None:
    """Re-create what the data migrations created (role groups with their permissions, the
    stakeholder groups and playbooks) if a transactional test's flush removed it."""
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    if not Group.objects.filter(name="auditor").exists():
        importlib.import_module("incidents.migrations.0002_groups").create_groups(apps, None)
        importlib.import_module("incidents.migrations.0006_contact_readiness_permissions").grant(apps, None)
        importlib.import_module("incidents.migrations.0009_note_permissions").grant(apps, None)
        importlib.import_module("incidents.migrations.0012_share_incident_figures_permission").grant(
            apps, None
        )
        importlib.import_module("incidents.migrations.0016_evidence_files_and_merge").grant(apps, None)
        importlib.import_module("incidents.migrations.0017_webhooks").grant(apps, None)
        importlib.import_module("incidents.migrations.0015_need_to_know").grant(apps, None)
        importlib.import_module("notifications.migrations.0002_group_permissions").grant(apps, None)
        importlib.import_module("notifications.migrations.0006_outbox_email_permissions").grant(apps, None)
        importlib.import_module("notifications.migrations.0009_approved_notices_done_and_translators").grant(
            apps, None
        )
        importlib.import_module("triage.migrations.0002_group_permissions").grant(apps, None)
        importlib.import_module("triage.migrations.0003_seed_stakeholders_and_playbooks").seed(apps, None)
        importlib.import_module("postmortems.migrations.0003_post_mortem_roles").grant(apps, None)
        importlib.import_module("postmortems.migrations.0005_training_group_permissions").grant(apps, None)


def _user_in(django_user_model, username: str, group: str | None, **extra):
    from django.contrib.auth.models import Group

    ensure_groups()
    user = django_user_model.objects.create_user(
        username=username, email=f"{username}@breachdesk.test", password="correct horse battery", **extra
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    # A fresh instance: permission caches are per instance.
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def responder(db, django_user_model):
    return _user_in(django_user_model, "rita.responder", "responder")


@pytest.fixture
def manager(db, django_user_model):
    return _user_in(django_user_model, "max.manager", "incident_manager")


@pytest.fixture
def auditor(db, django_user_model):
    """An external auditor, whose account (like every auditor's) carries an expiry date."""
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import AccountExpiry

    user = _user_in(django_user_model, "aude.auditor", "auditor")
    AccountExpiry.objects.create(user=user, expires_at=timezone.now() + timedelta(days=90), note="Audit 2026")
    return user


@pytest.fixture
def outsider(db, django_user_model):
    return _user_in(django_user_model, "otto.outsider", None)


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser(
        username="sam.super", email="sam@breachdesk.test", password="correct horse battery"
    )


@pytest.fixture
def personas(responder, manager, auditor, outsider):
    """Every role by group name, plus ``outsider`` (a user in no group)."""
    return {
        "responder": responder,
        "incident_manager": manager,
        "auditor": auditor,
        "outsider": outsider,
    }


@pytest.fixture
def customer(db):
    from incidents.models import Contact, Customer

    customer = Customer.objects.create(
        name="Acme Logistics GmbH", account_reference="ACME-001", country="DE", preferred_language="de"
    )
    Contact.objects.create(customer=customer, name="Anna Admin", email="anna@acme.example", language="de")
    return customer


#: A complete post-mortem's findings, for tests that close incidents.
COMPLETE_POST_MORTEM = {
    "timeline_summary": "Detected the same day; customers notified within 24 hours.",
    "root_cause": "The payroll export had no recipient check.",
    "contributing_factors": "Autocomplete suggested a similar address.",
    "what_went_well": "The response was timely.",
    "what_did_not_go_well": "The recipient's deletion confirmation took two days.",
    "response_sufficient": True,
    "procedures_sufficient": False,
    "procedure_changes": "Add recipient checks to the payroll export procedure.",
}


def complete_post_mortem(incident, manager):
    """Record every finding of ``incident``'s post-mortem and complete it (through the services)."""
    from postmortems import services as postmortem_services

    postmortem_services.post_mortem_update(incident=incident, actor=manager, changes=COMPLETE_POST_MORTEM)
    return postmortem_services.post_mortem_complete(incident=incident, actor=manager)


@pytest.fixture
def make_incident(db, responder):
    """Build an incident through the services: ``make_incident(state="declared", **fields)``.

    Walks the real lifecycle to reach ``state`` (detected, triaged, declared, notified,
    post_mortem, closed, out_of_scope, customer_event) using the personas.
    """
    from django.contrib.auth.models import Group

    from incidents import services
    from incidents.models import Customer

    def build(state: str = "detected", **fields):
        manager = Group.objects.get(name="incident_manager").user_set.first()
        if manager is None:
            from django.contrib.auth import get_user_model

            manager = _user_in(get_user_model(), "mia.manager", "incident_manager")
        base = {"title": "Misdirected payroll email", "detection_source": "staff_escalation"}
        incident = services.incident_create(actor=responder, fields={**base, **fields})
        if state == "detected":
            return incident
        if state == "out_of_scope":
            return services.incident_rule_out_of_scope(
                incident=incident,
                actor=responder,
                out_of_scope_category="policy_question",
                scope_rationale="A question about our retention policy.",
            )
        if state == "customer_event":
            from django.utils import timezone

            return services.incident_classify_as_customer_event(
                incident=incident,
                actor=responder,
                scope_rationale="Customer emailed passwords to us.",
                customer_informed_at=timezone.now(),
            )
        incident = services.incident_triage(
            incident=incident, actor=responder, severity="medium", malicious="no"
        )
        if state == "triaged":
            return incident
        affected_customer, created = Customer.objects.get_or_create(
            account_reference="FIXTURE-001", defaults={"name": "Fixture Customer Ltd"}
        )
        if created:
            from incidents.models import Contact

            Contact.objects.create(
                customer=affected_customer, name="Fiona Fixture", email="fiona@fixture.example"
            )
        services.affected_customer_add(incident=incident, customer=affected_customer, actor=responder)
        incident = services.incident_declare(
            incident=incident, actor=manager, nature_of_breach="Payroll file emailed to a wrong recipient."
        )
        if state == "declared":
            return incident
        from django.utils import timezone

        from notifications.models import Clock

        Clock.objects.filter(incident=incident).update(met_at=timezone.now())
        incident = services.incident_mark_notified(incident=incident)
        if state == "notified":
            return incident
        incident = services.incident_begin_post_mortem(incident=incident, actor=manager)
        if state == "post_mortem":
            return incident
        complete_post_mortem(incident, manager)
        incident = services.incident_close(incident=incident, actor=manager)
        assert state == "closed", f"unknown state {state}"
        return incident

    return build


def signed_alert_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, Any]:
    """The headers a monitoring system sends with ``body`` (``incidents.intake``)."""
    import time

    from incidents.intake import signature_for

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "HTTP_X_BREACHDESK_TIMESTAMP": stamp,
        "HTTP_X_BREACHDESK_SIGNATURE": signature_for(secret=secret, timestamp=stamp, body=body),
    }


def intake_rows(user) -> None:
    """One row of each intake and API-access model, through the real paths: a signed alert
    (source, alert, thread), a customer report with its confirmation email, an API token, and
    an idempotent create (its record)."""
    import json
    from datetime import date, timedelta

    from rest_framework.test import APIClient

    from incidents.api.authentication import api_token_create
    from incidents.intake import alert_source_create, customer_report_submit

    _source, secret = alert_source_create(name="SIEM fixture")
    body = json.dumps(
        {"dedupe_key": "fixture-1", "title": "Malware beacon", "detected_at": "2026-01-01T00:00:00Z"}
    ).encode()
    client = APIClient()
    answer = client.post(
        "/api/intake/alerts/", body, content_type="application/json", **signed_alert_headers(secret, body)
    )
    assert answer.status_code == 201, answer.content
    customer_report_submit(
        organisation="Fixture Org",
        contact_email="reporter@fixture.example",
        description="A stranger's invoice arrived in our portal.",
        occurred_on=date(2026, 1, 1),
        ip_address="192.0.2.1",
    )
    api_token_create(user=user, name="fixture", lifetime=timedelta(days=1))
    client.force_login(user)
    created = client.post(
        "/api/customers/",
        {"name": "Idempotent Ltd", "account_reference": "IDEM-1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="fixture-key",
    )
    assert created.status_code == 201, created.content
    webhook_rows(user)


def webhook_rows(user) -> None:
    """One row of each webhook model through the real services: a subscriber (to a port where
    nothing listens), the event of an incident created, its delivery and one attempt (no
    answer: a retry)."""
    import socket

    from django.test import override_settings

    from incidents import services
    from incidents.webhook_sender import webhooks_send_due
    from incidents.webhooks import webhook_subscriber_create

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):
        webhook_subscriber_create(
            actor=user,
            name="Fixture receiver",
            url=f"http://127.0.0.1:{port}/",
            event_types=["incident.created"],
        )
        services.incident_create(
            actor=user, fields={"title": "Webhook fixture", "detection_source": "staff_escalation"}
        )
        webhooks_send_due()


def errors(response) -> dict:
    """The field errors of a 400 problem answer (RFC 9457, ``errors`` member); asserts the
    answer is a problem."""
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == response.status_code
    return body.get("errors", body)


def second_half_rows(make_incident, manager):
    """At least one row of every model of the post-mortems app, training included (and the read
    log and account expiry), built through the services where one exists. Returns the closed
    incident."""
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import AccountExpiry, ReadLogEntry
    from notifications.models import Notice
    from postmortems import services as postmortem_services
    from postmortems.models import ActionItemReminder, SummaryRelease

    incident = make_incident(state="post_mortem")
    postmortem_services.post_mortem_update(
        incident=incident,
        actor=manager,
        changes={
            **COMPLETE_POST_MORTEM,
            "customer_summary": [{"text": "We added recipient checks.", "finding": "procedure_changes"}],
        },
    )
    postmortem_services.post_mortem_complete(incident=incident, actor=manager)
    item = postmortem_services.action_item_create(incident=incident, actor=manager, description="Add checks")
    postmortem_services.action_item_update(
        item=item, actor=manager, changes={"status": "done", "resolution": "Shipped."}
    )
    ActionItemReminder.objects.create(action_item=item, kind="due", recipient=manager.email)
    from incidents import services

    incident = services.incident_close(incident=incident, actor=manager)
    services.note_add(incident=incident, actor=manager, text="Checked the mail gateway logs.")
    notice = Notice.objects.create(incident=incident, number=99, kind="final")
    SummaryRelease.objects.create(
        post_mortem=incident.post_mortem, notice=notice, post_mortem_version=2, text="x"
    )
    drill = make_incident(state="triaged", is_drill=True)
    postmortem_services.drill_record(
        incident=drill,
        actor=manager,
        scenario="A laptop with customer exports is lost on a train.",
        held_on=timezone.now().date(),
        participants=[{"function": "legal", "name": "Lena Legal"}],
    )
    ReadLogEntry.objects.create(user=manager, username=manager.username, path="/audit/")
    AccountExpiry.objects.create(user=manager, expires_at=timezone.now() + timedelta(days=30))
    # Training: a mandatory course (with its audit chain), one import and one completion.
    from postmortems.training import Completion, course_create, training_records_import

    course_create(
        actor=None,
        fields={
            "code": "DP-101",
            "name": "Data protection essentials",
            "is_mandatory": True,
            "validity_days": 365,
        },
    )
    training_records_import(
        completions=[Completion(2, "ann@staff.example", "DP-101", timezone.now() - timedelta(days=3), None)],
        file_name="lms.csv",
        file_sha256="0" * 64,
    )
    return incident
