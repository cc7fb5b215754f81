"""What external auditors take away: the breach register (GDPR Art. 33(5): every personal data
breach documented, "comprising the facts relating to the personal data breach, its effects and
the remedial action taken", notified or not) and an incident's evidence pack.

This module sits in the top app because both read every floor: the incident register, the
clocks, notices and deliveries, and the post-mortem.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce
from django.forms.models import model_to_dict
from django.utils import timezone

from incidents.audit import verify_chain
from incidents.checkpoints import latest_checkpoint
from incidents.models import AffectedCustomer, AuditEvent, EvidenceFile, Incident, evidence_storage
from incidents.selectors import incidents_visible_to
from notifications.models import Clock, Delivery, Notice, SentMessage
from postmortems.models import ActionItem, Drill, PostMortem

#: Characters that make a spreadsheet read a cell as a formula (CSV injection): a cell that
#: starts with one of them is prefixed with an apostrophe, so it is shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell: text starting with ``FORMULA_STARTS`` gets a
    leading apostrophe; numbers and empty values are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# The breach register ----------------------------------------------------------------------------

#: The register's columns, in order: (heading, what it holds).
REGISTER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("reference", "The incident's reference."),
    ("title", "Its title."),
    ("drill", "yes for an exercise (never a real breach), no otherwise."),
    ("state", "Lifecycle state."),
    ("detection_source", "How it was detected."),
    ("detected_at", "When the organisation became aware (UTC; recording time when unknown)."),
    ("occurred_on", "When it happened, as precisely as known."),
    ("scenario", "Scenario."),
    ("severity", "ENISA severity band."),
    ("malicious", "Whether it was malicious (yes, no, unknown)."),
    (
        "scope",
        "in scope, out of scope (with its category), customer-driven event, or a duplicate merged into another incident.",
    ),
    ("scope_rationale", "Why it was ruled out of scope or a customer-driven event."),
    ("nature_of_breach", "Facts: the nature of the breach."),
    ("summary", "Facts: the summary recorded at intake."),
    ("data_categories", "Effects: categories of personal data involved."),
    ("records_affected", "Effects: records affected (estimate marked ~)."),
    ("affected_customers", "Effects: account references of the affected customers (controllers)."),
    ("exposure_started_at", "Effects: exposure start (UTC)."),
    ("exposure_ended_at", "Effects: exposure end (UTC)."),
    ("sub_processor", "The sub-processor or supplier involved."),
    ("declared_at", "When it was declared a personal data breach (UTC)."),
    ("customers_notified", "Customers whose initial notice was accepted, of those affected."),
    ("customers_notified_late", "Of those, how many after their deadline."),
    ("notified_at", "When every affected customer was notified or written off (UTC)."),
    ("mitigation_measures", "Remedial action: mitigation measures taken or proposed."),
    ("action_items", "Remedial action: the post-mortem's action items and their status."),
    ("post_mortem", "Post-mortem status (draft, completed, reviewed)."),
    ("closed_at", "When it was closed or ruled out (UTC)."),
)


def _when(instant: datetime | None) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if instant else ""


def register_incidents(
    *, viewer: Any, start: date | None = None, end: date | None = None
) -> QuerySet[Incident]:
    """Every incident ``viewer`` may see (``incidents.selectors``: a restricted incident only
    for its members; out of scope, customer-driven events, drills and never-notified ones
    included) that the organisation became aware of between ``start`` and ``end`` (dates in
    UTC, both included; ``None``: open-ended), oldest first, with what the register needs."""
    aware = Coalesce("detected_at", "created_at")
    incidents = incidents_visible_to(viewer).annotate(aware_at=aware)
    if start is not None:
        incidents = incidents.filter(aware_at__gte=datetime.combine(start, time.min, tzinfo=UTC))
    if end is not None:
        incidents = incidents.filter(
            aware_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return (
        incidents.select_related("sub_processor", "post_mortem", "merged_into")
        .prefetch_related(
            Prefetch(
                "affected_customers",
                queryset=AffectedCustomer.objects.select_related("customer").order_by(
                    "customer__account_reference"
                ),
            ),
            Prefetch("post_mortem__action_items", queryset=ActionItem.objects.order_by("id")),
        )
        .annotate(
            clocks_met=Count("clocks", filter=Q(clocks__met_at__isnull=False), distinct=True),
            clocks_met_late=Count(
                "clocks",
                filter=Q(clocks__met_at__isnull=False, clocks__met_at__gt=F("clocks__due_at")),
                distinct=True,
            ),
        )
        .order_by("aware_at", "id")
    )


def _scope(incident: Incident) -> str:
    if incident.state == "detected":
        return "not yet triaged"
    if incident.state == "out_of_scope":
        return f"out of scope ({incident.get_out_of_scope_category_display()})"
    if incident.state == "customer_event":
        return "customer-driven event"
    if incident.state == "merged":
        return (
            f"duplicate, merged into {incident.merged_into.reference if incident.merged_into else ''}".strip()
        )
    return "in scope"


def register_row(incident: Incident) -> list[Any]:
    """One incident as a row of ``REGISTER_COLUMNS`` (text and numbers; not yet neutralised)."""
    affected = list(incident.affected_customers.all())
    try:
        post_mortem: PostMortem | None = incident.post_mortem
    except PostMortem.DoesNotExist:
        post_mortem = None
    items = list(post_mortem.action_items.all()) if post_mortem else []
    records: str | int = ""
    if incident.records_affected is not None:
        records = (
            f"~{incident.records_affected}"
            if incident.records_affected_is_estimate
            else incident.records_affected
        )
    return [
        incident.reference or "",
        incident.title,
        "yes" if incident.is_drill else "no",
        incident.state,
        incident.detection_source,
        _when(incident.detected_at or incident.created_at),
        incident.occurred_on.isoformat() if incident.occurred_on else "",
        incident.scenario or "",
        incident.severity or "",
        incident.malicious or "",
        _scope(incident),
        incident.scope_rationale,
        incident.nature_of_breach,
        incident.summary,
        ", ".join(incident.data_categories or []),
        records,
        ", ".join(a.customer.account_reference for a in affected),
        _when(incident.exposure_started_at),
        _when(incident.exposure_ended_at),
        incident.sub_processor.name if incident.sub_processor else "",
        _when(incident.declared_at),
        # clocks_met and clocks_met_late are annotations register_incidents() adds; mypy sees a
        # plain Incident.
        f"{incident.clocks_met} of {len(affected)}" if incident.declared_at else "",  # type: ignore[attr-defined]
        incident.clocks_met_late if incident.declared_at else "",  # type: ignore[attr-defined]
        _when(incident.notified_at),
        incident.mitigation_measures,
        "; ".join(f"{item.description} [{item.status}]" for item in items),
        post_mortem.status if post_mortem else "",
        _when(incident.closed_at),
    ]


def register_csv(incidents: Iterable[Incident]) -> Iterator[str]:
    """The register as CSV lines (a header, then one row per incident), formulas neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([heading for heading, _ in REGISTER_COLUMNS])
    yield flush()
    for incident in incidents:
        writer.writerow([neutralise(value) for value in register_row(incident)])
        yield flush()


def register_xlsx(incidents: Iterable[Incident]) -> bytes:
    """The register as an XLSX workbook (openpyxl, write-only): a "Register" sheet with a header
    row and a "Columns" sheet saying what each column holds. Every text cell is written as a
    string, never a formula, and neutralised as in the CSV."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Register")

    def cells(values: list[Any]) -> list[Any]:
        row = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=neutralise(value))
            if isinstance(cell.value, str):
                cell.data_type = "s"
            row.append(cell)
        return row

    sheet.append(cells([heading for heading, _ in REGISTER_COLUMNS]))
    for incident in incidents:
        sheet.append(cells(register_row(incident)))
    legend = workbook.create_sheet("Columns")
    for heading, meaning in REGISTER_COLUMNS:
        legend.append(cells([heading, meaning]))
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


# The evidence pack -----------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return (
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default) + "\n"
    ).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, memoryview)):
        return None
    return str(value)


def _rows(queryset: QuerySet[Any]) -> list[dict[str, Any]]:
    return list(queryset.values())


@dataclass(frozen=True)
class EvidencePack:
    """An incident's evidence pack: ``content`` (the ZIP archive's bytes) and ``manifest``
    (the parsed ``manifest.json``)."""

    content: bytes
    manifest: dict[str, Any]


def evidence_pack(incident: Incident) -> EvidencePack:
    """Build ``incident``'s evidence pack, a ZIP archive of:

    - ``incident.json``: the incident's fields, its affected customers and products;
    - ``notices/notice-<n>.json``: each notice as approved (content, withheld fields, changes);
    - ``notices/notice-<n>/delivery-<id>.eml``: each message as the relay accepted it (the bytes
      recorded at sending, ``notifications.SentMessage``);
    - ``deliveries.json``, ``clocks.json`` (with their escalations), ``audit-events.json`` (the
      hash chain) with ``audit-verification.json`` (``{"intact": bool, "breaks": [{"sequence",
      "reason", "kind"}]}``, checked when the pack is made) and ``audit-checkpoint.json``: the
      chain's latest signed checkpoint (``incidents.models.AuditCheckpoint.as_json``; ``null``
      before the first), also in the manifest's ``audit_chain.checkpoint``;
    - ``post-mortem.json`` (every version, the review) and ``action-items.json``;
      ``drill.json`` for a drill;
    - ``evidence-files.json``: every evidence file attached to the incident (superseded versions
      included) with its SHA-256 recorded at upload, and ``evidence-files/<id>-<name>``: each
      file's bytes as stored;
    - ``manifest.json``: each other file's path, size in bytes and SHA-256, when the pack was
      made, and the audit chain's length and head hash. An evidence file's entry also carries
      ``recorded_sha256`` (the digest taken at upload) and ``intact`` (whether the bytes read
      now still have it).
    """
    files: dict[str, bytes] = {}
    fields = model_to_dict(incident, exclude=["products"])
    fields.update(
        {
            "reference": incident.reference,
            "state": incident.state,
            "created_at": incident.created_at,
            "products": list(incident.products.values_list("name", flat=True)),
            "affected_customers": _rows(
                AffectedCustomer.objects.filter(incident=incident).values(
                    "customer__account_reference", "customer__name", "records_affected", "added_at", "notes"
                )
            ),
        }
    )
    files["incident.json"] = _json(fields)
    notices = Notice.objects.filter(incident=incident).order_by("number")
    for notice in notices:
        files[f"notices/notice-{notice.number}.json"] = _json(
            model_to_dict(notice) | {"approved_at": notice.approved_at, "created_at": notice.created_at}
        )
    sent = SentMessage.objects.filter(delivery__notice__incident=incident).select_related(
        "delivery__notice", "shared_body"
    )
    for message in sent.order_by("delivery_id"):
        files[f"notices/notice-{message.delivery.notice.number}/delivery-{message.delivery_id}.eml"] = (
            message.content
        )
    files["deliveries.json"] = _json(
        _rows(
            Delivery.objects.filter(notice__incident=incident).order_by("id").defer("body_text", "body_html")
        )
    )
    clocks = []
    for clock in Clock.objects.filter(incident=incident).prefetch_related("escalations").order_by("id"):
        row = model_to_dict(clock) | {"created_at": clock.created_at, "status": clock.status_at()}
        row["escalations"] = _rows(clock.escalations.order_by("id"))
        clocks.append(row)
    files["clocks.json"] = _json(clocks)
    events = _rows(AuditEvent.objects.filter(incident=incident).order_by("sequence"))
    files["audit-events.json"] = _json(events)
    breaks = [
        {"sequence": b.sequence, "reason": b.reason, "kind": b.kind}
        for b in verify_chain(incident_ids=[incident.pk])
    ]
    files["audit-verification.json"] = _json({"intact": not breaks, "breaks": breaks})
    # The latest signed checkpoint of the chain (kept outside the audit table): with the pack
    # kept elsewhere, a later truncation or deletion of the chain shows against it.
    checkpoint = latest_checkpoint(chain="incident", subject_id=incident.pk)
    files["audit-checkpoint.json"] = _json(checkpoint.as_json() if checkpoint is not None else None)
    post_mortem = PostMortem.objects.filter(incident=incident).first()
    if post_mortem is not None:
        files["post-mortem.json"] = _json(
            model_to_dict(post_mortem)
            | {
                "started_at": post_mortem.started_at,
                "versions": _rows(post_mortem.versions.order_by("version")),
                "releases": _rows(post_mortem.releases.order_by("id")),
            }
        )
        files["action-items.json"] = _json(_rows(post_mortem.action_items.order_by("id")))
    drill = Drill.objects.filter(incident=incident).first()
    if drill is not None:
        files["drill.json"] = _json(
            model_to_dict(drill) | {"participants": _rows(drill.participants.values("function", "name"))}
        )
    evidence_files = list(EvidenceFile.objects.filter(incident=incident).order_by("uploaded_at", "id"))
    paths = {evidence.pk: _evidence_path(evidence) for evidence in evidence_files}
    files["evidence-files.json"] = _json(
        [
            row | {"path": paths[row["id"]]}
            for row in _rows(EvidenceFile.objects.filter(incident=incident).order_by("uploaded_at", "id"))
        ]
    )
    manifest: dict[str, Any] = {
        "incident": incident.reference,
        "generated_at": timezone.now().astimezone(UTC).isoformat(),
        "audit_chain": {
            "length": len(events),
            "head_hash": events[-1]["hash"] if events else AuditEvent.GENESIS_HASH,
            "checkpoint": checkpoint.as_json() if checkpoint is not None else None,
        },
        "files": [
            {"path": path, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for path, content in sorted(files.items())
        ],
    }
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, content in sorted(files.items()):
            archive.writestr(path, content)
        for evidence in evidence_files:
            manifest["files"].append(_write_evidence_file(archive, evidence))
        archive.writestr("manifest.json", _json(manifest))
    return EvidencePack(content=output.getvalue(), manifest=manifest)


def _evidence_path(evidence: EvidenceFile) -> str:
    """Where an evidence file's bytes go in the pack: ``evidence-files/<id>-<name>``."""
    return f"evidence-files/{evidence.pk}-{evidence.original_name}"


def _write_evidence_file(archive: zipfile.ZipFile, evidence: EvidenceFile) -> dict[str, Any]:
    """Copy ``evidence``'s bytes from storage into ``archive`` chunk by chunk (never whole in
    memory) and return its manifest entry, with the digest of the bytes as read and whether it
    matches the one recorded at upload."""
    digest = hashlib.sha256()
    size = 0
    path = _evidence_path(evidence)
    with evidence_storage().open(evidence.storage_name, "rb") as source, archive.open(path, "w") as target:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    sha256 = digest.hexdigest()
    return {
        "path": path,
        "bytes": size,
        "sha256": sha256,
        "recorded_sha256": evidence.sha256,
        "intact": sha256 == evidence.sha256 and size == evidence.size,
    }
