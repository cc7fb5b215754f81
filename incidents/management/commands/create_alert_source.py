"""``manage.py create_alert_source NAME``: register a monitoring system for the signed alert
intake and print its secret, once, alone on the last line (for a script to capture with
``tail -n 1``). The secret is stored encrypted and never shown again; lost, rotate it."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.intake import alert_source_create


class Command(BaseCommand):
    help = "Create an alert source for POST /api/intake/alerts/ and print its secret on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A name for the monitoring system, unique.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            source, secret = alert_source_create(name=name)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Created alert source {source.name!r}. Sign each request with this secret "
            "(X-Breachdesk-Signature: sha256=HMAC-SHA256(secret, '<timestamp>.<body>')); "
            "it is shown only now:"
        )
        self.stdout.write(secret)
