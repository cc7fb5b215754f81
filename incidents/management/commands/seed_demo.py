"""``manage.py seed_demo``: a demo installation in one command, safe to run again.

Creates (or finds):

1. one user per group (``responder``, ``incident_manager``, ``auditor``) with a generated password
   (``secrets.token_urlsafe``), kept in ``settings.VAR_DIR / "demo-credentials.txt"`` (mode 0600;
   ``var/`` is never committed) so that a second run prints the same logins instead of changing
   passwords;
2. a few customers with administrative contacts in English, German, French, Spanish and
   Japanese (through the same validation and upsert as ``import_customers``);
3. the VERIS Community Database sample shipped in ``incidents/fixtures/vcdb/`` as ``detected``
   incidents (through the same import as ``import_veris``).

4. then every other app's demo data: each management command named ``seed_demo_<something>``
   of an installed app runs in turn, in name order (triage's ``seed_demo_declarations``
   triages two of the imported incidents through a recorded assessment and declares them, so
   the board shows running deadlines; the post-mortems app seeds a completed drill), so this
   ground-floor command needs to know nothing of the apps above it.

The demo auditor's account expires in a year (every auditor's account carries an expiry date).
It prints the logins and the counts. A demo user that already exists but whose password is not
in the credentials file keeps its password (the command never resets a password it did not
generate). Meant for demo and development installations, not production.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from incidents.accounts import AUDITOR_GROUP
from incidents.management.commands.import_customers import (
    upsert_customer_rows,
    validate_customer_rows,
)
from incidents.models import AccountExpiry, Product
from incidents.veris import import_veris_files, veris_files

VCDB_SAMPLE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "vcdb"
CREDENTIALS_FILE_NAME = "demo-credentials.txt"


@dataclass(frozen=True)
class DemoUser:
    username: str
    group: str
    first_name: str
    last_name: str

    @property
    def email(self) -> str:
        return f"{self.username}@breachdesk.test"


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("responder", "responder", "Rita", "Responder"),
    DemoUser("manager", "incident_manager", "Max", "Manager"),
    DemoUser("auditor", "auditor", "Aude", "Auditor"),
    # A superuser, so the embedded run can set stakeholder alert addresses in /admin/.
    DemoUser("admin", "", "Ada", "Admin"),
)

#: Demo customers and their administrative contacts, in the columns of ``import_customers``.
DEMO_CUSTOMERS: tuple[dict[str, str], ...] = (
    {
        "account_reference": "DEMO-EN-001",
        "customer_name": "Northwind Traders Ltd",
        "country": "GB",
        "preferred_language": "en",
        "notification_window_hours": "72",
        "contact_name": "Olivia Bennett",
        "contact_email": "olivia.bennett@northwind.example",
        "contact_language": "en",
        "contact_role": "administrative",
    },
    {
        # An address the embedded run's mail sink refuses (550): the first confirmation round
        # marks it undeliverable, and the readiness page shows it.
        "account_reference": "DEMO-EN-001",
        "customer_name": "Northwind Traders Ltd",
        "country": "GB",
        "preferred_language": "en",
        "notification_window_hours": "72",
        "contact_name": "Former Administrator",
        "contact_email": "former.admin@undeliverable.example",
        "contact_language": "en",
        "contact_role": "administrative",
    },
    {
        "account_reference": "DEMO-DE-001",
        "customer_name": "Rheinblick Logistik GmbH",
        "country": "DE",
        "preferred_language": "de",
        "notification_window_hours": "48",
        "contact_name": "Anna Schmidt",
        "contact_email": "anna.schmidt@rheinblick.example",
        "contact_language": "de",
        "contact_role": "administrative",
    },
    {
        "account_reference": "DEMO-FR-001",
        "customer_name": "Atelier Lumière SARL",
        "country": "FR",
        "preferred_language": "fr",
        "notification_window_hours": "72",
        "contact_name": "Camille Martin",
        "contact_email": "camille.martin@atelier-lumiere.example",
        "contact_language": "fr",
        "contact_role": "administrative",
    },
    {
        "account_reference": "DEMO-ES-001",
        "customer_name": "Soluciones Iberia S.L.",
        "country": "ES",
        "preferred_language": "es",
        "notification_window_hours": "72",
        "contact_name": "Lucía García",
        "contact_email": "lucia.garcia@soluciones-iberia.example",
        "contact_language": "es",
        "contact_role": "administrative",
    },
    {
        # Drills notify drill customers only: this one exists for exercises.
        "account_reference": "DEMO-DRILL-001",
        "customer_name": "Drill Customer (exercise only)",
        "country": "GB",
        "preferred_language": "en",
        "notification_window_hours": "72",
        "contact_name": "Dana Drill",
        "contact_email": "dana.drill@drill.example",
        "contact_language": "en",
        "contact_role": "administrative",
        "is_drill_customer": "yes",
    },
    {
        "account_reference": "DEMO-JA-001",
        "customer_name": "さくらシステム株式会社",
        "country": "JP",
        "preferred_language": "ja",
        "notification_window_hours": "24",
        "contact_name": "山田 花子",
        "contact_email": "hanako.yamada@sakura-systems.example",
        "contact_language": "ja",
        "contact_role": "administrative",
    },
)


def credentials_path() -> Path:
    """Where the demo logins are kept: ``settings.VAR_DIR / "demo-credentials.txt"``."""
    return Path(settings.VAR_DIR) / CREDENTIALS_FILE_NAME


def read_credentials(path: Path) -> dict[str, str]:
    """The stored demo logins ``{username: password}``; ``{}`` when the file does not exist.

    Lines are ``username password``; blank lines and lines starting with ``#`` are skipped.
    Raises ``CommandError`` when the file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CommandError(f"{path}: cannot be read ({error.strerror or error}).") from None
    logins: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.lstrip().startswith("#"):
            logins[parts[0]] = parts[1]
    return logins


def write_credentials(path: Path, logins: dict[str, str]) -> None:
    """Write ``logins`` to ``path`` readable by the owner only (mode 0600), replacing it
    atomically so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Breachdesk demo logins, written by `manage.py seed_demo`.",
        "# Keep private; never commit (var/ is ignored by git). Format: username password",
        *(f"{username} {password}" for username, password in logins.items()),
    ]
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


#: Products, services and applications a breach can involve (chosen in "Edit facts").
DEMO_PRODUCTS = (
    ("Support Portal", "Where customers open support cases and upload files."),
    ("Remote Support Tool", "Screen sharing and remote sessions with customer systems."),
    ("Consulting Workspace", "Project file shares used by consultants."),
)


class Command(BaseCommand):
    help = (
        "Seed a demo: one user per group with generated passwords (kept in "
        "var/demo-credentials.txt and printed), customers with contacts in five languages, and "
        "the shipped VERIS Community Database sample as detected incidents. Safe to re-run: "
        "creates nothing twice and prints the same logins."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        path = credentials_path()
        logins = read_credentials(path)
        user_model = get_user_model()
        # Passwords are generated only for demo users that do not exist yet; an existing user
        # without a stored password keeps the password it has.
        existing = set(
            user_model.objects.filter(username__in=[user.username for user in DEMO_USERS]).values_list(
                "username", flat=True
            )
        )
        generated = False
        for user in DEMO_USERS:
            if user.username not in logins and user.username not in existing:
                logins[user.username] = secrets.token_urlsafe(16)
                generated = True
        if generated:
            write_credentials(path, logins)

        with transaction.atomic():
            users_created = self._seed_users(logins)
            rows, problems = validate_customer_rows(enumerate(DEMO_CUSTOMERS, start=1))
            if problems:  # A mistake in DEMO_CUSTOMERS, not in the user's input.
                raise CommandError("Demo customers are invalid: " + "; ".join(problems))
            imported = upsert_customer_rows(rows, source="seed_demo")
            products = sum(
                Product.objects.get_or_create(name=name, defaults={"description": description})[1]
                for name, description in DEMO_PRODUCTS
            )

        try:
            files = veris_files([VCDB_SAMPLE_DIR])
        except OSError as error:
            raise CommandError(f"The shipped VCDB sample is missing: {error}") from None
        summary = import_veris_files(files)
        for outcome in summary.failed:
            self.stderr.write(f"{outcome.path}: {outcome.reason}")

        self.stdout.write(f"Demo logins (kept in {path}):")
        for user in DEMO_USERS:
            password = logins.get(user.username, "(unchanged: not in the credentials file)")
            role = f"group {user.group}" if user.group else "superuser: /admin/"
            self.stdout.write(f"  {user.username:<10} {password}  ({role})")
        self.stdout.write(f"Users: {users_created} created.")
        self.stdout.write(
            f"Customers: {imported.customers}. Contacts: {imported.contacts}. Products: {products} created."
        )
        self.stdout.write(f"VERIS Community Database incidents (CC BY-SA 4.0): {summary.line()}.")
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} VCDB sample files failed to import.")
        for name in sorted(name for name in get_commands() if name.startswith("seed_demo_")):
            call_command(name, stdout=self.stdout, stderr=self.stderr)

    def _seed_users(self, logins: dict[str, str]) -> int:
        user_model = get_user_model()
        created = 0
        for demo in DEMO_USERS:
            if not demo.group:
                if not user_model.objects.filter(username=demo.username).exists():
                    user_model.objects.create_superuser(
                        username=demo.username,
                        email=demo.email,
                        password=logins[demo.username],
                        first_name=demo.first_name,
                        last_name=demo.last_name,
                    )
                    created += 1
                continue
            try:
                group = Group.objects.get(name=demo.group)
            except Group.DoesNotExist:
                raise CommandError(
                    f"Group {demo.group!r} is missing: run `manage.py migrate` first."
                ) from None
            user = user_model.objects.filter(username=demo.username).first()
            if user is None:
                user = user_model.objects.create_user(
                    username=demo.username,
                    email=demo.email,
                    password=logins[demo.username],
                    first_name=demo.first_name,
                    last_name=demo.last_name,
                )
                created += 1
            user.groups.add(group)
            if demo.group == AUDITOR_GROUP:
                AccountExpiry.objects.get_or_create(
                    user=user,
                    defaults={"expires_at": timezone.now() + timedelta(days=365), "note": "Demo auditor"},
                )
        return created
