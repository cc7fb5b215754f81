"""``manage.py import_customers FILE.csv``: create or update customers and their contacts from a
CSV file, all or nothing.

The file has a header row and one row per contact, carrying its customer's columns too:

    account_reference, customer_name, country, preferred_language, notification_window_hours,
    contact_name, contact_email, contact_language, contact_role

An optional column ``is_drill_customer`` (``yes``/``no``, ``true``/``false``, ``1``/``0``;
blank: no) marks customers that exist for drills only.

Customers are matched by ``account_reference``, contacts by (customer, email, case-insensitive).
Blank optional cells take defaults: ``country`` none, ``preferred_language`` ``en``,
``notification_window_hours`` 72 (our policy commitment), ``contact_language`` the customer's
language, ``contact_role`` ``administrative``. Contacts absent from the file are left as they
are (customers keep their contacts correct); a contact in the file is active.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import models, transaction

from incidents.models import Contact, Customer

COLUMNS: tuple[str, ...] = (
    "account_reference",
    "customer_name",
    "country",
    "preferred_language",
    "notification_window_hours",
    "contact_name",
    "contact_email",
    "contact_language",
    "contact_role",
)

#: Columns a file may leave out.
OPTIONAL_COLUMNS: tuple[str, ...] = ("is_drill_customer",)
_YES = {"yes", "true", "1"}
_NO = {"no", "false", "0", ""}

#: Languages our notices are written in (settings.LANGUAGES: en, de, fr, es, ja).
LANGUAGE_CODES: tuple[str, ...] = tuple(code for code, _ in settings.LANGUAGES)

DEFAULT_WINDOW_HOURS = 72


@dataclass(frozen=True)
class CustomerValues:
    """One customer's validated values, as a file states them."""

    account_reference: str
    name: str
    country: str
    preferred_language: str
    notification_window_hours: int
    is_drill_customer: bool = False


@dataclass(frozen=True)
class ContactValues:
    """One contact's validated values; ``email`` has its domain in lower case."""

    account_reference: str
    name: str
    email: str
    language: str
    role: str


@dataclass(frozen=True)
class CustomerRows:
    """A whole file's validated rows: customers by account reference, contacts in file order."""

    customers: dict[str, CustomerValues]
    contacts: list[ContactValues]


@dataclass
class UpsertCounts:
    """How many rows an upsert created, updated, and found unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def validate_customer_rows(
    rows: Iterable[tuple[int, Mapping[str, str | None]]],
) -> tuple[CustomerRows, list[str]]:
    """Validate ``rows`` (``(row_number, {column: cell})``) and return them with the problems.

    Problems are one line each, "row N: what is wrong", in row order; the rows are usable only
    when the list is empty. Checks: required cells (account reference, names, email), lengths,
    a well-formed email, ``country`` two letters, languages among ``LANGUAGE_CODES``, window a
    whole number of hours from 1 to 72, a known ``Contact.Role``, the same customer values on
    every row of one account, and no contact twice for one customer.
    """
    customers: dict[str, CustomerValues] = {}
    customer_first_row: dict[str, int] = {}
    contacts: list[ContactValues] = []
    contact_rows: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    roles = {value for value, _ in Contact.Role.choices}
    languages = ", ".join(LANGUAGE_CODES)

    for number, row in rows:
        if None in row:
            problems.append(f"row {number}: more cells than columns")
            continue
        cell = {name: (row.get(name) or "").strip() for name in (*COLUMNS, *OPTIONAL_COLUMNS)}
        if not any(cell[name] for name in COLUMNS):
            continue
        row_problems: list[str] = []

        account = cell["account_reference"]
        if not account:
            row_problems.append("account_reference is required")
        elif len(account) > 64:
            row_problems.append("account_reference is longer than 64 characters")
        customer_name = cell["customer_name"]
        if not customer_name:
            row_problems.append("customer_name is required")
        elif len(customer_name) > 200:
            row_problems.append("customer_name is longer than 200 characters")
        country = cell["country"].upper()
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            row_problems.append(f"country {cell['country']!r} is not a two-letter ISO 3166-1 code")
        preferred_language = cell["preferred_language"].lower() or "en"
        if preferred_language not in LANGUAGE_CODES:
            row_problems.append(
                f"preferred_language {cell['preferred_language']!r} is not one of {languages}"
            )
        window_text = cell["notification_window_hours"]
        window = DEFAULT_WINDOW_HOURS
        if window_text:
            if not window_text.isdigit() or not 1 <= int(window_text) <= 72:
                row_problems.append(
                    f"notification_window_hours {window_text!r} is not a whole number from 1 to 72"
                )
            else:
                window = int(window_text)

        drill_text = cell["is_drill_customer"].lower()
        if drill_text not in _YES | _NO:
            row_problems.append(f"is_drill_customer {cell['is_drill_customer']!r} is not yes or no")
        is_drill_customer = drill_text in _YES

        contact_name = cell["contact_name"]
        if not contact_name:
            row_problems.append("contact_name is required")
        elif len(contact_name) > 200:
            row_problems.append("contact_name is longer than 200 characters")
        email = _normalise_email(cell["contact_email"])
        if not email:
            row_problems.append("contact_email is required")
        elif len(email) > 254:
            row_problems.append("contact_email is longer than 254 characters")
        else:
            try:
                validate_email(email)
            except ValidationError:
                row_problems.append(f"contact_email {cell['contact_email']!r} is not a valid email address")
        contact_language = cell["contact_language"].lower()
        if contact_language and contact_language not in LANGUAGE_CODES:
            row_problems.append(f"contact_language {cell['contact_language']!r} is not one of {languages}")
        role = cell["contact_role"].lower() or Contact.Role.ADMINISTRATIVE
        if role not in roles:
            row_problems.append(
                f"contact_role {cell['contact_role']!r} is not one of {', '.join(sorted(roles))}"
            )

        if not row_problems:
            customer = CustomerValues(
                account, customer_name, country, preferred_language, window, is_drill_customer
            )
            if account in customers and customers[account] != customer:
                first_row = customer_first_row[account]
                row_problems.append(f"customer {account} has other customer values than on row {first_row}")
            key = (account, email.lower())
            if key in contact_rows:
                row_problems.append(f"contact {email} of {account} is already on row {contact_rows[key]}")
            if not row_problems:
                customers.setdefault(account, customer)
                customer_first_row.setdefault(account, number)
                contact_rows[key] = number
                contacts.append(ContactValues(account, contact_name, email, contact_language, role))
        problems += [f"row {number}: {problem}" for problem in row_problems]
    return CustomerRows(customers=customers, contacts=contacts), problems


def upsert_customer_rows(rows: CustomerRows) -> tuple[UpsertCounts, UpsertCounts]:
    """Create or update the customers and contacts of validated ``rows`` in one transaction.

    Returns the counts for customers and for contacts. Customers are matched by account
    reference, contacts by (customer, email) ignoring case; a matched contact is re-activated.
    Raises ``ValidationError`` if the model refuses a value (nothing is stored then).
    """
    customer_counts, contact_counts = UpsertCounts(), UpsertCounts()
    with transaction.atomic():
        stored: dict[str, Customer] = {}
        for account, values in rows.customers.items():
            customer = Customer.objects.select_for_update().filter(account_reference=account).first()
            wanted: dict[str, Any] = {
                "name": values.name,
                "country": values.country,
                "preferred_language": values.preferred_language,
                "notification_window_hours": values.notification_window_hours,
                "is_drill_customer": values.is_drill_customer,
            }
            stored[account] = _upsert(customer, Customer(account_reference=account), wanted, customer_counts)
        for contact_values in rows.contacts:
            customer = stored[contact_values.account_reference]
            contact = Contact.objects.filter(customer=customer, email__iexact=contact_values.email).first()
            wanted = {
                "name": contact_values.name,
                "email": contact_values.email,
                "language": contact_values.language,
                "role": contact_values.role,
                "is_active": True,
            }
            _upsert(contact, Contact(customer=customer), wanted, contact_counts)
    return customer_counts, contact_counts


def _upsert[M: models.Model](existing: M | None, new: M, wanted: dict[str, Any], counts: UpsertCounts) -> M:
    row = existing if existing is not None else new
    changed = [name for name, value in wanted.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, wanted[name])
    if existing is None:
        row.full_clean()
        row.save()
        counts.created += 1
    elif changed:
        row.full_clean()
        row.save(update_fields=changed)
        counts.updated += 1
    else:
        counts.unchanged += 1
    return row


def _normalise_email(email: str) -> str:
    local, at, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else email.strip()


class Command(BaseCommand):
    help = (
        "Create or update customers and contacts from a CSV file (one row per contact; columns: "
        + ", ".join(COLUMNS)
        + "). All or nothing: a file with any bad row stores nothing, lists the problems by row "
        "number (the header is row 1) and exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, metavar="FILE.csv")

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames
                if not header:
                    raise CommandError(f"{file}: empty file, expected a header row.")
                missing = [name for name in COLUMNS if name not in [h.strip() for h in header]]
                if missing:
                    raise CommandError(f"{file}: missing columns: {', '.join(missing)}.")
                reader.fieldnames = [name.strip() for name in header]
                rows, problems = validate_customer_rows(
                    (number, row) for number, row in enumerate(reader, start=2)
                )
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text.") from None
        except csv.Error as error:
            raise CommandError(f"{file}: not a readable CSV file ({error}).") from None
        except OSError as error:
            raise CommandError(f"{file}: cannot be read ({error.strerror or error}).") from None
        if problems:
            for problem in problems:
                self.stderr.write(f"{file}: {problem}")
            raise CommandError(f"{file}: {len(problems)} problem(s) found; nothing was stored.")
        if not rows.contacts:
            raise CommandError(f"{file}: no rows to import.")
        try:
            customers, contacts = upsert_customer_rows(rows)
        except ValidationError as error:
            raise CommandError(f"{file}: refused, nothing was stored: {' '.join(error.messages)}") from None
        self.stdout.write(f"Customers: {customers}. Contacts: {contacts}.")
