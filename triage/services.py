"""Writes of the triage app: one keyword-only, atomic function per business verb.

- ``assessment_record``: record a new version of an incident's assessment and drive its
  lifecycle through ``incidents.services`` (triage, update, or one of the two exits), alert the
  stakeholder groups it calls for and create the scenario's response tasks.
- ``response_task_update``: tick a response task done (or not done) or reassign it.

Each locks the incident row, checks the actor's permission, writes, appends an audit event to
the incident's chain and queues outside effects with ``transaction.on_commit``. Errors:
``ActionForbidden`` (403), ``LifecycleConflict`` / ``TransitionNotAvailable`` (409),
``GuardFailed`` and ``django.core.exceptions.ValidationError`` (400); those raised by the
incident services propagate unchanged, and then nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from incidents import services as incident_services
from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden, GuardFailed, LifecycleConflict
from incidents.models import Incident, IncidentState
from triage.alerts import stakeholder_alerts_raise
from triage.inputs import breach_facts_from, data_categories_from, severity_inputs_from
from triage.models import Assessment, ResponseTask
from triage.notification_assessment import NotificationAssessment, assess_notification
from triage.playbooks import response_tasks_create
from triage.scoring import SeverityResult, assess_severity

Scope = Assessment.Scope

#: Why triage is refused without an assessment: the same words on the web (the incident page's
#: triage transition and the empty triage form) and in the API
#: (``POST /api/incidents/{id}/transitions/triage/``).
TRIAGE_NEEDS_ASSESSMENT = (
    "Triage needs an assessment: the scope decision and its rationale, whether it was malicious, "
    "the scenario, the data categories, the ENISA severity inputs and the notification facts. "
    "Record it with the triage form (or give it here, in the API)."
)


class AssessmentRequired(GuardFailed):
    """Triage asked for without an assessment: the guard failure the web and the API report
    with ``TRIAGE_NEEDS_ASSESSMENT`` (``missing``: ``["assessment"]``, HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(transition_name="triage", missing=["assessment"])

    def __str__(self) -> str:
        return TRIAGE_NEEDS_ASSESSMENT


#: Marks an argument that was not given (``None`` is a meaningful value for an assignee).
UNSET: Any = object()


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _choice(errors: dict[str, list[str]], name: str, value: str, choices: Any) -> None:
    if value and value not in choices.values:
        errors.setdefault(name, []).append(f"“{value}” is not a valid choice.")


def severity_result_json(result: SeverityResult) -> dict[str, Any]:
    """A ``SeverityResult`` as JSON: ``base_dpc`` and ``dpc`` (int), ``ease_of_identification``,
    ``circumstances`` and ``score`` (strings with two decimals, exact), ``band`` and
    ``reasons`` (list of strings)."""
    return {
        "base_dpc": result.base_dpc,
        "dpc": result.dpc,
        "ease_of_identification": f"{result.ease_of_identification:.2f}",
        "circumstances": f"{result.circumstances:.2f}",
        "score": f"{result.score:.2f}",
        "band": result.band.value,
        "reasons": list(result.reasons),
    }


def notification_json(recommendation: NotificationAssessment) -> dict[str, Any]:
    """A ``NotificationAssessment`` as JSON: ``risk``, the four duties (booleans) and
    ``reasons`` as ``{article, text, guidance}`` objects."""
    return {
        "risk": recommendation.risk.value,
        "document_internally": recommendation.document_internally,
        "notify_supervisory_authority": recommendation.notify_supervisory_authority,
        "communicate_to_data_subjects": recommendation.communicate_to_data_subjects,
        "public_communication": recommendation.public_communication,
        "reasons": [
            {"article": reason.article, "text": reason.text, "guidance": reason.guidance}
            for reason in recommendation.reasons
        ],
    }


def severity_preview(
    *, severity_inputs: Mapping[str, Any], data_categories: list[str], malicious: str | None
) -> SeverityResult:
    """The ENISA 2013 severity of these inputs, computed and not stored (the live form).

    Shapes as in ``triage.inputs.severity_inputs_from``. Raises ``ValidationError`` naming the
    input at fault (``data_categories`` or ``severity_inputs``).
    """
    try:
        categories = data_categories_from(data_categories)
    except ValueError as error:
        raise ValidationError({"data_categories": [str(error)]}) from None
    try:
        _, inputs = severity_inputs_from(severity_inputs, data_categories=categories, malicious=malicious)
    except ValueError as error:
        key = "data_categories" if str(error).startswith("data_categories") else "severity_inputs"
        raise ValidationError({key: [str(error)]}) from None
    return assess_severity(inputs)


def _validate(
    *,
    scope: str,
    scope_rationale: str,
    malicious: str,
    scenario: str,
    data_categories: Any,
    severity_inputs: Mapping[str, Any] | None,
    notification_facts: Mapping[str, Any] | None,
    override_band: str,
    override_justification: str,
    out_of_scope_category: str,
    customer_event_category: str,
    customer_informed_at: datetime | None,
    help_offered: str,
) -> tuple[
    dict[str, Any] | None,
    SeverityResult | None,
    dict[str, Any] | None,
    NotificationAssessment | None,
    list[str],
]:
    """Check an assessment's inputs against the rules of ``assessment_record``; compute the
    severity and the notification assessment. Raises one ``ValidationError`` naming every
    field at fault."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if scope not in Scope.values:
        add("scope", "Choose in scope, customer-driven event or out of scope.")
    if not scope_rationale.strip():
        add("scope_rationale", "Give the rationale of the scope decision.")
    _choice(errors, "malicious", malicious, Incident.Malicious)
    _choice(errors, "scenario", scenario, Incident.Scenario)
    _choice(errors, "override_band", override_band, Incident.Severity)
    _choice(errors, "out_of_scope_category", out_of_scope_category, Incident.OutOfScopeCategory)
    _choice(errors, "customer_event_category", customer_event_category, Assessment.CustomerEventCategory)

    if scope == Scope.IN_SCOPE:
        if not malicious:
            add("malicious", "Say whether it was malicious (yes, no or unknown).")
        if not scenario:
            add("scenario", "Choose the scenario (its playbook becomes the response tasks).")
        if severity_inputs is None:
            add("severity_inputs", "An in-scope assessment needs the ENISA severity inputs.")
        if notification_facts is None:
            add("notification_facts", "An in-scope assessment needs the notification facts.")
    if scope == Scope.OUT_OF_SCOPE:
        if not out_of_scope_category:
            add("out_of_scope_category", "Choose why it is out of scope.")
    elif out_of_scope_category:
        add("out_of_scope_category", "Only for an out-of-scope decision.")
    if scope == Scope.CUSTOMER_EVENT:
        if not customer_event_category:
            add("customer_event_category", "Choose what kind of customer-driven event it is.")
        if customer_informed_at is None:
            add("customer_informed_at", "Say when the customer was informed of our observation.")
    else:
        for name, value in (
            ("customer_event_category", customer_event_category),
            ("customer_informed_at", customer_informed_at),
            ("help_offered", help_offered.strip()),
        ):
            if value:
                add(name, "Only for a customer-driven event.")
    if customer_informed_at is not None and timezone.is_naive(customer_informed_at):
        add("customer_informed_at", "timezone offset required")
    if override_band:
        if not override_justification.strip():
            add("override_justification", "An override of the computed band needs a justification.")
        if severity_inputs is None:
            add("override_band", "Only a computed severity can be overridden.")
    elif override_justification.strip():
        add("override_justification", "Only with an override band.")

    categories: list[str] = []
    try:
        categories = data_categories_from(data_categories)
    except ValueError as error:
        add("data_categories", str(error))
    severity_json = severity = facts_json = recommendation = None
    if severity_inputs is not None and "data_categories" not in errors:
        try:
            severity_json, inputs = severity_inputs_from(
                severity_inputs, data_categories=categories, malicious=malicious or None
            )
            severity = assess_severity(inputs)
        except ValueError as error:
            key = "data_categories" if str(error).startswith("data_categories") else "severity_inputs"
            add(key, str(error))
    if notification_facts is not None and "data_categories" not in errors:
        try:
            facts_json, facts = breach_facts_from(
                notification_facts, data_categories=categories, malicious=malicious or None
            )
            recommendation = assess_notification(facts)
        except ValueError as error:
            add("notification_facts", str(error))
    if errors:
        raise ValidationError(errors)
    return severity_json, severity, facts_json, recommendation, categories


def assessment_record(
    *,
    incident: Incident,
    actor: Any,
    scope: str,
    scope_rationale: str,
    malicious: str = "",
    malicious_basis: str = "",
    findings: str = "",
    scenario: str = "",
    data_categories: list[str] | None = None,
    severity_inputs: Mapping[str, Any] | None = None,
    notification_facts: Mapping[str, Any] | None = None,
    override_band: str = "",
    override_justification: str = "",
    out_of_scope_category: str = "",
    customer_event_category: str = "",
    customer_informed_at: datetime | None = None,
    help_offered: str = "",
) -> Assessment:
    """Record a new version of ``incident``'s assessment and act on its scope decision.

    Inputs:
    - ``scope`` (``Assessment.Scope``) and ``scope_rationale`` (required).
    - ``in_scope`` needs ``malicious`` (yes, no, unknown), ``scenario``, ``severity_inputs``
      and ``notification_facts`` (shapes: ``triage.inputs``) and ``data_categories``
      (``DataCategory`` values, at least one: ENISA scores the highest).
    - ``out_of_scope`` needs ``out_of_scope_category`` (``Incident.OutOfScopeCategory``).
    - ``customer_event`` needs ``customer_event_category`` and ``customer_informed_at`` (aware
      instant); ``help_offered`` is what was offered on request.
    - ``override_band`` (an ENISA band) replaces the computed band and needs
      ``override_justification``; the audit event records both.
    Severity (ENISA 2013) and the notification assessment (GDPR Art. 33, 34) are computed when
    their inputs are given (optional for the exits).

    In one transaction, holding the incident's row lock: stores version n+1 (earlier versions
    are kept), then drives the lifecycle through ``incidents.services``:
    - in scope, incident ``detected``: ``incident_triage`` (severity = the band that counts,
      malicious, scenario); the actor becomes owner if there is none;
    - in scope, incident triaged or later (not final): ``incident_update`` of severity,
      malicious and scenario;
    - ``customer_event``: ``incident_classify_as_customer_event`` (rationale, informed at);
    - ``out_of_scope``: ``incident_rule_out_of_scope`` (category, rationale).
    In scope, the assessment's data categories, likely consequences and number of people fill
    the incident's facts that are still unknown (``_carry_facts``: once, never over an edit);
    it then raises the stakeholder alerts newly called for (``triage.alerts``) and
    creates the scenario's missing response tasks (``triage.playbooks``), and appends the
    audit event ``assessment_recorded`` (version, scope, band, score, override). Each new alert's
    emails are outbox rows written in this transaction (``triage.alerts``); the outbox sender is
    woken after commit.

    Permission: ``triage.add_assessment``, plus what the incident service needs (for example
    ``incidents.triage_incident``). Raises ``ValidationError`` (400) naming each bad input;
    ``LifecycleConflict`` (409) for an in-scope assessment of a closed or ruled-out incident;
    and whatever the incident services raise (``TransitionNotAvailable`` 409 for an exit
    after ``triaged``, ``GuardFailed`` 400, ``ActionForbidden`` 403). On any error nothing is
    stored. Returns the new ``Assessment``.
    """
    _require(actor, "triage.add_assessment")
    scope_rationale = scope_rationale.strip()
    severity_json, severity, facts_json, recommendation, _ = _validate(
        scope=scope,
        scope_rationale=scope_rationale,
        malicious=malicious,
        scenario=scenario,
        data_categories=data_categories,
        severity_inputs=severity_inputs,
        notification_facts=notification_facts,
        override_band=override_band,
        override_justification=override_justification,
        out_of_scope_category=out_of_scope_category,
        customer_event_category=customer_event_category,
        customer_informed_at=customer_informed_at,
        help_offered=help_offered,
    )
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if scope == Scope.IN_SCOPE and locked.state in incident_services.FINAL_STATES:
            raise LifecycleConflict(
                f"A {locked.get_state_display().lower()} incident cannot be assessed in scope."
            )
        previous = Assessment.objects.filter(incident=locked).aggregate(Max("version"))
        assessment = Assessment.objects.create(
            incident=locked,
            version=(previous["version__max"] or 0) + 1,
            scope=scope,
            scope_rationale=scope_rationale,
            out_of_scope_category=out_of_scope_category,
            customer_event_category=customer_event_category,
            customer_informed_at=customer_informed_at,
            help_offered=help_offered.strip(),
            malicious=malicious,
            malicious_basis=malicious_basis.strip(),
            findings=findings.strip(),
            scenario=scenario,
            severity_inputs=severity_json,
            severity_score=severity.score.quantize(Decimal("0.01")) if severity else None,
            severity_band=severity.band.value if severity else "",
            severity_result=severity_result_json(severity) if severity else None,
            override_band=override_band,
            override_justification=override_justification.strip() if override_band else "",
            notification_facts=facts_json,
            notification_recommendation=notification_json(recommendation) if recommendation else None,
            assessed_by=actor,
            assessed_at=timezone.now(),
        )
        updated = _drive_lifecycle(locked, actor, assessment)
        if scope == Scope.CUSTOMER_EVENT and updated.affected_customers.exists():
            # Our observation goes to the customer's contacts as a notice of its own kind,
            # drafted here for an incident manager to review and approve.
            from notifications.services import notice_draft

            notice_draft(
                incident=updated,
                actor=actor,
                kind="customer_event",
                observation=assessment.findings or assessment.scope_rationale,
                help_offered=assessment.help_offered,
            )
        alerts: list = []
        tasks: list = []
        if scope == Scope.IN_SCOPE:
            _carry_facts(updated, actor, assessment)
            updated = Incident.objects.get(pk=updated.pk)
            alerts = stakeholder_alerts_raise(incident=updated, assessment=assessment)
            tasks = response_tasks_create(incident=updated, assessment=assessment)
        audit_append(
            incident=updated,
            actor=actor,
            verb="assessment_recorded",
            data={
                "version": assessment.version,
                "scope": scope,
                "band": assessment.band,
                "score": str(assessment.severity_score) if severity else None,
                "override": (
                    {
                        "computed_band": assessment.severity_band,
                        "band": assessment.override_band,
                        "justification": assessment.override_justification,
                    }
                    if override_band
                    else None
                ),
                "scenario": scenario,
                "malicious": malicious,
                "notify_supervisory_authority": (
                    recommendation.notify_supervisory_authority if recommendation else None
                ),
                "communicate_to_data_subjects": (
                    recommendation.communicate_to_data_subjects if recommendation else None
                ),
                "stakeholders_alerted": [alert.group.name for alert in alerts],
                "response_tasks_created": len(tasks),
            },
            at=assessment.assessed_at,
        )
    return assessment


def _carry_facts(incident: Incident, actor: Any, assessment: Assessment) -> None:
    """Carry an in-scope assessment's findings into the incident's facts once, so nobody
    retypes them: the data categories, the likely consequences and the number of people
    (as an estimate) fill those facts only while they are still unknown (GDPR Art. 33(3)(a),
    (c))."""
    facts = assessment.notification_facts or {}
    changes: dict[str, Any] = {}
    categories = (assessment.severity_inputs or {}).get("data_categories") or facts.get("data_categories")
    if categories and not incident.data_categories:
        changes["data_categories"] = list(categories)
    consequences = facts.get("likely_consequences")
    if consequences and not incident.likely_consequences:
        changes["likely_consequences"] = list(consequences)
    if facts.get("individuals") is not None and incident.data_subjects_affected is None:
        changes["data_subjects_affected"] = facts["individuals"]
        changes["data_subjects_affected_is_estimate"] = True
    if changes:
        incident_services.incident_update(incident=incident, actor=actor, changes=changes)


def _drive_lifecycle(locked: Incident, actor: Any, assessment: Assessment) -> Incident:
    """Take the lifecycle step of ``assessment``'s scope decision; returns the incident as
    saved by the incident service."""
    if assessment.scope == Scope.OUT_OF_SCOPE:
        return incident_services.incident_rule_out_of_scope(
            incident=locked,
            actor=actor,
            out_of_scope_category=assessment.out_of_scope_category,
            scope_rationale=assessment.scope_rationale,
        )
    if assessment.scope == Scope.CUSTOMER_EVENT:
        return incident_services.incident_classify_as_customer_event(
            incident=locked,
            actor=actor,
            scope_rationale=assessment.scope_rationale,
            customer_informed_at=assessment.customer_informed_at,
        )
    if locked.state == IncidentState.DETECTED:
        return incident_services.incident_triage(
            incident=locked,
            actor=actor,
            severity=assessment.band,
            malicious=assessment.malicious,
            scenario=assessment.scenario,
        )
    return incident_services.incident_update(
        incident=locked,
        actor=actor,
        changes={
            "severity": assessment.band,
            "malicious": assessment.malicious,
            "scenario": assessment.scenario,
        },
    )


def response_task_update(
    *, task: ResponseTask, actor: Any, done: bool | None = None, assignee: Any = UNSET
) -> ResponseTask:
    """Tick a response task done (``done=True``) or open again (``False``), and/or reassign it
    (``assignee``: an active user, or ``None`` for nobody); returns the task as saved.

    Done sets ``done_at`` (now, UTC) and ``done_by`` (the actor); open again clears both.
    Appends ``response_task_updated`` with ``{field: [old, new]}`` to the incident's audit
    chain when anything changed. Permission: ``triage.change_responsetask``. Raises
    ``LifecycleConflict`` when the incident is closed or ruled out, ``ValidationError`` for an
    inactive assignee.
    """
    _require(actor, "triage.change_responsetask")
    if assignee is not UNSET and assignee is not None and not assignee.is_active:
        raise ValidationError({"assignee": ["This account is not active."]})
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=task.incident_id)
        if locked.state in incident_services.FINAL_STATES:
            raise LifecycleConflict(
                f"The tasks of a {locked.get_state_display().lower()} incident cannot change."
            )
        current = ResponseTask.objects.select_related("assignee").get(pk=task.pk)
        changes: dict[str, list[Any]] = {}
        if done is not None and done != current.is_done:
            changes["done"] = [current.is_done, done]
            current.done_at = timezone.now() if done else None
            current.done_by = actor if done else None
        if assignee is not UNSET and assignee != current.assignee:
            changes["assignee"] = [
                getattr(current.assignee, "username", None),
                getattr(assignee, "username", None),
            ]
            current.assignee = assignee
        if changes:
            current.save(update_fields=["done_at", "done_by", "assignee"])
            audit_append(
                incident=locked,
                actor=actor,
                verb="response_task_updated",
                data={
                    "task": current.pk,
                    "description": current.description[:200],
                    "changes": changes,
                },
            )
    return current


__all__ = [
    "TRIAGE_NEEDS_ASSESSMENT",
    "AssessmentRequired",
    "UNSET",
    "assessment_record",
    "notification_json",
    "response_task_update",
    "severity_preview",
    "severity_result_json",
]
