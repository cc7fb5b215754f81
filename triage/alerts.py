"""Stakeholder alerts: which groups an in-scope assessment calls for, the alert rows (once per
incident and group, ever) and the email that tells them.

Rule: a group is called when it is active and the assessment's band (the override if any)
reaches the group's ``min_band``, or the assessment's scenario is one of the group's
``scenarios`` (``StakeholderGroup.why_called``). Alerts are raised inside the assessment's
transaction, and with each alert its emails are put in the outbox, one row per recipient
(``stakeholder_alert_emails_queue``); the outbox sender (``notifications.sender``) claims,
sends, retries and records them, and the deadline scanner wakes it if the broker was down.
"""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from incidents.models import Incident
from incidents.outbox import address_key
from notifications.emails import outgoing_email_queue_once
from notifications.models import OutgoingEmail
from triage.models import Assessment, StakeholderAlert, StakeholderGroup


def stakeholder_groups_called(*, band: str, scenario: str) -> list[tuple[StakeholderGroup, str]]:
    """The active groups that a ``band`` (ENISA band value or ``""``) and ``scenario``
    (``Incident.Scenario`` value or ``""``) call for, each with the reason, by name."""
    called = []
    for group in StakeholderGroup.objects.filter(is_active=True).order_by("name"):
        reason = group.why_called(band=band, scenario=scenario)
        if reason:
            called.append((group, reason))
    return called


def incident_link(incident: Incident) -> str:
    """The absolute address of the incident's page (``settings.SITE_URL`` + its path)."""
    return settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk])


def alert_summary(*, incident: Incident, assessment: Assessment, reason: str) -> str:
    """The text of a stakeholder alert: what happened, the assessment, why this group is told,
    and the link to the incident page."""
    lines = [
        f"{incident.reference}: {incident.title}",
        f"Assessed in scope (version {assessment.version}) by "
        f"{getattr(assessment.assessed_by, 'username', 'the system')} at "
        f"{assessment.assessed_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.",
    ]
    if assessment.band:
        score = f", ENISA score {assessment.severity_score}" if assessment.severity_score else ""
        override = " (override of the computed band)" if assessment.override_band else ""
        lines.append(f"Severity: {assessment.get_band_display().lower()}{score}{override}.")
    if assessment.scenario:
        lines.append(f"Scenario: {assessment.get_scenario_display()}.")
    if assessment.malicious:
        lines.append(f"Malicious: {assessment.get_malicious_display().lower()}.")
    recommendation = assessment.notification_recommendation or {}
    if recommendation:
        duties = ["document internally"]
        if recommendation.get("notify_supervisory_authority"):
            duties.append("notify the supervisory authority (GDPR Art. 33)")
        if recommendation.get("communicate_to_data_subjects"):
            duties.append(
                "communicate to the data subjects"
                + (" by a public communication" if recommendation.get("public_communication") else "")
                + " (GDPR Art. 34)"
            )
        lines.append(f"Notification assessment: risk {recommendation.get('risk')}; {', '.join(duties)}.")
    lines.append(f"Why you are told: {reason}.")
    lines.append("")
    lines.append(incident_link(incident))
    return "\n".join(lines)


def stakeholder_alerts_raise(*, incident: Incident, assessment: Assessment) -> list[StakeholderAlert]:
    """Create the alerts that ``assessment`` calls for and that ``incident`` has not had yet.

    Each group is alerted at most once per incident, ever (the unique constraint
    ``triage_stakeholderalert_once_per_group`` backs this up): a later assessment that escalates
    the band alerts only the groups newly called. ``recipients`` is the group's addresses now.
    Must run inside the assessment's transaction, holding the incident's row lock: each new
    alert's emails go into the outbox there (``stakeholder_alert_emails_queue``). Returns the
    new alerts (empty when nobody new is called).
    """
    already = set(StakeholderAlert.objects.filter(incident=incident).values_list("group_id", flat=True))
    created = []
    for group, reason in stakeholder_groups_called(band=assessment.band, scenario=assessment.scenario):
        if group.pk in already:
            continue
        created.append(
            StakeholderAlert.objects.create(
                incident=incident,
                group=group,
                assessment=assessment,
                band=assessment.band,
                scenario=assessment.scenario,
                reason=reason,
                summary=alert_summary(incident=incident, assessment=assessment, reason=reason),
                recipients=group.recipients,
                created_at=assessment.assessed_at,
            )
        )
        stakeholder_alert_emails_queue(alert=created[-1])
    return created


def stakeholder_alert_emails_queue(*, alert: StakeholderAlert) -> int:
    """Put ``alert``'s email in the outbox, one row per recorded recipient (kind
    ``stakeholder_alert``, Message-ID ``<stakeholder-alert.<id>.<address key>@domain>``), and link
    the rows to the alert (``alert.emails``); returns how many rows are new. Safe to run twice:
    an address already queued is skipped. Call it inside the transaction that raised the alert.
    With no recipients nothing is queued and ``last_error`` says why."""
    if not alert.recipients:
        StakeholderAlert.objects.filter(pk=alert.pk).update(
            last_error="Not emailed: the group has no email address configured."
        )
        return 0
    incident = alert.incident
    context = {
        "reference": incident.reference,
        "group_name": alert.group.name,
        "band": Incident.Severity(alert.band).label.lower() if alert.band else "unassessed",
        "summary": alert.summary,
    }
    queued = []
    for address in alert.recipients:
        email = outgoing_email_queue_once(
            kind=OutgoingEmail.Kind.STAKEHOLDER_ALERT,
            address=address,
            language="en",
            context=context,
            message_key=f"{alert.pk}.{address_key(address)}",
            incident=incident,
        )
        if email is not None:
            queued.append(email)
    alert.emails.add(*queued)
    return len(queued)


def stakeholder_alert_send(*, alert_id: int) -> int:
    """``stakeholder_alert_emails_queue`` for the alert ``alert_id`` (the task
    ``triage.tasks.send_stakeholder_alert``, kept for messages queued before issue 8). An alert
    already emailed directly before the outbox (``sent_at``) is left alone. Returns the number
    of rows queued."""
    with transaction.atomic():
        alert = (
            StakeholderAlert.objects.select_for_update().select_related("incident", "group").get(pk=alert_id)
        )
        if alert.sent_at is not None:
            return 0
        return stakeholder_alert_emails_queue(alert=alert)
