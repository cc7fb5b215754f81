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
from incidents.models import Contact, Customer
from notifications.models import OutgoingEmail
from notifications.rendering import RenderedMessage, render_templates

#: The sender's task, queued by name (a module below ``notifications.tasks`` never imports it).
TASK_SEND_DUE_DELIVERIES = "notifications.tasks.send_due_deliveries"


def message_domain() -> str:
    """The domain that ends every Message-ID: ``DEFAULT_FROM_EMAIL``'s."""
    address = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">").strip()
    return address or "breachdesk.invalid"


def render_email(*, kind: str, context: dict[str, Any], language: str) -> RenderedMessage:
    """Render the ``kind`` email (``templates/emails/<kind>/``) with ``context`` in
    ``language`` (a code of ``settings.LANGUAGES``)."""
    return render_templates(folder=f"emails/{kind}", context=context, language=language)


def outgoing_email_queue(
    *,
    kind: str,
    address: str,
    language: str,
    context: dict[str, Any],
    message_key: str,
    contact: Contact | None = None,
    customer: Customer | None = None,
    now: datetime | None = None,
) -> OutgoingEmail:
    """Render one email of ``kind`` to ``address`` and put it in the outbox; return the row.

    Must run inside the transaction that decides to send it (the row commits with the
    decision, or not at all); wakes the sender after commit. ``message_key``: unique per email
    of this kind (for example the row it is about), giving the deterministic Message-ID
    ``<kind.key@domain>``; a second email with the same key raises ``IntegrityError``.
    ``contact``: the contact it goes to, if any (a permanent refusal marks it undeliverable).
    """
    rendered = render_email(kind=kind, context=context, language=language)
    now = now or timezone.now()
    email = OutgoingEmail.objects.create(
        kind=kind,
        address=address,
        language=language,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        message_id=f"<{kind.replace('_', '-')}.{message_key}@{message_domain()}>",
        contact=contact,
        customer=customer,
        next_attempt_at=now,
        created_at=now,
    )
    transaction.on_commit(lambda: enqueue(TASK_SEND_DUE_DELIVERIES))
    return email
