"""``manage.py rotate_alert_source NAME [--grace-hours H]``: give an alert source a new secret,
printed once alone on the last line; the old one keeps verifying for ``H`` hours (default
``ALERT_SECRET_GRACE_HOURS``, 24; 0 revokes it at once)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.intake import alert_source_rotate
from incidents.models import AlertSource


class Command(BaseCommand):
    help = "Rotate an alert source's secret; print the new one on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--grace-hours", type=float, default=None, help="Hours the old secret stays valid."
        )

    def handle(self, *args: Any, name: str, grace_hours: float | None, **options: Any) -> None:
        source = AlertSource.objects.filter(name=name).first()
        if source is None:
            raise CommandError(f"No alert source named {name!r}.")
        hours = settings.ALERT_SECRET_GRACE_HOURS if grace_hours is None else grace_hours
        try:
            secret = alert_source_rotate(source=source, grace=timedelta(hours=hours))
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Rotated {source.name!r}; the previous secret stays valid for {hours:g} hours. New secret:"
        )
        self.stdout.write(secret)
