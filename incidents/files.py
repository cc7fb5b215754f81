"""Evidence files: upload (with the SHA-256 computed while the bytes stream into storage),
supersede, delete before declaration, and the download answer.

Rules (issue 10, item 2):

- Size: at most ``settings.EVIDENCE_MAX_BYTES`` (``EvidenceTooLarge``, 413); an empty file is
  refused (400). ``EvidenceUploadLimitHandler`` stops reading a multipart upload as soon as it
  passes the limit, so an oversize body is never written to a temporary file in full.
- Type: the file name's extension must be in ``settings.EVIDENCE_ALLOWED_EXTENSIONS`` (no
  executables, scripts, HTML or SVG by default), and content that starts like an executable
  (``MZ``, ELF, Mach-O, ``#!``) is refused whatever its name (``ValidationError``, 400). The
  declared content type is recorded, never trusted: downloads are always
  ``application/octet-stream``, as an attachment, with ``X-Content-Type-Options: nosniff``.
- Deletion: only while the incident is ``detected`` or ``triaged`` and was never declared
  (audited); afterwards ``LifecycleConflict`` (409): supersede instead. Superseding keeps the
  old file and its bytes, linked to the new one, with a reason (audited).
- Permissions: ``incidents.add_evidencefile`` to upload and supersede (responders, incident
  managers), ``incidents.delete_evidencefile`` to delete, ``incidents.view_evidencefile`` to
  list and download (auditors too; their reads are in the read log).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
import uuid
from typing import Any
from urllib.parse import quote

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db import models, transaction
from django.http import FileResponse

from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden, EvidenceTooLarge, LifecycleConflict
from incidents.models import EvidenceFile, Incident, IncidentState, Note, evidence_storage

#: Leading bytes of executables, refused whatever the file is called.
EXECUTABLE_SIGNATURES: tuple[bytes, ...] = (
    b"MZ",  # Windows PE
    b"\x7fELF",  # Linux and most Unix
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal (and Java classes)
    b"#!",  # scripts
)

#: States in which an evidence file may still be deleted (and only if never declared).
DELETABLE_STATES = (IncidentState.DETECTED, IncidentState.TRIAGED)


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


def clean_name(name: str) -> str:
    """The uploader's file name reduced to its last path component, without control
    characters, at most 255 characters (the extension kept); ``"file"`` if nothing is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".") or "file"
    if len(name) > 255:
        stem, extension = os.path.splitext(name)
        name = stem[: 255 - len(extension)] + extension
    return name


def extension_of(name: str) -> str:
    """The lower-case extension of ``name`` without its dot (``""``: none)."""
    return os.path.splitext(name)[1].lower().lstrip(".")


def check_name(name: str) -> None:
    """Raise ``ValidationError`` (on ``file``) unless ``name``'s extension is allowed."""
    extension = extension_of(name)
    allowed = [value.lower().lstrip(".") for value in settings.EVIDENCE_ALLOWED_EXTENSIONS]
    if extension not in allowed:
        shown = f".{extension}" if extension else "no extension"
        raise ValidationError(
            {
                "file": f"Files with {shown} are not accepted as evidence; allowed: {', '.join(sorted(allowed))}."
            }
        )


def _digest(upload: Any, limit: int) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of ``upload``, read chunk by chunk as it streams from the
    request's parsed upload (memory or temporary file); raises ``ValidationError`` for content
    that starts like an executable and ``EvidenceTooLarge`` as soon as it passes ``limit``."""
    if hasattr(upload, "seek"):
        upload.seek(0)
    chunks = upload.chunks() if hasattr(upload, "chunks") else iter(lambda: upload.read(65536), b"")
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if size == 0 and chunk.startswith(EXECUTABLE_SIGNATURES):
            raise ValidationError({"file": "Executable files and scripts are not accepted as evidence."})
        size += len(chunk)
        if size > limit:
            raise EvidenceTooLarge(limit=limit)
        digest.update(chunk)
    if hasattr(upload, "seek"):
        upload.seek(0)
    return digest.hexdigest(), size


def _store(upload: Any, incident: Incident) -> tuple[str, str, int]:
    """Check and digest ``upload``, then write it to the evidence storage under an opaque name;
    return ``(storage name, sha256 hex, size)``. Raises ``EvidenceTooLarge`` or
    ``ValidationError`` before anything is stored."""
    limit = settings.EVIDENCE_MAX_BYTES
    declared = getattr(upload, "size", None)
    if declared is not None and declared > limit:
        raise EvidenceTooLarge(limit=limit)
    digest, size = _digest(upload, limit)
    if size == 0:
        raise ValidationError({"file": "The file is empty."})
    content = upload if isinstance(upload, File) else File(upload, name="evidence")
    name = evidence_storage().save(f"incidents/{incident.pk}/{uuid.uuid4().hex}", content)
    return name, digest, size


def task_model() -> type[models.Model]:
    """The playbook task model (``settings.EVIDENCE_TASK_MODEL``)."""
    return apps.get_model(settings.EVIDENCE_TASK_MODEL)


def _attachment(incident: Incident, note: Note | None, task: models.Model | None) -> dict[str, Any]:
    """The attachment fields for a file on ``incident``; ``ValidationError`` if the note or task
    belongs to another incident or the task is not a playbook task."""
    fields: dict[str, Any] = {"note": None, "task_content_type": None, "task_object_id": None}
    if note is not None:
        if note.incident_id != incident.pk:
            raise ValidationError({"note": "This note belongs to another incident."})
        fields["note"] = note
    if task is not None:
        if task._meta.label != task_model()._meta.label:
            raise ValidationError({"task": "Files attach to playbook tasks only."})
        if getattr(task, "incident_id", None) != incident.pk:
            raise ValidationError({"task": "This task belongs to another incident."})
        fields["task_content_type"] = ContentType.objects.get_for_model(task)
        fields["task_object_id"] = task.pk
    return fields


def _audit_file(evidence: EvidenceFile) -> dict[str, Any]:
    return {
        "file": evidence.pk,
        "name": evidence.original_name,
        "sha256": evidence.sha256,
        "size": evidence.size,
        "description": evidence.description,
        "note": evidence.note_id,
        "task": evidence.task_object_id,
    }


def _stored_evidence(
    *,
    locked: Incident,
    actor: Any,
    upload: Any,
    description: str,
    attachment: dict[str, Any],
) -> EvidenceFile:
    """Store ``upload``'s bytes and create its row on ``locked`` (inside the caller's
    transaction). If anything after the bytes were stored fails, they are removed again. (An
    outer transaction rolled back later leaves unreferenced bytes in storage, never a row
    without bytes.)"""
    original = clean_name(getattr(upload, "name", "") or "")
    check_name(original)
    storage_name, digest, size = _store(upload, locked)
    try:
        with transaction.atomic():
            return EvidenceFile.objects.create(
                incident=locked,
                description=(description or "").strip(),
                original_name=original,
                size=size,
                content_type=(getattr(upload, "content_type", "") or "")[:255],
                sha256=digest,
                storage_name=storage_name,
                uploaded_by=actor,
                uploaded_by_username=actor.get_username(),
                **attachment,
            )
    except BaseException:
        evidence_storage().delete(storage_name)
        raise


def _refuse_merged(incident: Incident) -> None:
    if incident.state == IncidentState.MERGED:
        raise LifecycleConflict(
            "This incident was merged into another; attach files to the surviving incident."
        )


def evidence_file_upload(
    *,
    incident: Incident,
    actor: Any,
    upload: Any,
    description: str = "",
    note: Note | None = None,
    task: models.Model | None = None,
) -> EvidenceFile:
    """Store ``upload`` (a Django ``UploadedFile``, or any object with ``name`` and
    ``chunks()`` or ``read()``) as evidence on ``incident``, optionally attached to one of its
    notes or playbook tasks, and return the row (``sha256``: hex digest of the bytes as stored;
    ``size``: bytes).

    Allowed in every state except ``merged`` (``LifecycleConflict``, 409: attach to the
    surviving incident). Raises ``ActionForbidden`` without ``incidents.add_evidencefile``;
    ``EvidenceTooLarge`` (413) over ``EVIDENCE_MAX_BYTES``; ``ValidationError`` (400) for a
    refused type, an empty file, or a note or task of another incident. Writes the row and an
    ``evidence_file_added`` audit event (name, digest, size) in one transaction.
    """
    _require(actor, "incidents.add_evidencefile")
    with transaction.atomic():
        locked = _locked(incident)
        _refuse_merged(locked)
        evidence = _stored_evidence(
            locked=locked,
            actor=actor,
            upload=upload,
            description=description,
            attachment=_attachment(locked, note, task),
        )
        audit_append(
            incident=locked,
            actor=actor,
            verb="evidence_file_added",
            data=_audit_file(evidence),
            at=evidence.uploaded_at,
        )
    return evidence


def evidence_file_supersede(
    *, evidence: EvidenceFile, actor: Any, upload: Any, reason: str, description: str = ""
) -> EvidenceFile:
    """Upload a new version of ``evidence`` that replaces it, and return the new row.

    The old row and its bytes stay, with ``superseded_by`` (the new file), ``superseded_at``
    (UTC) and ``superseded_reason``; the new file keeps the old one's note or task and, unless
    given, its description. ``reason`` is required (``ValidationError``). Allowed in every state
    except ``merged``; a file already superseded cannot be superseded again
    (``LifecycleConflict``: supersede its newest version). Same limits and errors as
    ``evidence_file_upload``; needs ``incidents.add_evidencefile``. Audited as
    ``evidence_file_superseded`` with both files' names and digests.
    """
    _require(actor, "incidents.add_evidencefile")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this file is superseded."})
    with transaction.atomic():
        locked = _locked(evidence.incident)
        _refuse_merged(locked)
        old = EvidenceFile.objects.select_for_update().get(pk=evidence.pk)
        if old.superseded_by_id is not None:
            raise LifecycleConflict(
                f"{old.original_name} is already superseded (by file {old.superseded_by_id}); supersede that one."
            )
        new = _stored_evidence(
            locked=locked,
            actor=actor,
            upload=upload,
            description=description or old.description,
            attachment={
                "note": old.note,
                "task_content_type": old.task_content_type,
                "task_object_id": old.task_object_id,
            },
        )
        old.superseded_by = new
        old.superseded_at = new.uploaded_at
        old.superseded_reason = reason
        old.save(update_fields=["superseded_by", "superseded_at", "superseded_reason"])
        audit_append(
            incident=locked,
            actor=actor,
            verb="evidence_file_superseded",
            data={"superseded": _audit_file(old), "by": _audit_file(new), "reason": reason},
            at=new.uploaded_at,
        )
    return new


def evidence_file_delete(*, evidence: EvidenceFile, actor: Any) -> None:
    """Delete ``evidence`` (row and bytes) from an incident that was never declared and is
    still ``detected`` or ``triaged``.

    Raises ``ActionForbidden`` without ``incidents.delete_evidencefile``; ``LifecycleConflict``
    (409) once the incident is declared or later, closed, ruled out or merged (supersede the
    file instead), or when the file superseded another (the chain of versions stays whole).
    Audited as ``evidence_file_deleted`` with its name and digest; the bytes are removed after
    the transaction commits.
    """
    _require(actor, "incidents.delete_evidencefile")
    with transaction.atomic():
        locked = _locked(evidence.incident)
        if locked.declared_at is not None or locked.state not in DELETABLE_STATES:
            raise LifecycleConflict(
                f"Evidence cannot be deleted once an incident is declared or closed (this one is "
                f"{locked.get_state_display().lower()}); supersede the file with a new version instead."
            )
        row = EvidenceFile.objects.select_for_update().get(pk=evidence.pk)
        if row.superseded_by_id is not None or EvidenceFile.objects.filter(superseded_by=row).exists():
            raise LifecycleConflict("A file that is part of a chain of versions cannot be deleted.")
        data = _audit_file(row)
        storage_name = row.storage_name
        row.delete()
        audit_append(incident=locked, actor=actor, verb="evidence_file_deleted", data=data)
        transaction.on_commit(lambda: evidence_storage().delete(storage_name))


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` as RFC 6266 / RFC 5987 ``filename*=UTF-8''...`` (and an
    ASCII ``filename=`` fallback for old clients); never ``inline``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_response(evidence: EvidenceFile) -> FileResponse:
    """Stream ``evidence``'s bytes as a download: ``Content-Type: application/octet-stream``,
    ``Content-Disposition: attachment; filename*=UTF-8''<name>``, ``X-Content-Type-Options:
    nosniff``, a sandboxing CSP and no caching; ``X-Evidence-SHA256`` carries the digest
    recorded at upload."""
    handle = evidence_storage().open(evidence.storage_name, "rb")
    response = FileResponse(handle, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition(evidence.original_name)
    response["Content-Length"] = str(evidence.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    response["X-Evidence-SHA256"] = evidence.sha256
    return response


class EvidenceUploadLimitHandler(FileUploadHandler):
    """An upload handler, placed first, that stops reading a multipart body once a file in it
    passes ``settings.EVIDENCE_MAX_BYTES``: the rest is discarded unread into any file, and
    ``exceeded`` tells the view to answer 413."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.exceeded = False
        self.limit = settings.EVIDENCE_MAX_BYTES

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
