"""Importing customers and contacts from CSV: upserts, and all-or-nothing validation."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from incidents.models import Contact, Customer, CustomerAuditEvent

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


# Feeds from the customer system: upserts, --deactivate-missing, --dry-run -------------------


def _feed(tmp_path, rows: list[str]) -> Path:
    path = tmp_path / "feed.csv"
    path.write_text(
        "account_reference,customer_name,country,preferred_language,notification_window_hours,"
        "contact_name,contact_email,contact_language,contact_role\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_deactivate_missing_with_dry_run_changes_nothing_and_prints_the_change(db, tmp_path):
    run_import(TEST_DATA / "good.csv")
    before = list(Contact.objects.order_by("pk").values())
    events_before = CustomerAuditEvent.objects.count()
    feed = _feed(
        tmp_path,
        [
            "ACME-001,Acme Logistics GmbH,DE,de,48,Anna Admin,anna@acme.example,de,administrative",
            "NORTH-002,Northwind Traders Ltd,GB,en,72,Olivia Bennett,olivia@northwind.example,en,administrative",
        ],
    )
    out = StringIO()

    call_command("import_customers", str(feed), "--deactivate-missing", "--dry-run", stdout=out)

    printed = out.getvalue()
    assert (
        "would change customer ACME-001: contact paul@acme.example deactivated (not in the file)" in printed
    )
    assert "Dry run, nothing stored." in printed and "1 deactivated" in printed
    assert list(Contact.objects.order_by("pk").values()) == before
    assert CustomerAuditEvent.objects.count() == events_before


def test_deactivate_missing_deactivates_never_deletes_and_leaves_other_customers_alone(db, tmp_path):
    run_import(TEST_DATA / "good.csv")
    feed = _feed(
        tmp_path, ["ACME-001,Acme Logistics GmbH,DE,de,48,Anna Admin,anna@acme.example,de,administrative"]
    )

    out, _ = run_import_with(feed, "--deactivate-missing")

    assert "Contacts: 0 created, 0 updated, 1 unchanged, 1 deactivated" in out
    paul = Contact.objects.get(email="paul@acme.example")
    assert not paul.is_active  # kept, inactive
    assert Contact.objects.get(email="olivia@northwind.example").is_active  # NORTH-002 not in the feed
    event = CustomerAuditEvent.objects.filter(customer__account_reference="ACME-001").order_by("-sequence")[0]
    assert event.verb == "contacts_imported"
    assert event.data == {
        "source": "feed.csv",
        "customer": {},
        "contacts": {"paul@acme.example": "deactivated"},
    }


def test_without_deactivate_missing_absent_contacts_stay_active(db, tmp_path):
    run_import(TEST_DATA / "good.csv")
    feed = _feed(
        tmp_path, ["ACME-001,Acme Logistics GmbH,DE,de,48,Anna Admin,anna@acme.example,de,administrative"]
    )

    run_import_with(feed)

    assert Contact.objects.get(email="paul@acme.example").is_active


def test_an_unchanged_feed_writes_no_audit_event_and_a_changed_one_exactly_one_per_customer(db):
    run_import(TEST_DATA / "good.csv")
    counts = {
        reference: CustomerAuditEvent.objects.filter(customer__account_reference=reference).count()
        for reference in ("ACME-001", "NORTH-002")
    }
    assert counts == {"ACME-001": 1, "NORTH-002": 1}  # created

    run_import(TEST_DATA / "good.csv")
    assert CustomerAuditEvent.objects.count() == 2
    run_import(TEST_DATA / "updated.csv")

    acme_events = CustomerAuditEvent.objects.filter(customer__account_reference="ACME-001").order_by(
        "sequence"
    )
    assert acme_events.count() == 2
    changes = acme_events.reverse()[0].data
    assert changes["customer"]["notification_window_hours"] == [48, 24]
    (anna,) = [
        change for email, change in changes["contacts"].items() if email.lower() == "anna@acme.example"
    ]
    assert anna["name"] == ["Anna Admin", "Anna Admin-Berger"]
    from incidents.audit import verify_chain

    assert verify_chain(customer_ids=list(Customer.objects.values_list("pk", flat=True))) == []


def test_an_import_does_not_make_a_refused_address_deliverable_again(db):
    from django.utils import timezone

    from incidents.services import contact_mark_undeliverable

    run_import(TEST_DATA / "good.csv")
    anna = Contact.objects.get(email="anna@acme.example")
    contact_mark_undeliverable(contact_id=anna.pk, address=anna.email, reason="550 gone", at=timezone.now())

    run_import(TEST_DATA / "good.csv")

    anna.refresh_from_db()
    assert anna.undeliverable_at is not None and not anna.is_deliverable


def run_import_with(path: Path, *arguments: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_customers", str(path), *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()
