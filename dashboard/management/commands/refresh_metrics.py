"""``manage.py refresh_metrics``: recompute every month of the response metrics now (the worker
does the changed months every ``METRICS_REFRESH_MINUTES``)."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from dashboard.metrics import REFRESH_NAME, metrics_refresh
from dashboard.models import MetricsRefresh


class Command(BaseCommand):
    help = "Recompute every month of the response metrics (the metrics page and GET /api/metrics/)."

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        months = metrics_refresh(now=now)
        MetricsRefresh.objects.update_or_create(name=REFRESH_NAME, defaults={"refreshed_at": now})
        self.stdout.write(f"Metrics recomputed for {months} month(s).")
