"""Reminders on every date: playbook task due dates, withholding review dates, training expiry
(and, listed on "my work" though emailed by their own scan, action-item due dates).

Each kind of date is a ``ReminderSource``: a name, a label, a lead time, and a function that
lists the open items with an owner whose date falls before a given instant (``DueItem``). The
apps that own the dates define their sources (``triage.reminders``, ``postmortems.reminders``,
``postmortems.training``, and ``WITHHOLDING_REVIEWS`` here); ``settings.REMINDER_SOURCES``
names them, so this module, below ``triage`` and ``postmortems``, never imports them.

Run by the deadline scanner every minute (``notifications.scanner.deadlines_scan``), after its
pattern: every reminder is a row before it is an email, so a missed tick, a broker outage or
two scanners at once lose nothing and send nothing twice.

1. For each source that emails, list the items due before ``now + lead``.
2. An item whose date has passed gets one ``overdue`` reminder; one whose date is within the
   lead gets one ``due`` reminder (not both at once: an item first seen overdue gets only the
   overdue one).
3. Each new reminder is a ``DueReminder`` row (unique per source, object, kind and due time)
   and an ``OutgoingEmail`` of kind ``due_reminder`` written in the same transaction; a second
   scanner's insert raises ``IntegrityError`` on the unique constraint and is skipped. The
   outbox sender claims, sends and retries the email like every other (``docs/outbox.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from incidents.models import OPEN_STATES, Incident
from incidents.selectors import invisible_incident_ids
from notifications.emails import outgoing_email_queue
from notifications.models import DueReminder, OutgoingEmail, Withholding

logger = logging.getLogger("breachdesk.reminders")

#: Object ids per ``IN (...)`` when reading which reminders exist (SQLite binds at most 999).
_CHUNK = 500


@dataclass(frozen=True)
class DueItem:
    """One dated thing someone owns.

    ``source``: the ``ReminderSource`` name; ``object_id``: the primary key of the row with the
    date; ``owner_id`` and ``recipient``: the owner's user id and email address (``""`` when the
    account has none: listed on "my work", never emailed); ``due_at``: aware, UTC; ``title``:
    one line saying what is due; ``incident``: the incident it belongs to, if any; ``path``: the
    page where it is done (a site path, no host).
    """

    source: str
    object_id: int
    owner_id: int
    recipient: str
    due_at: datetime
    title: str
    path: str
    incident: Incident | None = None

    def is_overdue(self, now: datetime) -> bool:
        """Whether ``due_at`` has passed at ``now``."""
        return self.due_at <= now


#: ``items(due_before=..., owner_id=...)``: the open items due before ``due_before`` (aware),
#: of one owner, or of every owner when ``owner_id`` is ``None``; overdue ones included.
ItemsFunction = Callable[..., Iterable[DueItem]]


@dataclass(frozen=True)
class ReminderSource:
    """A kind of date that raises reminders.

    ``name``: stored on ``DueReminder.source`` (keep it stable); ``label``: what "my work"
    calls it; ``lead``: how long before the date the ``due`` reminder goes out; ``items``: see
    ``ItemsFunction``; ``emails``: False for a source whose reminders are emailed elsewhere
    (action items have their own rows, ``postmortems.reminders``), listed on "my work" only.
    """

    name: str
    label: str
    lead: timedelta
    items: ItemsFunction
    emails: bool = True


@cache
def _sources(paths: tuple[str, ...]) -> tuple[ReminderSource, ...]:
    return tuple(import_string(path) for path in paths)


def reminder_sources() -> tuple[ReminderSource, ...]:
    """The sources named by ``settings.REMINDER_SOURCES`` (dotted paths to ``ReminderSource``
    objects), in that order."""
    return _sources(tuple(settings.REMINDER_SOURCES))


def due_items_for(user: Any, *, now: datetime | None = None, horizon: timedelta) -> list[DueItem]:
    """Everything ``user`` owns that is due before ``now + horizon`` (overdue first, then by
    due time), from every source, but for items of restricted incidents ``user`` is not a
    member of (``incidents.selectors``): the "my work" page."""
    now = now or timezone.now()
    items = [
        item
        for source in reminder_sources()
        for item in source.items(due_before=now + horizon, owner_id=user.pk)
    ]
    # Need to know: an item of a restricted incident the user is not a member of is not listed.
    hidden = set(invisible_incident_ids(user)) if any(item.incident for item in items) else set()
    items = [item for item in items if item.incident is None or item.incident.pk not in hidden]
    return sorted(items, key=lambda item: (item.due_at, item.source, item.object_id))


def _existing(source: str, object_ids: list[int]) -> set[tuple[int, str, datetime]]:
    found: set[tuple[int, str, datetime]] = set()
    for start in range(0, len(object_ids), _CHUNK):
        found.update(
            DueReminder.objects.filter(
                source=source, object_id__in=object_ids[start : start + _CHUNK]
            ).values_list("object_id", "kind", "due_at")
        )
    return found


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _raise(source: ReminderSource, item: DueItem, kind: str, now: datetime) -> bool:
    """Record one reminder and queue its email in one transaction; False if another scanner
    recorded it first."""
    overdue = kind == DueReminder.Kind.OVERDUE
    reference = item.incident.reference if item.incident else ""
    subject = f"[Breachdesk] {source.label} {'overdue' if overdue else 'due'}" + (
        f": {reference}" if reference else ""
    )
    context = {
        "subject": subject,
        "what": source.label,
        "title": item.title,
        "overdue": overdue,
        "due": _utc(item.due_at),
        "reference": reference,
        "link": settings.SITE_URL.rstrip("/") + item.path,
        "my_work": settings.SITE_URL.rstrip("/") + reverse("dashboard:my_work"),
    }
    try:
        with transaction.atomic():
            reminder = DueReminder.objects.create(
                source=source.name,
                object_id=item.object_id,
                kind=kind,
                due_at=item.due_at,
                owner_id=item.owner_id,
                incident=item.incident,
                created_at=now,
            )
            reminder.email = outgoing_email_queue(
                kind=OutgoingEmail.Kind.DUE_REMINDER,
                address=item.recipient,
                language="en",
                context=context,
                message_key=f"{source.name}-{item.object_id}.{kind}.{int(item.due_at.timestamp())}",
                incident=item.incident,
                # Due at once, even when the pass looks ahead (a scan "at" a later instant).
                now=min(now, timezone.now()),
            )
            reminder.save(update_fields=["email"])
    except IntegrityError:
        return False
    return True


def due_reminders_scan(*, now: datetime | None = None) -> int:
    """One pass at ``now`` (aware; default the current instant): record and queue every
    reminder that has fallen due (see the module docstring); returns how many were raised.
    Safe to run twice and in two processes at once (the unique constraint decides)."""
    now = now or timezone.now()
    raised = 0
    for source in reminder_sources():
        if not source.emails:
            continue
        items = [item for item in source.items(due_before=now + source.lead, owner_id=None) if item.recipient]
        if not items:
            continue
        existing = _existing(source.name, sorted({item.object_id for item in items}))
        for item in items:
            kind = DueReminder.Kind.OVERDUE if item.is_overdue(now) else DueReminder.Kind.DUE
            if (item.object_id, kind, item.due_at) in existing:
                continue
            if _raise(source, item, kind, now):
                raised += 1
    if raised:
        logger.info("Raised %d date reminder(s).", raised)
    return raised


def _withholding_reviews(*, due_before: datetime, owner_id: int | None) -> Iterable[DueItem]:
    """Active withholdings of open incidents whose review date falls before ``due_before``;
    the owner is the incident manager who withheld the detail."""
    rows = (
        Withholding.objects.filter(
            released_at__isnull=True,
            review_at__lt=due_before,
            created_by__isnull=False,
            incident__state__in=OPEN_STATES,
        )
        .select_related("incident", "created_by")
        .order_by("review_at", "id")
    )
    if owner_id is not None:
        rows = rows.filter(created_by_id=owner_id)
    for withholding in rows:
        owner = withholding.created_by
        assert owner is not None  # filtered above
        yield DueItem(
            source=WITHHOLDING_REVIEWS.name,
            object_id=withholding.pk,
            owner_id=owner.pk,
            recipient=owner.email or "",
            due_at=withholding.review_at,
            title=f"Decide again whether to release the withheld {withholding.get_field_display()} "
            f"({withholding.get_reason_display()}).",
            path=reverse("incidents:incident_detail", args=[withholding.incident_id]),
            incident=withholding.incident,
        )


#: Withholding review dates (``Withholding.review_at``): the owner decides again whether to
#: release the detail; due reminder a day before.
WITHHOLDING_REVIEWS = ReminderSource(
    name="withholding_review",
    label="Withholding review",
    lead=timedelta(hours=24),
    items=_withholding_reviews,
)
