"""The training audit trail: one hash chain per course (``TrainingAuditEvent``), appended by
the training services in the transaction that makes the change, and its verification.

Why one chain per course, not one for the whole register: a course is a row the services can
lock, so appends to its chain are serialised the way an incident's are (by its row lock), two
imports of different courses do not wait for each other, and an auditor checking one course
reads its whole history (created, made mandatory, validity changed, every import that brought
completions of it) in one chain. An import that spans several courses writes one event in
each course's chain, all in one transaction.

Completion records are not events; each import event carries ``records_sha256``, a digest of
the records that import stored for the course (``records_digest``), so a record changed or
removed behind the application's back is found too (``verify_training_chains``).

How this plugs into the generalised audit trail: ``TrainingAuditEvent`` is a
``incidents.models.HashChainedEvent`` (keyed hashes), ``training_audit_append`` is the shared
``incidents.audit.chain_append``, and ``PostmortemsConfig.ready`` registers the chain as
``"training"`` (``register``) with the records check, so ``verify_audit_trail``, the
checkpoints and the verification page cover it without ``incidents`` importing this app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from incidents.audit import ChainBreak, chain_append, register_chain, verify_chain
from postmortems.models import Course, TrainingAuditEvent, TrainingRecord

#: The verb of an import's event in each course's chain; its data carries ``records_sha256``.
IMPORT_VERB = "training_imported"


def training_audit_append(
    *,
    course: Course,
    actor: Any | None,
    verb: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TrainingAuditEvent:
    """Append one event to ``course``'s audit chain and return it.

    Must run inside the transaction that makes the change, holding the course's row lock
    (``select_for_update``) or having just created the course: the lock serialises appends to
    one chain. ``actor``: a user, or ``None`` for the system. ``data`` must be
    JSON-serialisable (instants as ISO 8601 strings in UTC). ``at`` defaults to now (aware,
    UTC). Raises ``RuntimeError`` outside a transaction.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("training_audit_append must run inside the transaction that makes the change.")
    return chain_append(TrainingAuditEvent, course, actor, at, verb=verb, data=data)


def _score_text(score: Decimal | None) -> str:
    return "" if score is None else str(Decimal(score).quantize(Decimal("0.01")))


def records_digest(records: Iterable[tuple[str, datetime, datetime, Decimal | None]]) -> str:
    """SHA-256 hex digest of completion records given as ``(email, completed_at, expires_at,
    score)``: one line per record (tab-separated; instants in UTC ISO 8601; score with two
    decimals or empty), sorted, joined by newlines. Order-independent."""
    lines = sorted(
        "\t".join(
            (
                email,
                completed_at.astimezone(UTC).isoformat(),
                expires_at.astimezone(UTC).isoformat(),
                _score_text(score),
            )
        )
        for email, completed_at, expires_at, score in records
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class TrainingChainBreak:
    """Where a course's audit chain does not verify, and why."""

    course_id: int
    sequence: int
    reason: str


def verify_training_chains(*, course_ids: list[int] | None = None) -> list[TrainingChainBreak]:
    """Recompute every course's audit chain (or those of ``course_ids``) and return the breaks.

    An empty list means every chain verifies. A break is reported where a row's stored hash
    does not match its content, its ``previous_hash`` does not match the row before it, a
    sequence number is missing (a deleted row), or the records an import stored for the course
    no longer match the import event's ``records_sha256``. Reads events in pages of 2,000 rows.
    """
    chain_breaks = verify_chain(subjects={"training": course_ids})
    return [TrainingChainBreak(b.subject_id, b.sequence, b.reason) for b in chain_breaks]


def records_breaks(course_ids: list[int] | None) -> list[ChainBreak]:
    """The training chain's extra check (registered with the chain): every import event's
    ``records_sha256`` against the records that import stored for its course. ``course_ids``:
    only those courses (``None``: all)."""
    events = TrainingAuditEvent.objects.filter(verb=IMPORT_VERB).order_by("course_id", "sequence")
    if course_ids is not None:
        events = events.filter(course_id__in=course_ids)
    breaks: list[ChainBreak] = []
    for event in events.iterator(chunk_size=2000):
        import_id = event.data.get("import")
        if not isinstance(import_id, int):
            continue
        stored = TrainingRecord.objects.filter(
            course_id=event.course_id, imported_in_id=import_id
        ).values_list("email", "completed_at", "expires_at", "score")
        if records_digest(stored.iterator(chunk_size=2000)) != str(event.data.get("records_sha256")):
            breaks.append(
                ChainBreak(
                    "training",
                    event.course_id,
                    event.sequence,
                    f"records of import {import_id} do not match records_sha256",
                    "records_changed",
                )
            )
    return breaks


def register() -> None:
    """Register the training chain with the audit trail (from ``PostmortemsConfig.ready``)."""
    register_chain(
        "training",
        TrainingAuditEvent,
        label_field="code",
        label_prefix="course ",
        extra_checks=(records_breaks,),
    )
