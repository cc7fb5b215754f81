"""Signed checkpoints of the audit chains' heads, kept outside the audit tables.

A chain's rows cannot say that rows are missing after its last one, nor that a whole chain is
gone. So beat runs ``checkpoint_audit_trail`` (hourly, ``config.celery``): for every chain that
grew since its last checkpoint, it records the chain's length and head hash in an
``AuditCheckpoint`` signed with the audit key, and appends the same, one JSON object a line, to
``AUDIT_CHECKPOINT_FILE`` when that setting names a file (put it somewhere the database's
users cannot write: a copy outside the database). ``incidents.audit.verify_chain`` then reports
a chain shorter than a checkpoint, a changed head and a checkpointed chain with no rows. Each
evidence pack carries its incident's latest checkpoint too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents.audit import CHAINS, Chain, checkpoint_signature_valid
from incidents.audit_keys import current_key, verification_keys
from incidents.models import AuditCheckpoint

logger = logging.getLogger("breachdesk.audit")


def _heads(chain: Chain) -> dict[int, tuple[int, str]]:
    """``{subject id: (length, head hash)}`` of every chain of this kind (one query)."""
    model = chain.model
    subject_field = f"{model.SUBJECT_FIELD}_id"
    last = (
        model._default_manager.filter(**{subject_field: OuterRef(subject_field)})
        .order_by("-sequence")
        .values("sequence")[:1]
    )
    rows = model._default_manager.filter(sequence=Subquery(last)).values_list(
        subject_field, "sequence", "hash"
    )
    return {subject_id: (sequence, head) for subject_id, sequence, head in rows}


def _latest_valid(chain: Chain) -> dict[int, tuple[int, str]]:
    """``{subject id: (length, head hash)}`` of each chain's longest validly signed checkpoint.
    Reads each chain's longest one (one query); only a chain whose longest is forged (an
    invalid signature, which the verification reports) has its others read."""
    keys = verification_keys()
    longest = (
        AuditCheckpoint.objects.filter(chain=chain.name, subject_id=OuterRef("subject_id"))
        .order_by("-length")
        .values("length")[:1]
    )
    rows = AuditCheckpoint.objects.filter(chain=chain.name, length=Subquery(longest))
    latest: dict[int, tuple[int, str]] = {}
    forged: set[int] = set()
    for checkpoint in rows.iterator(chunk_size=2000):
        if checkpoint_signature_valid(checkpoint, keys):
            latest[checkpoint.subject_id] = (checkpoint.length, checkpoint.head_hash)
        else:
            forged.add(checkpoint.subject_id)
    forged -= set(latest)
    if forged:
        others = AuditCheckpoint.objects.filter(chain=chain.name, subject_id__in=forged).order_by("length")
        for checkpoint in others.iterator(chunk_size=2000):
            if checkpoint_signature_valid(checkpoint, keys):
                latest[checkpoint.subject_id] = (checkpoint.length, checkpoint.head_hash)
    return latest


def _rewritten(chain: Chain, checkpoints: dict[int, tuple[int, str]]) -> set[int]:
    """The subjects among ``checkpoints`` (``{subject id: (length, head hash)}``) whose row at
    that length is gone or no longer has that hash (500 a query)."""
    model = chain.model
    subject_field = f"{model.SUBJECT_FIELD}_id"
    items = sorted(checkpoints.items())
    found: set[int] = set()
    for start in range(0, len(items), 500):
        wanted = Q()
        for sid, (length, head) in items[start : start + 500]:
            wanted |= Q(**{subject_field: sid, "sequence": length, "hash": head})
        found |= set(model._default_manager.filter(wanted).values_list(subject_field, flat=True))
    return set(checkpoints) - found


def audit_checkpoints_write(*, at: datetime | None = None) -> list[AuditCheckpoint]:
    """Checkpoint every audit chain that grew since its latest checkpoint; return the new ones.

    ``at``: the checkpoints' ``created_at`` (default now, UTC). A chain whose length is now
    *shorter* than its latest validly signed checkpoint, or whose row at that checkpoint's
    length no longer has its head hash (truncated and grown again), gets no new checkpoint
    (that would hide the break): it is logged, and ``verify_chain`` reports it. New checkpoints are appended to
    ``AUDIT_CHECKPOINT_FILE`` after the commit when it is set (a failed write is logged; the
    rows stand). Safe to run twice.
    """
    at = at or timezone.now()
    key = current_key()
    created: list[AuditCheckpoint] = []
    with transaction.atomic():
        for chain in CHAINS.values():
            heads = _heads(chain)
            latest = _latest_valid(chain)
            grown = {sid: head for sid, head in heads.items() if head[0] > latest.get(sid, (0, ""))[0]}
            for sid, (recorded, _) in latest.items():
                if heads.get(sid, (0, ""))[0] < recorded:
                    logger.error(
                        "Audit chain %s %s is shorter than its checkpoint (%s events): not checkpointed.",
                        chain.name,
                        sid,
                        recorded,
                    )
            # A chain truncated and grown again past its checkpoint no longer holds the head
            # that checkpoint recorded: a new checkpoint would hide that, so it gets none.
            for sid in _rewritten(chain, {sid: latest[sid] for sid in grown if sid in latest}):
                logger.error(
                    "Audit chain %s %s no longer holds its checkpointed head: not checkpointed.",
                    chain.name,
                    sid,
                )
                del grown[sid]
            labels = chain.labels(grown)
            batch = []
            for sid, (length, head) in sorted(grown.items()):
                checkpoint = AuditCheckpoint(
                    chain=chain.name,
                    subject_id=sid,
                    subject_label=labels.get(sid, "")[:200],
                    length=length,
                    head_hash=head,
                    created_at=at,
                    key_id=key.key_id,
                )
                checkpoint.signature = key.sign(checkpoint.signed_payload())
                batch.append(checkpoint)
            created += AuditCheckpoint.objects.bulk_create(batch, batch_size=1000)
        if created and settings.AUDIT_CHECKPOINT_FILE:
            lines = [json.dumps(c.as_json(), sort_keys=True) for c in created]
            transaction.on_commit(lambda: _append_to_file(Path(settings.AUDIT_CHECKPOINT_FILE), lines))
    return created


def _append_to_file(path: Path, lines: list[str]) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
    except OSError as error:
        logger.error("Could not append %s audit checkpoint(s) to %s: %s", len(lines), path, error)


def read_checkpoint_file(path: Path) -> Iterator[AuditCheckpoint]:
    """The checkpoints in a checkpoint file (one JSON object a line, as written by
    ``audit_checkpoints_write``), as unsaved ``AuditCheckpoint`` rows; blank lines are skipped.
    Raises ``ValueError`` naming the line for a line that is not a checkpoint, ``OSError`` when
    the file cannot be read."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                created_at = parse_datetime(row["created_at"])
                if created_at is None:
                    raise ValueError("created_at is not an instant")
                yield AuditCheckpoint(
                    chain=str(row["chain"]),
                    subject_id=int(row["subject_id"]),
                    subject_label=str(row.get("subject_label", "")),
                    length=int(row["length"]),
                    head_hash=str(row["head_hash"]),
                    created_at=created_at,
                    key_id=str(row["key_id"]),
                    signature=str(row["signature"]),
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path} line {number} is not an audit checkpoint: {error}") from error


def configured_file_checkpoints() -> list[AuditCheckpoint]:
    """The checkpoints in ``AUDIT_CHECKPOINT_FILE`` when it is set and exists, else none.
    Raises ``ValueError`` for a malformed line."""
    name = settings.AUDIT_CHECKPOINT_FILE
    if not name or not Path(name).exists():
        return []
    return list(read_checkpoint_file(Path(name)))


def latest_checkpoint(*, chain: str, subject_id: int) -> AuditCheckpoint | None:
    """The latest checkpoint of one chain (``chain`` name, subject id), or ``None`` if none."""
    return (
        AuditCheckpoint.objects.filter(chain=chain, subject_id=subject_id).order_by("-length", "-id").first()
    )
