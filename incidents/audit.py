"""The tamper-evident audit trail: appending events and verifying the hash chains.

There is one chain per subject: each incident has one (``AuditEvent``: its lifecycle, facts,
notices), each customer has one (``CustomerAuditEvent``: its contacts, their confirmation and
deliverability, which are about no incident), and each training course has one
(``postmortems.TrainingAuditEvent``). Every kind shares one mechanism: the model is a
``HashChainedEvent`` (keyed hashes: ``incidents.audit_keys``), it is registered in ``CHAINS``
(``register_chain``; an app above ``incidents`` registers its own from ``AppConfig.ready``),
``chain_append`` appends to it, ``verify_chain`` verifies it, and the checkpoints
(``incidents.checkpoints``) cover it.

What the verification reports (``ChainBreak.kind``), each with the chain and row it concerns:

- ``changed_row``: a row's hash does not match its content under its key;
- ``unkeyed_hash``: a row's hash is the plain SHA-256 of its content, i.e. it was recomputed by
  someone without the audit key (or never re-sealed since the trail was keyed);
- ``unknown_key``: a row sealed with a key that is not configured (a retired key dropped from
  ``AUDIT_HMAC_PREVIOUS_KEYS``);
- ``deleted_row``: a sequence number is missing, or a row's ``previous_hash`` does not match
  the row before it;
- ``truncated_tail``: a chain ends before the length a checkpoint recorded;
- ``checkpoint_mismatch``: the row at a checkpoint's length is not the head it recorded;
- ``deleted_chain``: a checkpointed chain has no rows at all;
- ``checkpoint_signature``: a checkpoint's signature does not verify (it is then not used);
- ``records_changed``: another check a chain registered (the training records) failed.
"""

from __future__ import annotations

import hmac
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from incidents.audit_keys import AuditKey, current_key, verification_keys
from incidents.models import (
    AuditCheckpoint,
    AuditEvent,
    Customer,
    CustomerAuditEvent,
    HashChainedEvent,
    Incident,
)
from incidents.statements import insert_instance


@dataclass(frozen=True)
class ChainBreak:
    """Where an audit chain does not verify, and why. ``chain``: its name in ``CHAINS``
    (``"incident"``, ``"customer"``, ``"training"``); ``subject_id``: that incident's,
    customer's or course's id; ``sequence``: the row concerned (0: the chain as a whole);
    ``reason``: one sentence; ``kind``: the kind of break (module docstring);
    ``subject_label``: the incident reference, ``customer ACCOUNT`` or ``course CODE``."""

    chain: str
    subject_id: int
    sequence: int
    reason: str
    kind: str = "changed_row"
    subject_label: str = ""

    @property
    def incident_id(self) -> int | None:
        """The incident whose chain broke, or ``None`` for another kind of chain."""
        return self.subject_id if self.chain == "incident" else None

    def describe(self) -> str:
        """One line naming the chain and the row: ``BD-2026-00001 event 3: <reason>``."""
        label = self.subject_label or f"{self.chain} {self.subject_id}"
        return f"{label} event {self.sequence}: {self.reason}" if self.sequence else f"{label}: {self.reason}"


#: Another check of a chain kind: ``(subject_ids or None) -> breaks`` (the training records).
ExtraCheck = Callable[[list[int] | None], list[ChainBreak]]


@dataclass(frozen=True)
class Chain:
    """A kind of audit chain: its ``model`` (a ``HashChainedEvent``), how its subjects are named
    (``label_prefix`` + the subject's ``label_field``) and optional ``extra_checks``."""

    name: str
    model: type[HashChainedEvent]
    label_field: str
    label_prefix: str = ""
    extra_checks: tuple[ExtraCheck, ...] = field(default=())

    @property
    def subject_model(self) -> type[models.Model]:
        """The model of this chain's subjects (``Incident``, ``Customer``, ``Course``)."""
        return self.model._meta.get_field(self.model.SUBJECT_FIELD).related_model  # type: ignore[return-value]

    def labels(self, subject_ids: Iterable[int]) -> dict[int, str]:
        """``{subject id: label}`` for the subjects that still exist (one query)."""
        rows = self.subject_model._default_manager.filter(pk__in=set(subject_ids)).values_list(
            "pk", self.label_field
        )
        return {pk: f"{self.label_prefix}{value}" for pk, value in rows}


#: Chain name -> the kind of chain. ``incidents`` registers its two; ``postmortems`` adds
#: ``training`` from its ``AppConfig.ready`` (``incidents`` imports no app above it).
CHAINS: dict[str, Chain] = {}


def register_chain(
    name: str,
    model: type[HashChainedEvent],
    *,
    label_field: str,
    label_prefix: str = "",
    extra_checks: tuple[ExtraCheck, ...] = (),
) -> None:
    """Register a kind of audit chain under ``name``; safe to call twice with the same model.
    Raises ``ValueError`` when ``name`` is taken by another model."""
    existing = CHAINS.get(name)
    if existing is not None and existing.model is not model:
        raise ValueError(f"Audit chain {name!r} is already registered for {existing.model.__name__}.")
    CHAINS[name] = Chain(name, model, label_field, label_prefix, tuple(extra_checks))


register_chain("incident", AuditEvent, label_field="reference")
register_chain("customer", CustomerAuditEvent, label_field="account_reference", label_prefix="customer ")


def chain_append[E: HashChainedEvent](
    model: type[E],
    subject: Any,
    actor: Any | None,
    at: datetime | None,
    *,
    first: bool = False,
    write: bool = True,
    **fields: Any,
) -> E:
    """Append one event to ``subject``'s chain of ``model`` and return it, sealed under the
    current audit key. The shared append behind ``audit_append``, ``customer_audit_append``
    and ``postmortems.training_audit.training_audit_append`` (their docstrings give the rules:
    inside the transaction, under the subject's row lock). ``write=False``: the sealed event
    is returned unsaved, for the caller to INSERT in this transaction before anything else
    appends to the chain (``incidents.statements.insert_together``). Raises ``RuntimeError``
    outside a transaction."""
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
    key = current_key()
    event = model(
        **{subject_field: subject},
        sequence=(last["sequence"] + 1) if last else 1,
        occurred_at=at or timezone.now(),
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        # Round-trip through JSON so the hash covers exactly what the database will return.
        data=json.loads(json.dumps(data or {}, default=str)),
        previous_hash=last["hash"] if last else HashChainedEvent.GENESIS_HASH,
        key_id=key.key_id,
        **fields,
    )
    event.hash = event.compute_hash(key)
    if write:
        # A new row (append-only models refuse only updates in save()): one INSERT compiled once.
        insert_instance(event)
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
    write: bool = True,
) -> AuditEvent:
    """Append one event to ``incident``'s audit chain and return it.

    Must run inside the transaction that makes the change, holding the incident's row lock
    (``select_for_update``) or having just created the incident: the lock is what serialises
    appends to one chain. ``actor`` is a user, or ``None`` for the system. ``data`` must be
    JSON-serialisable; instants in it should be ISO 8601 strings in UTC. ``at`` defaults to now
    (aware, UTC). ``first``: the incident was created in this transaction, so this is its first
    event (no lookup of the previous one). ``write=False``: return the sealed event unsaved,
    for the caller to INSERT next (the incident create writes it with the incident, in one
    statement). Raises ``RuntimeError`` outside a transaction.
    """
    return chain_append(
        AuditEvent,
        incident,
        actor,
        at,
        first=first,
        write=write,
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
    return chain_append(
        CustomerAuditEvent, customer, actor, at, verb=verb, data=data, actor_contact_email=actor_contact_email
    )


# --- Verification -------------------------------------------------------------------------


def checkpoint_signature_valid(checkpoint: AuditCheckpoint, keys: dict[str, AuditKey] | None = None) -> bool:
    """Whether ``checkpoint``'s signature verifies under the key its ``key_id`` names."""
    key = (keys if keys is not None else verification_keys()).get(checkpoint.key_id)
    return key is not None and hmac.compare_digest(
        key.sign(checkpoint.signed_payload()), checkpoint.signature
    )


def _hash_break(event: HashChainedEvent, keys: dict[str, AuditKey]) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``event``'s hash does not verify, else ``None``."""
    key = keys.get(event.key_id)
    if key is not None and hmac.compare_digest(event.compute_hash(key), event.hash):
        return None
    if event.compute_unkeyed_hash() == event.hash:
        return "unkeyed_hash", "hash recomputed without the audit key (plain SHA-256)"
    if key is None and event.key_id:
        return "unknown_key", f"sealed with unknown audit key {event.key_id}"
    return "changed_row", "content does not match hash"


def _verify(
    chain: Chain,
    subject_ids: list[int] | None,
    keys: dict[str, AuditKey],
    checkpoints: Iterable[AuditCheckpoint],
) -> list[ChainBreak]:
    model = chain.model
    subject_field = f"{model.SUBJECT_FIELD}_id"
    events = model._default_manager.order_by(subject_field, "sequence")
    if subject_ids is not None:
        events = events.filter(**{f"{subject_field}__in": subject_ids})
    # Each chain is held to its longest validly signed checkpoint (a chain only grows, so that
    # one covers the earlier ones' truncation and deletion): memory stays one row a chain.
    by_subject: dict[int, list[AuditCheckpoint]] = {}
    breaks: list[ChainBreak] = []
    only = None if subject_ids is None else set(subject_ids)
    forged: set[tuple[int, int, str]] = set()
    for checkpoint in checkpoints:
        if checkpoint.chain != chain.name or (only is not None and checkpoint.subject_id not in only):
            continue
        if not checkpoint_signature_valid(checkpoint, keys):
            if (checkpoint.subject_id, checkpoint.length, checkpoint.signature) in forged:
                continue  # the same row in the table and in the file
            forged.add((checkpoint.subject_id, checkpoint.length, checkpoint.signature))
            breaks.append(
                ChainBreak(
                    chain.name,
                    checkpoint.subject_id,
                    0,
                    f"checkpoint of {checkpoint.created_at:%Y-%m-%dT%H:%M:%SZ} (length {checkpoint.length}) "
                    "has a signature that does not verify",
                    "checkpoint_signature",
                    checkpoint.subject_label,
                )
            )
            continue
        held = by_subject.get(checkpoint.subject_id)
        if held is None or checkpoint.length > held[0].length:
            by_subject[checkpoint.subject_id] = [checkpoint]

    def finish(subject_id: int, last_sequence: int, heads: dict[int, str]) -> None:
        for checkpoint in by_subject.pop(subject_id, []):
            when = f"{checkpoint.created_at:%Y-%m-%dT%H:%M:%SZ}"
            if checkpoint.length > last_sequence:
                breaks.append(
                    ChainBreak(
                        chain.name,
                        subject_id,
                        last_sequence + 1,
                        f"chain ends at event {last_sequence} but the checkpoint of {when} recorded "
                        f"{checkpoint.length} events: tail truncated",
                        "truncated_tail",
                        checkpoint.subject_label,
                    )
                )
            elif heads.get(checkpoint.length, checkpoint.head_hash) != checkpoint.head_hash:
                breaks.append(
                    ChainBreak(
                        chain.name,
                        subject_id,
                        checkpoint.length,
                        f"not the head the checkpoint of {when} recorded: rewritten since",
                        "checkpoint_mismatch",
                        checkpoint.subject_label,
                    )
                )

    current: int | None = None
    last_sequence = 0
    heads: dict[int, str] = {}
    wanted: set[int] = set()
    expected_previous = HashChainedEvent.GENESIS_HASH
    expected_sequence = 1
    for event in events.iterator(chunk_size=2000):
        subject_id = event.subject_id
        if subject_id != current:
            if current is not None:
                finish(current, last_sequence, heads)
            current = subject_id
            wanted = {c.length for c in by_subject.get(subject_id, [])}
            heads = {}
            expected_previous = HashChainedEvent.GENESIS_HASH
            expected_sequence = 1
        if event.sequence != expected_sequence:
            breaks.append(
                ChainBreak(
                    chain.name,
                    subject_id,
                    event.sequence,
                    f"expected sequence {expected_sequence}",
                    "deleted_row",
                )
            )
        if event.previous_hash != expected_previous:
            breaks.append(
                ChainBreak(
                    chain.name, subject_id, event.sequence, "previous_hash does not match", "deleted_row"
                )
            )
        problem = _hash_break(event, keys)
        if problem is not None:
            breaks.append(ChainBreak(chain.name, subject_id, event.sequence, problem[1], problem[0]))
        if event.sequence in wanted:
            heads[event.sequence] = event.hash
        last_sequence = event.sequence
        expected_previous = event.hash
        expected_sequence = event.sequence + 1
    if current is not None:
        finish(current, last_sequence, heads)
    for subject_id, left in sorted(by_subject.items()):
        latest = max(left, key=lambda c: c.length)
        breaks.append(
            ChainBreak(
                chain.name,
                subject_id,
                0,
                f"no events, but the checkpoint of {latest.created_at:%Y-%m-%dT%H:%M:%SZ} recorded "
                f"{latest.length}: chain deleted",
                "deleted_chain",
                latest.subject_label,
            )
        )
    for check in chain.extra_checks:
        breaks += check(subject_ids)
    labels = chain.labels({b.subject_id for b in breaks if not b.subject_label})
    return [
        b
        if b.subject_label
        else ChainBreak(b.chain, b.subject_id, b.sequence, b.reason, b.kind, labels.get(b.subject_id, ""))
        for b in breaks
    ]


def verify_chain(
    *,
    incident_ids: list[int] | None = None,
    customer_ids: list[int] | None = None,
    subjects: dict[str, list[int] | None] | None = None,
    extra_checkpoints: Iterable[AuditCheckpoint] = (),
) -> list[ChainBreak]:
    """Recompute every audit chain (or only some) and return the breaks found, by chain in
    registration order (incidents first).

    Which chains: all of them when nothing is given; else those of ``incident_ids``,
    ``customer_ids`` and ``subjects`` (``{chain name: subject ids, or None for every chain of
    that kind}``). An empty list means every chain verifies. Each row's hash is checked under
    its key (``incidents.audit_keys.verification_keys``), its link to the row before and its
    sequence number; every ``AuditCheckpoint`` (plus ``extra_checkpoints``, e.g. read from
    ``AUDIT_CHECKPOINT_FILE``) is checked for its signature and against the chain (truncated
    tail, changed head, deleted chain; each chain is held to its longest validly signed
    checkpoint); the kinds are listed in the module docstring. Reads rows and checkpoints in
    pages of 2,000; memory grows with the number of chains, not of rows. Raises ``ValueError``
    for an unknown chain name.
    """
    wanted: dict[str, list[int] | None] = dict(subjects or {})
    if incident_ids is not None:
        wanted["incident"] = incident_ids
    if customer_ids is not None:
        wanted["customer"] = customer_ids
    unknown = sorted(set(wanted) - set(CHAINS))
    if unknown:
        raise ValueError(f"No audit chain named {', '.join(unknown)}.")
    everything = not wanted and subjects is None
    keys = verification_keys()
    chosen = [chain for name, chain in CHAINS.items() if everything or name in wanted]
    extra = list(extra_checkpoints)
    breaks: list[ChainBreak] = []
    for chain in chosen:
        ids = None if everything else wanted[chain.name]
        rows = AuditCheckpoint.objects.filter(chain=chain.name).order_by("id")
        if ids is not None:
            rows = rows.filter(subject_id__in=ids)
        breaks += _verify(chain, ids, keys, itertools.chain(rows.iterator(chunk_size=2000), extra))
    return breaks
