"""What the dashboard does at lifecycle moments (hooks in ``settings.LIFECYCLE_HOOKS``; see
``incidents.lifecycle``): the month of metrics an incident counts in is recomputed once the
change commits, so the metrics page shows a triage, a declaration, a notification or a closing
without waiting for beat's next refresh. Beat still refreshes every
``METRICS_REFRESH_MINUTES`` (clocks met by the sender do not pass through a lifecycle moment)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from config.celery import enqueue
from dashboard.metrics import month_of
from incidents.lifecycle import HookContext
from incidents.models import Incident

TASK_REFRESH_MONTH = "dashboard.tasks.refresh_metrics_month"


def refresh_metrics_of_the_month(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``saved`` at triage, declaration, notification, the triage exits and closing: after
    commit, queue the recomputation of the month (UTC) the incident was recorded in. No audit
    data."""
    month = month_of(incident.created_at).isoformat()
    transaction.on_commit(lambda: enqueue(TASK_REFRESH_MONTH, month))
    return {}
