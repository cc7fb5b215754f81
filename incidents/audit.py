"""The tamper-evident audit trail: appending events and verifying the hash chains.

There is one chain per subject: each incident has one (``AuditEvent``: its lifecycle, facts,
notices), and each customer has one (``CustomerAuditEvent``: its contacts, their
confirmation and deliverability, which are about no incident). Both kinds share the hashing
and the verification (``HashChainedEvent``); a new kind of subject adds a model and an entry
in ``CHAINS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from incidents.models import AuditEvent, Customer, CustomerAuditEvent, HashChainedEvent, Incident

#: Chain name -> the model holding that kind of subject's events.
CHAINS: dict[str, type[HashChainedEvent]] = {"incident": AuditEvent, "customer": CustomerAuditEvent}


def _append[E: HashChainedEvent](
    model: type[E],
    subject: Any,
    actor: Any | None,
    at: datetime | None,
    *,
    first: bool = False,
    **fields: Any,
) -> E:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_append must run inside the transaction that makes the change.")
    subject_field = model.SUBJECT_FIELD
    last = (
        None
        if first  # the subject was created in this transaction: nothing to look up
        else model._default_manager.filter(**{subject_field: subject})
        .order_by("-sequence")
        .values("sequence", "hash")
        .first()
    )
    data = fields.pop("data", None)
    event = model(
        **{subject_field: subject},
        sequence=(last["sequence"] + 1) if last else 1,
        occurred_at=at or timezone.now(),
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        # Round-trip through JSON so the hash covers exactly what the database will return.
        data=json.loads(json.dumps(data or {}, default=str)),
        previous_hash=last["hash"] if last else HashChainedEvent.GENESIS_HASH,
        **fields,
    )
    event.hash = event.compute_hash()
    event.save()
    return event


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
    event (no lookup of the previous one). Raises ``RuntimeError`` outside a transaction.
    """
    return _append(
        AuditEvent,
        incident,
        actor,
        at,
        first=first,
        verb=verb,
        from_state=from_state,
        to_state=to_state,
        data=data,
    )


def customer_audit_append(
    *,
    customer: Customer,
    actor: Any | None,
    verb: str,
    data: dict[str, Any] | None = None,
    actor_contact_email: str = "",
    at: datetime | None = None,
) -> CustomerAuditEvent:
    """Append one event to ``customer``'s audit chain and return it.

    Same rules as ``audit_append``, with the customer's row lock serialising appends.
    ``actor``: a staff user, or ``None``; ``actor_contact_email``: the address of the
    confirmation link's recipient when the change came through a link (no login).
    """
    return _append(
        CustomerAuditEvent, customer, actor, at, verb=verb, data=data, actor_contact_email=actor_contact_email
    )


@dataclass(frozen=True)
class ChainBreak:
    """Where an audit chain does not verify, and why. ``chain``: ``"incident"`` or
    ``"customer"``; ``subject_id``: that incident's or customer's id."""

    chain: str
    subject_id: int
    sequence: int
    reason: str

    @property
    def incident_id(self) -> int | None:
        """The incident whose chain broke, or ``None`` for another kind of chain."""
        return self.subject_id if self.chain == "incident" else None


def _verify(chain: str, model: type[HashChainedEvent], subject_ids: list[int] | None) -> list[ChainBreak]:
    subject_field = f"{model.SUBJECT_FIELD}_id"
    events = model._default_manager.order_by(subject_field, "sequence")
    if subject_ids is not None:
        events = events.filter(**{f"{subject_field}__in": subject_ids})
    breaks: list[ChainBreak] = []
    current: int | None = None
    expected_previous = HashChainedEvent.GENESIS_HASH
    expected_sequence = 1
    for event in events.iterator(chunk_size=2000):
        subject_id = event.subject_id
        if subject_id != current:
            current = subject_id
            expected_previous = HashChainedEvent.GENESIS_HASH
            expected_sequence = 1
        if event.sequence != expected_sequence:
            breaks.append(
                ChainBreak(chain, subject_id, event.sequence, f"expected sequence {expected_sequence}")
            )
        if event.previous_hash != expected_previous:
            breaks.append(ChainBreak(chain, subject_id, event.sequence, "previous_hash does not match"))
        if event.compute_hash() != event.hash:
            breaks.append(ChainBreak(chain, subject_id, event.sequence, "content does not match hash"))
        expected_previous = event.hash
        expected_sequence = event.sequence + 1
    return breaks


def verify_chain(
    *, incident_ids: list[int] | None = None, customer_ids: list[int] | None = None
) -> list[ChainBreak]:
    """Recompute every audit chain (or only those of ``incident_ids`` and ``customer_ids``) and
    return the breaks found, incident chains first.

    An empty list means every chain verifies. A break is reported where a row's stored hash does
    not match its content, its ``previous_hash`` does not match the row before it, or a sequence
    number is missing (a deleted row). Reads in pages of 2,000 rows; memory stays flat.
    """
    wanted = {"incident": incident_ids, "customer": customer_ids}
    everything = all(ids is None for ids in wanted.values())
    breaks: list[ChainBreak] = []
    for chain, model in CHAINS.items():
        if everything or wanted[chain] is not None:
            breaks += _verify(chain, model, wanted[chain])
    return breaks
