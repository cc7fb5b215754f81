"""Events for other systems: outgoing webhooks (issue 10, item 5; README "Webhooks").

An incident manager registers a subscriber (a URL, a secret, the event types it wants). When an
incident is created, triaged, declared, notified or closed, when an escalation is raised on one
of its clocks, or when a customer notice could not be delivered, the service that makes the
change calls ``webhook_event_raise`` in its own transaction: one ``WebhookEvent`` row (the
payload) and one ``WebhookDelivery`` row per active subscriber of that type. The webhook sender
(``incidents.webhook_sender``) claims due deliveries, POSTs them signed, and retries with
backoff; the broker only wakes it, and the deadline scanner wakes it every minute and returns
claims of killed workers.

The payload (``webhook_payload``) is minimal: the incident's identity, state, severity, times
(UTC ISO 8601) and three breach facts (nature, products, exposure window), never a detail that
is withheld from the customers (``WEBHOOK_WITHHELD_FIELDS_HOOK``: the notifications app answers
which are), and never a contact's personal data.

Lifecycle moments reach this module through ``settings.LIFECYCLE_HOOKS`` (``saved`` stage of
``triage``, ``declare``, ``mark_notified`` and ``close``); creation calls it from
``incidents.services.incident_create``; the notifications app calls ``webhook_event_raise``
itself for escalations and failed deliveries.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from config.celery import enqueue
from incidents.exceptions import ActionForbidden, LifecycleConflict
from incidents.models import (
    Incident,
    IncidentRestriction,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventType,
    WebhookSubscriber,
)
from incidents.selectors import incident_is_restricted
from incidents.statements import CompiledQuery

#: Header names (a contract; README "Webhooks").
EVENT_HEADER = "Breachdesk-Event"
DELIVERY_HEADER = "Breachdesk-Delivery"
SIGNATURE_HEADER = "Breachdesk-Signature"

#: The task that sends due deliveries, queued by name (``incidents.tasks`` imports this module).
TASK_SEND_WEBHOOKS = "incidents.tasks.send_webhooks"

#: Withholdable notice fields (``notifications.models.NOTICE_FIELDS``) -> the payload keys that
#: would reveal them. A withheld field's keys are left out of every payload.
WITHHOLDABLE_KEYS: dict[str, tuple[str, ...]] = {
    "nature_of_breach": ("nature_of_breach",),
    "products_involved": ("products_involved",),
    "exposure_duration": ("exposure_started_at", "exposure_ended_at"),
}

#: The most a grace period after a secret rotation may last.
MAX_GRACE = timedelta(days=7)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


# Secrets ------------------------------------------------------------------------------------


def _fernet(key: str) -> Fernet:
    derived = hashlib.sha256(b"breachdesk webhook secrets\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def secret_box() -> MultiFernet:
    """Encrypts subscribers' secrets with a key derived from ``SECRET_KEY``; decrypts with it or
    any of ``SECRET_KEY_FALLBACKS`` (rotating ``SECRET_KEY`` keeps subscribers working while the
    old key is listed there)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def _new_secret() -> str:
    return "bdwh_" + secrets.token_urlsafe(32)


def _encrypt(secret: str) -> str:
    return secret_box().encrypt(secret.encode()).decode()


def subscriber_secrets(subscriber: WebhookSubscriber, *, now: datetime) -> list[bytes]:
    """The secrets to sign with at ``now``: the current one, then the previous one while its
    grace period lasts. ``[]`` when the secret cannot be decrypted (``SECRET_KEY`` changed
    without the old key in ``SECRET_KEY_FALLBACKS``: rotate the secret)."""
    box = secret_box()
    try:
        found = [box.decrypt(subscriber.secret_encrypted.encode())]
        expires = subscriber.previous_secret_expires_at
        if subscriber.previous_secret_encrypted and expires is not None and expires > now:
            found.append(box.decrypt(subscriber.previous_secret_encrypted.encode()))
    except InvalidToken:
        return []
    return found


def signature_header(*, secrets_: Iterable[bytes], timestamp: int, body: bytes) -> str:
    """The ``Breachdesk-Signature`` value: ``t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
    HMAC-SHA256 of ``b"<t>." + body`` under each secret (one ``v1`` per secret, current first)."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={hmac.new(secret, signed, hashlib.sha256).hexdigest()}" for secret in secrets_)
    return ",".join(parts)


# Addresses (server-side request forgery) ------------------------------------------------------


class UnsafeWebhookAddress(ValueError):
    """The URL may not be called: a scheme other than https (or http where allowed), no host,
    a host that does not resolve, or one that resolves to a private, loopback, link-local or
    otherwise non-public address while ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` is off."""


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def webhook_url_check(url: str) -> None:
    """Refuse a URL that is not ``https`` (``http`` only with ``DEBUG`` or
    ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``) or that has no host. Raises ``UnsafeWebhookAddress``."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unbalanced "[" of an IPv6 address
        raise UnsafeWebhookAddress(f"The URL is not valid: {error}") from error
    allow_http = settings.DEBUG or settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise UnsafeWebhookAddress("The URL must start with https://.")
    if not parts.hostname:
        raise UnsafeWebhookAddress("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeWebhookAddress("The URL may not carry a user name or password.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise UnsafeWebhookAddress("The URL's port is not valid.") from error


def webhook_url_resolve(url: str) -> tuple[str, int, str]:
    """``(host, port, address to connect to)`` for ``url`` after ``webhook_url_check``.

    Resolves the host and refuses it (``UnsafeWebhookAddress``) when any of its addresses is not
    public, unless ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``. The sender connects to the address
    returned, so a second DNS answer cannot point the request elsewhere (DNS rebinding).
    """
    webhook_url_check(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        raise UnsafeWebhookAddress(f"The host {host!r} does not resolve: {error}") from error
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeWebhookAddress(f"The host {host!r} does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%")[0])):
                raise UnsafeWebhookAddress(
                    f"The host {host!r} resolves to {address}, a private, loopback or link-local "
                    "address; webhooks go to public addresses only."
                )
    return host, port, addresses[0]


# Payloads -------------------------------------------------------------------------------------


@functools.cache
def _withheld_hook(path: str) -> Callable[[Incident], Iterable[str]]:
    hook: Callable[[Incident], Iterable[str]] = import_string(path)
    return hook


def withheld_fields(incident: Incident) -> set[str] | None:
    """The notice fields withheld on ``incident`` now, from ``WEBHOOK_WITHHELD_FIELDS_HOOK`` (the
    notifications app, which owns withholdings); ``None`` when no hook is configured, which
    payloads treat as "everything withholdable is withheld" (fail closed)."""
    path = getattr(settings, "WEBHOOK_WITHHELD_FIELDS_HOOK", "")
    if not path:
        return None
    return set(_withheld_hook(path)(incident))


def _strip_withheld(incident_data: dict[str, Any], withheld: set[str] | None) -> dict[str, Any]:
    hidden = set(WITHHOLDABLE_KEYS) if withheld is None else withheld & set(WITHHOLDABLE_KEYS)
    for name in hidden:
        for key in WITHHOLDABLE_KEYS[name]:
            incident_data.pop(key, None)
    if hidden:
        incident_data["details_withheld"] = True
    return incident_data


def incident_payload(incident: Incident) -> dict[str, Any]:
    """The ``incident`` object of every payload (README "Webhooks").

    ``{"id", "reference", "title", "state", "severity", "is_drill", "url", "created_at",
    "detected_at", "triaged_at", "declared_at", "notified_at", "closed_at", "nature_of_breach",
    "products_involved": [names], "exposure_started_at", "exposure_ended_at",
    "details_withheld": bool}``: instants in UTC ISO 8601 (``...Z``) or ``null``. A breach fact
    withheld from the customers is left out (its keys are absent, ``details_withheld`` true).
    A restricted incident (need to know, issue 10.1) is named by nothing but ``restricted_view``
    (``restricted_incident``): other systems learn that something happened, not what.
    """
    if incident_is_restricted(incident):
        return restricted_view(incident)
    data: dict[str, Any] = {
        "id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "state": incident.state,
        "severity": incident.severity or None,
        "is_drill": incident.is_drill,
        "url": settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk]),
        "created_at": _iso(incident.created_at),
        "detected_at": _iso(incident.detected_at),
        "triaged_at": _iso(incident.triaged_at),
        "declared_at": _iso(incident.declared_at),
        "notified_at": _iso(incident.notified_at),
        "closed_at": _iso(incident.closed_at),
        "nature_of_breach": incident.nature_of_breach or None,
        "products_involved": sorted(incident.products.values_list("name", flat=True)),
        "exposure_started_at": _iso(incident.exposure_started_at),
        "exposure_ended_at": _iso(incident.exposure_ended_at),
        "details_withheld": False,
    }
    return _strip_withheld(data, withheld_fields(incident))


def restricted_view(incident: Incident) -> dict[str, Any]:
    """What a payload says of a restricted incident: ``{"id", "state", "restricted": true,
    "url"}``: no reference, title, severity, times or breach facts (issue 10, item 1)."""
    return {
        "id": incident.pk,
        "state": incident.state,
        "restricted": True,
        "url": settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk]),
    }


def webhook_payload(event: WebhookEvent) -> dict[str, Any]:
    """The JSON body of ``event`` as it is sent now: the stored payload with any breach fact
    withheld since it was raised removed again (a redelivery never reveals it), and nothing but
    ``restricted_view`` of an incident restricted since."""
    payload = dict(event.payload)
    if incident_is_restricted(event.incident):
        payload["incident"] = restricted_view(event.incident)
        payload["data"] = {}  # customers' names, thresholds: nothing about what happened
        return payload
    payload["incident"] = _strip_withheld(
        dict(payload.get("incident") or {}), withheld_fields(event.incident)
    )
    return payload


# Raising events -------------------------------------------------------------------------------


#: The active subscribers: read on every change that raises an event (each API create), so
#: compiled once (``incidents.statements``); run anew each time, so a new subscriber counts at once.
_active_subscribers = CompiledQuery(lambda: WebhookSubscriber.objects.filter(is_active=True))


def next_incident_id_with_subscribers(*, using: str) -> tuple[int, list[WebhookSubscriber]]:
    """``(a new incident id from the table's sequence, the active webhook subscribers)`` in one
    statement (PostgreSQL only; ``CompiledQuery.run_with_next_id``): for the create, which
    needs the id before its INSERT and the subscribers for ``webhook_event_raise``
    (``subscribers=``). Read anew on every call, in the caller's transaction."""
    return _active_subscribers.run_with_next_id(Incident, using=using)


def webhook_event_raise(
    *,
    type: str,  # noqa: A002 - the event's "type", as in the payload
    incident: Incident,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    subscribers: list[WebhookSubscriber] | None = None,
) -> WebhookEvent | None:
    """Record event ``type`` (a ``WebhookEventType`` value) about ``incident`` for every active
    subscriber of that type; return the event, or ``None`` when nobody subscribes to it (then
    nothing is stored).

    Must run inside the transaction that makes the change (so the event exists if and only if
    the change does). ``data``: the event's own JSON-ready details (``payload["data"]``; no
    contact's personal data). ``at``: the event's instant (aware; default now).
    ``subscribers``: the active subscribers as read earlier in this transaction
    (``next_incident_id_with_subscribers``); by default they are read here. Writes one
    ``WebhookEvent`` and one ``WebhookDelivery`` per subscriber; after commit wakes the sender
    (``incidents.tasks.send_webhooks``, by name). Raises ``ValueError`` for an unknown type and
    ``RuntimeError`` outside a transaction.
    """
    if type not in WebhookEventType.values:
        raise ValueError(f"Unknown webhook event type {type!r}.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("webhook_event_raise must run in the transaction that makes the change.")
    if subscribers is None:
        subscribers = _active_subscribers.run()
    subscribers = [subscriber for subscriber in subscribers if type in subscriber.event_types]
    if not subscribers:
        return None
    at = at or timezone.now()
    event = WebhookEvent(type=type, incident=incident, created_at=at, payload={})
    event.payload = {
        "id": str(event.uuid),
        "type": type,
        "created_at": _iso(at),
        "incident": incident_payload(incident),
        "data": {} if incident_is_restricted(incident) else dict(data or {}),
    }
    event.save()
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(subscriber=subscriber, event=event, next_attempt_at=at) for subscriber in subscribers
    )
    transaction.on_commit(lambda: enqueue(TASK_SEND_WEBHOOKS))
    return event


def _lifecycle_hook(event_type: str) -> Callable[[Incident, Any], None]:
    def hook(incident: Incident, context: Any) -> None:
        webhook_event_raise(type=event_type, incident=incident, at=context.at)

    hook.__doc__ = f"``saved`` lifecycle hook: raise ``{event_type}`` in the transition's transaction."
    return hook


#: ``saved`` hooks in ``settings.LIFECYCLE_HOOKS`` (their paths are the contract).
event_incident_triaged = _lifecycle_hook(WebhookEventType.INCIDENT_TRIAGED)
event_incident_declared = _lifecycle_hook(WebhookEventType.INCIDENT_DECLARED)
event_incident_notified = _lifecycle_hook(WebhookEventType.INCIDENT_NOTIFIED)
event_incident_closed = _lifecycle_hook(WebhookEventType.INCIDENT_CLOSED)


# Managing subscribers -------------------------------------------------------------------------


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _clean_event_types(event_types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(event_types))
    unknown = [name for name in chosen if name not in WebhookEventType.values]
    if unknown:
        raise ValidationError(
            {
                "event_types": f"Unknown event type {unknown[0]!r}; one of {', '.join(WebhookEventType.values)}."
            }
        )
    if not chosen:
        raise ValidationError({"event_types": "Choose at least one event type."})
    return [name for name in WebhookEventType.values if name in chosen]


def _clean_url(url: str) -> str:
    url = url.strip()
    try:
        webhook_url_resolve(url)
    except UnsafeWebhookAddress as error:
        raise ValidationError({"url": str(error)}) from error
    return url


def _log(actor: Any, subscriber: WebhookSubscriber, flag: int, message: str) -> None:
    LogEntry.objects.log_actions(
        user_id=actor.pk, queryset=[subscriber], action_flag=flag, change_message=message, single_object=True
    )


def webhook_subscriber_create(
    *, actor: Any, name: str, url: str, event_types: Iterable[str], is_active: bool = True
) -> tuple[WebhookSubscriber, str]:
    """Register a subscriber; return it and its secret (shown this once, stored encrypted).

    ``url``: https (http only where ``DEBUG`` or ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``), resolving
    to public addresses only (unless ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``). ``event_types``:
    ``WebhookEventType`` values, at least one. Raises ``ActionForbidden`` without
    ``incidents.add_webhooksubscriber`` (incident managers) and ``ValidationError`` naming the
    field for a blank or taken name, an unsafe URL or an unknown event type. The creation is
    recorded in the admin's history of the subscriber (``LogEntry``).
    """
    _require(actor, "incidents.add_webhooksubscriber")
    secret = _new_secret()
    subscriber = WebhookSubscriber(
        name=name.strip(),
        url=_clean_url(url),
        event_types=_clean_event_types(event_types),
        is_active=is_active,
        created_by=actor,
        secret_encrypted=_encrypt(secret),
    )
    subscriber.full_clean()
    with transaction.atomic():
        subscriber.save()
        _log(
            actor,
            subscriber,
            ADDITION,
            f"Created for {', '.join(subscriber.event_types)} at {subscriber.url}",
        )
    return subscriber, secret


#: What ``webhook_subscriber_update`` may change.
SUBSCRIBER_FIELDS = ("name", "url", "event_types", "is_active")


def webhook_subscriber_update(
    *, actor: Any, subscriber: WebhookSubscriber, changes: Mapping[str, Any]
) -> WebhookSubscriber:
    """Change a subscriber's ``name``, ``url``, ``event_types`` or ``is_active`` (``False``:
    deactivated: no new deliveries, and its pending ones fail when their turn comes); return it.

    Raises ``ActionForbidden`` without ``incidents.change_webhooksubscriber`` and
    ``ValidationError`` as ``webhook_subscriber_create`` (an unknown field too). Recorded in the
    admin's history of the subscriber.
    """
    _require(actor, "incidents.change_webhooksubscriber")
    unknown = sorted(set(changes) - set(SUBSCRIBER_FIELDS))
    if unknown:
        raise ValidationError({unknown[0]: "This field cannot be changed."})
    with transaction.atomic():
        locked = WebhookSubscriber.objects.select_for_update().get(pk=subscriber.pk)
        changed = []
        for name, value in changes.items():
            if name == "url":
                # Resolved again only when it changes: an unchanged host that stopped resolving
                # must not keep an incident manager from renaming or deactivating it.
                value = value.strip() if value.strip() == locked.url else _clean_url(value)
            elif name == "event_types":
                value = _clean_event_types(value)
            elif name == "name":
                value = value.strip()
            if getattr(locked, name) != value:
                setattr(locked, name, value)
                changed.append(name)
        if changed:
            locked.full_clean()
            locked.save()
            _log(actor, locked, CHANGE, f"Changed {', '.join(changed)}")
    return locked


def webhook_subscriber_rotate_secret(
    *, actor: Any, subscriber: WebhookSubscriber, grace: timedelta = timedelta(0)
) -> str:
    """Give ``subscriber`` a new secret and return it (shown this once). For ``grace``
    (``timedelta(0)`` to 7 days) requests also carry a signature with the previous secret, so
    the receiver can switch without losing an event. Raises ``ActionForbidden`` without
    ``incidents.change_webhooksubscriber``, ``ValidationError`` for a grace outside that range."""
    _require(actor, "incidents.change_webhooksubscriber")
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise ValidationError({"grace_hours": "From 0 to 168 hours."})
    secret = _new_secret()
    now = timezone.now()
    with transaction.atomic():
        locked = WebhookSubscriber.objects.select_for_update().get(pk=subscriber.pk)
        locked.previous_secret_encrypted = locked.secret_encrypted if grace else ""
        locked.previous_secret_expires_at = now + grace if grace else None
        locked.secret_encrypted = _encrypt(secret)
        locked.rotated_at = now
        locked.save()
        _log(actor, locked, CHANGE, f"Secret rotated; the previous one signs for {grace}")
    return secret


def webhook_delivery_redeliver(*, actor: Any, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again: it becomes ``pending``, due now, with a fresh count of
    attempts (its attempts so far stay in the log) and the same ``Breachdesk-Delivery`` id.

    Raises ``ActionForbidden`` without ``incidents.redeliver_webhookdelivery`` (incident
    managers), ``LifecycleConflict`` (409) when the delivery has not failed or its subscriber is
    inactive. Wakes the sender after commit.
    """
    _require(actor, "incidents.redeliver_webhookdelivery")
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().select_related("subscriber").get(pk=delivery.pk)
        if locked.status != WebhookDelivery.Status.FAILED:
            raise LifecycleConflict(f"Only a failed delivery can be sent again; this one is {locked.status}.")
        if not locked.subscriber.is_active:
            raise LifecycleConflict("The subscriber is inactive; activate it first.")
        locked.status = WebhookDelivery.Status.PENDING
        locked.attempts = 0
        locked.next_attempt_at = timezone.now()
        locked.claim_token = ""
        locked.claimed_until = None
        locked.save()
        _log(actor, locked.subscriber, CHANGE, f"Delivery {locked.uuid} queued again")
        transaction.on_commit(lambda: enqueue(TASK_SEND_WEBHOOKS))
    return locked


def subscriber_log(subscriber: WebhookSubscriber) -> models.QuerySet[WebhookDelivery]:
    """The delivery log of ``subscriber``: its deliveries newest first, each with its event and
    attempts attached (``attempts_made``, oldest first), and ``incident_restricted``: whether
    the event's incident is restricted (the log then does not name it)."""
    return (
        WebhookDelivery.objects.filter(subscriber=subscriber)
        .annotate(
            incident_restricted=models.Exists(
                IncidentRestriction.objects.filter(incident_id=models.OuterRef("event__incident_id"))
            )
        )
        .select_related("event", "event__incident")
        .prefetch_related("attempts_made")
        .order_by("-created_at", "-id")
    )
