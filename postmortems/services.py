"""Writes for post-mortems, action items, customer summaries and drills.

Same rules as ``incidents.services``: keyword-only, atomic, permission-checked, and audited on
the incident's hash chain in the same transaction (the incident's row lock serialises them).

Post-mortems are confidential, but the audit trail is read by every role that sees the
incident; so an audit event about a post-mortem names the fields that changed, the version they
produced and a SHA-256 digest of the whole recorded content (``PostMortemVersion`` keeps the
content itself, readable by incident managers and auditors), never the text. A snapshot changed
behind the application's back no longer matches the digest the hash chain holds.

Errors: ``ActionForbidden`` (403), ``LifecycleConflict`` (409: not in a state for it),
``django.core.exceptions.ValidationError`` (400, naming the fields).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden, LifecycleConflict
from incidents.models import Incident, IncidentState
from notifications.models import Notice
from notifications.services import notice_take_post_mortem_summary
from postmortems.models import (
    FINDING_FIELDS,
    ActionItem,
    CustomerSummaryStatement,
    Drill,
    DrillParticipant,
    PostMortem,
    PostMortemVersion,
    SummaryRelease,
)

#: Fields of a post-mortem that incident managers write while it is a draft.
POST_MORTEM_FIELDS: tuple[str, ...] = (*FINDING_FIELDS, "response_sufficient", "procedures_sufficient")

#: What completing a post-mortem needs (GDPR Art. 33(5): the breach, its effects and the remedial
#: action taken are documented); ``procedure_changes`` too when the procedures were not sufficient.
REQUIRED_TO_COMPLETE: tuple[str, ...] = (
    "timeline_summary",
    "root_cause",
    "what_went_well",
    "what_did_not_go_well",
    "response_sufficient",
    "procedures_sufficient",
)

#: States in which action items may still be added or changed.
_OPEN_FOR_FOLLOW_UP = (IncidentState.POST_MORTEM,)


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _iso(value: datetime | date | None) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.isoformat() if value else None


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


def _digest(content: Any) -> str:
    return hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


# Post-mortems -----------------------------------------------------------------------------------


def post_mortem_content(post_mortem: PostMortem) -> dict[str, Any]:
    """The recorded content of ``post_mortem``, JSON-ready: its ``POST_MORTEM_FIELDS`` and the
    customer summary as ``[{"text": str, "finding": one of FINDING_FIELDS}]``."""
    content: dict[str, Any] = {name: getattr(post_mortem, name) for name in POST_MORTEM_FIELDS}
    content["customer_summary"] = [
        {"text": statement.text, "finding": statement.finding}
        for statement in post_mortem.summary_statements.order_by("position")
    ]
    return content


def _snapshot(post_mortem: PostMortem, actor: Any | None, at: datetime) -> str:
    """Record ``post_mortem``'s current version as a ``PostMortemVersion``; returns its digest."""
    content = post_mortem_content(post_mortem)
    digest = _digest(content)
    PostMortemVersion.objects.create(
        post_mortem=post_mortem,
        version=post_mortem.version,
        content=content,
        content_sha256=digest,
        recorded_at=at,
        recorded_by=actor,
    )
    return digest


def post_mortem_open(*, incident: Incident, actor: Any | None, at: datetime) -> PostMortem:
    """Open ``incident``'s post-mortem (version 1, a draft) if it has none; return it.

    Called by the ``begin_post_mortem`` lifecycle hook inside the transition's transaction.
    """
    post_mortem, created = PostMortem.objects.get_or_create(incident=incident, defaults={"started_at": at})
    if created:
        _snapshot(post_mortem, actor, at)
    return post_mortem


def _get_post_mortem(locked: Incident) -> PostMortem:
    try:
        return PostMortem.objects.get(incident=locked)
    except PostMortem.DoesNotExist:
        raise LifecycleConflict("This incident has no post-mortem yet: begin it first.") from None


def _clean_summary(value: Any) -> list[dict[str, str]]:
    """``customer_summary`` as given: a list of ``{"text", "finding"}``; ``ValidationError``
    naming what is wrong."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValidationError({"customer_summary": "A list of statements, each {text, finding}."})
    statements = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, Mapping) or set(item) != {"text", "finding"}:
            raise ValidationError({"customer_summary": f"Statement {number}: give exactly text and finding."})
        text, finding = item["text"], item["finding"]
        if not isinstance(text, str) or not text.strip():
            raise ValidationError({"customer_summary": f"Statement {number}: the text is empty."})
        if finding not in FINDING_FIELDS:
            raise ValidationError(
                {
                    "customer_summary": f"Statement {number}: finding must be one of {', '.join(FINDING_FIELDS)}."
                }
            )
        statements.append({"text": text.strip(), "finding": finding})
    return statements


def post_mortem_update(*, incident: Incident, actor: Any, changes: Mapping[str, Any]) -> PostMortem:
    """Change a draft post-mortem and return it; each call that changes something makes a new
    version.

    ``changes``: any of ``POST_MORTEM_FIELDS`` (text, or for the two ``*_sufficient`` fields
    ``True``/``False``/``None``) and ``customer_summary`` (a list of ``{"text", "finding"}``
    replacing the summary; ``finding`` names the finding field each statement comes from, and
    that finding must be recorded). Raises ``ActionForbidden`` without
    ``postmortems.change_postmortem``; ``LifecycleConflict`` without a post-mortem or once it is
    completed; ``ValidationError`` for unknown fields or bad values. Audit event
    ``post_mortem_updated``: ``{"version", "fields", "content_sha256"}``.
    """
    _require(actor, "postmortems.change_postmortem")
    unknown = sorted(set(changes) - {*POST_MORTEM_FIELDS, "customer_summary"})
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    with transaction.atomic():
        locked = _locked(incident)
        post_mortem = _get_post_mortem(locked)
        if post_mortem.status != PostMortem.Status.DRAFT:
            raise LifecycleConflict("A completed post-mortem no longer changes.")
        before = post_mortem_content(post_mortem)
        for name in POST_MORTEM_FIELDS:
            if name not in changes:
                continue
            value = changes[name]
            if name.endswith("_sufficient"):
                if value is not None and not isinstance(value, bool):
                    raise ValidationError({name: "true, false or null."})
            elif not isinstance(value, str):
                raise ValidationError({name: "Text expected."})
            else:
                value = value.strip()
            setattr(post_mortem, name, value)
        summary = _clean_summary(changes["customer_summary"]) if "customer_summary" in changes else None
        if summary is not None:
            unsourced = sorted(
                {s["finding"] for s in summary if not str(getattr(post_mortem, s["finding"])).strip()}
            )
            if unsourced:
                empty = ", ".join(name.replace("_", " ") for name in unsourced)
                message = f"Each statement must come from a recorded finding; still empty: {empty}."
                raise ValidationError({"customer_summary": message})
        after_fields = {name: getattr(post_mortem, name) for name in POST_MORTEM_FIELDS}
        changed = sorted(name for name in POST_MORTEM_FIELDS if before[name] != after_fields[name])
        if summary is not None and summary != before["customer_summary"]:
            changed.append("customer_summary")
        if not changed:
            return post_mortem
        now = timezone.now()
        post_mortem.version += 1
        post_mortem.save()
        if summary is not None:
            post_mortem.summary_statements.all().delete()
            CustomerSummaryStatement.objects.bulk_create(
                CustomerSummaryStatement(post_mortem=post_mortem, position=number, **statement)
                for number, statement in enumerate(summary, start=1)
            )
        digest = _snapshot(post_mortem, actor, now)
        audit_append(
            incident=locked,
            actor=actor,
            verb="post_mortem_updated",
            data={"version": post_mortem.version, "fields": changed, "content_sha256": digest},
            at=now,
        )
    return post_mortem


def post_mortem_missing_to_complete(post_mortem: PostMortem) -> list[str]:
    """The fields a draft still needs before it can be completed (``REQUIRED_TO_COMPLETE``, and
    ``procedure_changes`` when the procedures were not sufficient); ``[]``: none."""
    missing = [
        name
        for name in REQUIRED_TO_COMPLETE
        if getattr(post_mortem, name) is None or getattr(post_mortem, name) == ""
    ]
    if post_mortem.procedures_sufficient is False and not post_mortem.procedure_changes.strip():
        missing.append("procedure_changes")
    return missing


def post_mortem_complete(*, incident: Incident, actor: Any) -> PostMortem:
    """Complete a draft post-mortem: it is frozen from now on; returns it.

    Raises ``ActionForbidden`` without ``postmortems.complete_postmortem`` (incident managers);
    ``LifecycleConflict`` without a post-mortem or when it is not a draft; ``ValidationError``
    naming each required field still empty (``post_mortem_missing_to_complete``). Audit event
    ``post_mortem_completed``: ``{"version", "content_sha256"}``.
    """
    _require(actor, "postmortems.complete_postmortem")
    with transaction.atomic():
        locked = _locked(incident)
        post_mortem = _get_post_mortem(locked)
        if post_mortem.status != PostMortem.Status.DRAFT:
            raise LifecycleConflict("This post-mortem is already completed.")
        missing = post_mortem_missing_to_complete(post_mortem)
        if missing:
            raise ValidationError(dict.fromkeys(missing, "Needed to complete the post-mortem."))
        now = timezone.now()
        post_mortem.status = PostMortem.Status.COMPLETED
        post_mortem.completed_at = now
        post_mortem.completed_by = actor
        post_mortem.save(update_fields=["status", "completed_at", "completed_by"])
        audit_append(
            incident=locked,
            actor=actor,
            verb="post_mortem_completed",
            data={
                "version": post_mortem.version,
                "content_sha256": _digest(post_mortem_content(post_mortem)),
            },
            at=now,
        )
    return post_mortem


def post_mortem_review(*, incident: Incident, actor: Any, note: str) -> PostMortem:
    """An auditor's review of a completed post-mortem (``note``: what was checked and found);
    the post-mortem becomes ``reviewed``. Returns it.

    Raises ``ActionForbidden`` without ``postmortems.review_postmortem`` (auditors);
    ``LifecycleConflict`` unless the post-mortem is completed and not yet reviewed;
    ``ValidationError`` for an empty note. Audit event ``post_mortem_reviewed``:
    ``{"version", "note_sha256"}``.
    """
    _require(actor, "postmortems.review_postmortem")
    if not isinstance(note, str) or not note.strip():
        raise ValidationError({"note": "A review note is required."})
    with transaction.atomic():
        locked = _locked(incident)
        post_mortem = _get_post_mortem(locked)
        if post_mortem.status == PostMortem.Status.DRAFT:
            raise LifecycleConflict("Only a completed post-mortem can be reviewed.")
        if post_mortem.status == PostMortem.Status.REVIEWED:
            raise LifecycleConflict("This post-mortem is already reviewed.")
        now = timezone.now()
        post_mortem.status = PostMortem.Status.REVIEWED
        post_mortem.reviewed_at = now
        post_mortem.reviewed_by = actor
        post_mortem.review_note = note.strip()
        post_mortem.save(update_fields=["status", "reviewed_at", "reviewed_by", "review_note"])
        audit_append(
            incident=locked,
            actor=actor,
            verb="post_mortem_reviewed",
            data={"version": post_mortem.version, "note_sha256": _digest(post_mortem.review_note)},
            at=now,
        )
    return post_mortem


def post_mortem_summary_text(post_mortem: PostMortem) -> str:
    """The customer summary as it goes into a notice: one statement per paragraph."""
    return "\n\n".join(s.text for s in post_mortem.summary_statements.order_by("position"))


def post_mortem_summary_into_notice(*, notice: Notice, actor: Any) -> SummaryRelease:
    """Take the completed post-mortem's customer summary into an update or final notice draft
    (its ``post_mortem_summary``), recording which version was taken; returns the record.

    Only the summary statements go, never the findings. Raises ``ActionForbidden`` without
    ``postmortems.view_postmortem`` and ``notifications.change_notice``; ``LifecycleConflict``
    when the notice is not an update or final draft, or the post-mortem is not completed or has
    no summary. Audit event ``post_mortem_summary_taken``: ``{"notice", "version"}``; when the
    notice is approved, ``post_mortem_summary_sent`` records the version that went out.
    """
    _require(actor, "postmortems.view_postmortem")
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=notice.incident_id)
        post_mortem = _get_post_mortem(locked)
        if post_mortem.status == PostMortem.Status.DRAFT:
            raise LifecycleConflict("Complete the post-mortem before its summary goes to customers.")
        if notice.kind not in (Notice.Kind.UPDATE, Notice.Kind.FINAL):
            raise LifecycleConflict("A post-mortem summary goes into an update or the final notice.")
        text = post_mortem_summary_text(post_mortem)
        if not text:
            raise LifecycleConflict("The post-mortem has no customer summary.")
        notice_take_post_mortem_summary(notice=notice, actor=actor, text=text)
        release = SummaryRelease.objects.create(
            post_mortem=post_mortem,
            notice=notice,
            post_mortem_version=post_mortem.version,
            text=text,
            taken_by=actor,
        )
        audit_append(
            incident=locked,
            actor=actor,
            verb="post_mortem_summary_taken",
            data={"notice": notice.number, "version": post_mortem.version},
        )
    return release


def post_mortem_record_summary_sent(*, notice: Notice, at: datetime) -> SummaryRelease | None:
    """On approval of ``notice`` (inside that transaction): mark the summary version it carries
    as sent and audit ``post_mortem_summary_sent`` (``{"notice", "version"}``; ``version`` is
    ``None`` when the text was edited after it was taken in). Returns the release, or ``None``
    when the notice carries no post-mortem summary."""
    if not notice.post_mortem_summary.strip():
        return None
    release = (
        SummaryRelease.objects.filter(notice=notice, text=notice.post_mortem_summary)
        .order_by("-taken_at", "-id")
        .first()
    )
    if release is not None:
        release.sent_at = at
        release.save(update_fields=["sent_at"])
    audit_append(
        incident=notice.incident,
        actor=None,
        verb="post_mortem_summary_sent",
        data={"notice": notice.number, "version": release.post_mortem_version if release else None},
        at=at,
    )
    return release


# Action items -----------------------------------------------------------------------------------


def _user_by_username(name: str | None, field: str = "owner") -> Any:
    if name in (None, ""):
        return None
    user = get_user_model().objects.filter(username=name, is_active=True).first()
    if user is None:
        raise ValidationError({field: f"No active user {name!r}."})
    return user


def _aware(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError({field: "timezone offset required"})
    return value.astimezone(UTC)


def action_item_create(
    *,
    incident: Incident,
    actor: Any,
    description: str,
    owner: Any = None,
    due_at: datetime | None = None,
) -> ActionItem:
    """Add an action item to ``incident``'s post-mortem and return it.

    ``owner``: a user (or ``None``); ``due_at``: aware instant (or ``None``). Raises
    ``ActionForbidden`` without ``postmortems.add_actionitem`` (incident managers);
    ``LifecycleConflict`` without a post-mortem or once the incident is closed;
    ``ValidationError`` for an empty description or a naive instant. Audit event
    ``action_item_added``.
    """
    _require(actor, "postmortems.add_actionitem")
    if not isinstance(description, str) or not description.strip():
        raise ValidationError({"description": "Say what must be done."})
    due_at = _aware(due_at, "due_at")
    with transaction.atomic():
        locked = _locked(incident)
        post_mortem = _get_post_mortem(locked)
        if locked.state not in _OPEN_FOR_FOLLOW_UP:
            raise LifecycleConflict("Action items are added while the incident is in its post-mortem.")
        item = ActionItem.objects.create(
            post_mortem=post_mortem,
            description=description.strip(),
            owner=owner,
            due_at=due_at,
            created_by=actor,
        )
        audit_append(
            incident=locked,
            actor=actor,
            verb="action_item_added",
            data={
                "action_item": item.pk,
                "description": item.description,
                "owner": getattr(owner, "username", None),
                "due_at": _iso(due_at),
            },
        )
    return item


def action_item_update(*, item: ActionItem, actor: Any, changes: Mapping[str, Any]) -> ActionItem:
    """Change an action item and return it.

    ``changes``: ``description``, ``owner`` (a user or ``None``), ``due_at`` (aware or ``None``),
    ``status`` (``open``, ``done``, ``risk_accepted``) with ``resolution`` (what was done, or
    why the risk is accepted: required for ``done`` and ``risk_accepted``). ``done_at`` is set
    when an item is settled and cleared (with any verification) when it is opened again.
    Incident managers (``postmortems.change_actionitem``) change anything; the item's owner may
    mark it done if the owner works incidents (``incidents.change_incident``; never an auditor). Raises ``ActionForbidden``, ``LifecycleConflict`` once the incident is closed,
    ``ValidationError`` for unknown fields or bad values. Audit event ``action_item_changed``
    with ``{field: [old, new]}``.
    """
    allowed = {"description", "owner", "due_at", "status", "resolution"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    is_manager = actor is not None and actor.has_perm("postmortems.change_actionitem")
    owner_marking_done = (
        actor is not None
        and item.owner_id == actor.pk
        # Auditors write only their review records, even of an item they were named on.
        and actor.has_perm("incidents.change_incident")
        and set(changes) <= {"status", "resolution"}
        and changes.get("status") == ActionItem.Status.DONE
    )
    if not (is_manager or owner_marking_done):
        raise ActionForbidden(
            "Your role may not do this (needs postmortems.change_actionitem, or to own the item and mark it done)."
        )
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=item.post_mortem.incident_id)
        if locked.state not in _OPEN_FOR_FOLLOW_UP:
            raise LifecycleConflict("The action items of a closed incident no longer change.")
        current = ActionItem.objects.select_related("owner").get(pk=item.pk)
        diff: dict[str, list[Any]] = {}

        def change(name: str, new: Any, shown: Any = None, old_shown: Any = None) -> None:
            old = getattr(current, name)
            if old != new:
                diff[name] = [
                    old_shown if old_shown is not None else old,
                    shown if shown is not None else new,
                ]
                setattr(current, name, new)

        if "description" in changes:
            text = changes["description"]
            if not isinstance(text, str) or not text.strip():
                raise ValidationError({"description": "Say what must be done."})
            change("description", text.strip())
        if "owner" in changes:
            new_owner = changes["owner"]
            if new_owner != current.owner:
                diff["owner"] = [
                    getattr(current.owner, "username", None),
                    getattr(new_owner, "username", None),
                ]
                current.owner = new_owner
        if "due_at" in changes:
            new_due = _aware(changes["due_at"], "due_at")
            if new_due != current.due_at:
                diff["due_at"] = [_iso(current.due_at), _iso(new_due)]
                current.due_at = new_due
                # A new due time earns new reminders.
                current.reminders.filter(sent_at__isnull=True).delete()
        if "resolution" in changes:
            if not isinstance(changes["resolution"], str):
                raise ValidationError({"resolution": "Text expected."})
            change("resolution", changes["resolution"].strip())
        if "status" in changes:
            status = changes["status"]
            if status not in ActionItem.Status.values:
                raise ValidationError({"status": f"One of {', '.join(ActionItem.Status.values)}."})
            if status != current.status:
                if status != ActionItem.Status.OPEN and not current.resolution:
                    what = "what was done" if status == ActionItem.Status.DONE else "why the risk is accepted"
                    raise ValidationError({"resolution": f"Say {what}."})
                now = timezone.now()
                diff["status"] = [current.status, status]
                current.status = status
                if status == ActionItem.Status.OPEN:
                    diff["done_at"] = [_iso(current.done_at), None]
                    current.done_at = None
                    if current.verified_at is not None:
                        diff["verified_at"] = [_iso(current.verified_at), None]
                    current.verified_at = None
                    current.verified_by = None
                    current.verification_note = ""
                else:
                    diff["done_at"] = [_iso(current.done_at), _iso(now)]
                    current.done_at = now
        if diff:
            current.save()
            audit_append(
                incident=locked,
                actor=actor,
                verb="action_item_changed",
                data={"action_item": current.pk, "changes": diff},
            )
    return current


def action_item_verify(*, item: ActionItem, actor: Any, note: str = "") -> ActionItem:
    """An auditor verifies that a settled action item was done (or its risk accepted); returns
    it. ``note``: what was checked.

    Raises ``ActionForbidden`` without ``postmortems.verify_actionitem`` (auditors);
    ``LifecycleConflict`` when the item is open or already verified. Audit event
    ``action_item_verified``.
    """
    _require(actor, "postmortems.verify_actionitem")
    if not isinstance(note, str):
        raise ValidationError({"note": "Text expected."})
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=item.post_mortem.incident_id)
        current = ActionItem.objects.get(pk=item.pk)
        if current.status == ActionItem.Status.OPEN:
            raise LifecycleConflict("Only a done or risk-accepted action item can be verified.")
        if current.verified_at is not None:
            raise LifecycleConflict("This action item is already verified.")
        now = timezone.now()
        current.verified_at = now
        current.verified_by = actor
        current.verification_note = note.strip()
        current.save(update_fields=["verified_at", "verified_by", "verification_note"])
        audit_append(
            incident=locked,
            actor=actor,
            verb="action_item_verified",
            data={"action_item": current.pk, "status": current.status, "note": current.verification_note},
            at=now,
        )
    return current


# Drills -----------------------------------------------------------------------------------------


def drill_record(
    *,
    incident: Incident,
    actor: Any,
    scenario: str,
    held_on: date,
    objectives: str = "",
    participants: Sequence[Mapping[str, str]] = (),
) -> Drill:
    """Record (or change) the drill that ``incident`` is; returns the drill record.

    ``participants``: ``[{"function": DrillParticipant.Function value, "name": str}]``,
    replacing those recorded. Raises ``ActionForbidden`` without ``postmortems.add_drill``
    (incident managers); ``ValidationError`` when the incident is not a drill or a value is bad;
    ``LifecycleConflict`` once the drill is completed. Audit event ``drill_recorded``.
    """
    _require(actor, "postmortems.add_drill")
    if not isinstance(scenario, str) or not scenario.strip():
        raise ValidationError({"scenario": "Describe the exercise's scenario."})
    if not isinstance(held_on, date):
        raise ValidationError({"held_on": "A date (YYYY-MM-DD)."})
    cleaned = []
    for number, participant in enumerate(participants, start=1):
        function, name = participant.get("function"), participant.get("name")
        if function not in DrillParticipant.Function.values or not isinstance(name, str) or not name.strip():
            raise ValidationError(
                {
                    "participants": f"Participant {number}: a function ({', '.join(DrillParticipant.Function.values)}) and a name."
                }
            )
        cleaned.append({"function": function, "name": name.strip()})
    with transaction.atomic():
        locked = _locked(incident)
        if not locked.is_drill:
            raise ValidationError({"incident": "Only an incident marked as a drill has a drill record."})
        drill = Drill.objects.filter(incident=locked).first()
        if drill is not None and drill.completed_at is not None:
            raise LifecycleConflict("A completed drill no longer changes.")
        if drill is None:
            drill = Drill(incident=locked, created_by=actor)
        drill.scenario = scenario.strip()
        drill.held_on = held_on
        drill.objectives = objectives.strip()
        drill.save()
        drill.participants.all().delete()
        DrillParticipant.objects.bulk_create(DrillParticipant(drill=drill, **p) for p in cleaned)
        audit_append(
            incident=locked,
            actor=actor,
            verb="drill_recorded",
            data={
                "scenario": drill.scenario,
                "held_on": held_on.isoformat(),
                "objectives": drill.objectives,
                "participants": cleaned,
            },
        )
    return drill


def drill_complete(*, incident: Incident, actor: Any, outcome: str) -> Drill:
    """Complete ``incident``'s drill with its ``outcome``; measures the time to declare
    (detection, or recording when the detection time is unknown, to declaration) and to notify
    (declaration to the last customer's clock met: ``notified_at``), exact elapsed time, ``None``
    where the drill did not get that far. Returns the drill.

    Raises ``ActionForbidden`` without ``postmortems.change_drill``; ``LifecycleConflict``
    without a drill record or when already completed; ``ValidationError`` for an empty outcome.
    Audit event ``drill_completed`` (times in seconds).
    """
    _require(actor, "postmortems.change_drill")
    if not isinstance(outcome, str) or not outcome.strip():
        raise ValidationError({"outcome": "Record the drill's outcome."})
    with transaction.atomic():
        locked = _locked(incident)
        drill = Drill.objects.filter(incident=locked).first()
        if drill is None:
            raise LifecycleConflict("Record the drill (scenario, date, participants) first.")
        if drill.completed_at is not None:
            raise LifecycleConflict("This drill is already completed.")
        detected = locked.detected_at or locked.created_at
        drill.time_to_declare = locked.declared_at - detected if locked.declared_at else None
        drill.time_to_notify = (
            locked.notified_at - locked.declared_at if locked.notified_at and locked.declared_at else None
        )
        drill.outcome = outcome.strip()
        drill.completed_at = timezone.now()
        drill.completed_by = actor
        drill.save()
        audit_append(
            incident=locked,
            actor=actor,
            verb="drill_completed",
            data={
                "outcome": drill.outcome,
                "time_to_declare_seconds": drill.time_to_declare.total_seconds()
                if drill.time_to_declare
                else None,
                "time_to_notify_seconds": drill.time_to_notify.total_seconds()
                if drill.time_to_notify
                else None,
            },
            at=drill.completed_at,
        )
    return drill
