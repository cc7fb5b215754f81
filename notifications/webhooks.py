"""What the notifications app tells webhook subscribers (``incidents.webhooks``).

- ``withheld_fields``: the ``WEBHOOK_WITHHELD_FIELDS_HOOK``: which breach fields are withheld
  from the customers now, so no payload carries them.
- ``escalation_raised`` and ``delivery_failed``: raise ``escalation.raised`` and
  ``delivery.failed`` in the transaction that records the escalation or the failure. Their
  ``data`` names the customer (an organisation: id and name) but never a contact or an address.
"""

from __future__ import annotations

from datetime import UTC, datetime

from incidents.models import Incident, WebhookEventType
from incidents.webhooks import webhook_event_raise
from notifications.models import Delivery, Escalation, Withholding


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def withheld_fields(incident: Incident) -> set[str]:
    """The ``NOTICE_FIELDS`` names withheld on ``incident`` now (not released)."""
    return set(
        Withholding.objects.filter(incident_id=incident.pk, released_at__isnull=True).values_list(
            "field", flat=True
        )
    )


def escalation_raised(escalation: Escalation) -> None:
    """Raise ``escalation.raised`` for ``escalation`` (in the caller's transaction).

    ``data``: ``{"escalation": {"id", "threshold", "raised_at"}, "clock": {"kind", "starts_at",
    "due_at"}, "customer": {"id", "name"} | null}``.
    """
    clock = escalation.clock
    customer = clock.customer
    webhook_event_raise(
        type=WebhookEventType.ESCALATION_RAISED,
        incident=clock.incident,
        at=escalation.raised_at,
        data={
            "escalation": {
                "id": escalation.pk,
                "threshold": escalation.threshold,
                "raised_at": _iso(escalation.raised_at),
            },
            "clock": {"kind": clock.kind, "starts_at": _iso(clock.starts_at), "due_at": _iso(clock.due_at)},
            "customer": {"id": customer.pk, "name": customer.name} if customer else None,
        },
    )


def delivery_failed(delivery: Delivery) -> None:
    """Raise ``delivery.failed`` for a notice delivery recorded failed for good (in the
    caller's transaction).

    ``data``: ``{"delivery": {"id", "attempts"}, "notice": {"id", "number", "kind"},
    "customer": {"id", "name"}}``: not the address, nor the relay's answer (it may quote it).
    """
    notice = delivery.notice
    webhook_event_raise(
        type=WebhookEventType.DELIVERY_FAILED,
        incident=notice.incident,
        data={
            "delivery": {"id": delivery.pk, "attempts": delivery.attempts},
            "notice": {"id": notice.pk, "number": notice.number, "kind": notice.kind},
            "customer": {"id": delivery.customer_id, "name": delivery.customer.name},
        },
    )
