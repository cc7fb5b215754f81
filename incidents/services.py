"""Writes to the incident register: one keyword-only, atomic function per business verb.

Every function here that changes an incident, in one transaction: locks the incident row,
checks the actor's permission, changes it, writes an audit event, and queues outside effects with
``transaction.on_commit`` so nothing leaves the building for a change that rolled back.
Errors: ``ActionForbidden`` (the role may not, 403), ``TransitionNotAvailable`` and
``LifecycleConflict`` (not from this state, 409), ``GuardFailed`` (facts missing, 400),
``django.core.exceptions.ValidationError`` (a value is invalid, 400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from incidents.accounts import is_auditor
from incidents.addresses import normalise_email
from incidents.audit import audit_append, customer_audit_append
from incidents.exceptions import (
    ActionForbidden,
    DuplicateExternalReference,
    GuardFailed,
    IncidentNotFound,
    LifecycleConflict,
    TransitionNotAvailable,
)
from incidents.lifecycle import AFFECTED_CUSTOMER_ADDED, OWNER_ASSIGNED, HookContext, missing_for, run_hooks
from incidents.models import (
    TRANSITION_PERMISSIONS,
    AffectedCustomer,
    Contact,
    Customer,
    DataCategory,
    DataSubjectCategory,
    Incident,
    IncidentRestriction,
    IncidentRestrictionMember,
    IncidentState,
    LikelyConsequence,
    Note,
    Product,
    WebhookEventType,
)
from incidents.outbox import declaration_alerts_queue
from incidents.selectors import incident_visible
from incidents.statements import insert_instance, insert_together
from incidents.webhooks import next_incident_id_with_subscribers, webhook_event_raise

#: Incident fields that intake and editing may set, in the order forms show them. ``state`` is
#: never among them: it changes only through the transition services below.
EDITABLE_FIELDS: tuple[str, ...] = (
    "title",
    "summary",
    "detection_source",
    "detected_at",
    "occurred_on",
    "occurred_on_precision",
    "reported_by",
    "owner",
    "scenario",
    "severity",
    "malicious",
    "is_drill",
    "nature_of_breach",
    "mitigation_measures",
    "products",
    "exposure_started_at",
    "exposure_ended_at",
    "records_affected",
    "records_affected_is_estimate",
    "data_categories",
    "data_subject_categories",
    "data_subjects_affected",
    "data_subjects_affected_is_estimate",
    "likely_consequences",
    "adverse_effect_measures",
    "sub_processor",
    "sub_processor_details",
    "incident_figures_shareable",
)

#: Editable fields that only some roles may change: field -> permission.
RESTRICTED_FIELDS: dict[str, str] = {"incident_figures_shareable": "incidents.share_incident_figures"}

#: States after which an incident's facts are frozen except through a new incident.
FINAL_STATES = frozenset(
    {IncidentState.CLOSED, IncidentState.OUT_OF_SCOPE, IncidentState.CUSTOMER_EVENT, IncidentState.MERGED}
)


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _audit_value(value: Any) -> Any:
    """A JSON-friendly form of a field value for the audit trail: instants in UTC ISO 8601, a
    user by username, another row by its id."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, AbstractBaseUser):
        return value.get_username()
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, models.QuerySet | list | tuple | set):
        return sorted(_audit_value(v) for v in value) if value else []
    return value


#: Facts about the past; a value later than now (beyond clock skew) is a typing error.
PAST_INSTANTS = ("detected_at", "exposure_started_at", "exposure_ended_at", "customer_informed_at")
CLOCK_SKEW = timedelta(minutes=5)


def _refuse_future(values: Mapping[str, Any]) -> None:
    """Raise ``ValidationError`` naming the past facts (``PAST_INSTANTS``, ``occurred_on``)
    given as later than now."""
    now = timezone.now()
    errors = {
        name: "This cannot be in the future."
        for name in PAST_INSTANTS
        if isinstance(values.get(name), datetime) and values[name] > now + CLOCK_SKEW
    }
    if isinstance(values.get("occurred_on"), date) and values["occurred_on"] > (now + CLOCK_SKEW).date():
        errors["occurred_on"] = "This cannot be in the future."
    if errors:
        raise ValidationError(errors)


def _refuse_drill_change(incident: Incident, changes: Mapping[str, Any]) -> None:
    """A drill stays a drill once declared (its notices went to drill customers only), and an
    incident that affects a drill customer cannot become real. Raises ``ValidationError`` on
    ``is_drill``."""
    if "is_drill" not in changes or bool(changes["is_drill"]) == incident.is_drill or incident.pk is None:
        return
    if incident.declared_at is not None:
        raise ValidationError({"is_drill": "A declared incident cannot become, or stop being, a drill."})
    if (
        not changes["is_drill"]
        and incident.affected_customers.filter(customer__is_drill_customer=True).exists()
    ):
        raise ValidationError(
            {
                "is_drill": "This incident affects drill customers; remove them before making it a real incident."
            }
        )


def _apply_changes(incident: Incident, changes: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Set ``changes`` on ``incident`` (saved separately; products applied after save).

    Returns the audit diff ``{field: [old, new]}`` of what actually changed. Raises
    ``ValidationError`` naming unknown or read-only fields and invalid values.
    """
    unknown = sorted(set(changes).difference(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    for name in JSON_CHOICE_LISTS:
        if name in changes:
            changes = {**changes, name: _choice_list(name, changes[name])}
    _refuse_future(changes)
    _refuse_drill_change(incident, changes)
    diff: dict[str, list[Any]] = {}
    for name, new in changes.items():
        if name == "products":
            old_ids = sorted(incident.products.values_list("pk", flat=True)) if incident.pk else []
            new_ids = sorted(p.pk if isinstance(p, Product) else p for p in new)
            if old_ids != new_ids:
                diff[name] = [old_ids, new_ids]
            continue
        old = getattr(incident, name)
        if old != new:
            diff[name] = [_audit_value(old), _audit_value(new)]
            setattr(incident, name, new)
    _validate(incident)
    return diff


#: JSON list fields and their allowed values; an empty list means "not known" (``None``).
JSON_CHOICE_LISTS: dict[str, type[models.TextChoices]] = {
    "data_categories": DataCategory,
    "data_subject_categories": DataSubjectCategory,
    "likely_consequences": LikelyConsequence,
}


def _choice_list(name: str, values: Any) -> list[str] | None:
    """``values`` as a list of distinct ``JSON_CHOICE_LISTS[name]`` values in the order given
    (``None`` stays ``None``: not known); ``ValidationError`` naming an unknown value."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, list | tuple | set):
        raise ValidationError({name: "A list of values is expected."})
    allowed = JSON_CHOICE_LISTS[name].values
    unknown = sorted(str(value) for value in values if value not in allowed)
    if unknown:
        raise ValidationError({name: f"Unknown value(s): {', '.join(unknown)}."})
    return list(dict.fromkeys(values))


def _require_restricted(actor: Any, changes: Mapping[str, Any], incident: Incident | None = None) -> None:
    """``ActionForbidden`` when ``changes`` sets a ``RESTRICTED_FIELDS`` field to a new value
    and the actor lacks its permission."""
    for name, permission in RESTRICTED_FIELDS.items():
        changing = name in changes and (incident is None or getattr(incident, name) != changes[name])
        if changing and actor is not None and not actor.has_perm(permission):
            raise ActionForbidden(f"Your role may not change {name} (needs {permission}).")


#: Relations whose value, when given as a saved instance, was just read from the database.
_RELATIONS = ("owner", "sub_processor", "created_by", "declared_by")


def _validate(incident: Incident) -> None:
    """``full_clean`` without the checks that repeat work: a relation given as a saved
    instance is not looked up again (the database's foreign key still backs it), and the
    exposure check constraint is checked here in Python instead of by a query (the constraint
    itself still backs it under concurrent edits). Raises ``ValidationError``."""
    exclude = ["products", "reference", "source_record", "state"]
    exclude += [name for name in _RELATIONS if getattr(incident, f"{name}_id") is not None]
    # No unique check either: the only unique columns are the id and the reference (which the
    # service assigns); listing the checks alone cost 0.4 ms per create.
    incident.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    started, ended = incident.exposure_started_at, incident.exposure_ended_at
    if started is not None and ended is not None and ended < started:
        raise ValidationError({"exposure_ended_at": "The exposure cannot end before it started."})


def _announce_owner(incident: Incident, actor: Any | None, at: datetime | None = None) -> dict[str, Any]:
    """Run the ``owner_assigned`` hooks for ``incident``'s (new) owner, if it has one; returns
    their audit data. Inside the transaction that assigned the owner."""
    if incident.owner_id is None:
        return {}
    context = HookContext(actor=actor, at=at or timezone.now(), inputs={"owner": incident.owner})
    return run_hooks(OWNER_ASSIGNED, "saved", incident, context)


def _save_products(incident: Incident, changes: Mapping[str, Any]) -> None:
    if "products" in changes:
        incident.products.set(changes["products"])


def incident_create(
    *,
    actor: Any | None,
    fields: Mapping[str, Any],
    external_reference: str | None = None,
    source_record: dict[str, Any] | None = None,
    audit_data: dict[str, Any] | None = None,
) -> Incident:
    """Record a new signal as an incident in state ``detected`` and return it.

    ``fields``: a mapping of ``EDITABLE_FIELDS`` (``title`` and ``detection_source`` required;
    instants aware). ``actor``: the user recording it, or ``None`` for a system import.
    ``external_reference`` and ``source_record``: the identifier and whole record of an imported
    incident. The reference ``BD-<year>-<number>`` is assigned from the creation year (UTC).
    ``external_reference`` is unique per ``detection_source``. Raises ``ActionForbidden``
    without ``incidents.add_incident``; ``ValidationError`` for bad values;
    ``DuplicateExternalReference`` (naming the incident that has it) for a taken external
    reference. Writes the incident and its first audit event (``created``), and raises the
    ``incident.created`` webhook event (``incidents.webhooks``).
    """
    if actor is not None:
        _require(actor, "incidents.add_incident")
    if fields.get("incident_figures_shareable"):
        _require_restricted(actor, fields)
    incident = Incident(
        created_by=actor,
        external_reference=external_reference,
        source_record=source_record,
    )
    # Every refusal (ValidationError, DuplicateExternalReference) is raised before the first
    # write, outside the transaction block; inside it only the database can fail, and a caller
    # never carries on in a transaction after that. So, inside a caller's transaction (the
    # API's, with its Idempotency-Key record), the block takes no savepoint of its own: two
    # statements fewer per create. With an external reference a concurrent create can still
    # take it at the INSERT: that refusal keeps its savepoint.
    diff = _apply_changes(incident, fields)
    if external_reference is not None:
        _refuse_duplicate_reference(incident)
    created_data = {"fields": {name: change[1] for name, change in diff.items()}, **(audit_data or {})}
    record_created = partial(
        audit_append,
        incident=incident,
        actor=actor,
        verb="created",
        to_state=incident.state,
        data=created_data,
        first=True,
    )
    with transaction.atomic(savepoint=external_reference is not None):
        connection = transaction.get_connection()
        subscribers = None
        together = connection.vendor == "postgresql"
        if together:
            # The id first (with the webhook subscribers, one statement), so the first audit
            # event is sealed here and written with the incident in one more statement.
            incident.pk, subscribers = next_incident_id_with_subscribers(using=connection.alias)
            rows: list[tuple[Any, Any]] = [
                (incident, {"reference": _reference}),
                (record_created(write=False), None),
            ]
            insert: Callable[[], None] = partial(insert_together, rows, using=connection.alias)
        else:
            insert = partial(_insert_incident, incident)
        if external_reference is None:
            insert()
        else:
            _insert_refusing_duplicate(incident, insert)
        _save_products(incident, fields)
        if not together:
            record_created()
        _announce_owner(incident, actor)
        webhook_event_raise(
            type=WebhookEventType.INCIDENT_CREATED,
            incident=incident,
            at=incident.created_at,
            subscribers=subscribers,
        )
    return incident


def _reference(incident: Incident) -> str:
    """``BD-<creation year, UTC>-<id, at least 5 digits>``."""
    return f"BD-{incident.created_at.astimezone(UTC).year}-{incident.pk:05d}"


def _insert_incident(incident: Incident) -> None:
    """INSERT the new ``incident`` (SQLite), then UPDATE its reference (``_reference``, which
    needs the id). On PostgreSQL ``incident_create`` takes the id first and writes the row once
    with its reference, together with its first audit event (``insert_together``): an INSERT
    and an UPDATE of the reference wrote every one of the table's 19 indexes twice, three of
    them trigram indexes (the UPDATE changes an indexed column, so it is no "HOT" update).
    """
    insert_instance(incident, derived={"reference": _reference})


def _insert_refusing_duplicate(incident: Incident, insert: Callable[[], None]) -> None:
    """Run ``insert`` in a savepoint; when a concurrent create took the external reference
    between the check and the INSERT (``IntegrityError``), raise
    ``DuplicateExternalReference`` naming the incident that has it (else re-raise)."""
    try:
        with transaction.atomic():
            insert()
    except IntegrityError:
        _refuse_duplicate_reference(incident)
        raise


def _refuse_duplicate_reference(incident: Incident) -> None:
    existing = (
        Incident.objects.filter(
            detection_source=incident.detection_source, external_reference=incident.external_reference
        )
        .values_list("pk", flat=True)
        .first()
    )
    if existing is not None:
        raise DuplicateExternalReference(
            external_reference=str(incident.external_reference),
            detection_source=str(incident.detection_source),
            incident_id=existing,
        )


def _locked(incident: Incident) -> Incident:
    """The incident re-read under a row lock (``SELECT ... FOR UPDATE`` where supported)."""
    return Incident.objects.select_for_update().get(pk=incident.pk)


def incident_update(*, incident: Incident, actor: Any, changes: Mapping[str, Any]) -> Incident:
    """Change an incident's facts (never its state) and return the updated incident.

    ``changes``: a mapping of ``EDITABLE_FIELDS``. Raises ``ActionForbidden`` without
    ``incidents.change_incident``; ``LifecycleConflict`` when the incident is closed or ruled
    out; ``ValidationError`` for unknown fields or bad values. Writes an ``updated`` audit event
    with ``{field: [old, new]}`` when anything changed.
    """
    _require(actor, "incidents.change_incident")
    with transaction.atomic():
        locked = _locked(incident)
        if locked.state in FINAL_STATES:
            raise LifecycleConflict(f"A {locked.get_state_display().lower()} incident cannot be edited.")
        _require_restricted(actor, changes, locked)
        diff = _apply_changes(locked, changes)
        if diff:
            locked.save()
            _save_products(locked, changes)
            audit_append(incident=locked, actor=actor, verb="updated", data={"changes": diff})
            if "owner" in diff:
                _announce_owner(locked, actor)
    return locked


def _transition(
    *,
    incident: Incident,
    actor: Any | None,
    name: str,
    changes: Mapping[str, Any] | None = None,
    prepare: Callable[[Incident], dict[str, Any]] | None = None,
    method_kwargs: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    after_commit: Callable[[Incident], object] | None = None,
    saved: Callable[[Incident], object] | None = None,
) -> Incident:
    """Run lifecycle transition ``name`` as described in the module docstring.

    ``saved``: this app's own step once the transition is saved, in the same transaction (the
    declaration puts its alerts in the outbox there).

    Order of checks: permission (403), availability from the current state (409), then the guard
    with the body's ``changes`` applied (400 naming what is missing). In between, in the same
    transaction: ``prepare`` (this app's own step, after the lock) and the apps' ``prepare``
    hooks (``incidents.lifecycle``; they get ``inputs``) may change related rows and return extra
    audit data; once the transition is saved, the ``saved`` hooks run and return more. A
    concurrent transition that slipped past the lock surfaces as ``TransitionNotAvailable``.
    """
    if actor is not None or name != "mark_notified":
        _require(actor, TRANSITION_PERMISSIONS[name])
    try:
        with transaction.atomic():
            locked = _locked(incident)
            method = getattr(locked, name)
            if not can_proceed(method, check_conditions=False):
                raise TransitionNotAvailable(transition_name=name, state=locked.state)
            from_state, owner_before = locked.state, locked.owner_id
            diff = _apply_changes(locked, changes or {})
            now = timezone.now()
            context = HookContext(actor=actor, at=now, inputs=inputs or {})
            extra = prepare(locked) if prepare else {}
            extra.update(run_hooks(name, "prepare", locked, context))
            missing = missing_for(locked, name)
            if missing:
                raise GuardFailed(transition_name=name, missing=missing)
            method(at=now, **(method_kwargs or {}))
            locked.save()
            if saved is not None:
                saved(locked)
            extra.update(run_hooks(name, "saved", locked, context))
            audit_append(
                incident=locked,
                actor=actor,
                verb=name,
                from_state=from_state,
                to_state=locked.state,
                data={"changes": diff, **extra},
                at=now,
            )
            if locked.owner_id != owner_before:
                _announce_owner(locked, actor, now)
            if after_commit is not None:
                transaction.on_commit(lambda: after_commit(locked))
    except ConcurrentTransition:
        current = Incident.objects.only("state").get(pk=incident.pk).state
        raise TransitionNotAvailable(transition_name=name, state=current) from None
    return locked


def incident_triage(
    *,
    incident: Incident,
    actor: Any,
    severity: str | None = None,
    malicious: str | None = None,
    scenario: str | None = None,
) -> Incident:
    """Record the triage of a ``detected`` incident: it becomes ``triaged``.

    Guard: ``severity`` (an ENISA band) and ``malicious`` (``yes``, ``no`` or ``unknown``)
    recorded, given here or earlier. The actor becomes the owner if there is none.
    Permission: ``incidents.triage_incident`` (responders, incident managers).
    """
    changes = {
        key: value
        for key, value in {"severity": severity, "malicious": malicious, "scenario": scenario}.items()
        if value is not None
    }

    def take_ownership(locked: Incident) -> dict[str, Any]:
        if locked.owner_id is None:
            locked.owner = actor
            return {"owner": actor.username}
        return {}

    return _transition(incident=incident, actor=actor, name="triage", changes=changes, prepare=take_ownership)


def _set_scope_fields(**values: Any) -> Callable[[Incident], dict[str, Any]]:
    """A ``prepare`` step that records the scope decision's fields (not in EDITABLE_FIELDS)."""

    def prepare(locked: Incident) -> dict[str, Any]:
        _refuse_future(values)
        recorded = {}
        for name, value in values.items():
            if value is not None:
                setattr(locked, name, value)
                recorded[name] = _audit_value(value)
        if locked.out_of_scope_category:
            _validate(locked)
        return recorded

    return prepare


def incident_rule_out_of_scope(
    *,
    incident: Incident,
    actor: Any,
    out_of_scope_category: str | None = None,
    scope_rationale: str | None = None,
) -> Incident:
    """Rule a ``detected`` or ``triaged`` incident out of scope (a final state).

    Guard: ``out_of_scope_category`` (an ``Incident.OutOfScopeCategory`` value) and a
    ``scope_rationale``. Permission: ``incidents.rule_incident_out_of_scope``.
    """
    return _transition(
        incident=incident,
        actor=actor,
        name="rule_out_of_scope",
        prepare=_set_scope_fields(
            out_of_scope_category=out_of_scope_category, scope_rationale=scope_rationale
        ),
    )


def incident_classify_as_customer_event(
    *,
    incident: Incident,
    actor: Any,
    scope_rationale: str | None = None,
    customer_informed_at: datetime | None = None,
) -> Incident:
    """Classify a ``detected`` or ``triaged`` incident as a customer-driven event (final).

    A customer-driven event happened on the customer's side or through the customer's own
    action; the customer is informed and helped on request. Guard: ``scope_rationale`` and
    ``customer_informed_at`` (aware instant). Permission:
    ``incidents.classify_incident_as_customer_event``.
    """
    return _transition(
        incident=incident,
        actor=actor,
        name="classify_as_customer_event",
        prepare=_set_scope_fields(scope_rationale=scope_rationale, customer_informed_at=customer_informed_at),
    )


def incident_declare(*, incident: Incident, actor: Any, nature_of_breach: str | None = None) -> Incident:
    """Declare a ``triaged`` incident a personal data breach: it becomes ``declared``.

    Declaration starts the 72-hour customer-notification commitment (a policy commitment of
    the processor; GDPR Art. 33(2) asks a processor to notify its controllers "without undue
    delay"). Guard: ``nature_of_breach`` and at least one affected customer. Permission:
    ``incidents.declare_incident`` (incident managers). In the same transaction the ``saved``
    hooks of ``declare`` run (``settings.LIFECYCLE_HOOKS``: one notice clock per affected
    customer starts at the declaration instant). In the same transaction, one "personal data
    breach declared" email per incident manager and the owner goes into the outbox
    (``incidents.outbox.declaration_alerts_queue``); the sender is woken after commit, and the
    deadline scanner wakes it if the broker was down (issue 8: no alert lost, none sent twice).
    """
    changes = {"nature_of_breach": nature_of_breach} if nature_of_breach is not None else {}
    return _transition(
        incident=incident,
        actor=actor,
        name="declare",
        changes=changes,
        method_kwargs={"by": actor},
        saved=lambda locked: declaration_alerts_queue(incident=locked),
    )


def incident_mark_notified(*, incident: Incident, actor: Any | None = None) -> Incident:
    """Move a ``declared`` incident to ``notified`` once every affected customer's initial
    notice is delivered or recorded undeliverable.

    Normally called by the system (``actor=None``); a user needs
    ``incidents.mark_incident_notified``.
    """
    return _transition(incident=incident, actor=actor, name="mark_notified")


def incident_begin_post_mortem(*, incident: Incident, actor: Any) -> Incident:
    """Start the post-mortem of a ``notified`` incident (the ``saved`` hooks of
    ``begin_post_mortem`` open its post-mortem record).

    Permission: ``incidents.begin_incident_post_mortem``.
    """
    return _transition(incident=incident, actor=actor, name="begin_post_mortem")


def incident_close(*, incident: Incident, actor: Any) -> Incident:
    """Close an incident in ``post_mortem``.

    Guard: the ``guard`` hooks of ``close`` (``settings.LIFECYCLE_HOOKS``): a completed
    post-mortem with every action item done or its risk accepted, every playbook task done, and
    no breach field still withheld; the 400 names each that is not. Permission:
    ``incidents.close_incident`` (incident managers).
    """
    return _transition(incident=incident, actor=actor, name="close")


#: Transition name -> its service, for the API's and web's transition routes.
TRANSITION_SERVICES: dict[str, Callable[..., Incident]] = {
    "triage": incident_triage,
    "rule_out_of_scope": incident_rule_out_of_scope,
    "classify_as_customer_event": incident_classify_as_customer_event,
    "declare": incident_declare,
    "mark_notified": incident_mark_notified,
    "begin_post_mortem": incident_begin_post_mortem,
    "close": incident_close,
}


def affected_customer_add(
    *,
    incident: Incident,
    customer: Customer,
    actor: Any,
    records_affected: int | None = None,
    notes: str = "",
    **figures: Any,
) -> AffectedCustomer:
    """Record that ``customer``'s personal data is involved in ``incident``; return the row.

    ``records_affected`` and the other ``AffectedCustomer.FIGURE_FIELDS`` (keyword arguments)
    are the customer's own figures, told to that customer only. Allowed until the incident is
    closed or ruled out. The ``saved`` hooks of ``affected_customer_added`` run in the same
    transaction (a customer added after declaration gets its own notice clock from the moment
    it is added). Raises ``ActionForbidden`` without ``incidents.add_affectedcustomer``;
    ``LifecycleConflict`` if the incident is final or the customer is already recorded;
    ``ValidationError`` for an unknown figure, an exposure that ends before it starts, or a
    drill customer on a real incident (a real customer may be added to a drill: it is never
    notified, ``AffectedCustomer.no_notice_reason``).
    """
    _require(actor, "incidents.add_affectedcustomer")
    unknown = sorted(set(figures) - set(AffectedCustomer.FIGURE_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    _refuse_future(figures)
    with transaction.atomic():
        locked = _locked(incident)
        if locked.state in FINAL_STATES:
            raise LifecycleConflict(f"A {locked.get_state_display().lower()} incident cannot change.")
        if AffectedCustomer.objects.filter(incident=locked, customer=customer).exists():
            raise LifecycleConflict(f"{customer} is already recorded as affected.")
        if customer.is_drill_customer and not locked.is_drill:
            raise ValidationError(
                {"customer": f"{customer} is a drill customer; only a drill may affect it."}
            )
        affected = AffectedCustomer(
            incident=locked,
            customer=customer,
            added_by=actor,
            records_affected=records_affected,
            notes=notes,
            **figures,
        )
        affected.full_clean(exclude=["incident", "customer", "added_by"], validate_unique=False)
        affected.save()
        data: dict[str, Any] = {
            "customer": customer.account_reference,
            "records_affected": records_affected,
            **{name: _audit_value(value) for name, value in figures.items()},
            "after_declaration": locked.declared_at is not None,
        }
        context = HookContext(actor=actor, at=affected.added_at, customer=customer)
        data.update(run_hooks(AFFECTED_CUSTOMER_ADDED, "saved", locked, context))
        audit_append(
            incident=locked,
            actor=actor,
            verb="affected_customer_added",
            data=data,
            at=affected.added_at,
        )
    return affected


def affected_customer_update(
    *, affected: AffectedCustomer, actor: Any, changes: Mapping[str, Any]
) -> AffectedCustomer:
    """Change an affected customer's own figures (``AffectedCustomer.FIGURE_FIELDS``) or
    ``notes``; returns the row as saved. Notices approved from now on tell the customer the new
    figures (and an update shows the old and new value).

    Raises ``ActionForbidden`` without ``incidents.change_affectedcustomer``;
    ``LifecycleConflict`` when the incident is final; ``ValidationError`` for another field, a
    future instant or an exposure that ends before it starts. Audited as
    ``affected_customer_updated`` with ``{field: [old, new]}``.
    """
    _require(actor, "incidents.change_affectedcustomer")
    allowed = {*AffectedCustomer.FIGURE_FIELDS, "notes"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    _refuse_future(changes)
    with transaction.atomic():
        locked = _locked(affected.incident)
        if locked.state in FINAL_STATES:
            raise LifecycleConflict(f"A {locked.get_state_display().lower()} incident cannot change.")
        row = AffectedCustomer.objects.select_related("customer").get(pk=affected.pk)
        diff: dict[str, list[Any]] = {}
        for name, new in changes.items():
            old = getattr(row, name)
            if old != new:
                diff[name] = [_audit_value(old), _audit_value(new)]
                setattr(row, name, new)
        if diff:
            row.full_clean(exclude=["incident", "customer", "added_by"], validate_unique=False)
            row.save()
            audit_append(
                incident=locked,
                actor=actor,
                verb="affected_customer_updated",
                data={"customer": row.customer.account_reference, "changes": diff},
            )
    return row


def affected_customer_remove(*, incident: Incident, customer: Customer, actor: Any) -> None:
    """Remove ``customer`` from ``incident``'s affected customers.

    Only before declaration: once declared, the customer's notification commitment stands.
    Raises ``ActionForbidden`` without ``incidents.delete_affectedcustomer``;
    ``LifecycleConflict`` after declaration or when the customer is not recorded.
    """
    _require(actor, "incidents.delete_affectedcustomer")
    with transaction.atomic():
        locked = _locked(incident)
        if locked.state not in (IncidentState.DETECTED, IncidentState.TRIAGED):
            raise LifecycleConflict("Affected customers can be removed only before declaration.")
        deleted, _ = AffectedCustomer.objects.filter(incident=locked, customer=customer).delete()
        if not deleted:
            raise LifecycleConflict(f"{customer} is not recorded as affected.")
        audit_append(
            incident=locked,
            actor=actor,
            verb="affected_customer_removed",
            data={"customer": customer.account_reference},
        )


# Customers' contacts ---------------------------------------------------------------------------
#
# Contact changes are audited on the customer's own hash chain (``customer_audit_append``), not
# an incident's. Two kinds of actor change contacts: staff (``actor``: a user, permission
# checked here) and a confirmation link's recipient acting without a login (``acting_contact``:
# the caller, ``notifications.confirmations``, has verified the signed link). The system
# (``actor=None`` and no ``acting_contact``) marks bounced addresses and imports feeds.

#: Contact fields staff may set through ``contact_create`` and ``contact_update``.
CONTACT_FIELDS: tuple[str, ...] = ("name", "email", "language", "role", "is_active")
#: What a confirmation link's recipient may correct on a contact (an address changes by
#: adding the new one, which must confirm itself, and deactivating the old one).
CONTACT_FIELDS_VIA_LINK: tuple[str, ...] = ("name", "language", "is_active")


def _locked_customer(customer_id: int) -> Customer:
    """The customer re-read under a row lock: serialises appends to its audit chain."""
    return Customer.objects.select_for_update().get(pk=customer_id)


def _normalise_email(email: str) -> str:
    """The address as stored (``incidents.addresses.normalise_email``: the domain through IDNA
    2008, the local part as given); a domain that cannot be encoded is a ``ValidationError`` on
    ``email``."""
    try:
        return normalise_email(email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from None


def _refuse_duplicate_email(customer: Customer, email: str, exclude_pk: int | None = None) -> None:
    duplicates = Contact.objects.filter(customer=customer, email__iexact=email)
    if exclude_pk is not None:
        duplicates = duplicates.exclude(pk=exclude_pk)
    if duplicates.exists():
        raise ValidationError({"email": f"{email} is already a contact of this customer."})


def contact_create(
    *,
    customer: Customer,
    actor: Any | None,
    name: str,
    email: str,
    language: str = "",
    role: str = Contact.Role.ADMINISTRATIVE,
    is_active: bool = True,
    acting_contact: Contact | None = None,
    audit_data: Mapping[str, Any] | None = None,
) -> Contact:
    """Add a contact to ``customer`` and return it; audited (``contact_added``) on the
    customer's chain.

    Staff (``actor`` a user) need ``incidents.add_contact``; the contact counts at once. Added
    by a confirmation link's recipient (``acting_contact``), it is an administrative contact
    with ``pending_confirmation`` set: it receives nothing until its own address confirms.
    ``actor=None`` without ``acting_contact`` is the system (a feed import). Raises
    ``ActionForbidden``, or ``ValidationError`` for a bad value or an email the customer
    already has (any case).
    """
    if actor is not None:
        _require(actor, "incidents.add_contact")
    email = _normalise_email(email)
    with transaction.atomic():
        locked = _locked_customer(customer.pk)
        _refuse_duplicate_email(locked, email)
        contact = Contact(
            customer=locked,
            name=name.strip(),
            email=email,
            language=language,
            role=Contact.Role.ADMINISTRATIVE if acting_contact is not None else role,
            is_active=True if acting_contact is not None else is_active,
            pending_confirmation=acting_contact is not None,
        )
        contact.full_clean()
        contact.save()
        customer_audit_append(
            customer=locked,
            actor=actor,
            actor_contact_email=acting_contact.email if acting_contact is not None else "",
            verb="contact_added",
            data={
                "contact": contact.pk,
                "fields": {name: getattr(contact, name) for name in CONTACT_FIELDS},
                "pending_confirmation": contact.pending_confirmation,
                **(audit_data or {}),
            },
            at=contact.created_at,
        )
    return contact


def contact_update(
    *,
    contact: Contact,
    actor: Any | None,
    changes: Mapping[str, Any],
    acting_contact: Contact | None = None,
    audit_data: Mapping[str, Any] | None = None,
) -> Contact:
    """Change a contact and return it; audited (``contact_updated``, with ``{field: [old,
    new]}``) on the customer's chain when anything changed.

    ``changes``: a mapping of ``CONTACT_FIELDS``. Staff (``actor``, permission
    ``incidents.change_contact``): a staff edit also brings the contact back: an undeliverable
    mark is cleared (staff checked the address) and a pending new address counts (staff vouch
    for it); that is audited even when no field changed. A confirmation link's recipient
    (``acting_contact``) may change only ``CONTACT_FIELDS_VIA_LINK``, and only to deactivate;
    that clears nothing. Raises ``ActionForbidden``; ``ValidationError`` for unknown fields,
    bad values or an email the customer already has.
    """
    if actor is not None:
        _require(actor, "incidents.change_contact")
    allowed = CONTACT_FIELDS_VIA_LINK if acting_contact is not None else CONTACT_FIELDS
    unknown = sorted(set(changes).difference(allowed))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be changed here."))
    if acting_contact is not None and changes.get("is_active", False) is not False:
        raise ValidationError({"is_active": "A contact can only be deactivated here."})
    with transaction.atomic():
        locked_customer = _locked_customer(contact.customer_id)
        locked = Contact.objects.get(pk=contact.pk)
        diff: dict[str, list[Any]] = {}
        for name, value in changes.items():
            if name == "email":
                value = _normalise_email(value)
                if value.lower() != locked.email.lower():
                    _refuse_duplicate_email(locked_customer, value, exclude_pk=locked.pk)
            elif name == "name":
                value = value.strip()
            if getattr(locked, name) != value:
                diff[name] = [getattr(locked, name), value]
                setattr(locked, name, value)
        cleared: dict[str, Any] = {}
        if actor is not None:
            if locked.undeliverable_at is not None:
                cleared["undeliverable"] = {
                    "since": _audit_value(locked.undeliverable_at),
                    "reason": locked.undeliverable_reason,
                }
                locked.undeliverable_at, locked.undeliverable_reason = None, ""
            if locked.pending_confirmation:
                cleared["pending_confirmation"] = True
                locked.pending_confirmation = False
        if not diff and not cleared:
            return locked
        locked.full_clean()
        locked.save()
        customer_audit_append(
            customer=locked_customer,
            actor=actor,
            actor_contact_email=acting_contact.email if acting_contact is not None else "",
            verb="contact_updated",
            data={"contact": locked.pk, "changes": diff, "cleared": cleared, **(audit_data or {})},
        )
    return locked


def contacts_confirm(
    *,
    customer: Customer,
    acting_contact: Contact,
    at: datetime | None = None,
    audit_data: Mapping[str, Any] | None = None,
) -> list[Contact]:
    """Record that ``acting_contact`` (a confirmation link's recipient, link verified by the
    caller) confirmed ``customer``'s administrative contacts as they stand; returns them.

    Every active administrative contact that is not waiting for its own address gets
    ``confirmed_at``, and an undeliverable mark on it is cleared (the customer says the address
    is right: we try it again). The recipient's own pending address counts from now (following
    the link proved it). The customer's ``contacts_confirmed_at`` is set and its
    "unconfirmed" mark cleared. Audited (``contacts_confirmed``) on the customer's chain.
    """
    at = at or timezone.now()
    with transaction.atomic():
        locked = _locked_customer(customer.pk)
        recipient = Contact.objects.get(pk=acting_contact.pk, customer=locked)
        if recipient.pending_confirmation:
            recipient.pending_confirmation = False
            recipient.save(update_fields=["pending_confirmation"])
        confirmed = list(Contact.objects.administrative().filter(customer=locked, pending_confirmation=False))
        cleared = [c.pk for c in confirmed if c.undeliverable_at is not None]
        Contact.objects.filter(pk__in=[c.pk for c in confirmed]).update(
            confirmed_at=at, undeliverable_at=None, undeliverable_reason=""
        )
        was_unconfirmed = locked.contacts_unconfirmed_since
        locked.contacts_confirmed_at = at
        locked.contacts_unconfirmed_since = None
        locked.save(update_fields=["contacts_confirmed_at", "contacts_unconfirmed_since"])
        customer_audit_append(
            customer=locked,
            actor=None,
            actor_contact_email=recipient.email,
            verb="contacts_confirmed",
            data={
                "contacts": [c.pk for c in confirmed],
                "addresses": [c.email for c in confirmed],
                "undeliverable_cleared": cleared,
                "was_unconfirmed_since": _audit_value(was_unconfirmed),
                **(audit_data or {}),
            },
            at=at,
        )
    for contact in confirmed:
        contact.confirmed_at, contact.undeliverable_at, contact.undeliverable_reason = at, None, ""
    return confirmed


def contact_confirm_address(
    *, contact: Contact, at: datetime | None = None, audit_data: Mapping[str, Any] | None = None
) -> Contact:
    """Record that a contact added through a confirmation link confirmed its own address
    through the link emailed to it (the caller verified the link): it counts from now
    (``pending_confirmation`` cleared, ``confirmed_at`` set). Audited
    (``contact_address_confirmed``) on the customer's chain, naming the contact."""
    at = at or timezone.now()
    with transaction.atomic():
        locked_customer = _locked_customer(contact.customer_id)
        locked = Contact.objects.get(pk=contact.pk)
        locked.pending_confirmation = False
        locked.confirmed_at = at
        locked.undeliverable_at, locked.undeliverable_reason = None, ""
        locked.save(
            update_fields=["pending_confirmation", "confirmed_at", "undeliverable_at", "undeliverable_reason"]
        )
        customer_audit_append(
            customer=locked_customer,
            actor=None,
            actor_contact_email=locked.email,
            verb="contact_address_confirmed",
            data={"contact": locked.pk, "address": locked.email, **(audit_data or {})},
            at=at,
        )
    return locked


def contact_mark_undeliverable(*, contact_id: int, address: str, reason: str, at: datetime) -> bool:
    """Mark a contact undeliverable: the receiving server permanently refused ``address`` (an
    SMTP 5xx on the recipient) at ``at``, saying ``reason``. Returns True if it was marked now.

    Nothing happens (False) when the contact is already marked, or its address changed since
    the email was written (the refusal is about the old address). Later notices skip it (the
    notice records why) until a confirmation link confirms it or staff edit it. Audited
    (``contact_undeliverable``) on the customer's chain, by the system.
    """
    contact = Contact.objects.filter(pk=contact_id).only("customer_id").first()
    if contact is None:
        return False
    with transaction.atomic():
        locked_customer = _locked_customer(contact.customer_id)
        locked = Contact.objects.get(pk=contact_id)
        if locked.undeliverable_at is not None or locked.email.lower() != address.lower():
            return False
        locked.undeliverable_at = at
        locked.undeliverable_reason = reason[:2000]
        locked.save(update_fields=["undeliverable_at", "undeliverable_reason"])
        customer_audit_append(
            customer=locked_customer,
            actor=None,
            verb="contact_undeliverable",
            data={"contact": locked.pk, "address": locked.email, "reason": locked.undeliverable_reason},
            at=at,
        )
    return True


# --- Notes --------------------------------------------------------------------------------


def note_add(*, incident: Incident, actor: Any, text: str, occurred_at: datetime | None = None) -> Note:
    """Add a note to ``incident``'s timeline and return it.

    ``text``: what was found, said or done (blank: ``ValidationError``). ``occurred_at``: when it
    happened, if known (aware; not in the future beyond clock skew); the note's ``created_at``
    records when we learned it. Allowed in every state, closed included (an auditor's question
    answered later is still part of the record). Raises ``ActionForbidden`` without
    ``incidents.add_note``. Writes the note and a ``note_added`` audit event in one transaction.
    """
    _require(actor, "incidents.add_note")
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "A note needs some text."})
    if occurred_at is not None and occurred_at > timezone.now() + CLOCK_SKEW:
        raise ValidationError({"occurred_at": "This cannot be in the future."})
    with transaction.atomic():
        locked = _locked(incident)
        note = Note.objects.create(
            incident=locked,
            author=actor,
            author_username=actor.get_username(),
            text=text,
            occurred_at=occurred_at,
        )
        audit_append(
            incident=locked,
            actor=actor,
            verb="note_added",
            data={"note": note.pk, "occurred_at": _audit_value(occurred_at), "text": text},
            at=note.created_at,
        )
    return note


# --- Need-to-know restriction (issue 10, item 1) --------------------------------------------

#: The permission of the incident managers who may restrict an incident and edit its members.
RESTRICT_PERMISSION = "incidents.restrict_incident"


def _refuse_invisible(actor: Any, incident: Incident) -> None:
    """Raise ``IncidentNotFound`` (404) when ``actor`` may not see ``incident``."""
    if not incident_visible(actor, incident):
        raise IncidentNotFound("No such incident.")


def _touch(incident: Incident, at: datetime) -> None:
    """Move ``updated_at``: the precomputed metrics recompute the incident's month on their next
    refresh (``dashboard.metrics`` leaves restricted incidents out)."""
    Incident.objects.filter(pk=incident.pk).update(updated_at=at)


def incident_restriction_set(*, incident: Incident, actor: Any, members: list[Any]) -> IncidentRestriction:
    """Restrict ``incident`` to ``members`` (users), or replace the members of its restriction,
    and return the restriction.

    ``actor`` is always a member too (the incident managers who restrict an incident keep seeing
    it). An auditor among ``members`` is a grant: auditors see a restricted incident only when
    an incident manager adds them. Raises ``IncidentNotFound`` (404) when the actor may not see
    the incident (a restricted one it is not a member of), ``ActionForbidden`` (403) without
    ``incidents.restrict_incident``, ``ValidationError`` naming members that are inactive or
    have no role that may view incidents. Writes, in one transaction under the incident's lock,
    the restriction and its members and audit events on the incident's chain:
    ``incident_restricted`` (first time, ``{"members": [...], "granted": [...]}``) or
    ``incident_restriction_changed`` (``{"added", "removed", "members", "granted",
    "revoked"}``), and one ``auditor_access_granted`` / ``auditor_access_revoked`` per auditor.
    Setting the same members again writes nothing.
    """
    _refuse_invisible(actor, incident)
    _require(actor, RESTRICT_PERMISSION)
    wanted = {member.pk: member for member in members}
    wanted[actor.pk] = actor
    refused = sorted(
        member.get_username()
        for member in wanted.values()
        if not member.is_active or not member.has_perm("incidents.view_incident")
    )
    if refused:
        raise ValidationError(
            {"members": f"These people have no role that may see incidents: {', '.join(refused)}."}
        )
    with transaction.atomic():
        locked = _locked(incident)
        _refuse_invisible(actor, locked)  # again under the lock: members may just have changed
        now = timezone.now()
        restriction, created = IncidentRestriction.objects.get_or_create(
            incident=locked, defaults={"restricted_by": actor, "restricted_at": now}
        )
        current = {row.user_id: row for row in restriction.members.select_related("user")}
        added = [wanted[pk] for pk in wanted if pk not in current]
        removed = [row.user for pk, row in current.items() if pk not in wanted]
        if not created and not added and not removed:
            return restriction
        IncidentRestrictionMember.objects.filter(restriction=restriction, user__in=removed).delete()
        IncidentRestrictionMember.objects.bulk_create(
            [
                IncidentRestrictionMember(restriction=restriction, user=user, added_by=actor, added_at=now)
                for user in added
            ]
        )
        granted = sorted(user.get_username() for user in added if is_auditor(user))
        revoked = sorted(user.get_username() for user in removed if is_auditor(user))
        names = sorted(user.get_username() for user in wanted.values())
        if created:
            audit_append(
                incident=locked,
                actor=actor,
                verb="incident_restricted",
                data={"members": names, "granted": granted},
                at=now,
            )
        else:
            audit_append(
                incident=locked,
                actor=actor,
                verb="incident_restriction_changed",
                data={
                    "added": sorted(user.get_username() for user in added),
                    "removed": sorted(user.get_username() for user in removed),
                    "members": names,
                    "granted": granted,
                    "revoked": revoked,
                },
                at=now,
            )
        _touch(locked, now)
        for username in granted:
            audit_append(
                incident=locked,
                actor=actor,
                verb="auditor_access_granted",
                data={"auditor": username},
                at=now,
            )
        for username in revoked:
            audit_append(
                incident=locked,
                actor=actor,
                verb="auditor_access_revoked",
                data={"auditor": username},
                at=now,
            )
    return restriction


def incident_restriction_lift(*, incident: Incident, actor: Any) -> None:
    """Lift ``incident``'s restriction: everyone whose role may view incidents sees it again.

    Raises ``IncidentNotFound`` (404) when the actor may not see the incident,
    ``ActionForbidden`` (403) without ``incidents.restrict_incident``, ``LifecycleConflict``
    (409) when the incident is not restricted. Deletes the restriction and its members and
    writes ``incident_restriction_lifted`` (``{"members": [former members]}``) in one
    transaction.
    """
    _refuse_invisible(actor, incident)
    _require(actor, RESTRICT_PERMISSION)
    with transaction.atomic():
        locked = _locked(incident)
        _refuse_invisible(actor, locked)  # again under the lock: members may just have changed
        restriction = IncidentRestriction.objects.filter(incident=locked).first()
        if restriction is None:
            raise LifecycleConflict("This incident is not restricted.")
        former = sorted(row.user.get_username() for row in restriction.members.select_related("user"))
        restriction.delete()
        _touch(locked, timezone.now())
        audit_append(
            incident=locked, actor=actor, verb="incident_restriction_lifted", data={"members": former}
        )


# --- Customers and contacts ---------------------------------------------------------------
# Reference data, not incident facts: changes are recorded in Django's admin log (LogEntry, the
# history /admin/ shows for a row), not in an incident's audit chain.


def _log_change(actor: Any, row: models.Model, flag: int, message: str) -> None:
    from django.contrib.admin.models import LogEntry

    LogEntry.objects.log_actions(
        user_id=actor.pk, queryset=[row], action_flag=flag, change_message=message, single_object=True
    )


def customer_save(*, actor: Any, customer: Customer, changed: list[str] | None = None) -> Customer:
    """Create ``customer`` (unsaved) or save the ``changed`` fields of a stored one; return it.

    Validates the whole row (``full_clean``: a duplicate account reference or a window outside 1
    to 72 hours is a ``ValidationError``). Needs ``incidents.add_customer`` to create and
    ``incidents.change_customer`` to change (``ActionForbidden``). Audited on the customer's
    chain (``customer_created`` with its fields, ``customer_changed`` with ``{field: [old,
    new]}``) and logged in the admin history.
    """
    from django.contrib.admin.models import ADDITION, CHANGE

    creating = customer.pk is None
    _require(actor, "incidents.add_customer" if creating else "incidents.change_customer")
    customer.full_clean()
    with transaction.atomic():
        before = None if creating else _locked_customer(customer.pk)
        customer.save()
        # The customer's own chain records its fields too (not only the admin history, which
        # anyone with database access can rewrite): created with its values, changed with
        # {field: [old, new]}.
        fields = [
            f.name
            for f in Customer._meta.concrete_fields
            if f.editable and not f.primary_key and not f.name.startswith("contacts_")
        ]
        values = {
            name: [
                _audit_value(getattr(before, name)) if before else None,
                _audit_value(getattr(customer, name)),
            ]
            for name in fields
            if before is None or getattr(before, name) != getattr(customer, name)
        }
        if creating or values:
            customer_audit_append(
                customer=customer,
                actor=actor,
                verb="customer_created" if creating else "customer_changed",
                data={"fields": {name: new for name, (_, new) in values.items()}}
                if creating
                else {"changes": values},
            )
        _log_change(
            actor,
            customer,
            ADDITION if creating else CHANGE,
            "Created." if creating else f"Changed {', '.join(changed or []) or 'nothing'}.",
        )
    return customer
