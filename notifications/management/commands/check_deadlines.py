"""``python manage.py check_deadlines``: run one pass of the deadline scanner now, create the
deliveries of approved notices still waiting for them, then send what is due (both outboxes:
``notifications.sender`` and ``incidents.outbox``, the declaration alerts). The same work
Celery beat and the workers do every minute; harmless to run at any time."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from incidents.outbox import outgoing_emails_send_due
from notifications.scanner import deadlines_scan
from notifications.sender import outbox_due_exists, outbox_send_due
from notifications.services import notice_deliveries_create


class Command(BaseCommand):
    help = "Run one pass of the deadline scanner (escalations, automatic notices, re-queues, date reminders)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-send", action="store_true", help="Do not send due emails.")

    def handle(self, *args: Any, no_send: bool = False, **options: Any) -> None:
        report = deadlines_scan()
        self.stdout.write(
            f"{report.escalations} escalations, {report.automatic_notices} automatic notices, "
            f"{report.requeued} deliveries re-queued, {report.reminders} date reminders."
        )
        for notice_id in report.notices_awaiting_deliveries:
            created = notice_deliveries_create(notice_id=notice_id)
            self.stdout.write(f"Notice {notice_id}: {created.deliveries} deliveries created.")
        due = report.deliveries_due or outbox_due_exists()
        if due and not no_send:
            sent = outbox_send_due()
            self.stdout.write(f"{sent.sent} sent, {sent.retried} to retry, {sent.failed} failed.")
        if report.incident_emails_due and not no_send:
            counts = outgoing_emails_send_due()
            self.stdout.write(
                f"Declaration alerts and report confirmations: {counts['sent']} sent, "
                f"{counts['retried']} to retry, {counts['failed']} failed."
            )
