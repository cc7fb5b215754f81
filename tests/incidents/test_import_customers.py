"""Importing customers and contacts from CSV: upserts, and all-or-nothing validation."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from incidents.models import Contact, Customer

TEST_DATA = Path(__file__).resolve().parents[1] / "data" / "customers"


def run_import(path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_customers", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_creates_customers_and_their_contacts(db):
    out, _ = run_import(TEST_DATA / "good.csv")

    assert "Customers: 2 created, 0 updated, 0 unchanged" in out
    assert "Contacts: 3 created, 0 updated, 0 unchanged" in out
    acme = Customer.objects.get(account_reference="ACME-001")
    assert (acme.name, acme.country, acme.preferred_language, acme.notification_window_hours) == (
        "Acme Logistics GmbH",
        "DE",
        "de",
        48,
    )
    assert sorted(acme.contacts.values_list("email", "language", "role")) == [
        ("anna@acme.example", "de", "administrative"),
        ("paul@acme.example", "", "privacy"),
    ]
    north = Customer.objects.get(account_reference="NORTH-002")
    assert north.notification_window_hours == 72  # blank: the policy commitment
    assert north.contacts.get().role == "administrative"  # blank: administrative


def test_it_updates_on_a_second_import_rather_than_duplicating(db):
    run_import(TEST_DATA / "good.csv")
    anna_id = Contact.objects.get(email="anna@acme.example").pk

    out, _ = run_import(TEST_DATA / "updated.csv")

    assert "Customers: 1 created" not in out
    assert "Customers: 0 created, 1 updated, 1 unchanged" in out
    assert "Contacts: 0 created, 1 updated, 2 unchanged" in out
    assert Customer.objects.count() == 2
    assert Contact.objects.count() == 3
    acme = Customer.objects.get(account_reference="ACME-001")
    assert (acme.name, acme.notification_window_hours) == ("Acme Logistik GmbH", 24)
    anna = Contact.objects.get(pk=anna_id)
    assert (anna.name, anna.language) == ("Anna Admin-Berger", "en")


def test_it_reactivates_a_contact_listed_again(db):
    run_import(TEST_DATA / "good.csv")
    Contact.objects.filter(email="paul@acme.example").update(is_active=False)

    run_import(TEST_DATA / "good.csv")

    assert Contact.objects.get(email="paul@acme.example").is_active


def test_it_stores_nothing_from_a_file_with_a_bad_row_and_names_the_rows(db, customer):
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("import_customers", str(TEST_DATA / "bad_rows.csv"), stdout=out, stderr=err)

    problems = err.getvalue()
    assert "row 3: contact_email 'bob-at-bad.example' is not a valid email address" in problems
    assert "row 4: notification_window_hours '0' is not a whole number from 1 to 72" in problems
    assert "row 5: contact_role 'boss' is not one of" in problems
    assert "row 6: preferred_language 'jp' is not one of en, de, fr, es, ja" in problems
    assert "row 6: contact_language 'it'" in problems
    assert "row 2" not in problems
    # Only the fixture's customer exists: not even the good row was stored.
    assert list(Customer.objects.values_list("account_reference", flat=True)) == ["ACME-001"]
    assert Contact.objects.count() == 1


def test_it_refuses_conflicting_customer_values_and_duplicate_contacts(db, tmp_path):
    path = tmp_path / "conflict.csv"
    path.write_text(
        "account_reference,customer_name,country,preferred_language,notification_window_hours,"
        "contact_name,contact_email,contact_language,contact_role\n"
        "C-1,One Ltd,GB,en,72,Ann,ann@one.example,,\n"
        "C-1,One Limited,GB,en,72,Bob,bob@one.example,,\n"
        "C-1,One Ltd,GB,en,72,Ann again,ANN@one.example,,\n",
        encoding="utf-8",
    )
    err = StringIO()

    with pytest.raises(CommandError):
        call_command("import_customers", str(path), stdout=StringIO(), stderr=err)

    assert "row 3: customer C-1 has other customer values than on row 2" in err.getvalue()
    assert "row 4: contact ANN@one.example of C-1 is already on row 2" in err.getvalue()
    assert Customer.objects.count() == 0


def test_it_refuses_a_file_missing_columns(db, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("account_reference,customer_name\nX-1,X Ltd\n", encoding="utf-8")

    with pytest.raises(CommandError, match="missing columns: country, preferred_language"):
        run_import(path)
    assert Customer.objects.count() == 0


def test_it_refuses_a_file_that_does_not_exist(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_import(tmp_path / "absent.csv")
