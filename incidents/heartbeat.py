"""Whether the background worker is alive, for the pages that show it (the incident list and the
due-next board).

Beat queues ``incidents.tasks.record_worker_heartbeat`` every 30 seconds and a worker runs it, so
a recent ``WorkerHeartbeat`` means both beat and a worker are running. When the last beat is
older than ``settings.WORKER_HEARTBEAT_STALE_SECONDS`` (default 120: four missed beats) the
worker is taken to be gone: deadlines are not scanned and no email leaves the outbox, and the
pages say so in red (issue 8).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from django.conf import settings
from django.utils import timezone

from incidents.models import WorkerHeartbeat


class HeartbeatStatus(TypedDict):
    """``beat_at``: the last beat (aware UTC) or ``None`` if never seen; ``seen``: it is recent;
    ``stale_minutes``: the threshold in whole minutes (at least 1), for the page's text."""

    beat_at: datetime | None
    seen: bool
    stale_minutes: int


def worker_heartbeat() -> HeartbeatStatus:
    """The worker's heartbeat as the pages show it (one query)."""
    stale_after = timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS)
    heartbeat = WorkerHeartbeat.objects.filter(name="beat").first()
    beat_at = heartbeat.beat_at if heartbeat else None
    return {
        "beat_at": beat_at,
        "seen": beat_at is not None and beat_at >= timezone.now() - stale_after,
        "stale_minutes": max(1, int(stale_after.total_seconds() // 60)),
    }
