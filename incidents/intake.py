"""Intake from machines and customers: signed alerts that deduplicate, and customer reports.

Signed alerts (``POST /api/intake/alerts/``)
    A monitoring system signs each request with its source's secret::

        X-Breachdesk-Timestamp: 1767225600                 (Unix seconds, UTC)
        X-Breachdesk-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">

    ``alert_source_verify`` finds the source whose current secret (or previous secret, during
    the grace period after a rotation) produced the signature, refusing a timestamp more than
    ``ALERT_SIGNATURE_TOLERANCE_SECONDS`` (300) from now. ``alert_receive`` then opens an
    incident, or attaches the alert to the open incident of the same (source, dedupe key);
    the same signed request accepted twice is a replay (refused by a unique fingerprint).

Customer reports (``/report/``)
    ``customer_report_submit`` records a ``detected`` incident from source
    ``customer_report``, a ``CustomerReport`` with a random reference, and the confirmation
    email as an ``OutgoingEmail`` row (sent by ``incidents.outbox``), in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from incidents.addresses import header_text
from incidents.exceptions import AlertRefused, ReportThrottled
from incidents.models import Alert, AlertSource, AlertThread, CustomerReport, Incident, OutgoingEmail
from incidents.services import FINAL_STATES, incident_create
from incidents.statements import CompiledQuery, insert_instance

SIGNATURE_HEADER = "X-Breachdesk-Signature"
TIMESTAMP_HEADER = "X-Breachdesk-Timestamp"

# Alert sources' secrets ---------------------------------------------------------------------


def _fernet(key: str) -> Fernet:
    derived = hashlib.sha256(b"breachdesk alert source secrets\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def secret_box() -> MultiFernet:
    """Encrypts alert-source secrets with a key derived from ``SECRET_KEY``; decrypts with it
    or any of ``SECRET_KEY_FALLBACKS`` (so rotating ``SECRET_KEY`` keeps sources working while
    the old key is listed there)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def alert_source_create(*, name: str) -> tuple[AlertSource, str]:
    """Create an alert source named ``name``; return it and its secret (shown once, never
    stored in clear or logged). Raises ``ValueError`` for a blank or taken name."""
    name = name.strip()
    if not name:
        raise ValueError("An alert source needs a name.")
    if AlertSource.objects.filter(name=name).exists():
        raise ValueError(f"An alert source named {name!r} exists already.")
    secret = _new_secret()
    source = AlertSource.objects.create(
        name=name, secret_encrypted=secret_box().encrypt(secret.encode()).decode()
    )
    return source, secret


def alert_source_rotate(*, source: AlertSource, grace: timedelta) -> str:
    """Give ``source`` a new secret and return it; the current one keeps verifying for
    ``grace`` (``timedelta(0)``: at once invalid). Raises ``ValueError`` for a negative grace."""
    if grace < timedelta(0):
        raise ValueError("The grace period cannot be negative.")
    secret = _new_secret()
    now = timezone.now()
    with transaction.atomic():
        locked = AlertSource.objects.select_for_update().get(pk=source.pk)
        locked.previous_secret_encrypted = locked.secret_encrypted
        locked.previous_secret_expires_at = now + grace
        locked.secret_encrypted = secret_box().encrypt(secret.encode()).decode()
        locked.rotated_at = now
        locked.save()
    return secret


#: (encrypted secret, encrypted previous secret) -> both decrypted, so each request does not
#: decrypt again (a rotation changes the key, so the cache never serves an old pair).
_secrets_cache: dict[tuple[str, str], tuple[bytes, bytes | None]] = {}


def _secrets(source: AlertSource) -> tuple[bytes, bytes | None]:
    cache_key = (source.secret_encrypted, source.previous_secret_encrypted)
    cached = _secrets_cache.get(cache_key)
    if cached is None:
        box = secret_box()
        try:
            current = box.decrypt(source.secret_encrypted.encode())
            previous = (
                box.decrypt(source.previous_secret_encrypted.encode())
                if source.previous_secret_encrypted
                else None
            )
        except InvalidToken:
            # SECRET_KEY changed without the old one in SECRET_KEY_FALLBACKS: rotate the source.
            return b"", None
        cached = _secrets_cache[cache_key] = (current, previous)
    return cached


def signature_for(*, secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Breachdesk-Signature`` value for ``body`` sent at ``timestamp``:
    ``sha256=`` + hex HMAC-SHA256 over ``<timestamp>.<body>`` (what a sender computes)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


#: The active alert sources, read on every alert: compiled once (``incidents.statements``),
#: run anew each time (a source deactivated or rotated counts from the next alert on).
_active_sources = CompiledQuery(lambda: AlertSource.objects.filter(is_active=True))


def alert_source_verify(
    *, timestamp: str | None, signature: str | None, body: bytes
) -> tuple[AlertSource, str]:
    """The active source whose secret signed ``body``, and the request's replay fingerprint.

    Raises ``AlertRefused`` (401): ``bad_signature`` for missing or malformed headers or a
    signature no active source's secret produced (a previous secret counts until its grace
    period ends); ``stale_timestamp`` for a timestamp more than
    ``ALERT_SIGNATURE_TOLERANCE_SECONDS`` away from now (either way).
    """
    if not timestamp or not signature:
        raise AlertRefused(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required.", code="bad_signature")
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise AlertRefused(f"{TIMESTAMP_HEADER} must be Unix seconds.", code="bad_signature")
    if abs(timezone.now().timestamp() - int(timestamp)) > settings.ALERT_SIGNATURE_TOLERANCE_SECONDS:
        raise AlertRefused(
            f"{TIMESTAMP_HEADER} is more than {settings.ALERT_SIGNATURE_TOLERANCE_SECONDS} seconds from now; "
            "sign the request again with the current time.",
            code="stale_timestamp",
        )
    if not signature.startswith("sha256=") or len(signature) != 71:
        raise AlertRefused(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>.", code="bad_signature")
    now = timezone.now()
    given = signature.encode()
    for source in _active_sources.run():
        current, previous = _secrets(source)
        candidates = [current]
        if previous and source.previous_secret_expires_at and now < source.previous_secret_expires_at:
            candidates.append(previous)
        for secret in candidates:
            if secret and hmac.compare_digest(
                signature_for(secret=secret, timestamp=timestamp, body=body).encode(), given
            ):
                fingerprint = hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()
                return source, fingerprint
    raise AlertRefused("The signature does not match any alert source's secret.", code="bad_signature")


# Receiving alerts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertOutcome:
    """What ``alert_receive`` did: the stored ``alert``, its ``incident``, whether the alert
    opened that incident (``opened``) and how many alerts it has had (``alert_count``)."""

    alert: Alert
    incident: Incident
    opened: bool
    alert_count: int


#: The (source, dedupe key) thread under a row lock, with its incident's state and reference:
#: compiled once (``incidents.statements``; the ORM compiling it was a sixth of an alert's CPU).
_thread_of = CompiledQuery(
    lambda source_id, dedupe_key: (
        AlertThread.objects.select_for_update(of=("self",))
        .select_related("incident")
        .only("id", "alert_count", "incident__id", "incident__state", "incident__reference")
        .filter(source_id=source_id, dedupe_key=dedupe_key)
        .order_by("pk")[:1]
    ),
    names=("dedupe_key",),
    integers=("source_id",),
)


def _receive_once(
    *,
    source: AlertSource,
    fingerprint: str,
    dedupe_key: str,
    title: str,
    detected_at: datetime,
    summary: str,
    details: Any,
) -> AlertOutcome:
    now = timezone.now()
    with transaction.atomic():
        found = _thread_of.run(source_id=source.pk, dedupe_key=dedupe_key)
        thread = found[0] if found else None
        opened = thread is None or thread.incident.state in FINAL_STATES
        if opened:
            incident = incident_create(
                actor=None,
                fields={
                    "title": title,
                    "summary": summary,
                    "detection_source": Incident.DetectionSource.AUTOMATED_ALERT,
                    "detected_at": detected_at,
                    "reported_by": f"Alert source {source.name}",
                },
                source_record={"alert_source": source.name, "dedupe_key": dedupe_key, "details": details},
                audit_data={"alert_source": source.name, "dedupe_key": dedupe_key},
            )
            if thread is None:
                # A concurrent first alert of this key makes this INSERT fail; the caller retries.
                thread = AlertThread(
                    source=source, dedupe_key=dedupe_key, incident=incident, last_alert_at=now
                )
                insert_instance(thread)
            else:
                thread.incident = incident
                thread.alert_count = 1
                thread.last_alert_at = now
                thread.save(update_fields=["incident", "alert_count", "last_alert_at"])
        else:
            assert thread is not None  # not opened: there is a thread with an open incident
            incident = thread.incident
            thread.alert_count += 1
            AlertThread.objects.filter(pk=thread.pk).update(alert_count=thread.alert_count, last_alert_at=now)
        alert = Alert(
            source=source,
            dedupe_key=dedupe_key,
            incident=incident,
            opened_incident=opened,
            title=title,
            summary=summary,
            details=details,
            detected_at=detected_at,
            received_at=now,
            replay_key=fingerprint,
        )
        insert_instance(alert)  # one INSERT compiled once (a replay's unique key refuses it)
    count = thread.alert_count if thread is not None else 1
    return AlertOutcome(alert=alert, incident=incident, opened=opened, alert_count=count)


def alert_receive(
    *,
    source: AlertSource,
    fingerprint: str,
    dedupe_key: str,
    title: str,
    detected_at: datetime,
    summary: str = "",
    details: Any = None,
) -> AlertOutcome:
    """Take in one verified alert and return what happened (``AlertOutcome``).

    If ``source`` has an open incident for ``dedupe_key`` (not closed, ruled out of scope or a
    customer-driven event), the alert attaches to it; otherwise a ``detected`` incident from
    source ``automated_alert`` is created (actor: the system; audited with the source and
    key). Two alerts with one key at the same moment open one incident: the (source, key)
    row is locked, and a lost race for the first one is retried once. ``fingerprint``: from
    ``alert_source_verify``; raises ``AlertRefused`` (``replayed``) when this signed request
    was accepted before. ``ValidationError`` for bad incident values (a future instant).
    """
    arguments = {
        "source": source,
        "fingerprint": fingerprint,
        "dedupe_key": dedupe_key,
        "title": title,
        "detected_at": detected_at,
        "summary": summary,
        "details": details,
    }
    for attempt in range(2):
        try:
            return _receive_once(**arguments)
        except IntegrityError:
            if Alert.objects.filter(source=source, replay_key=fingerprint).exists():
                raise AlertRefused(
                    "This signed request was accepted before (a replay).", code="replayed"
                ) from None
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# Customer reports ---------------------------------------------------------------------------

_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone


def new_report_reference() -> str:
    """``CR-XXXX-XXXX``: 40 random bits in an alphabet without look-alike characters."""
    characters = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(8))
    return f"CR-{characters[:4]}-{characters[4:]}"


def customer_report_submit(
    *,
    organisation: str,
    contact_email: str,
    description: str,
    occurred_on: date,
    ip_address: str | None,
    language: str = "en",
) -> CustomerReport:
    """Record a customer's report of suspicious activity and queue its confirmation email.

    In one transaction: a ``detected`` incident (source ``customer_report``, actor: the
    system, ``occurred_on`` with day precision), the ``CustomerReport`` with a fresh random
    reference, and an ``OutgoingEmail`` to ``contact_email`` in ``language`` (sent after
    commit by ``incidents.tasks.send_outgoing_emails``; the minute sweep finds it if the
    broker is down). Raises ``ReportThrottled`` when ``contact_email`` (case-insensitive) made
    ``REPORT_LIMIT_PER_EMAIL_PER_HOUR`` reports in the last hour or ``ip_address``
    ``REPORT_LIMIT_PER_IP_PER_HOUR``; ``ValidationError`` for a date in the future.
    """
    from config.celery import enqueue
    from incidents.tasks import send_outgoing_emails

    contact_email = contact_email.strip()
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    recent = CustomerReport.objects.filter(created_at__gte=hour_ago)
    if recent.filter(contact_email__iexact=contact_email).count() >= settings.REPORT_LIMIT_PER_EMAIL_PER_HOUR:
        raise ReportThrottled("Too many reports from this address in the last hour.")
    if ip_address and recent.filter(ip_address=ip_address).count() >= settings.REPORT_LIMIT_PER_IP_PER_HOUR:
        raise ReportThrottled("Too many reports from this network address in the last hour.")
    first_line = description.strip().splitlines()[0] if description.strip() else ""
    title = header_text(f"Customer report from {organisation}: {first_line}")
    with transaction.atomic():
        incident = incident_create(
            actor=None,
            fields={
                "title": title[:300],
                "summary": description,
                "detection_source": Incident.DetectionSource.CUSTOMER_REPORT,
                "detected_at": now,
                "occurred_on": occurred_on,
                "occurred_on_precision": Incident.DatePrecision.DAY,
                "reported_by": f"{organisation} <{contact_email}>"[:300],
            },
            audit_data={"customer_report": True},
        )
        report = CustomerReport.objects.create(
            reference=new_report_reference(),
            incident=incident,
            organisation=organisation,
            contact_email=contact_email,
            description=description,
            occurred_on=occurred_on,
            ip_address=ip_address,
            language=language,
            created_at=now,
        )
        context = {"report": report, "contact_point": settings.NOTICE_CONTACT_POINT}
        with translation.override(language):
            subject = " ".join(render_to_string("incidents/report/confirmation_subject.txt", context).split())
            body = render_to_string("incidents/report/confirmation_body.txt", context)
        domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "localhost"
        OutgoingEmail.objects.create(
            kind="customer_report_confirmation",
            to_address=contact_email,
            language=language,
            subject=subject[:300],
            body_text=body,
            message_id=f"<report-{report.reference.lower()}@{domain}>",
        )
        transaction.on_commit(lambda: enqueue(send_outgoing_emails), robust=True)
    return report
