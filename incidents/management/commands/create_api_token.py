"""``manage.py create_api_token USERNAME [--name N] [--days D]``: create an API token for a user
and print its key, once, alone on the last line (``Authorization: Token <key>``)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.api.authentication import api_token_create


class Command(BaseCommand):
    help = "Create an expiring API token for USERNAME; print the key on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="created with manage.py")
        parser.add_argument("--days", type=int, default=None, help="Lifetime in days (1 to 366).")

    def handle(self, *args: Any, username: str, name: str, days: int | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        lifetime = timedelta(days=days if days is not None else settings.API_TOKEN_DEFAULT_DAYS)
        try:
            token, key = api_token_create(user=user, name=name, lifetime=lifetime)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Token {token.prefix}… for {username}, valid until {token.expires_at:%Y-%m-%dT%H:%M:%SZ}:"
        )
        self.stdout.write(key)
