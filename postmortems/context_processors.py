"""Template context for every page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from postmortems.models import Drill


def last_completed_drill_at() -> datetime | None:
    """When the latest drill was completed (UTC), or ``None`` if none ever was."""
    return (
        Drill.objects.filter(completed_at__isnull=False)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)
        .first()
    )


def drill_overdue(now: datetime | None = None) -> bool:
    """Whether no drill has been completed in the 12 calendar months before ``now``: the
    organisation runs a drill at least yearly."""
    last = last_completed_drill_at()
    return last is None or last < (now or timezone.now()) - relativedelta(months=12)


def drill_reminder(request: HttpRequest) -> dict[str, Any]:
    """``drill_reminder``: for incident managers (who run drills), a lazily evaluated flag that
    is true when no drill was completed in the last 12 months (one query, only when a page
    shows the banner)."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated and user.has_perm("postmortems.add_drill")):
        return {"drill_reminder": False}
    return {"drill_reminder": SimpleLazyObject(drill_overdue)}
