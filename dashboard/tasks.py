"""Celery tasks of the dashboard: thin, safe to run twice."""

from celery import shared_task

from dashboard.metrics import metrics_refresh_changed


@shared_task(name="dashboard.tasks.refresh_metrics", ignore_result=True)
def refresh_metrics() -> int:
    """Recompute the months of metrics that changed since the last run (beat, every
    ``METRICS_REFRESH_MINUTES``); returns how many months were recomputed."""
    return metrics_refresh_changed()


@shared_task(name="dashboard.tasks.refresh_metrics_month", ignore_result=True)
def refresh_metrics_month(month: str) -> int:
    """Recompute one month of metrics (``month``: its first day, ISO 8601), after a lifecycle
    moment of an incident recorded in it."""
    from datetime import date

    from dashboard.metrics import metrics_refresh

    return metrics_refresh(months={date.fromisoformat(month)})
