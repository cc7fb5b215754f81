"""Migration incidents 0013 adds the case-insensitive uniqueness of account references and of a
customer's contact addresses. Rows that differ only in case stop it with a message naming them,
before any constraint is added; nothing is changed, and once staff resolve them it runs."""

from __future__ import annotations

import pytest
from django.core.management import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("incidents", "0012_share_incident_figures_permission")]
AFTER = [("incidents", "0013_addresses_unique_any_case_single_line")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_it_stops_on_case_variant_duplicates_and_changes_nothing_then_runs_once_resolved():
    apps = _migrate(BEFORE)
    try:
        Customer = apps.get_model("incidents", "Customer")
        Contact = apps.get_model("incidents", "Contact")
        upper = Customer.objects.create(name="Northwind", account_reference="DEMO-EN-001")
        lower = Customer.objects.create(name="Northwind again", account_reference="demo-en-001")
        Contact.objects.create(customer=upper, name="Olivia", email="olivia.bennett@northwind.example")
        Contact.objects.create(customer=upper, name="Olivia B", email="Olivia.Bennett@Northwind.example")
        Contact.objects.create(customer=lower, name="Olivia", email="olivia.bennett@northwind.example")

        with pytest.raises(CommandError) as stopped:
            _migrate(AFTER)

        message = str(stopped.value)
        assert message.startswith("Migration incidents 0013 stopped, nothing was changed")
        assert "customers with the account references DEMO-EN-001, demo-en-001" in message
        assert (
            f"customer {upper.pk}'s contacts Olivia.Bennett@Northwind.example, olivia.bennett@northwind.example"
            in message
        )
        assert f"customer {lower.pk}'s" not in message  # one address at another customer is fine
        assert Customer.objects.count() == 2 and Contact.objects.count() == 3
        applied = MigrationExecutor(connection).loader.applied_migrations
        assert AFTER[0] not in applied

        lower.delete()
        Contact.objects.filter(email="Olivia.Bennett@Northwind.example").delete()
        _migrate(AFTER)

        assert AFTER[0] in MigrationExecutor(connection).loader.applied_migrations
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
