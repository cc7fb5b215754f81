"""Celery tasks of the post-mortems app. Thin: call one function, safe twice."""

from __future__ import annotations

from celery import shared_task

from postmortems.reminders import action_item_reminders_scan


@shared_task(acks_late=True, reject_on_worker_lost=True)
def scan_action_item_reminders() -> dict:
    """One reminder pass (``postmortems.reminders.action_item_reminders_scan``); its counts."""
    return action_item_reminders_scan().__dict__
