"""Outgoing emails other than notice deliveries: one kind, three templates, one queueing call.

An email kind is an ``OutgoingEmail.Kind`` value plus three templates under
``templates/emails/<kind>/`` (``subject.txt``, ``body.txt``, ``body.html``), rendered in the
recipient's language. ``outgoing_email_queue`` renders it and writes the row in the caller's
transaction; the outbox sender (``notifications.sender``) claims, sends, retries and records it
exactly like a notice delivery, and wakes after commit. How to add a kind: ``docs/outbox.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue
from incidents.models import Contact, Customer, Incident
from incidents.selectors import RESTRICTED_BODY, RESTRICTED_SUBJECT, addresses_outside
from notifications.models import OutgoingEmail
from notifications.rendering import RenderedMessage, render_templates

#: The sender's task, queued by name (a module below ``notifications.tasks`` never imports it).
TASK_SEND_DUE_DELIVERIES = "notifications.tasks.send_due_deliveries"


def message_domain() -> str:
    """The domain that ends every Message-ID: ``DEFAULT_FROM_EMAIL``'s."""
    address = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">").strip()
    return address or "breachdesk.invalid"


def render_email(
    *, kind: str, context: dict[str, Any], language: str, incident: Incident | None = None
) -> RenderedMessage:
    """Render the ``kind`` email (``templates/emails/<kind>/``) with ``context`` in
    ``language`` (a code of ``settings.LANGUAGES``); an email about a drill ``incident`` says
    it is an exercise (subject and both parts)."""
    return render_templates(folder=f"emails/{kind}", context=context, language=language, incident=incident)


#: Emails to staff: about a restricted incident, a recipient who is not its member gets the
#: neutral email instead (``outgoing_email_queue``).
STAFF_KINDS = frozenset(
    {
        OutgoingEmail.Kind.STAKEHOLDER_ALERT,
        OutgoingEmail.Kind.ESCALATION,
        OutgoingEmail.Kind.ACTION_ITEM_REMINDER,
        OutgoingEmail.Kind.DUE_REMINDER,
    }
)


def outgoing_email_queue(
    *,
    kind: str,
    address: str,
    language: str,
    context: dict[str, Any],
    message_key: str,
    contact: Contact | None = None,
    customer: Customer | None = None,
    incident: Incident | None = None,
    now: datetime | None = None,
) -> OutgoingEmail:
    """Render one email of ``kind`` to ``address`` and put it in the outbox; return the row.

    Must run inside the transaction that decides to send it (the row commits with the
    decision, or not at all); wakes the sender after commit. ``message_key``: unique per email
    of this kind (for example the row it is about), giving the deterministic Message-ID
    ``<kind.key@domain>``; a second email with the same key raises ``IntegrityError``.
    ``contact``: the contact it goes to, if any (a permanent refusal marks it undeliverable).
    ``incident``: the incident it is about, if any (a drill's email says it is an exercise). A
    staff email (``STAFF_KINDS``) about a restricted incident to someone who is not its member
    names nothing: ``RESTRICTED_SUBJECT`` and ``RESTRICTED_BODY`` (``incidents.selectors``;
    issue 10, item 1).
    """
    if incident is not None and kind in STAFF_KINDS and addresses_outside(incident, [address]):
        subject, text, html = incident.email_subject(RESTRICTED_SUBJECT), RESTRICTED_BODY, ""
    else:
        rendered = render_email(kind=kind, context=context, language=language, incident=incident)
        subject, text, html = rendered.subject, rendered.text, rendered.html
    now = now or timezone.now()
    email = OutgoingEmail.objects.create(
        kind=kind,
        address=address,
        language=language,
        subject=subject,
        body_text=text,
        body_html=html,
        message_id=message_id(kind=kind, message_key=message_key),
        contact=contact,
        customer=customer,
        incident=incident,
        next_attempt_at=now,
        created_at=now,
    )
    transaction.on_commit(lambda: enqueue(TASK_SEND_DUE_DELIVERIES), robust=True)
    return email


def outgoing_email_queue_once(*, kind: str, message_key: str, **arguments: Any) -> OutgoingEmail | None:
    """``outgoing_email_queue`` unless the email with this ``kind`` and ``message_key`` is
    already in the outbox; the new row, or ``None`` when it was there. For callers that may run
    twice (a task re-delivered by the broker, a scanner's second pass): nothing is sent twice."""
    if OutgoingEmail.objects.filter(message_id=message_id(kind=kind, message_key=message_key)).exists():
        return None
    return outgoing_email_queue(kind=kind, message_key=message_key, **arguments)


def message_id(*, kind: str, message_key: str) -> str:
    """The deterministic Message-ID of the ``kind`` email with ``message_key``."""
    return f"<{kind.replace('_', '-')}.{message_key}@{message_domain()}>"
