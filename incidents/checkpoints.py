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
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents.audit import CHAINS, Chain
from incidents.audit_keys import current_key
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


def audit_checkpoints_write(*, at: datetime | None = None) -> list[AuditCheckpoint]:
    """Checkpoint every audit chain that grew since its latest checkpoint; return the new ones.

    ``at``: the checkpoints' ``created_at`` (default now, UTC). A chain whose length is now
    *shorter* than its latest checkpoint gets no new checkpoint (that would hide a truncation):
    it is logged, and ``verify_chain`` reports it. New checkpoints are appended to
    ``AUDIT_CHECKPOINT_FILE`` after the commit when it is set (a failed write is logged; the
    rows stand). Safe to run twice.
    """
    at = at or timezone.now()
    key = current_key()
    created: list[AuditCheckpoint] = []
    with transaction.atomic():
        for chain in CHAINS.values():
            heads = _heads(chain)
            latest = dict(
                AuditCheckpoint.objects.filter(chain=chain.name)
                .values("subject_id")
                .annotate(length=Max("length"))
                .values_list("subject_id", "length")
            )
            grown = {sid: head for sid, head in heads.items() if head[0] > latest.get(sid, 0)}
            for sid, recorded in latest.items():
                if heads.get(sid, (0, ""))[0] < recorded:
                    logger.error(
                        "Audit chain %s %s is shorter than its checkpoint (%s events): not checkpointed.",
                        chain.name,
                        sid,
                        recorded,
                    )
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
