"""Precomputed metrics: one row per month (UTC) and kind (real or drill).

The metrics page and ``GET /api/metrics/`` read these rows, never the incident table, so a
request costs the same at ten thousand incidents as at a million. ``dashboard.metrics`` fills
them: Celery beat every ``METRICS_REFRESH_MINUTES`` recomputes the months whose incidents or
clocks changed since the last run (and always the current and the previous month, whose clocks
fall due as time passes); ``manage.py refresh_metrics`` recomputes everything.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class MonthlyMetric(models.Model):
    """The response figures of the incidents recorded in one month (UTC), real or drills.

    Durations are in seconds of elapsed time, ``None`` when no incident of the month got that
    far. ``*_median_seconds`` and ``*_mean_seconds`` are over the incidents counted in the
    matching ``*_count``. Time to triage: recorded (``created_at``, when the signal entered as
    ``detected``) to ``triaged_at``; time to declare: recorded to ``declared_at``; time to notify:
    ``declared_at`` to the last customer's clock met (``notified_at``, set when every affected
    customer's initial notice is out). ``clocks_settled``: customer clocks met, waived or past
    due; ``clocks_on_time``: those met by their ``due_at``. ``by_*``: ``{value: count}`` of the
    month's incidents (``""``: not recorded).
    """

    month = models.DateField(help_text="First day of the month (UTC).")
    is_drill = models.BooleanField(default=False)
    incidents = models.PositiveIntegerField(default=0)
    triage_count = models.PositiveIntegerField(default=0)
    triage_median_seconds = models.FloatField(null=True, blank=True)
    triage_mean_seconds = models.FloatField(null=True, blank=True)
    declare_count = models.PositiveIntegerField(default=0)
    declare_median_seconds = models.FloatField(null=True, blank=True)
    declare_mean_seconds = models.FloatField(null=True, blank=True)
    notify_count = models.PositiveIntegerField(default=0)
    notify_median_seconds = models.FloatField(null=True, blank=True)
    notify_mean_seconds = models.FloatField(null=True, blank=True)
    clocks_settled = models.PositiveIntegerField(default=0)
    clocks_on_time = models.PositiveIntegerField(default=0)
    by_severity = models.JSONField(default=dict, blank=True)
    by_scenario = models.JSONField(default=dict, blank=True)
    by_detection_source = models.JSONField(default=dict, blank=True)
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["month", "is_drill"]
        constraints = [
            models.UniqueConstraint(fields=["month", "is_drill"], name="dashboard_monthlymetric_unique_month")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}{' (drills)' if self.is_drill else ''}"


class MetricsRefresh(models.Model):
    """When the metrics were last recomputed (one row, ``name="monthly"``): the next
    incremental refresh looks at what changed since ``refreshed_at``."""

    name = models.CharField(max_length=32, primary_key=True)
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.refreshed_at:%Y-%m-%dT%H:%M:%SZ}"
