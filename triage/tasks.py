"""Celery tasks of the triage app. Thin: take ids, call one service, safe to run twice."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_stakeholder_alert(alert_id: int) -> int:
    """Email one stakeholder alert (``triage.alerts.stakeholder_alert_send``); returns how many
    recipients it went to. Queued on commit of the assessment that raised it; a second run sends
    nothing (the alert is claimed once)."""
    from triage.alerts import stakeholder_alert_send

    return stakeholder_alert_send(alert_id=alert_id)
