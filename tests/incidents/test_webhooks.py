"""Outgoing webhooks (issue 10.5): a real HTTP receiver in the test verifies each signature with
the subscriber's secret; retries after a 500; withheld details never in a payload; each event
raised once per change; two senders never deliver twice (PostgreSQL); SSRF refusal; permissions
on every route."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookEventType
from incidents.webhook_sender import webhooks_send_due
from incidents.webhooks import (
    webhook_subscriber_create,
    webhook_subscriber_rotate_secret,
    webhook_subscriber_update,
)

ALL_TYPES = list(WebhookEventType.values)
SECRET_NATURE = "Ransomware group LockBit-X exfiltrated the payroll share."


class Receiver:
    """A real HTTP server on 127.0.0.1 (an ephemeral port): records every request and answers
    with the next status of ``answers`` (200 once they run out)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/breachdesk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver listens on 127.0.0.1
    server = Receiver()
    yield server
    server.stop()


def _subscribe(manager, receiver, event_types=None, name="SIEM"):
    return webhook_subscriber_create(
        actor=manager, name=name, url=receiver.url, event_types=event_types or ALL_TYPES
    )


def verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does (README "Webhooks"): check the timestamp and one v1 signature."""
    import time

    parts = [part.split("=", 1) for part in headers["Breachdesk-Signature"].split(",")]
    timestamp = next(value for key, value in parts if key == "t")
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")


# Delivery ------------------------------------------------------------------------------------


def test_it_delivers_a_signed_event_that_the_receiver_verifies(receiver, manager, make_incident):
    subscriber, secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    incident = make_incident(title="Lost laptop")

    report = webhooks_send_due()

    assert report.delivered == 1
    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert request["path"] == "/hooks/breachdesk"
    assert request["headers"]["Breachdesk-Event"] == "incident.created"
    assert request["headers"]["Breachdesk-Delivery"] == str(delivery.uuid)
    assert request["headers"]["Content-Type"] == "application/json"
    assert verify(secret, request["headers"], request["body"])
    assert not verify("bdwh_someone-else", request["headers"], request["body"])
    payload = json.loads(request["body"])
    assert payload["type"] == "incident.created"
    assert payload["id"] == str(delivery.event.uuid)
    assert payload["incident"]["id"] == incident.pk
    assert payload["incident"]["reference"] == incident.reference
    assert payload["incident"]["title"] == "Lost laptop"
    assert payload["incident"]["state"] == "detected"
    assert payload["incident"]["created_at"].endswith("Z")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    (attempt,) = WebhookAttempt.objects.filter(delivery=delivery)
    assert (attempt.status_code, attempt.outcome, attempt.number) == (200, "delivered", 1)
    assert attempt.duration >= timedelta(0)


def test_it_retries_after_a_500_and_then_delivers(receiver, manager, make_incident):
    subscriber, secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    receiver.answers = [500]

    first = webhooks_send_due()

    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert (first.delivered, first.retried) == (0, 1)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > timezone.now()  # backoff: not due at once
    assert webhooks_send_due().delivered == 0  # not due yet

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    second = webhooks_send_due()

    delivery.refresh_from_db()
    assert second.delivered == 1
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [attempt.outcome for attempt in delivery.attempts_made.all()] == ["retry", "delivered"]
    assert [request["headers"]["Breachdesk-Delivery"] for request in receiver.requests] == [
        str(delivery.uuid)
    ] * 2
    assert all(verify(secret, request["headers"], request["body"]) for request in receiver.requests)


@pytest.mark.parametrize(
    ("status", "outcome"), [(400, "failed"), (404, "failed"), (408, "pending"), (429, "pending")]
)
def test_it_fails_a_4xx_at_once_but_retries_408_and_429(receiver, manager, make_incident, status, outcome):
    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    receiver.answers = [status]

    webhooks_send_due()

    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert (delivery.status, delivery.last_status_code) == (outcome, status)


def test_it_fails_after_the_last_attempt(receiver, manager, make_incident, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0  # every retry due at once, so one run tries them all
    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    receiver.answers = [503, 502, 500, 200]

    report = webhooks_send_due()

    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert (report.retried, report.failed, report.delivered) == (2, 1, 0)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert len(receiver.requests) == 3


def test_it_retries_when_nothing_answers(receiver, manager, make_incident):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscriber, _secret = webhook_subscriber_create(
        actor=manager, name="Down", url=f"http://127.0.0.1:{port}/", event_types=ALL_TYPES
    )
    make_incident()

    assert webhooks_send_due().retried == 1

    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert "Connection" in delivery.last_error
    assert delivery.attempts_made.get().status_code is None


def test_it_signs_with_the_previous_secret_too_during_the_grace_period(receiver, manager, make_incident):
    subscriber, old = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    new = webhook_subscriber_rotate_secret(actor=manager, subscriber=subscriber, grace=timedelta(hours=2))
    make_incident()
    webhooks_send_due()
    webhook_subscriber_rotate_secret(actor=manager, subscriber=subscriber, grace=timedelta(0))
    subscriber.refresh_from_db()
    make_incident()
    webhooks_send_due()

    during, after = receiver.requests
    assert during["headers"]["Breachdesk-Signature"].count("v1=") == 2
    assert verify(new, during["headers"], during["body"]) and verify(old, during["headers"], during["body"])
    assert after["headers"]["Breachdesk-Signature"].count("v1=") == 1
    assert not verify(new, after["headers"], after["body"])  # rotated again without grace


def test_an_inactive_subscriber_gets_no_new_events(receiver, manager, make_incident):
    subscriber, _secret = _subscribe(manager, receiver)
    webhook_subscriber_update(actor=manager, subscriber=subscriber, changes={"is_active": False})

    make_incident()

    assert not WebhookDelivery.objects.exists() and not WebhookEvent.objects.exists()


def test_the_scanner_requeues_an_expired_claim_and_wakes_the_sender(receiver, manager, make_incident):
    from notifications.scanner import deadlines_scan

    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    WebhookDelivery.objects.update(
        status="sending", claim_token="dead", claimed_until=timezone.now() - timedelta(seconds=1)
    )

    report = deadlines_scan()

    assert report.webhooks_requeued == 1 and report.webhooks_due
    assert webhooks_send_due().delivered == 1
    assert WebhookDelivery.objects.get(subscriber=subscriber).status == "delivered"


# Payloads ------------------------------------------------------------------------------------


def _withhold(incident, manager, field="nature_of_breach"):
    from notifications.services import withholding_create

    return withholding_create(
        incident=incident,
        actor=manager,
        field=field,
        reason="law_enforcement",
        requested_by="Police case 2026-17",
        review_at=timezone.now() + timedelta(days=14),
    )


def test_it_never_puts_a_withheld_detail_in_a_payload(receiver, manager, make_incident):
    from incidents.services import incident_declare

    _subscribe(manager, receiver, [WebhookEventType.INCIDENT_DECLARED])
    incident = make_incident(
        state="triaged",
        exposure_started_at=timezone.now() - timedelta(days=3),
        exposure_ended_at=timezone.now() - timedelta(days=2),
    )
    from incidents.models import Customer
    from incidents.services import affected_customer_add

    affected_customer_add(
        incident=incident,
        customer=Customer.objects.create(name="Initech", account_reference="INI"),
        actor=manager,
    )
    _withhold(incident, manager, "nature_of_breach")
    _withhold(incident, manager, "exposure_duration")

    incident_declare(incident=incident, actor=manager, nature_of_breach=SECRET_NATURE)
    webhooks_send_due()

    (request,) = receiver.requests
    assert b"LockBit" not in request["body"]
    assert WebhookEvent.objects.filter(payload__icontains="LockBit").count() == 0
    sent = json.loads(request["body"])["incident"]
    assert "nature_of_breach" not in sent
    assert "exposure_started_at" not in sent and "exposure_ended_at" not in sent
    assert sent["details_withheld"] is True
    assert sent["state"] == "declared" and sent["declared_at"]


def test_a_detail_withheld_after_the_event_is_left_out_when_it_is_sent(receiver, manager, make_incident):
    from incidents.services import incident_update

    _subscribe(manager, receiver, [WebhookEventType.INCIDENT_DECLARED])
    incident = make_incident(state="declared")
    incident_update(incident=incident, actor=manager, changes={"nature_of_breach": SECRET_NATURE})
    event = WebhookEvent.objects.get(type="incident.declared")
    assert "nature_of_breach" in event.payload["incident"]  # not withheld when raised

    _withhold(incident, manager)
    webhooks_send_due()

    (request,) = receiver.requests
    assert b"nature_of_breach" not in request["body"]
    assert json.loads(request["body"])["incident"]["details_withheld"] is True


def test_without_a_withholding_hook_every_withholdable_fact_is_left_out(
    receiver, manager, make_incident, settings
):
    settings.WEBHOOK_WITHHELD_FIELDS_HOOK = ""
    _subscribe(manager, receiver, [WebhookEventType.INCIDENT_DECLARED])

    make_incident(state="declared")

    payload = WebhookEvent.objects.get().payload["incident"]
    assert "nature_of_breach" not in payload and "products_involved" not in payload
    assert payload["details_withheld"] is True


# Events --------------------------------------------------------------------------------------


def test_it_raises_each_lifecycle_event_once_per_change(receiver, manager, make_incident):
    _subscribe(manager, receiver)
    _subscribe(manager, receiver, [WebhookEventType.INCIDENT_DECLARED], name="Ticketing")

    incident = make_incident(state="closed")

    types = list(WebhookEvent.objects.filter(incident=incident).order_by("id").values_list("type", flat=True))
    assert types == [
        "incident.created",
        "incident.triaged",
        "incident.declared",
        "incident.notified",
        "incident.closed",
    ]
    declared = WebhookEvent.objects.get(type="incident.declared")
    assert declared.deliveries.count() == 2  # one per subscriber of that type
    assert WebhookDelivery.objects.count() == 6
    assert webhooks_send_due().delivered == 6
    assert [json.loads(r["body"])["type"] for r in receiver.requests].count("incident.declared") == 2


def test_a_rolled_back_change_raises_no_event(receiver, manager, make_incident):
    from incidents.services import incident_triage

    _subscribe(manager, receiver)
    incident = make_incident()
    with pytest.raises(RuntimeError), transaction.atomic():
        incident_triage(incident=incident, actor=manager, severity="high", malicious="yes")
        raise RuntimeError("the request failed after the triage")

    assert not WebhookEvent.objects.filter(type="incident.triaged").exists()


def test_it_raises_escalation_and_failed_delivery_once_without_contact_details(
    receiver, manager, make_incident, smtp_server
):
    from notifications.models import Clock, Escalation
    from notifications.sender import outbox_send_due
    from notifications.services import escalation_raise, notice_draft
    from tests.notifications.support import approve

    _subscribe(manager, receiver, [WebhookEventType.ESCALATION_RAISED, WebhookEventType.DELIVERY_FAILED])
    incident = make_incident(state="declared")
    clock = Clock.objects.get(incident=incident)
    assert escalation_raise(clock=clock, threshold=Escalation.Threshold.HOURS_48) is not None
    assert escalation_raise(clock=clock, threshold=Escalation.Threshold.HOURS_48) is None  # recorded once
    smtp_server.refuse_permanently.add("fiona@fixture.example")
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)

    assert outbox_send_due().failed == 1

    events = WebhookEvent.objects.filter(incident=incident).order_by("id")
    assert [event.type for event in events] == ["escalation.raised", "delivery.failed", "escalation.raised"]
    failed = events[1].payload["data"]
    assert failed["customer"]["name"] == "Fixture Customer Ltd"
    assert failed["notice"]["number"] == 1
    assert events[2].payload["data"]["escalation"]["threshold"] == Escalation.Threshold.DELIVERY_FAILED
    webhooks_send_due()
    bodies = b"".join(request["body"] for request in receiver.requests)
    assert len(receiver.requests) == 3
    assert b"fiona" not in bodies.lower() and b"Fiona" not in bodies


# Concurrency -----------------------------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_never_deliver_twice(receiver, manager, make_incident, monkeypatch, settings):
    monkeypatch.setattr("incidents.webhooks.enqueue", lambda *args: True)  # no in-process sender
    settings.WEBHOOK_SEND_CHUNK_SIZE = 3
    for number in range(4):
        _subscribe(manager, receiver, name=f"Receiver {number}")
    for _ in range(5):
        make_incident(state="triaged")
    assert WebhookDelivery.objects.filter(status="pending").count() == 40
    barrier = threading.Barrier(2)
    reports = []

    def send():
        try:
            barrier.wait()
            reports.append(webhooks_send_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    ids = [request["headers"]["Breachdesk-Delivery"] for request in receiver.requests]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert sum(report.delivered for report in reports) == 40
    assert WebhookDelivery.objects.filter(status="delivered", attempts=1).count() == 40


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_declarations_raise_one_event(receiver, manager, make_incident, monkeypatch):
    from incidents.models import Customer
    from incidents.services import affected_customer_add, incident_declare

    monkeypatch.setattr("incidents.webhooks.enqueue", lambda *args: True)
    _subscribe(manager, receiver, [WebhookEventType.INCIDENT_DECLARED])
    incident = make_incident(state="triaged")
    affected_customer_add(
        incident=incident,
        customer=Customer.objects.create(name="Initech", account_reference="INI-2"),
        actor=manager,
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def declare():
        try:
            barrier.wait()
            incident_declare(
                incident=incident, actor=manager, nature_of_breach="Exported by an unknown party."
            )
            outcomes.append("declared")
        except Exception as error:  # noqa: BLE001 - the test counts the refusal
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=declare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["TransitionNotAvailable", "declared"]
    assert WebhookEvent.objects.filter(type="incident.declared").count() == 1
    assert WebhookDelivery.objects.count() == 1


def test_an_unchanged_url_is_not_resolved_again(receiver, manager, monkeypatch):
    subscriber, _secret = _subscribe(manager, receiver)

    def unreachable(*args, **kwargs):
        raise OSError("DNS is down")

    monkeypatch.setattr("incidents.webhooks.socket.getaddrinfo", unreachable)
    renamed = webhook_subscriber_update(
        actor=manager, subscriber=subscriber, changes={"name": "SIEM (EU)", "url": receiver.url}
    )

    assert renamed.name == "SIEM (EU)"
    with pytest.raises(ValidationError):
        webhook_subscriber_update(actor=manager, subscriber=subscriber, changes={"url": receiver.url + "/v2"})


# Server-side request forgery -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://0.0.0.0/hook",
        "http://203.0.113.7/hook",  # plain http outside DEBUG
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_it_refuses_a_private_or_unsafe_url(manager, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.DEBUG = False

    with pytest.raises(ValidationError) as refused:
        webhook_subscriber_create(actor=manager, name="Internal", url=url, event_types=ALL_TYPES)

    assert "url" in refused.value.message_dict


def test_it_refuses_at_send_time_an_address_that_became_private(receiver, manager, make_incident, settings):
    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False  # as if the name now resolved to 127.0.0.1
    settings.DEBUG = True  # http stays allowed: the refusal is the address's

    assert webhooks_send_due().failed == 1

    delivery = WebhookDelivery.objects.get(subscriber=subscriber)
    assert delivery.status == "failed" and "private" in delivery.last_error
    assert receiver.requests == []


def _self_signed(tmp_path):
    """A certificate for ``localhost`` (and its key), written as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_it_verifies_the_certificate_for_the_urls_host_over_https(
    receiver, manager, make_incident, tmp_path, monkeypatch
):
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]
    subscriber, secret = webhook_subscriber_create(
        actor=manager, name="TLS", url=f"https://localhost:{port}/hook", event_types=ALL_TYPES
    )
    make_incident()

    assert webhooks_send_due().retried == 1  # a certificate nobody trusts: no request made
    assert "CERTIFICATE_VERIFY_FAILED" in WebhookDelivery.objects.get().last_error
    assert receiver.requests == []

    trusting = ssl.create_default_context
    monkeypatch.setattr(
        "incidents.webhook_sender.ssl.create_default_context", lambda: trusting(cafile=str(cert_file))
    )
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert webhooks_send_due().delivered == 1

    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"localhost:{port}"
    assert verify(secret, request["headers"], request["body"])


# Permissions -----------------------------------------------------------------------------------


def _api(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_only_incident_managers_register_subscribers_through_the_api(receiver, personas):
    body = {"name": "SIEM", "url": receiver.url, "event_types": ["incident.declared"]}

    created = _api(personas["incident_manager"]).post("/api/webhooks/subscribers/", body, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["secret"].startswith("bdwh_")
    pk = created.json()["id"]
    listed = _api(personas["auditor"]).get("/api/webhooks/subscribers/")
    assert listed.status_code == 200 and "secret" not in listed.json()["results"][0]
    for persona in ("auditor", "responder", "outsider"):
        assert (
            _api(personas[persona]).post("/api/webhooks/subscribers/", body, format="json").status_code == 403
        )
        patched = _api(personas[persona]).patch(
            f"/api/webhooks/subscribers/{pk}/", {"is_active": False}, format="json"
        )
        assert patched.status_code == (403 if persona == "auditor" else 404)
        rotated = _api(personas[persona]).post(
            f"/api/webhooks/subscribers/{pk}/rotate-secret/", {}, format="json"
        )
        assert rotated.status_code == (403 if persona == "auditor" else 404)
    for persona in ("responder", "outsider"):
        assert _api(personas[persona]).get("/api/webhooks/subscribers/").status_code == 403
        assert _api(personas[persona]).get(f"/api/webhooks/subscribers/{pk}/").status_code == 404
        assert _api(personas[persona]).get(f"/api/webhooks/subscribers/{pk}/deliveries/").status_code == 404
    assert APIClient().get("/api/webhooks/subscribers/").status_code in (401, 403)
    deactivated = _api(personas["incident_manager"]).patch(
        f"/api/webhooks/subscribers/{pk}/", {"is_active": False}, format="json"
    )
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False


def test_the_api_answers_bad_subscribers_with_400(receiver, manager, settings):
    client = _api(manager)
    for body in (
        {"name": "A", "url": receiver.url, "event_types": ["incident.exploded"]},
        {"name": "A", "url": receiver.url, "event_types": []},
        {"name": " ", "url": receiver.url, "event_types": ["incident.created"]},
        {"name": "A", "url": "not a url", "event_types": ["incident.created"]},
        {"name": "A", "url": receiver.url, "event_types": ["incident.created"], "secret": "mine"},
    ):
        assert client.post("/api/webhooks/subscribers/", body, format="json").status_code == 400, body
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    refused = client.post(
        "/api/webhooks/subscribers/",
        {"name": "A", "url": "https://169.254.169.254/", "event_types": ["incident.created"]},
        format="json",
    )
    assert refused.status_code == 400 and "url" in refused.content.decode()


def test_auditors_read_the_delivery_log_and_only_managers_redeliver(receiver, personas, make_incident):
    manager = personas["incident_manager"]
    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    receiver.answers = [410]
    webhooks_send_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    log_url = f"/api/webhooks/subscribers/{subscriber.pk}/deliveries/"
    redeliver_url = f"{log_url}{delivery.pk}/redeliver/"

    log = _api(personas["auditor"]).get(log_url)
    assert log.status_code == 200
    (entry,) = log.json()["results"]
    assert entry["id"] == str(delivery.uuid) and entry["status"] == "failed"
    assert entry["attempt_log"][0]["status_code"] == 410
    assert _api(personas["auditor"]).post(redeliver_url).status_code == 403
    assert _api(personas["responder"]).post(redeliver_url).status_code == 404

    again = _api(manager).post(redeliver_url)

    assert again.status_code == 200 and again.json()["status"] == "pending"
    webhooks_send_due()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [request["headers"]["Breachdesk-Delivery"] for request in receiver.requests] == [
        str(delivery.uuid)
    ] * 2
    assert _api(manager).post(redeliver_url).status_code == 409  # delivered: nothing to send again


def test_the_pages_check_permissions_on_every_route(receiver, personas, make_incident, client):
    manager = personas["incident_manager"]
    subscriber, _secret = _subscribe(manager, receiver, [WebhookEventType.INCIDENT_CREATED])
    make_incident()
    receiver.answers = [400]
    webhooks_send_due()
    delivery = WebhookDelivery.objects.get()
    base = f"/webhooks/{subscriber.pk}/"
    writes = [
        "/webhooks/new/",
        base,
        f"{base}deactivate/",
        f"{base}rotate-secret/",
        f"{base}deliveries/{delivery.pk}/redeliver/",
    ]

    client.force_login(personas["auditor"])
    assert client.get("/webhooks/").status_code == 200
    page = client.get(base)
    assert page.status_code == 200 and str(delivery.uuid) in page.content.decode()
    assert "Send again" not in page.content.decode()
    for url in writes:
        assert client.post(url, {"grace_hours": 0}).status_code == 403, url
    for persona in ("responder", "outsider"):
        client.force_login(personas[persona])
        assert client.get("/webhooks/").status_code == 403
        assert client.get(base).status_code == 404
        assert client.get("/webhooks/new/").status_code == 403
        for url in writes[1:]:
            assert client.post(url, {"grace_hours": 0}).status_code == 404, url

    client.force_login(manager)
    assert "Send again" in client.get(base).content.decode()
    new = client.post(
        "/webhooks/new/",
        {"name": "Ticketing", "url": receiver.url, "event_types": ["incident.closed"], "is_active": "on"},
    )
    assert new.status_code == 200 and "bdwh_" in new.content.decode()
    bad = client.post(
        "/webhooks/new/", {"name": "Ticketing", "url": receiver.url, "event_types": ["incident.closed"]}
    )
    assert bad.status_code == 400  # the name is taken
    assert client.post(f"{base}deliveries/{delivery.pk}/redeliver/").status_code == 302
    assert WebhookDelivery.objects.get().status == "pending"
    assert client.post(f"{base}deactivate/").status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.is_active is False


# The demo -----------------------------------------------------------------------------------


def test_the_demo_subscriber_is_registered_once_and_its_receiver_verifies_it(
    receiver, manager, make_incident, settings, tmp_path, monkeypatch
):
    from django.core.management import call_command

    from incidents.management.commands.run_webhook_receiver import signature_verifies
    from incidents.models import WebhookSubscriber

    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("WEBHOOK_DEMO_RECEIVER_URL", receiver.url)
    call_command("seed_demo_webhooks")
    call_command("seed_demo_webhooks")
    assert WebhookSubscriber.objects.filter(name="Demo receiver").count() == 1
    secret = (tmp_path / "demo-webhook-secret").read_text().strip()

    make_incident()
    webhooks_send_due()

    (request,) = receiver.requests
    assert signature_verifies(secret, request["headers"]["Breachdesk-Signature"], request["body"])
    assert not signature_verifies(secret, request["headers"]["Breachdesk-Signature"], request["body"] + b" ")


def test_without_private_addresses_the_demo_registers_no_subscriber(db, settings):
    from django.core.management import call_command

    from incidents.models import WebhookSubscriber

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    call_command("seed_demo_webhooks")

    assert not WebhookSubscriber.objects.exists()
