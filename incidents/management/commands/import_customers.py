"""``manage.py import_customers FILE.csv [--deactivate-missing] [--dry-run]``: create or update
customers and their contacts from a CSV file (a feed from the customer system), all or nothing.

The file has a header row and one row per contact, carrying its customer's columns too:

    account_reference, customer_name, country, preferred_language, notification_window_hours,
    contact_name, contact_email, contact_language, contact_role

An optional column ``is_drill_customer`` (``yes``/``no``, ``true``/``false``, ``1``/``0``;
blank: no) marks customers that exist for drills only.

Customers are matched by ``account_reference``, contacts by (customer, email, case-insensitive).
Blank optional cells take defaults: ``country`` none, ``preferred_language`` ``en``,
``notification_window_hours`` 72 (our policy commitment), ``contact_language`` the customer's
language, ``contact_role`` ``administrative``. A contact in the file is active.

Upserts: a second import of the same feed changes nothing; a changed value updates the row in
place. ``--deactivate-missing``: for each customer in the file, its contacts the file does not
list are deactivated (never deleted: past deliveries keep them); customers absent from the file
are left alone, so a feed may carry some customers only. Without it, contacts absent from the
file are left as they are. ``--dry-run``: validate, print every change that would be made, and
store nothing. Every customer whose data or contacts changed gets one ``contacts_imported``
event on its audit chain (by the system, naming the file). An import never makes an address
refused by its mail server deliverable again (the feed is not a confirmation); a staff edit or a
confirmation link does.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from incidents.addresses import has_line_break, normalise_email, validate_country_code, validate_email_address
from incidents.audit import customer_audit_append
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
    """How many rows an upsert created, updated, deactivated and found unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0

    def __str__(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        return text + (f", {self.deactivated} deactivated" if self.deactivated else "")


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do): counts and one line per change."""

    customers: UpsertCounts = field(default_factory=UpsertCounts)
    contacts: UpsertCounts = field(default_factory=UpsertCounts)
    changes: list[str] = field(default_factory=list)


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
    account_spellings: dict[str, str] = {}  # lower case -> the spelling of the first row
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
        try:
            validate_country_code(country)
        except ValidationError:
            row_problems.append(f"country {cell['country']!r} is not an ISO 3166-1 alpha-2 country code")
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

        for name in ("account_reference", "customer_name", "contact_name"):
            if has_line_break(cell[name]):
                row_problems.append(f"{name} must be a single line (no line breaks or control characters)")
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
                validate_email_address(email)
            except ValidationError as error:
                row_problems.append(
                    f"contact_email {cell['contact_email']!r} is not a valid email address"
                    + (f" ({error.messages[0]})" if error.code == "invalid_domain" else "")
                )
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
            other_case = account_spellings.get(account.lower(), account)
            if other_case != account:
                row_problems.append(
                    f"account_reference {account!r} differs only in case from {other_case!r} "
                    f"on row {customer_first_row[other_case]}; references are unique in any case"
                )
            elif account not in customers and (
                stored := Customer.objects.filter(account_reference__iexact=account)
                .exclude(account_reference=account)
                .values_list("account_reference", flat=True)
                .first()
            ):
                row_problems.append(
                    f"account_reference {account!r} differs only in case from the existing customer "
                    f"{stored!r}; references are unique in any case"
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
                account_spellings.setdefault(account.lower(), account)
                contact_rows[key] = number
                contacts.append(ContactValues(account, contact_name, email, contact_language, role))
        problems += [f"row {number}: {problem}" for problem in row_problems]
    return CustomerRows(customers=customers, contacts=contacts), problems


class DryRunRollback(Exception):
    """Raised inside the import's transaction to undo a dry run."""


def upsert_customer_rows(
    rows: CustomerRows, *, deactivate_missing: bool = False, dry_run: bool = False, source: str = ""
) -> ImportReport:
    """Create or update the customers and contacts of validated ``rows`` in one transaction.

    Returns an ``ImportReport``. Customers are matched by account reference, contacts by
    (customer, email) ignoring case; a matched contact is re-activated. With
    ``deactivate_missing``, each customer's active contacts absent from ``rows`` are
    deactivated. Each changed customer gets one ``contacts_imported`` audit event naming
    ``source``. With ``dry_run`` everything is done and then rolled back: the report says what
    would change. Raises ``ValidationError`` if the model refuses a value (nothing is stored).
    """
    report = ImportReport()
    try:
        with transaction.atomic():
            _upsert(rows, report, deactivate_missing=deactivate_missing, source=source)
            if dry_run:
                raise DryRunRollback
    except DryRunRollback:
        pass
    return report


def _upsert(rows: CustomerRows, report: ImportReport, *, deactivate_missing: bool, source: str) -> None:
    contacts_by_account: dict[str, list[ContactValues]] = {}
    for listed_contact in rows.contacts:
        contacts_by_account.setdefault(listed_contact.account_reference, []).append(listed_contact)
    for account, values in rows.customers.items():
        customer = Customer.objects.select_for_update().filter(account_reference=account).first()
        wanted: dict[str, Any] = {
            "name": values.name,
            "country": values.country,
            "preferred_language": values.preferred_language,
            "notification_window_hours": values.notification_window_hours,
            "is_drill_customer": values.is_drill_customer,
        }
        customer, customer_diff = _save(
            customer, Customer(account_reference=account), wanted, report.customers
        )
        label = f"customer {account}"
        if customer_diff is None:
            report.changes.append(f"{label}: created")
        elif customer_diff:
            report.changes.append(f"{label}: {_describe(customer_diff)}")
        contact_changes: dict[str, Any] = {}
        listed: list[int] = []
        for contact_values in contacts_by_account.get(account, []):
            contact = Contact.objects.filter(customer=customer, email__iexact=contact_values.email).first()
            wanted_contact = {
                "name": contact_values.name,
                "email": contact_values.email,
                "language": contact_values.language,
                "role": contact_values.role,
                "is_active": True,
            }
            contact, diff = _save(contact, Contact(customer=customer), wanted_contact, report.contacts)
            listed.append(contact.pk)
            if diff is None:
                report.changes.append(f"{label}: contact {contact.email} created")
                contact_changes[contact.email] = "created"
            elif diff:
                report.changes.append(f"{label}: contact {contact.email}: {_describe(diff)}")
                contact_changes[contact.email] = diff
        if deactivate_missing:
            missing = Contact.objects.filter(customer=customer, is_active=True).exclude(pk__in=listed)
            for contact in missing.order_by("email"):
                report.changes.append(f"{label}: contact {contact.email} deactivated (not in the file)")
                contact_changes[contact.email] = "deactivated"
                report.contacts.deactivated += 1
            missing.update(is_active=False)
        if customer_diff is None or customer_diff or contact_changes:
            customer_audit_append(
                customer=customer,
                actor=None,
                verb="contacts_imported",
                data={
                    "source": source,
                    "customer": "created" if customer_diff is None else customer_diff,
                    "contacts": contact_changes,
                },
            )


def _save[M: models.Model](
    existing: M | None, new: M, wanted: dict[str, Any], counts: UpsertCounts
) -> tuple[M, dict[str, list[Any]] | None]:
    """Create ``new`` or update ``existing`` to ``wanted``; returns the row and its diff
    (``{field: [old, new]}``; ``None`` for a created row)."""
    row = existing if existing is not None else new
    diff = {
        name: [getattr(row, name), value] for name, value in wanted.items() if getattr(row, name) != value
    }
    for name, (_old, value) in diff.items():
        setattr(row, name, value)
    if existing is None:
        row.full_clean()
        row.save()
        counts.created += 1
        return row, None
    if diff:
        row.full_clean()
        row.save(update_fields=list(diff))
        counts.updated += 1
    else:
        counts.unchanged += 1
    return row, diff


def _describe(diff: dict[str, list[Any]]) -> str:
    return ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in diff.items())


def _normalise_email(email: str) -> str:
    """``incidents.addresses.normalise_email``, or the address as given when it cannot be
    normalised (the row's validation then says why)."""
    try:
        return normalise_email(email)
    except ValidationError:
        return email.strip()


class Command(BaseCommand):
    help = (
        "Create or update customers and contacts from a CSV file (one row per contact; columns: "
        + ", ".join(COLUMNS)
        + "), matched by account reference and email. All or nothing: a file with any bad row "
        "stores nothing, lists the problems by row number (the header is row 1) and exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, metavar="FILE.csv")
        parser.add_argument(
            "--deactivate-missing",
            action="store_true",
            help="Deactivate (never delete) the contacts of each customer in the file that the file does not list.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would change and store nothing."
        )

    def handle(
        self, *args: Any, file: Path, deactivate_missing: bool = False, dry_run: bool = False, **options: Any
    ) -> None:
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
            report = upsert_customer_rows(
                rows, deactivate_missing=deactivate_missing, dry_run=dry_run, source=file.name
            )
        except ValidationError as error:
            raise CommandError(f"{file}: refused, nothing was stored: {' '.join(error.messages)}") from None
        if dry_run or options.get("verbosity", 1) >= 2:
            for change in report.changes:
                self.stdout.write(("would change " if dry_run else "") + change)
        summary = f"Customers: {report.customers}. Contacts: {report.contacts}."
        self.stdout.write(f"Dry run, nothing stored. {summary}" if dry_run else summary)
