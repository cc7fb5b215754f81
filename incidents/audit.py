"""The tamper-evident audit trail: appending events and verifying the hash chains."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from incidents.models import AuditEvent, Incident


def audit_append(
    *,
    incident: Incident,
    actor: Any | None,
    verb: str,
    from_state: str = "",
    to_state: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    first: bool = False,
) -> AuditEvent:
    """Append one event to ``incident``'s audit chain and return it.

    Must run inside the transaction that makes the change, holding the incident's row lock
    (``select_for_update``) or having just created the incident: the lock is what serialises
    appends to one chain. ``actor`` is a user, or ``None`` for the system. ``data`` must be
    JSON-serialisable; instants in it should be ISO 8601 strings in UTC. ``at`` defaults to now
    (aware, UTC). ``first``: the incident was created in this transaction, so this is its first
    event (no lookup of the previous one).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_append must run inside the transaction that makes the change.")
    last = (
        None
        if first
        else AuditEvent.objects.filter(incident=incident)
        .order_by("-sequence")
        .values("sequence", "hash")
        .first()
    )
    event = AuditEvent(
        incident=incident,
        sequence=(last["sequence"] + 1) if last else 1,
        occurred_at=at or timezone.now(),
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        verb=verb,
        from_state=from_state,
        to_state=to_state,
        # Round-trip through JSON so the hash covers exactly what the database will return.
        data=json.loads(json.dumps(data or {}, default=str)),
        previous_hash=last["hash"] if last else AuditEvent.GENESIS_HASH,
    )
    event.hash = event.compute_hash()
    event.save()
    return event


@dataclass(frozen=True)
class ChainBreak:
    """Where an incident's audit chain does not verify, and why."""

    incident_id: int
    sequence: int
    reason: str


def verify_chain(*, incident_ids: list[int] | None = None) -> list[ChainBreak]:
    """Recompute every audit chain (or those of ``incident_ids``) and return the breaks found.

    An empty list means every chain verifies. A break is reported where a row's stored hash does
    not match its content, its ``previous_hash`` does not match the row before it, or a sequence
    number is missing (a deleted row). Reads in pages of 2,000 rows; memory stays flat.
    """
    events = AuditEvent.objects.order_by("incident_id", "sequence")
    if incident_ids is not None:
        events = events.filter(incident_id__in=incident_ids)
    breaks: list[ChainBreak] = []
    current_incident: int | None = None
    expected_previous = AuditEvent.GENESIS_HASH
    expected_sequence = 1
    for event in events.iterator(chunk_size=2000):
        if event.incident_id != current_incident:
            current_incident = event.incident_id
            expected_previous = AuditEvent.GENESIS_HASH
            expected_sequence = 1
        if event.sequence != expected_sequence:
            breaks.append(
                ChainBreak(event.incident_id, event.sequence, f"expected sequence {expected_sequence}")
            )
        if event.previous_hash != expected_previous:
            breaks.append(ChainBreak(event.incident_id, event.sequence, "previous_hash does not match"))
        if event.compute_hash() != event.hash:
            breaks.append(ChainBreak(event.incident_id, event.sequence, "content does not match hash"))
        expected_previous = event.hash
        expected_sequence = event.sequence + 1
    return breaks
