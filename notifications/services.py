"""Writes for clocks, escalations, withheld details, notices and deliveries.

Same rules as ``incidents.services``: keyword-only, atomic, permission-checked, audited on the
incident's hash chain, outside effects queued on commit through ``config.celery.enqueue``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from config.celery import enqueue
from incidents.audit import audit_append
from incidents.bulk import insert_rows
from incidents.exceptions import ActionForbidden, GuardFailed, LifecycleConflict, TransitionNotAvailable
from incidents.lifecycle import NOTICE_APPROVED, HookContext, run_hooks
from incidents.models import (
    REAL_CUSTOMER_IN_DRILL,
    AffectedCustomer,
    Contact,
    Customer,
    Incident,
    IncidentState,
)
from incidents.outbox import address_key
from incidents.services import incident_mark_notified
from notifications import clocks
from notifications.emails import message_domain as _message_domain
from notifications.emails import outgoing_email_queue_once
from notifications.messages import build_body
from notifications.models import (
    CUSTOMER_FIGURE_FIELDS,
    NOTICE_FIELDS,
    TRANSLATABLE_TEXTS,
    Clock,
    Delivery,
    DeliveryCreation,
    Escalation,
    Notice,
    NoticeMessage,
    NoticeRecipient,
    OutgoingEmail,
    SkippedRecipient,
    Translation,
    Withholding,
)
from notifications.rendering import (
    RenderedMessage,
    changed_fields,
    changed_figures,
    choose_language,
    customer_figures,
    notice_content,
    render_notice,
    render_notice_for_customers,
    source_texts,
)
from notifications.webhooks import escalation_raised

#: Tasks these services queue on commit, by name: the tasks module sits above the services and
#: imports them, so naming the task here keeps the import graph one-way (tasks -> scanner ->
#: sender -> services).
TASK_SEND_DUE_DELIVERIES = "notifications.tasks.send_due_deliveries"
TASK_CREATE_NOTICE_DELIVERIES = "notifications.tasks.create_notice_deliveries"

#: States in which customers are (being) notified: notices can be approved, clocks run.
NOTIFYING_STATES = frozenset({IncidentState.DECLARED, IncidentState.NOTIFIED, IncidentState.POST_MORTEM})


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _locked_incident(incident_id: int) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident_id)


def _iso(instant: datetime | None) -> str | None:
    return instant.astimezone(UTC).isoformat() if instant else None


# Clocks ------------------------------------------------------------------------------------


def clock_start_for_customer(*, incident: Incident, customer: Customer, at: datetime) -> Clock:
    """Start ``customer``'s notice clock on ``incident`` at ``at`` (aware) and return it.

    Due after the customer's notification window (``clocks.customer_notice_window``). Idempotent:
    an existing clock for the pair is returned unchanged. A customer with no active
    administrative contact raises a ``no_contact`` escalation at once. A real customer affected
    by a drill gets a clock that is waived at once (``REAL_CUSTOMER_IN_DRILL``): it is never
    notified. Must run inside the transaction that holds the incident's row lock (declaration,
    or adding a customer).
    """
    window = clocks.customer_notice_window(customer.notification_window_hours)
    defaults: dict[str, Any] = {"starts_at": at, "window": window, "due_at": clocks.due_at(at, window)}
    never_notified = not _may_notify(incident, customer)
    if never_notified:
        # A real customer in a drill: its clock is closed at once, with the reason, so the drill
        # runs its lifecycle to the end and nobody is escalated about a notice that must not go.
        defaults |= {"waived_at": at, "waiver_reason": REAL_CUSTOMER_IN_DRILL}
    clock, created = Clock.objects.get_or_create(
        incident=incident, kind=Clock.Kind.CUSTOMER_NOTICE, customer=customer, defaults=defaults
    )
    if created and not never_notified and not _deliverable_contacts(customer).exists():
        escalation_raise(
            clock=clock,
            threshold=Escalation.Threshold.NO_CONTACT,
            detail=unreachable_detail(customer),
        )
    return clock


def clocks_start_for_declaration(*, incident: Incident, at: datetime) -> list[Clock]:
    """Start one notice clock per affected customer of a just-declared ``incident``."""
    affected = AffectedCustomer.objects.filter(incident=incident).select_related("customer")
    return [clock_start_for_customer(incident=incident, customer=a.customer, at=at) for a in affected]


def clock_record_late_reason(*, clock: Clock, actor: Any, reason: str) -> Clock:
    """Record why ``clock`` was met late (GDPR Art. 33(1): "accompanied by reasons for the
    delay"). Raises ``LifecycleConflict`` unless the clock was met after its due time;
    ``ValidationError`` for an empty reason. Permission: ``notifications.change_clock``."""
    _require(actor, "notifications.change_clock")
    if not reason.strip():
        raise ValidationError({"reason": "A reason for the delay is required."})
    with transaction.atomic():
        incident = _locked_incident(clock.incident_id)
        clock = Clock.objects.get(pk=clock.pk)
        if clock.status_at() != Clock.Status.MET_LATE:
            raise LifecycleConflict("Only a clock met late takes a reason for the delay.")
        clock.late_reason = reason.strip()
        clock.save(update_fields=["late_reason"])
        audit_append(
            incident=incident,
            actor=actor,
            verb="clock_late_reason_recorded",
            data={
                "clock": clock.pk,
                "customer": clock.customer_reference,
                "reason": clock.late_reason,
            },
        )
    return clock


def clock_waive(*, clock: Clock, actor: Any, reason: str) -> Clock:
    """Acknowledge that ``clock`` cannot be met (for example: every contact refused delivery),
    with a reason. The clock stops counting; the incident may then move to ``notified``.
    Permission: ``notifications.change_clock`` (incident managers)."""
    _require(actor, "notifications.change_clock")
    if not reason.strip():
        raise ValidationError({"reason": "A reason is required."})
    with transaction.atomic():
        incident = _locked_incident(clock.incident_id)
        clock = Clock.objects.get(pk=clock.pk)
        if not clock.is_open:
            raise LifecycleConflict("This clock is no longer open.")
        clock.waived_at = timezone.now()
        clock.waived_by = actor
        clock.waiver_reason = reason.strip()
        clock.save(update_fields=["waived_at", "waived_by", "waiver_reason"])
        audit_append(
            incident=incident,
            actor=actor,
            verb="clock_waived",
            data={
                "clock": clock.pk,
                "customer": clock.customer_reference,
                "reason": clock.waiver_reason,
            },
        )
        incident_settle_if_notified(incident_id=incident.pk)
    return clock


def clock_restart(*, clock: Clock, actor: Any, starts_at: datetime, reason: str) -> Clock:
    """Move an open clock's start (for example: the customer was found affected later than
    recorded) and recompute its due time. Needs a reason; audited with the old and new start
    and deadline. Late stays late: only a clock that is open and not yet due may move, so an
    overdue or late clock can never be made to look on time (GDPR Art. 33(1): a late
    notification is accompanied by the reasons for the delay, not hidden).
    Raises ``ValidationError`` for a naive instant or an empty reason, ``LifecycleConflict``
    for a clock that is met, waived or already past its deadline. Permission:
    ``notifications.change_clock``."""
    _require(actor, "notifications.change_clock")
    if not reason.strip():
        raise ValidationError({"reason": "A reason is required to move a clock's start."})
    if starts_at.tzinfo is None:
        raise ValidationError({"starts_at": "timezone offset required"})
    with transaction.atomic():
        incident = _locked_incident(clock.incident_id)
        clock = Clock.objects.get(pk=clock.pk)
        if not clock.is_open:
            raise LifecycleConflict("A met or waived clock cannot be moved.")
        if clock.is_late_at():
            raise LifecycleConflict(
                "This clock is past its deadline; late stays late. Record the reasons for the "
                "delay when the notice goes out instead."
            )
        old = (_iso(clock.starts_at), _iso(clock.due_at))
        clock.starts_at = starts_at.astimezone(UTC)
        clock.due_at = clocks.due_at(clock.starts_at, clock.window)
        clock.save(update_fields=["starts_at", "due_at"])
        audit_append(
            incident=incident,
            actor=actor,
            verb="clock_restarted",
            data={
                "clock": clock.pk,
                "reason": reason.strip(),
                "starts_at": [old[0], _iso(clock.starts_at)],
                "due_at": [old[1], _iso(clock.due_at)],
            },
        )
    return clock


def incident_settle_if_notified(*, incident_id: int) -> bool:
    """Move a ``declared`` incident to ``notified`` when every customer clock is met or waived.

    Returns True if it moved. Safe to call any time and twice: a guard that is not met or a
    state that moved on simply answers False.
    """
    incident = Incident.objects.filter(pk=incident_id, state=IncidentState.DECLARED).first()
    if incident is None:
        return False
    try:
        incident_mark_notified(incident=incident, actor=None)
    except (GuardFailed, TransitionNotAvailable):
        return False
    return True


# Escalations -------------------------------------------------------------------------------


def escalation_recipients(incident: Incident) -> list[str]:
    """Email addresses of the incident's owner and the active incident managers, sorted."""
    managers = get_user_model().objects.filter(groups__name="incident_manager", is_active=True)
    addresses = {user.email for user in managers if user.email}
    owner = incident.owner  # None without a query when the incident has no owner
    if owner is not None and owner.email:
        addresses.add(owner.email)
    return sorted(addresses)


def escalation_raise(
    *, clock: Clock, threshold: str, detail: str = "", notify: bool = True, now: datetime | None = None
) -> Escalation | None:
    """Record the ``threshold`` escalation of ``clock`` once; return it, or ``None`` if it was
    already recorded (by this or another scanner: the unique constraint decides).

    With ``notify``, in the same transaction, one email per recipient (the owner and the active
    incident managers) goes into the outbox (``escalation_emails_queue``; a recipient who is not
    a member of a restricted incident gets one that names nothing), and the
    ``escalation.raised`` webhook event is raised (a threshold superseded in the same pass,
    ``notify=False``, raises none, as it emails nobody); the sender is woken after commit, and
    the scanner wakes it if the broker was down.
    """
    recipients = escalation_recipients(clock.incident) if notify else []
    try:
        with transaction.atomic():
            escalation = Escalation.objects.create(
                clock=clock,
                threshold=threshold,
                raised_at=now or timezone.now(),
                recipients=recipients,
                detail=detail,
            )
            if notify:
                escalation_raised(escalation)
            if recipients:
                escalation_emails_queue(escalation=escalation)
    except IntegrityError:
        return None
    return escalation


def escalation_emails_queue(*, escalation: Escalation) -> int:
    """Put the email of ``escalation`` in the outbox, one row per recorded recipient (kind
    ``escalation``, Message-ID ``<escalation.<id>.<address key>@domain>``); returns how many
    rows are new. Safe to run twice: an address already queued is skipped. Call it inside the
    transaction that recorded the escalation. The subject is one line (it is folded by the
    sender, ``notifications.messages.fold_header``: no leading space)."""
    clock, incident = escalation.clock, escalation.clock.incident
    link = settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk])
    context = {
        "threshold": escalation.get_threshold_display(),
        "reference": incident.reference,
        "title": incident.title,
        "who": clock.customer.name if clock.customer else clock.get_kind_display(),
        "due": f"{clock.due_at.astimezone(UTC):%Y-%m-%d %H:%M}",
        "detail": escalation.detail,
        "link": link,
    }
    queued = 0
    for address in escalation.recipients:
        queued += (
            outgoing_email_queue_once(
                kind=OutgoingEmail.Kind.ESCALATION,
                address=address,
                language="en",
                context=context,
                message_key=f"{escalation.pk}.{address_key(address)}",
                incident=incident,
            )
            is not None
        )
    return queued


def escalation_email(*, escalation_id: int) -> int:
    """``escalation_emails_queue`` for the escalation ``escalation_id`` (the task
    ``notifications.tasks.send_escalation``, kept for messages queued before issue 8)."""
    with transaction.atomic():
        escalation = Escalation.objects.select_related("clock__incident", "clock__customer").get(
            pk=escalation_id
        )
        return escalation_emails_queue(escalation=escalation)


# Withheld details --------------------------------------------------------------------------


def withholding_create(
    *,
    incident: Incident,
    actor: Any,
    field: str,
    reason: str,
    requested_by: str,
    review_at: datetime,
    explanation: str = "",
) -> Withholding:
    """Withhold ``field`` (one of ``NOTICE_FIELDS``) from every notice approved from now on.

    ``reason``: a ``Withholding.Reason`` value; ``requested_by``: who asked (for example the
    police force and case number); ``review_at``: aware instant to reconsider. Raises
    ``ValidationError`` for bad values, ``LifecycleConflict`` if the field is already withheld.
    Permission: ``notifications.withhold_notice_field`` (incident managers).
    """
    _require(actor, "notifications.withhold_notice_field")
    if field not in NOTICE_FIELDS:
        raise ValidationError({"field": f"Unknown field; one of {', '.join(NOTICE_FIELDS)}."})
    if review_at.tzinfo is None:
        raise ValidationError({"review_at": "timezone offset required"})
    with transaction.atomic():
        locked = _locked_incident(incident.pk)
        if Withholding.objects.filter(incident=locked, field=field, released_at__isnull=True).exists():
            raise LifecycleConflict(f"{field} is already withheld.")
        withholding = Withholding(
            incident=locked,
            field=field,
            reason=reason,
            explanation=explanation,
            requested_by=requested_by,
            review_at=review_at,
            created_by=actor,
        )
        withholding.full_clean()
        withholding.save()
        audit_append(
            incident=locked,
            actor=actor,
            verb="notice_field_withheld",
            data={
                "field": field,
                "reason": reason,
                "requested_by": requested_by,
                "review_at": _iso(review_at),
            },
        )
    return withholding


def withholding_release(*, withholding: Withholding, actor: Any) -> Withholding:
    """Release a withheld field: the next notice carries it (and marks it changed)."""
    _require(actor, "notifications.withhold_notice_field")
    with transaction.atomic():
        locked = _locked_incident(withholding.incident_id)
        withholding = Withholding.objects.get(pk=withholding.pk)
        if withholding.released_at is not None:
            raise LifecycleConflict("Already released.")
        withholding.released_at = timezone.now()
        withholding.released_by = actor
        withholding.save(update_fields=["released_at", "released_by"])
        audit_append(
            incident=locked, actor=actor, verb="notice_field_released", data={"field": withholding.field}
        )
    return withholding


def active_withholdings(incident: Incident) -> dict[str, str]:
    """``{field: reason}`` of the fields currently withheld on ``incident``."""
    return dict(
        Withholding.objects.filter(incident=incident, released_at__isnull=True).values_list("field", "reason")
    )


# Notices -----------------------------------------------------------------------------------


def notice_draft(
    *,
    incident: Incident,
    actor: Any | None,
    kind: str,
    contact_point: str = "",
    likely_consequences: str = "",
    observation: str = "",
    help_offered: str = "",
) -> Notice:
    """Draft the next notice of ``incident`` (numbered per incident) and return it.

    ``kind``: ``initial`` until every affected customer has had one, then ``update`` or
    ``final``; ``customer_event`` (and only it) for an incident classified as a customer-driven
    event. The breach fields are not copied now: approval snapshots them. Raises
    ``ValidationError`` for an unknown kind, a kind that does not fit the incident, or an update
    before any initial notice.
    Permission: ``notifications.add_notice`` (responders, incident managers); ``actor=None`` is
    the deadline scanner.
    """
    if actor is not None:
        _require(actor, "notifications.add_notice")
    if kind not in Notice.Kind.values:
        raise ValidationError({"kind": f"One of {', '.join(Notice.Kind.values)}."})
    with transaction.atomic():
        locked = _locked_incident(incident.pk)
        approved = Notice.objects.filter(incident=locked, status=Notice.Status.APPROVED)
        is_customer_event = locked.state == IncidentState.CUSTOMER_EVENT
        if is_customer_event != (kind == Notice.Kind.CUSTOMER_EVENT):
            raise ValidationError(
                {"kind": "A customer-driven event gets an observation notice, and only it gets one."}
            )
        if (
            kind in (Notice.Kind.UPDATE, Notice.Kind.FINAL)
            and not approved.filter(kind=Notice.Kind.INITIAL).exists()
        ):
            raise ValidationError({"kind": "The first notice must be an initial notice."})
        last = (
            Notice.objects.filter(incident=locked)
            .order_by("-number")
            .values_list("number", flat=True)
            .first()
        )
        notice = Notice.objects.create(
            incident=locked,
            number=(last or 0) + 1,
            kind=kind,
            contact_point=contact_point,
            likely_consequences=likely_consequences,
            observation=observation,
            help_offered=help_offered,
            created_by=actor,
            is_automatic=actor is None,
        )
        audit_append(
            incident=locked, actor=actor, verb="notice_drafted", data={"number": notice.number, "kind": kind}
        )
    return notice


def notice_update_draft(*, notice: Notice, actor: Any, changes: dict[str, str]) -> Notice:
    """Change a draft's written parts (``contact_point``, ``likely_consequences``, ``kind``,
    and for an observation ``observation`` and ``help_offered``). Raises ``LifecycleConflict``
    once approved. The post-mortem summary is not among them: only the post-mortem's own
    statements go there (``notice_take_post_mortem_summary``)."""
    _require(actor, "notifications.change_notice")
    allowed = {
        "contact_point",
        "likely_consequences",
        "kind",
        "observation",
        "help_offered",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "This field cannot be set here."))
    with transaction.atomic():
        locked = _locked_incident(notice.incident_id)
        notice = Notice.objects.get(pk=notice.pk)
        if notice.status != Notice.Status.DRAFT:
            raise LifecycleConflict("An approved notice is immutable.")
        for name, value in changes.items():
            setattr(notice, name, value)
        notice.full_clean(exclude=["incident", "created_by", "approved_by"])
        notice.save()
        audit_append(
            incident=locked,
            actor=actor,
            verb="notice_draft_changed",
            data={"number": notice.number, "fields": sorted(changes)},
        )
    return notice


def notice_take_post_mortem_summary(*, notice: Notice, actor: Any, text: str) -> Notice:
    """Put a completed post-mortem's customer summary (``text``: its statements, one per
    paragraph) into an update or final notice draft; returns the notice.

    Called by ``postmortems.services.post_mortem_summary_into_notice``, which takes the text
    from the post-mortem's statements and records the version; nothing else sets it, so no
    free text reaches customers as "Summary of our review". Raises ``LifecycleConflict`` once
    approved or for another kind of notice. Permission: ``notifications.change_notice``.
    Audit event ``notice_draft_changed`` naming the field.
    """
    _require(actor, "notifications.change_notice")
    with transaction.atomic():
        locked = _locked_incident(notice.incident_id)
        notice = Notice.objects.get(pk=notice.pk)
        if notice.status != Notice.Status.DRAFT:
            raise LifecycleConflict("An approved notice is immutable.")
        if notice.kind not in (Notice.Kind.UPDATE, Notice.Kind.FINAL):
            raise LifecycleConflict("A post-mortem summary goes into an update or the final notice.")
        notice.post_mortem_summary = text
        notice.save(update_fields=["post_mortem_summary"])
        audit_append(
            incident=locked,
            actor=actor,
            verb="notice_draft_changed",
            data={"number": notice.number, "fields": ["post_mortem_summary"]},
        )
    return notice


def _previous_notice(notice: Notice) -> Notice | None:
    """The approved notice of the incident numbered just before ``notice`` (``None``: first)."""
    return (
        Notice.objects.filter(
            incident_id=notice.incident_id, status=Notice.Status.APPROVED, number__lt=notice.number
        )
        .order_by("-number")
        .first()
    )


def _masked(notice: Notice | None) -> dict[str, Any] | None:
    if notice is None:
        return None
    return {name: (None if name in notice.withheld else value) for name, value in notice.content.items()}


def notice_previous_content(notice: Notice) -> dict[str, Any] | None:
    """The content of the approved notice before ``notice`` (``None`` for the first), with
    fields withheld then counted as unknown, so releasing one shows as a change."""
    return _masked(_previous_notice(notice))


def notice_previous_translations(notice: Notice) -> dict[str, dict[str, str]]:
    """The per-language texts of the approved notice before ``notice`` (``{}`` for the
    first): the words its customers received, shown as an update's previous values."""
    previous = _previous_notice(notice)
    return dict(previous.translations or {}) if previous is not None else {}


def notice_update_number(notice: Notice) -> int | None:
    """The number an update carries (1 for the first update of the incident, 2, ...), or
    ``None`` for another kind. An approved update keeps the number it was approved with."""
    if notice.kind != Notice.Kind.UPDATE:
        return None
    if notice.update_number:
        return notice.update_number
    earlier = Notice.objects.filter(
        incident_id=notice.incident_id,
        kind=Notice.Kind.UPDATE,
        status=Notice.Status.APPROVED,
        number__lt=notice.number,
    ).count()
    return earlier + 1


def _notice_changes(previous: dict[str, Any] | None, content: dict[str, Any]) -> list[str]:
    """Fields changed since the previous notice, the per-customer figures left out (each
    customer's own are compared on its ``NoticeRecipient``)."""
    return [name for name in changed_fields(previous, content) if name not in CUSTOMER_FIGURE_FIELDS]


def translations_for(incident: Incident, content: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{text name: {language: text}}``: the translations of ``incident`` that translate the
    free texts of ``content`` as they stand (a translation of an earlier text is left out)."""
    texts = source_texts(content)
    found: dict[str, dict[str, str]] = {}
    for row in Translation.objects.filter(incident=incident, field__in=list(texts)):
        if row.source_text == texts[row.field] and row.text.strip():
            found.setdefault(row.field, {})[row.language] = row.text
    return found


def _draft_state(notice: Notice) -> tuple[dict[str, Any], dict[str, str], list[str], dict[str, Any]]:
    """What approving ``notice`` now would snapshot: content, withheld, changes, translations
    (an approved notice answers from its snapshot)."""
    if notice.status == Notice.Status.APPROVED:
        return notice.content, notice.withheld, notice.changes, notice.translations
    incident = Incident.objects.select_related("sub_processor").get(pk=notice.incident_id)  # facts now
    content = notice_content_for(notice, incident)
    return (
        content,
        active_withholdings(incident),
        _notice_changes(notice_previous_content(notice), content),
        translations_for(incident, content),
    )


def _previous_figures(notice: Notice, customer_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each customer's figures in its latest notice before ``notice`` (customers never told
    before are absent)."""
    found: dict[int, dict[str, Any]] = {}
    rows = (
        NoticeRecipient.objects.filter(
            notice__incident_id=notice.incident_id,
            notice__status=Notice.Status.APPROVED,
            notice__number__lt=notice.number,
            customer_id__in=customer_ids,
        )
        .order_by("notice__number")
        .values_list("customer_id", "figures")
    )
    for customer_id, figures in rows:
        found[customer_id] = figures
    return found


def customer_notice_languages(customer: Customer) -> list[str]:
    """The languages ``customer``'s notices go out in: one per active administrative contact
    (``rendering.choose_language``), most contacts first, then by code; the customer's own
    preferred language alone when it has no such contact. What a preview shows first."""
    counts: dict[str, int] = {}
    for contact in Contact.objects.filter(
        customer=customer, is_active=True, role=Contact.Role.ADMINISTRATIVE
    ).only("language"):
        language = choose_language(contact, customer)
        counts[language] = counts.get(language, 0) + 1
    if not counts:
        return [choose_language(None, customer)]
    return sorted(counts, key=lambda code: (-counts[code], code))


def _preview_affected(incident: Incident) -> AffectedCustomer | None:
    """The affected customer a preview shows when none is named: the first of those who will
    receive the notice (a drill's drill customers, never a real one)."""
    return (
        AffectedCustomer.objects.filter(incident=incident, customer__is_drill_customer=incident.is_drill)
        .select_related("customer")
        .first()
    )


def notice_preview_customer(incident: Incident) -> Customer | None:
    """The customer ``notice_preview`` shows for ``incident`` when given none (``None``: no
    affected customer, a placeholder is shown)."""
    first = _preview_affected(incident)
    return first.customer if first else None


def notice_preview(*, notice: Notice, language: str, customer: Customer | None = None) -> RenderedMessage:
    """Render ``notice`` as ``customer`` would receive it, in ``language``.

    A draft renders from the incident's facts now; an approved notice from its snapshot (and
    the customer's figures as approved). ``customer`` defaults to the first affected customer
    (or a placeholder with unknown figures). Returns a ``RenderedMessage`` whose
    ``untranslated`` names the free texts that would go out in the source language and whose
    ``figures`` are the shown customer's own figures (``{}`` for the placeholder).
    """
    incident = Incident.objects.get(pk=notice.incident_id)
    content, withheld, changes, translations = _draft_state(notice)
    affected = AffectedCustomer.objects.filter(incident=incident).select_related("customer")
    first = (
        affected.filter(customer=customer).first() if customer is not None else _preview_affected(incident)
    )
    figures: dict[str, Any] | None = None
    previous_figures: dict[str, Any] | None = None
    if first is not None:
        recipient = (
            NoticeRecipient.objects.filter(notice=notice, customer_id=first.customer_id).first()
            if notice.status == Notice.Status.APPROVED
            else None
        )
        if recipient is not None:
            figures, previous_figures = recipient.figures, recipient.previous_figures
        else:
            figures = customer_figures(first, incident)
            previous_figures = _previous_figures(notice, [first.customer_id]).get(first.customer_id)
    shown_customer = (
        first.customer if first else Customer(name="Example Customer", preferred_language=language)
    )
    rendered = render_notice(
        notice=notice,
        content=content,
        withheld=withheld,
        changes=changes,
        customer=shown_customer,
        figures=figures,
        language=language,
        translations=translations,
        previous_content=notice_previous_content(notice),
        previous_figures=previous_figures,
        update_number=notice_update_number(notice),
        previous_translations=notice_previous_translations(notice),
    )
    own_changes = [name for name in changed_figures(previous_figures, figures or {}) if name not in withheld]
    return replace(rendered, figures=figures or {}, changed_figures=tuple(own_changes))


def _may_notify(incident: Incident, customer: Customer) -> bool:
    """Whether a notice of ``incident`` may reach ``customer`` at all: a drill reaches drill
    customers only, a real incident real customers only. Checked where deliveries are
    created, whatever path added the customer."""
    return incident.is_drill == customer.is_drill_customer


def unreachable_detail(customer: Customer) -> str:
    """Why ``customer`` cannot be notified (it has no deliverable administrative contact), with
    the link to its readiness entry: the ``no_contact`` escalation's text."""
    contacts = list(Contact.objects.administrative().filter(customer=customer).order_by("id"))
    if not contacts:
        why = "no active administrative contact"
    else:
        reasons = []
        for contact in contacts:
            if contact.undeliverable_at is not None:
                reasons.append(
                    f"{contact.email} undeliverable since {contact.undeliverable_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                    f" ({contact.undeliverable_reason or 'refused'})"
                )
            elif contact.pending_confirmation:
                reasons.append(f"{contact.email} not confirmed yet")
        why = "no deliverable administrative contact: " + "; ".join(reasons)
    link = settings.SITE_URL.rstrip("/") + reverse("contacts:customer_readiness", args=[customer.pk])
    return f"{customer} has {why}. Readiness entry: {link}"


def _deliverable_contacts(customer: Customer) -> QuerySet[Contact]:
    return Contact.objects.deliverable().filter(customer=customer)


def notice_content_for(notice: Notice, incident: Incident) -> dict[str, Any]:
    """The content ``notice`` would carry now: the incident's breach fields and the notice's
    written parts; an observation notice says what was observed and the help offered."""
    content = notice_content(
        incident,
        likely_consequences=notice.likely_consequences,
        contact_point=notice.contact_point,
        post_mortem_summary=notice.post_mortem_summary,
    )
    if notice.kind == Notice.Kind.CUSTOMER_EVENT:
        content["nature_of_breach"] = notice.observation.strip() or content["nature_of_breach"]
        content["mitigation_measures"] = notice.help_offered.strip() or content["mitigation_measures"]
    return content


def notice_may_go_out(notice: Notice, incident: Incident) -> bool:
    """Whether ``notice`` may be approved in ``incident``'s current state: breach notices once
    declared (until closed), the observation notice of a customer-driven event in that state."""
    if notice.kind == Notice.Kind.CUSTOMER_EVENT:
        return incident.state == IncidentState.CUSTOMER_EVENT
    return incident.state in NOTIFYING_STATES


def notice_recipients(notice: Notice) -> list[AffectedCustomer]:
    """Who this notice goes to: for an initial notice, affected customers whose clock is open
    and who have nothing on its way or accepted (a delivery pending, being sent or sent, or an
    approved notice whose deliveries are still being created); otherwise every affected
    customer. Never a customer the incident may not notify (a drill reaches drill customers
    only)."""
    affected = AffectedCustomer.objects.filter(
        incident_id=notice.incident_id, customer__is_drill_customer=notice.incident.is_drill
    ).select_related("customer")
    if notice.kind != Notice.Kind.INITIAL:
        return list(affected)
    served = Delivery.objects.filter(
        notice__incident_id=notice.incident_id,
        status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.SENT],
    ).values_list("customer_id", flat=True)
    being_created = NoticeRecipient.objects.filter(
        notice__incident_id=notice.incident_id,
        notice__status=Notice.Status.APPROVED,
        deliveries_created_at__isnull=True,
    ).values_list("customer_id", flat=True)
    open_clock_customers = Clock.objects.filter(
        incident_id=notice.incident_id,
        kind=Clock.Kind.CUSTOMER_NOTICE,
        met_at__isnull=True,
        waived_at__isnull=True,
    ).values_list("customer_id", flat=True)
    return list(
        affected.filter(customer_id__in=open_clock_customers)
        .exclude(customer_id__in=served)
        .exclude(customer_id__in=being_created)
    )


def notice_languages(targets: Iterable[AffectedCustomer]) -> set[str]:
    """The languages a notice to ``targets`` will be sent in (``choose_language`` of each
    active administrative contact)."""
    targets = list(targets)
    customers = {t.customer_id: t.customer for t in targets}
    languages: set[str] = set()
    contacts = Contact.objects.filter(
        customer_id__in=list(customers), is_active=True, role=Contact.Role.ADMINISTRATIVE
    ).values_list("customer_id", "language")
    for customer_id, language in contacts.distinct():
        languages.add(choose_language(Contact(language=language), customers[customer_id]))
    return languages


def notice_missing_translations(
    content: dict[str, Any], translations: dict[str, dict[str, str]], languages: Iterable[str]
) -> dict[str, list[str]]:
    """``{language: [text names]}`` of the free texts of ``content`` that have no translation
    into a language of ``languages`` other than ``settings.NOTICE_SOURCE_LANGUAGE``."""
    missing: dict[str, list[str]] = {}
    for language in sorted(set(languages) - {settings.NOTICE_SOURCE_LANGUAGE}):
        names = [name for name in source_texts(content) if not (translations.get(name) or {}).get(language)]
        if names:
            missing[language] = names
    return missing


def _missing_translations_message(missing: dict[str, list[str]]) -> str:
    labels = {name: str(TRANSLATABLE_LABELS[name]) for names in missing.values() for name in names}
    parts = [
        f"{language} ({', '.join(labels[name] for name in names)})" for language, names in missing.items()
    ]
    return (
        "Translations are required before approval (NOTICE_REQUIRE_TRANSLATIONS); missing for "
        + "; ".join(parts)
        + "."
    )


def notice_approve(*, notice: Notice, actor: Any | None) -> Notice:
    """Approve a draft and answer at once: snapshot the breach fields, the per-language texts,
    what is withheld and what changed; record one ``NoticeRecipient`` per target customer with
    that customer's own figures; mark the deliveries "to create"; and, after commit, queue the
    worker that renders the messages and creates the deliveries
    (``tasks.create_notice_deliveries``, which ``notice_deliveries_create`` runs; the deadline
    scanner queues it again for any approval whose message was lost). Returns the approved,
    now immutable, notice.

    Raises ``LifecycleConflict`` when the notice is not a draft, the incident is not declared
    (or later), or there is nobody to send it to; ``ValidationError`` (``translations``) naming
    the missing languages when ``settings.NOTICE_REQUIRE_TRANSLATIONS`` is on and a free text
    has no translation into a language the notice will be sent in. Permission:
    ``notifications.approve_notice`` (incident managers); ``actor=None`` is the deadline
    scanner's automatic initial notice (never refused for translations: the deadline wins).
    The ``notice_approved`` hooks (``settings.LIFECYCLE_HOOKS``) run in the same transaction.
    """
    if actor is not None:
        _require(actor, "notifications.approve_notice")
    with transaction.atomic():
        incident = _locked_incident(notice.incident_id)
        notice = Notice.objects.select_related("incident").get(pk=notice.pk)
        if notice.status != Notice.Status.DRAFT:
            raise LifecycleConflict("This notice is already approved.")
        if not notice_may_go_out(notice, incident):
            raise LifecycleConflict(
                "Notices go out only for a declared personal data breach, or as the observation "
                "of a customer-driven event."
            )
        targets = notice_recipients(notice)
        if not targets:
            raise LifecycleConflict("No affected customer is waiting for this notice.")
        content = notice_content_for(notice, incident)
        translations = translations_for(incident, content)
        if settings.NOTICE_REQUIRE_TRANSLATIONS and actor is not None:
            missing = notice_missing_translations(content, translations, notice_languages(targets))
            if missing:
                raise ValidationError({"translations": _missing_translations_message(missing)})
        now = timezone.now()
        notice.content = content
        notice.withheld = active_withholdings(incident)
        notice.changes = _notice_changes(notice_previous_content(notice), content)
        notice.translations = translations
        notice.update_number = notice_update_number(notice)
        notice.status = Notice.Status.APPROVED
        notice.approved_at = now
        notice.approved_by = actor
        notice.delivery_creation = DeliveryCreation.PENDING
        Notice.objects.filter(pk=notice.pk).update(
            content=notice.content,
            withheld=notice.withheld,
            changes=notice.changes,
            translations=notice.translations,
            update_number=notice.update_number,
            status=notice.status,
            approved_at=now,
            approved_by=actor,
            delivery_creation=notice.delivery_creation,
        )
        previous = _previous_figures(notice, [t.customer_id for t in targets])
        recipients = []
        for affected in targets:
            figures = customer_figures(affected, incident)
            before = previous.get(affected.customer_id)
            recipients.append(
                NoticeRecipient(
                    notice=notice,
                    customer_id=affected.customer_id,
                    figures=figures,
                    previous_figures=before,
                    changes=changed_figures(before, figures),
                )
            )
        NoticeRecipient.objects.bulk_create(recipients, batch_size=1000)
        audit_append(
            incident=incident,
            actor=actor,
            verb="notice_approved",
            data={
                "number": notice.number,
                "kind": notice.kind,
                "update_number": notice.update_number,
                "automatic": actor is None,
                "customers": len(targets),
                "withheld": sorted(notice.withheld),
                "changes": notice.changes,
                "translated": {name: sorted(by_language) for name, by_language in translations.items()},
            },
            at=now,
        )
        run_hooks(
            NOTICE_APPROVED, "saved", incident, HookContext(actor=actor, at=now, inputs={"notice": notice})
        )
        transaction.on_commit(partial(enqueue, TASK_CREATE_NOTICE_DELIVERIES, notice.pk))
    return notice


@dataclass
class DeliveryCreationReport:
    """What one ``notice_deliveries_create`` run did: customers handled, deliveries and
    messages created, and whether the notice's deliveries are now all created."""

    customers: int = 0
    deliveries: int = 0
    messages: int = 0
    done: bool = False


def _earlier_message_ids(notice: Notice, contact_ids: list[int]) -> dict[int, list[str]]:
    """Per contact, the Message-IDs of its earlier notices on the incident, oldest first
    (failed deliveries left out: they never arrived)."""
    found: dict[int, list[str]] = {}
    rows = (
        Delivery.objects.filter(
            notice__incident_id=notice.incident_id,
            notice__number__lt=notice.number,
            contact_id__in=contact_ids,
        )
        .exclude(status=Delivery.Status.FAILED)
        .order_by("notice__number", "id")
        .values_list("contact_id", "message_id")
    )
    for contact_id, message_id in rows:
        found.setdefault(contact_id, []).append(message_id)
    return found


def _create_chunk(
    notice: Notice, recipients: list[NoticeRecipient], context: dict[str, Any]
) -> tuple[int, int]:
    """Render once per (customer, language), build each message once, and bulk-create the
    deliveries of ``recipients`` to their deliverable contacts; record each active
    administrative contact left out (refused earlier, or a new address not confirmed yet) as a
    ``SkippedRecipient``; mark the recipients done. Returns (deliveries, messages) created.

    Never for a customer that ``notice``'s incident may not notify (``_may_notify``: a drill
    reaches drill customers only): such a recipient is done with no delivery."""
    now = timezone.now()
    contacts_by_customer: dict[int, list[Contact]] = {}
    left_out: dict[int, list[SkippedRecipient]] = {}
    for contact in (
        Contact.objects.administrative()
        .filter(customer_id__in=[r.customer_id for r in recipients])
        .order_by("id")
    ):
        if contact.is_deliverable:
            contacts_by_customer.setdefault(contact.customer_id, []).append(contact)
            continue
        undeliverable = contact.undeliverable_at is not None
        left_out.setdefault(contact.customer_id, []).append(
            SkippedRecipient(
                notice=notice,
                contact=contact,
                customer_id=contact.customer_id,
                address=contact.email,
                reason=(
                    SkippedRecipient.Reason.UNDELIVERABLE
                    if undeliverable
                    else SkippedRecipient.Reason.PENDING_CONFIRMATION
                ),
                detail=(
                    f"Refused {contact.undeliverable_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: "
                    f"{contact.undeliverable_reason}"
                    if undeliverable and contact.undeliverable_at
                    else "Added through a confirmation link; the address has not confirmed itself."
                ),
                created_at=now,
            )
        )
    skipped_rows: list[SkippedRecipient] = []
    earlier = _earlier_message_ids(
        notice, [contact.pk for contacts in contacts_by_customer.values() for contact in contacts]
    )
    domain = _message_domain()
    planned: list[tuple[NoticeRecipient, Contact, str]] = []
    wanted: dict[str, list[NoticeRecipient]] = {}  # language -> customers to render it for
    seen: set[tuple[int, str]] = set()
    for recipient in recipients:
        if not _may_notify(notice.incident, recipient.customer):
            continue
        skipped_rows += left_out.get(recipient.customer_id, [])
        contacts = contacts_by_customer.get(recipient.customer_id, [])
        if not contacts:
            clock = Clock.objects.filter(
                incident_id=notice.incident_id,
                customer_id=recipient.customer_id,
                kind=Clock.Kind.CUSTOMER_NOTICE,
            ).first()
            if clock is not None:
                escalation_raise(
                    clock=clock,
                    threshold=Escalation.Threshold.NO_CONTACT,
                    detail=unreachable_detail(recipient.customer),
                )
            continue
        for contact in contacts:
            language = choose_language(contact, recipient.customer)
            if (recipient.customer_id, language) not in seen:
                seen.add((recipient.customer_id, language))
                wanted.setdefault(language, []).append(recipient)
            planned.append((recipient, contact, language))
    # Plain rows written by COPY on PostgreSQL (``incidents.bulk.insert_rows``): model instances
    # and bulk_create's statements cost half of the creation's CPU.
    message_rows: list[dict[str, Any]] = []
    keys: list[tuple[int, str]] = []
    for language, customers in wanted.items():
        rendered_all = render_notice_for_customers(
            notice=notice,
            content=notice.content,
            withheld=notice.withheld,
            changes=notice.changes,
            customers=[(r.customer, r.figures, r.previous_figures) for r in customers],
            language=language,
            translations=notice.translations,
            previous_content=context["previous_content"],
            update_number=notice.update_number,
            previous_translations=context["previous_translations"],
        )
        for recipient, rendered in zip(customers, rendered_all, strict=True):
            subject_header, mime = build_body(
                subject=rendered.subject, text=rendered.text, html=rendered.html
            )
            keys.append((recipient.customer_id, language))
            message_rows.append(
                {
                    "notice_id": notice.pk,
                    "customer_id": recipient.customer_id,
                    "language": language,
                    "subject": rendered.subject,
                    "body_text": rendered.text,
                    "body_html": rendered.html,
                    "subject_header": subject_header,
                    "mime": mime,
                }
            )
    message_ids = insert_rows(NoticeMessage, message_rows, with_ids=True)
    messages = {
        key: (message_id, row["subject"])
        for key, message_id, row in zip(keys, message_ids, message_rows, strict=True)
    }
    rows = []
    counts: dict[int, int] = {}
    prefix = f"<{notice.incident.reference}.n{notice.number}.c"
    for recipient, contact, language in planned:
        message_id, subject = messages[(recipient.customer_id, language)]
        threads = earlier.get(contact.pk, [])
        rows.append(
            {
                "notice_id": notice.pk,
                "contact_id": contact.pk,
                "customer_id": recipient.customer_id,
                "address": contact.email,
                "language": language,
                "subject": subject,
                "notice_message_id": message_id,
                "message_id": f"{prefix}{contact.pk}@{domain}>",
                "in_reply_to": threads[-1] if threads else "",
                "references": " ".join(threads),
                "next_attempt_at": now,
                "created_at": now,
            }
        )
        counts[recipient.pk] = counts.get(recipient.pk, 0) + 1
    insert_rows(Delivery, rows)
    SkippedRecipient.objects.bulk_create(skipped_rows, batch_size=500)
    # One UPDATE per distinct count (a customer has a handful of contacts), not bulk_update's
    # CASE per row, which cost a fifth of the creation.
    by_count: dict[int, list[int]] = {}
    for recipient in recipients:
        recipient.deliveries_created_at = now
        recipient.deliveries = counts.get(recipient.pk, 0)
        by_count.setdefault(recipient.deliveries, []).append(recipient.pk)
    for count, recipient_ids in by_count.items():
        NoticeRecipient.objects.filter(pk__in=recipient_ids).update(
            deliveries_created_at=now, deliveries=count
        )
    return len(rows), len(messages)


def notice_deliveries_create(*, notice_id: int, max_chunks: int | None = None) -> DeliveryCreationReport:
    """Create the deliveries of an approved notice from its committed approval, customer chunk by
    customer chunk (``settings.NOTICE_CREATE_CHUNK_CUSTOMERS`` per transaction).

    Steps: 1. take the next customers still to do (``SELECT ... FOR UPDATE SKIP LOCKED``, so
    two workers share one notice); 2. render once per (customer, language) and build its MIME
    body once (``NoticeMessage``); 3. bulk-create one delivery per active administrative
    contact, threaded with the contact's earlier notices (``In-Reply-To``, ``References``), and
    mark the customers done, in the same transaction; 4. after commit, wake the sender, so
    sending starts while later chunks are created. When no customer is left, the notice's
    ``delivery_creation`` becomes ``done`` (audited ``notice_deliveries_created``).

    Idempotent and resumable: a killed worker loses only its uncommitted chunk, which the next
    run (the deadline scanner queues one every minute while any approval is pending) does
    again; a notice already done is left alone. Customers with no deliverable contact get a
    ``no_contact`` escalation; contacts left out (undeliverable, unconfirmed) get a
    ``SkippedRecipient`` each, counted in the audit event. ``max_chunks`` stops early (tests,
    benchmarks).
    """
    report = DeliveryCreationReport()
    notice = Notice.objects.select_related("incident").filter(pk=notice_id).first()
    if notice is None or notice.delivery_creation != DeliveryCreation.PENDING:
        report.done = notice is not None and notice.delivery_creation == DeliveryCreation.DONE
        return report
    context = {
        "previous_content": notice_previous_content(notice),
        "previous_translations": notice_previous_translations(notice),
    }
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        with transaction.atomic():
            recipients = list(
                NoticeRecipient.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(notice_id=notice.pk, deliveries_created_at__isnull=True)
                .select_related("customer")
                .order_by("id")[: settings.NOTICE_CREATE_CHUNK_CUSTOMERS]
            )
            if not recipients:
                break
            deliveries, messages = _create_chunk(notice, recipients, context)
            transaction.on_commit(partial(enqueue, TASK_SEND_DUE_DELIVERIES))
        chunks += 1
        report.customers += len(recipients)
        report.deliveries += deliveries
        report.messages += messages
    with transaction.atomic():
        incident = _locked_incident(notice.incident_id)
        current = Notice.objects.get(pk=notice.pk)
        left = NoticeRecipient.objects.filter(notice=current, deliveries_created_at__isnull=True).exists()
        if current.delivery_creation == DeliveryCreation.PENDING and not left:
            now = timezone.now()
            Notice.objects.filter(pk=current.pk).update(
                delivery_creation=DeliveryCreation.DONE, deliveries_created_at=now
            )
            totals = NoticeRecipient.objects.filter(notice=current).aggregate(
                customers=Count("id"), deliveries=Sum("deliveries")
            )
            audit_append(
                incident=incident,
                actor=None,
                verb="notice_deliveries_created",
                data={
                    "number": current.number,
                    "customers": totals["customers"],
                    "deliveries": totals["deliveries"] or 0,
                    "skipped_recipients": SkippedRecipient.objects.filter(notice=current).count(),
                },
                at=now,
            )
        report.done = not left
    if report.done and report.deliveries and connection.vendor == "postgresql":
        # Thousands of rows just arrived by COPY: give the planner their statistics now (as
        # PostgreSQL advises after a bulk load) rather than when autovacuum gets to it, so the
        # sender's claims use the pending-rows index from the start.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Delivery._meta.db_table)}")
    return report


def notices_awaiting_deliveries() -> list[int]:
    """Ids of approved notices whose deliveries are still to be created, oldest approval first
    (partial index ``notifications_notice_to_create``); the scanner queues a worker for each."""
    return list(
        Notice.objects.filter(delivery_creation=DeliveryCreation.PENDING)
        .order_by("approved_at")
        .values_list("id", flat=True)
    )


def notice_delivery_progress(notice: Notice) -> dict[str, Any]:
    """How far the deliveries of ``notice`` are created: ``{"status": "" | "pending" | "done",
    "customers_total", "customers_done", "deliveries_created", "completed_at"}`` (two indexed
    queries)."""
    totals = NoticeRecipient.objects.filter(notice=notice).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(deliveries_created_at__isnull=False)),
        deliveries=Sum("deliveries"),
    )
    return {
        "status": notice.delivery_creation,
        "customers_total": totals["total"],
        "customers_done": totals["done"],
        "deliveries_created": totals["deliveries"] or 0,
        "completed_at": notice.deliveries_created_at,
    }


# Per-language text -------------------------------------------------------------------------


#: Staff-facing names of the free texts (``TRANSLATABLE_TEXTS``).
TRANSLATABLE_LABELS = {
    "nature_of_breach": "Nature of the breach",
    "mitigation_measures": "Measures taken or proposed",
    "adverse_effect_measures": "Measures to mitigate adverse effects",
    "sub_processor_details": "Sub-processor details",
    "likely_consequences_details": "Likely consequences (written text)",
    "post_mortem_summary": "Post-mortem summary",
    "contact_point": "Contact point",
}


def notice_source_texts(incident: Incident) -> dict[str, str]:
    """The free texts the incident's next notice would carry, by ``TRANSLATABLE_TEXTS`` name:
    the incident's text facts and the written parts of its latest draft (else of its latest
    notice). What translations translate."""
    notice = (
        Notice.objects.filter(incident=incident, status=Notice.Status.DRAFT).order_by("-number").first()
        or Notice.objects.filter(incident=incident).order_by("-number").first()
        or Notice(incident=incident, kind=Notice.Kind.INITIAL, number=0)
    )
    if notice.status == Notice.Status.APPROVED:  # written parts carry over; facts are read now
        notice = Notice(
            incident=incident,
            kind=notice.kind,
            number=notice.number + 1,
            contact_point=notice.contact_point,
            likely_consequences=notice.likely_consequences,
            post_mortem_summary=notice.post_mortem_summary,
            observation=notice.observation,
            help_offered=notice.help_offered,
        )
    return source_texts(notice_content_for(notice, incident))


def translations_for_language(incident: Incident, language: str) -> dict[str, Translation]:
    """``{text name: Translation}`` of ``incident`` into ``language`` (outdated ones included:
    compare ``source_text`` with ``notice_source_texts``)."""
    return {row.field: row for row in Translation.objects.filter(incident=incident, language=language)}


def translation_set(
    *, incident: Incident, actor: Any, field: str, language: str, text: str
) -> Translation | None:
    """Give free text ``field`` (one of ``TRANSLATABLE_TEXTS``) of ``incident``'s notices in
    ``language``, translating the text the next notice would carry (``notice_source_texts``;
    if that text changes later, the translation is outdated and notices fall back to the
    default text until it is given again). An empty ``text`` removes the translation (returns
    ``None``).

    Raises ``ValidationError`` for an unknown field, a field with no text to translate, the
    source language or a language not in ``settings.LANGUAGES``; ``LifecycleConflict`` for a
    closed incident. Permission: ``notifications.translate_notice_text`` (incident managers).
    Audited (``notice_text_translated``, ``notice_text_translation_removed``).
    """
    _require(actor, "notifications.translate_notice_text")
    if field not in TRANSLATABLE_TEXTS:
        raise ValidationError({"field": f"Unknown text; one of {', '.join(TRANSLATABLE_TEXTS)}."})
    languages = {code for code, _name in settings.LANGUAGES} - {settings.NOTICE_SOURCE_LANGUAGE}
    if language not in languages:
        raise ValidationError({"language": f"One of {', '.join(sorted(languages))}."})
    with transaction.atomic():
        locked = _locked_incident(incident.pk)
        if locked.state in (IncidentState.CLOSED, IncidentState.OUT_OF_SCOPE):
            raise LifecycleConflict("A closed incident's notices cannot change.")
        text = text.strip()
        if not text:
            deleted, _ = Translation.objects.filter(incident=locked, field=field, language=language).delete()
            if deleted:
                audit_append(
                    incident=locked,
                    actor=actor,
                    verb="notice_text_translation_removed",
                    data={"field": field, "language": language},
                )
            return None
        source = notice_source_texts(locked).get(field)
        if not source:
            raise ValidationError({"field": f"{TRANSLATABLE_LABELS[field]} has no text to translate yet."})
        translation, _created = Translation.objects.update_or_create(
            incident=locked,
            field=field,
            language=language,
            defaults={"text": text, "source_text": source, "updated_at": timezone.now(), "updated_by": actor},
        )
        audit_append(
            incident=locked,
            actor=actor,
            verb="notice_text_translated",
            data={"field": field, "language": language, "text": text},
        )
    return translation


def notice_issue_initial_automatically(*, incident_id: int, now: datetime | None = None) -> Notice | None:
    """The deadline scanner's fallback: issue an initial notice from the facts known so far to
    every affected customer whose clock is open and who has nothing on its way yet.

    Unknown fields say "not yet known; a follow-up notice will come". Returns the approved
    notice, or ``None`` when nobody is waiting (for example another scanner just did it).
    """
    with transaction.atomic():
        incident = _locked_incident(incident_id)
        if incident.state not in NOTIFYING_STATES:
            return None
        probe = Notice(incident=incident, kind=Notice.Kind.INITIAL, number=0)
        if not notice_recipients(probe):
            return None
        notice = notice_draft(incident=incident, actor=None, kind=Notice.Kind.INITIAL)
        return notice_approve(notice=notice, actor=None)


def deliveries_acknowledge_failure(
    *, incident: Incident, customer: Customer, actor: Any, reason: str
) -> Clock | None:
    """An incident manager acknowledges that ``customer`` cannot be reached (every delivery
    failed): the failed deliveries are marked acknowledged and the customer's clock is waived
    with ``reason``. Returns the waived clock, or ``None`` if it was no longer open. Raises
    ``LifecycleConflict`` if any delivery to the customer is pending, being sent or sent (a
    customer with no deliverable contact has none and can be acknowledged)."""
    _require(actor, "notifications.change_clock")
    deliveries = Delivery.objects.filter(notice__incident=incident, customer=customer)
    being_created = NoticeRecipient.objects.filter(
        notice__incident=incident, customer=customer, deliveries_created_at__isnull=True
    )
    if deliveries.exclude(status=Delivery.Status.FAILED).exists() or being_created.exists():
        raise LifecycleConflict(
            f"Only a customer that cannot be reached (no deliverable contact, or every delivery "
            f"failed) can be acknowledged; {customer} has deliveries pending or sent."
        )
    clock = Clock.objects.filter(
        incident=incident,
        customer=customer,
        kind=Clock.Kind.CUSTOMER_NOTICE,
        met_at__isnull=True,
        waived_at__isnull=True,
    ).first()
    Delivery.objects.filter(
        notice__incident=incident,
        customer=customer,
        status=Delivery.Status.FAILED,
        failure_acknowledged_at__isnull=True,
    ).update(failure_acknowledged_at=timezone.now())
    if clock is None:
        return None
    return clock_waive(clock=clock, actor=actor, reason=reason)


def open_clock_filter(now: datetime, horizon: timedelta) -> Q:
    """Open clocks due before ``now + horizon``: the scanner's index-backed question."""
    return Q(met_at__isnull=True, waived_at__isnull=True, due_at__lte=now + horizon)
