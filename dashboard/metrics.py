"""Computing and reading the response metrics (``dashboard.models.MonthlyMetric``).

Why precomputed: the figures are medians over every incident of a period. Computed per request
they read the whole incident table (a second or more at a million incidents, more with each
year); computed into one row per month they cost one indexed read of a few rows. The refresh
runs in the worker (Celery beat, ``METRICS_REFRESH_MINUTES``) and reads only the months that
changed, found through the ``incidents_incident_updated`` index and the clocks met since the
last run.

Restricted incidents (need to know, ``incidents.selectors``) are left out of every figure, for
everyone: the rows are shared by all viewers, so counting an incident there would tell a
non-member it exists. Restricting or lifting touches the incident's ``updated_at``, so the next
refresh recomputes its month.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dashboard.models import MetricsRefresh, MonthlyMetric
from incidents.models import Incident
from incidents.selectors import without_restricted
from notifications.models import Clock

REFRESH_NAME = "monthly"


def month_of(instant: datetime) -> date:
    """The first day of ``instant``'s month in UTC."""
    return instant.astimezone(UTC).date().replace(day=1)


def _month_range(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass
class _Bucket:
    incidents: int = 0
    triage: list[float] = field(default_factory=list)
    declare: list[float] = field(default_factory=list)
    notify: list[float] = field(default_factory=list)
    clocks_settled: int = 0
    clocks_on_time: int = 0
    by_severity: Counter = field(default_factory=Counter)
    by_scenario: Counter = field(default_factory=Counter)
    by_detection_source: Counter = field(default_factory=Counter)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def metrics_refresh(*, months: set[date] | None = None, now: datetime | None = None) -> int:
    """Recompute the ``MonthlyMetric`` rows of ``months`` (first days, UTC; ``None``: every
    month that has incidents) and return how many months were recomputed.

    Reads the unrestricted incidents recorded in those months and their customer clocks; replaces the
    months' rows (real and drill) in one transaction, so a reader sees a month before or after,
    never half. A month left without incidents loses its rows.
    """
    now = now or timezone.now()
    if months is None:
        dates = Incident.objects.dates("created_at", "month")
        months = set(dates)
    months = {month.replace(day=1) for month in months}
    if not months:
        return 0
    buckets: dict[tuple[date, bool], _Bucket] = defaultdict(_Bucket)
    period = Q()
    for month in months:
        start, end = _month_range(month)
        period |= Q(created_at__gte=start, created_at__lt=end)
    rows = without_restricted(Incident.objects.filter(period)).values_list(
        "created_at",
        "triaged_at",
        "declared_at",
        "notified_at",
        "is_drill",
        "severity",
        "scenario",
        "detection_source",
    )
    for (
        created_at,
        triaged_at,
        declared_at,
        notified_at,
        is_drill,
        severity,
        scenario,
        source,
    ) in rows.iterator(chunk_size=5000):
        bucket = buckets[(month_of(created_at), is_drill)]
        bucket.incidents += 1
        if triaged_at:
            bucket.triage.append((triaged_at - created_at).total_seconds())
        if declared_at:
            bucket.declare.append((declared_at - created_at).total_seconds())
            if notified_at:
                bucket.notify.append((notified_at - declared_at).total_seconds())
        bucket.by_severity[severity or ""] += 1
        bucket.by_scenario[scenario or ""] += 1
        bucket.by_detection_source[source or ""] += 1
    clock_period = Q()
    for month in months:
        start, end = _month_range(month)
        clock_period |= Q(incident__created_at__gte=start, incident__created_at__lt=end)
    clocks = without_restricted(
        Clock.objects.filter(clock_period, kind=Clock.Kind.CUSTOMER_NOTICE), "incident"
    ).values_list("incident__created_at", "incident__is_drill", "due_at", "met_at", "waived_at")
    for created_at, is_drill, due_at, met_at, waived_at in clocks.iterator(chunk_size=5000):
        if met_at is None and waived_at is None and due_at > now:
            continue  # still running: neither on time nor late yet
        bucket = buckets[(month_of(created_at), is_drill)]
        bucket.clocks_settled += 1
        if met_at is not None and met_at <= due_at:
            bucket.clocks_on_time += 1
    with transaction.atomic():
        MonthlyMetric.objects.filter(month__in=months).delete()
        MonthlyMetric.objects.bulk_create(
            [
                MonthlyMetric(
                    month=month,
                    is_drill=is_drill,
                    incidents=bucket.incidents,
                    triage_count=len(bucket.triage),
                    triage_median_seconds=_median(bucket.triage),
                    triage_mean_seconds=_mean(bucket.triage),
                    declare_count=len(bucket.declare),
                    declare_median_seconds=_median(bucket.declare),
                    declare_mean_seconds=_mean(bucket.declare),
                    notify_count=len(bucket.notify),
                    notify_median_seconds=_median(bucket.notify),
                    notify_mean_seconds=_mean(bucket.notify),
                    clocks_settled=bucket.clocks_settled,
                    clocks_on_time=bucket.clocks_on_time,
                    by_severity=dict(bucket.by_severity),
                    by_scenario=dict(bucket.by_scenario),
                    by_detection_source=dict(bucket.by_detection_source),
                    refreshed_at=now,
                )
                for (month, is_drill), bucket in buckets.items()
                if bucket.incidents
            ]
        )
    return len(months)


def metrics_refresh_changed(*, now: datetime | None = None) -> int:
    """Recompute the months touched since the last refresh (incidents changed, clocks met or
    waived) plus the current and the previous month; the first run recomputes every month.
    Returns how many months were recomputed. Safe to run twice at once (the second rewrites the
    same rows)."""
    now = now or timezone.now()
    last = MetricsRefresh.objects.filter(name=REFRESH_NAME).values_list("refreshed_at", flat=True).first()
    if last is None:
        count = metrics_refresh(now=now)
    else:
        # A little overlap, so a change committed while the last run read is not missed.
        since = last - timedelta(minutes=1)
        current = month_of(now)
        months = {current, (current - timedelta(days=1)).replace(day=1)}
        months |= {
            month_of(at)
            for at in Incident.objects.filter(updated_at__gte=since).values_list("created_at", flat=True)
        }
        months |= {
            month_of(at)
            for at in Clock.objects.filter(Q(met_at__gte=since) | Q(waived_at__gte=since)).values_list(
                "incident__created_at", flat=True
            )
        }
        count = metrics_refresh(months=months, now=now)
    MetricsRefresh.objects.update_or_create(name=REFRESH_NAME, defaults={"refreshed_at": now})
    return count


# --- Reading ------------------------------------------------------------------------------


@dataclass
class MonthFigures:
    """One month of ``metrics_for_period`` (real incidents, and drills when asked)."""

    month: date
    incidents: int
    triage_count: int
    triage_median_hours: float | None
    declare_count: int
    declare_median_hours: float | None
    notify_count: int
    notify_median_hours: float | None
    clocks_settled: int
    clocks_on_time: int

    @property
    def on_time_share(self) -> float | None:
        """Share (0 to 1) of settled customer clocks met within their window; ``None``: none
        settled."""
        return self.clocks_on_time / self.clocks_settled if self.clocks_settled else None


@dataclass
class Metrics:
    """The figures of a period: per month, and the period's counts by severity, scenario and
    detection source; ``refreshed_at``: the oldest refresh among the rows read (``None``: no
    row, nothing computed yet)."""

    start: date
    end: date
    include_drills: bool
    months: list[MonthFigures]
    by_severity: dict[str, int]
    by_scenario: dict[str, int]
    by_detection_source: dict[str, int]
    refreshed_at: datetime | None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _combined_median(rows: list[MonthlyMetric], name: str) -> tuple[int, float | None]:
    """Count and median hours over real and drill rows of one month: the count-weighted mean of
    their medians when both exist (exact when only one does)."""
    weighted = [(getattr(r, f"{name}_count"), getattr(r, f"{name}_median_seconds")) for r in rows]
    weighted = [(count, value) for count, value in weighted if count and value is not None]
    total = sum(count for count, _ in weighted)
    if not total:
        return 0, None
    return total, _hours(sum(count * value for count, value in weighted) / total)


def default_period(now: datetime | None = None) -> tuple[date, date]:
    """The last twelve months up to the current one (first days, UTC)."""
    end = month_of(now or timezone.now())
    start = end
    for _ in range(11):
        start = (start - timedelta(days=1)).replace(day=1)
    return start, end


def metrics_for_period(*, start: date, end: date, include_drills: bool = False) -> Metrics:
    """The precomputed figures for the months ``start`` to ``end`` (inclusive, first days),
    drills excluded unless ``include_drills``. One query; months without incidents are listed
    with zeros, so a chart's axis has no gaps. Figures are as of the last refresh."""
    rows = list(
        MonthlyMetric.objects.filter(
            month__gte=start, month__lte=end, **({} if include_drills else {"is_drill": False})
        )
    )
    by_month: dict[date, list[MonthlyMetric]] = defaultdict(list)
    for row in rows:
        by_month[row.month].append(row)
    months = []
    month = start
    while month <= end:
        these = by_month.get(month, [])
        triage = _combined_median(these, "triage")
        declare = _combined_median(these, "declare")
        notify = _combined_median(these, "notify")
        months.append(
            MonthFigures(
                month=month,
                incidents=sum(r.incidents for r in these),
                triage_count=triage[0],
                triage_median_hours=triage[1],
                declare_count=declare[0],
                declare_median_hours=declare[1],
                notify_count=notify[0],
                notify_median_hours=notify[1],
                clocks_settled=sum(r.clocks_settled for r in these),
                clocks_on_time=sum(r.clocks_on_time for r in these),
            )
        )
        month = (month + timedelta(days=32)).replace(day=1)
    totals: dict[str, Counter] = {
        "by_severity": Counter(),
        "by_scenario": Counter(),
        "by_detection_source": Counter(),
    }
    for row in rows:
        for name, counter in totals.items():
            counter.update(getattr(row, name))
    return Metrics(
        start=start,
        end=end,
        include_drills=include_drills,
        months=months,
        by_severity=dict(totals["by_severity"].most_common()),
        by_scenario=dict(totals["by_scenario"].most_common()),
        by_detection_source=dict(totals["by_detection_source"].most_common()),
        refreshed_at=min((r.refreshed_at for r in rows), default=None),
    )


def refresh_interval_minutes() -> int:
    """``settings.METRICS_REFRESH_MINUTES`` (default 5)."""
    return int(getattr(settings, "METRICS_REFRESH_MINUTES", 5))


def as_dict(metrics: Metrics) -> dict[str, Any]:
    """``metrics`` as the JSON shape of ``GET /api/metrics/``."""
    return {
        "from": metrics.start.strftime("%Y-%m"),
        "to": metrics.end.strftime("%Y-%m"),
        "include_drills": metrics.include_drills,
        "refreshed_at": metrics.refreshed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if metrics.refreshed_at
        else None,
        "months": [
            {
                "month": m.month.strftime("%Y-%m"),
                "incidents": m.incidents,
                "time_to_triage_median_hours": m.triage_median_hours,
                "triaged": m.triage_count,
                "time_to_declare_median_hours": m.declare_median_hours,
                "declared": m.declare_count,
                "time_to_notify_median_hours": m.notify_median_hours,
                "notified": m.notify_count,
                "clocks_settled": m.clocks_settled,
                "clocks_on_time": m.clocks_on_time,
                "notified_within_window_share": None
                if m.on_time_share is None
                else round(m.on_time_share, 4),
            }
            for m in metrics.months
        ],
        "by_severity": metrics.by_severity,
        "by_scenario": metrics.by_scenario,
        "by_detection_source": metrics.by_detection_source,
    }
