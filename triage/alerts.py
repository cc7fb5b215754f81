"""Stakeholder alerts: which groups an in-scope assessment calls for, the alert rows (once per
incident and group, ever) and the email that tells them.

Rule: a group is called when it is active and the assessment's band (the override if any)
reaches the group's ``min_band``, or the assessment's scenario is one of the group's
``scenarios`` (``StakeholderGroup.why_called``). Alerts are raised inside the assessment's
transaction; the email goes out after commit (``triage.tasks.send_stakeholder_alert``).
"""

from __future__ import annotations

from datetime import UTC
from urllib.parse import urlparse

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident
from incidents.selectors import RESTRICTED_BODY, RESTRICTED_SUBJECT, addresses_outside
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
    Must run inside the assessment's transaction, holding the incident's row lock. Returns the
    new alerts (empty when nobody new is called); sending them is the caller's on-commit job.
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
    return created


def _message_id(alert: StakeholderAlert) -> str:
    domain = urlparse(settings.SITE_URL).hostname or "breachdesk.invalid"
    return f"<stakeholder-alert-{alert.pk}@{domain}>"


def stakeholder_alert_send(*, alert_id: int) -> int:
    """Email one stakeholder alert to its recorded recipients; returns how many it went to.

    Claimed with a conditional UPDATE (only while ``sent_at`` is empty), so running it twice, or
    on two workers, sends once. With no recipients (the group has no address yet) nothing is
    sent, ``sent_at`` stays empty and ``last_error`` says why. A mail error clears the claim,
    records the error and is raised again. The ``Message-ID`` is deterministic per alert. For a
    restricted incident, recipients who are not its members (a group mailbox never is) get a
    neutral email that names nothing (``incidents.selectors.RESTRICTED_SUBJECT``).
    """
    claimed = StakeholderAlert.objects.filter(pk=alert_id, sent_at__isnull=True).update(
        sent_at=timezone.now()
    )
    if not claimed:
        return 0
    alert = StakeholderAlert.objects.select_related("incident", "group").get(pk=alert_id)
    if not alert.recipients:
        StakeholderAlert.objects.filter(pk=alert_id).update(
            sent_at=None, last_error="Not emailed: the group has no email address configured."
        )
        return 0
    band = Incident.Severity(alert.band).label.lower() if alert.band else "unassessed"
    outside = addresses_outside(alert.incident, alert.recipients)
    members = [address for address in alert.recipients if address not in outside]
    messages = []
    if members:
        messages.append(
            EmailMessage(
                subject=alert.incident.email_subject(
                    f"[Breachdesk] {alert.incident.reference} needs {alert.group.name}: severity {band}"
                ),
                body=alert.summary + "\n",
                to=members,
                headers={"Message-ID": _message_id(alert)},
            )
        )
    if outside:
        messages.append(
            EmailMessage(
                subject=alert.incident.email_subject(RESTRICTED_SUBJECT),
                body=RESTRICTED_BODY,
                to=sorted(outside),
                headers={"Message-ID": _message_id(alert).replace("@", ".restricted@", 1)},
            )
        )
    try:
        sent = sum(message.send() for message in messages)
    except Exception as error:
        StakeholderAlert.objects.filter(pk=alert_id).update(
            sent_at=None, last_error=f"{type(error).__name__}: {error}"[:1000]
        )
        raise
    StakeholderAlert.objects.filter(pk=alert_id).update(last_error="")
    return len(alert.recipients) if sent else 0
