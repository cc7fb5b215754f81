"""Helpers for notification tests: approval is asynchronous (a worker creates the deliveries
from the committed approval), so tests that need the deliveries run that worker's service
themselves, the way ``tasks.create_notice_deliveries`` would after commit."""

from __future__ import annotations

from notifications.models import Notice
from notifications.services import notice_approve, notice_deliveries_create, notices_awaiting_deliveries


def run_delivery_worker() -> int:
    """Create the deliveries of every approved notice still waiting for them; returns how many
    deliveries were created."""
    return sum(
        notice_deliveries_create(notice_id=notice_id).deliveries
        for notice_id in notices_awaiting_deliveries()
    )


def approve(notice: Notice, actor) -> Notice:
    """Approve ``notice`` and create its deliveries (approval, then the worker)."""
    approved = notice_approve(notice=notice, actor=actor)
    notice_deliveries_create(notice_id=approved.pk)
    approved.refresh_from_db()
    return approved
