"""Celery tasks of the triage app. Thin: take ids, call one service, safe to run twice."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_stakeholder_alert(alert_id: int) -> int:
    """Make sure one stakeholder alert's emails are in the outbox
    (``triage.alerts.stakeholder_alert_send``); returns how many rows it added. Kept for
    messages queued before issue 8 (an assessment now writes its alerts' outbox rows itself);
    a second run adds nothing."""
    from triage.alerts import stakeholder_alert_send

    return stakeholder_alert_send(alert_id=alert_id)
