"""Tampering with the audit tables in tests, the way someone with database access would.

On PostgreSQL the audit tables carry a trigger that refuses UPDATE and DELETE
(``incidents.audit_migration``); a test that plays the attacker who got past it (a table owner
who disables it) wraps its raw writes in ``audit_triggers_disabled()``. The test database is
owned by the user the tests connect as (``postgres``), as it would be by an attacker holding the
owner's role; the ``ALTER TABLE`` is rolled back with the test's transaction, and re-enabled on
exit for tests that commit. On SQLite there is no trigger and the block just runs.

    from tests.audit_tampering import audit_triggers_disabled

    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=event.pk).update(verb="forged")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from incidents.audit import CHAINS
from incidents.audit_migration import trigger_name
from incidents.models import AuditCheckpoint

#: Every table with the append-only trigger: each registered chain's and the checkpoints'.
AUDIT_TABLES = (
    *(chain.model._meta.db_table for chain in CHAINS.values()),
    AuditCheckpoint._meta.db_table,
)


@contextmanager
def audit_triggers_disabled() -> Iterator[None]:
    """Run the block with the append-only triggers disabled (PostgreSQL; nothing on SQLite)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # ALTER TABLE refuses a table with deferred checks pending (the foreign keys of rows
        # the test inserted in its transaction): run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in AUDIT_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger_name(table)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger_name(table)}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
