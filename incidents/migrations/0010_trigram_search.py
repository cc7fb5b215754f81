"""Text search that uses an index on PostgreSQL: pg_trgm and GIN trigram indexes over what the
incident list and the board search (reference, title, summary) and the customer search (name,
account reference).

Django's ``icontains`` compares ``UPPER(column::text) LIKE UPPER('%term%')`` on PostgreSQL, so the
indexes are on ``(UPPER(column)) gin_trgm_ops``: the planner then answers a search with a bitmap
index scan instead of reading every row. (The SQL is written out: Django 6.1 renders
``OpClass(Upper(...))`` inside one pair of parentheses, which PostgreSQL refuses.) PostgreSQL
only: on SQLite these operations do nothing and search stays a plain ``LIKE`` over the table
(fine at a laptop's size). The indexes are not part of the models' state, so SQLite and
PostgreSQL share one model history.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = [
    ("incidents_incident_ref_trgm", "incidents_incident", "reference"),
    ("incidents_incident_title_trgm", "incidents_incident", "title"),
    ("incidents_incident_summary_trgm", "incidents_incident", "summary"),
    ("incidents_customer_name_trgm", "incidents_customer", "name"),
    ("incidents_customer_ref_trgm", "incidents_customer", "account_reference"),
]


class TrigramIndexOnPostgreSQL(migrations.operations.base.Operation):
    """A GIN trigram index on ``UPPER(column)``, created on PostgreSQL only."""

    reversible = True

    def __init__(self, name, table, column):
        self.name, self.table, self.column = name, table, column

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            quote = schema_editor.quote_name
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(self.name)} ON {quote(self.table)} "
                f"USING gin ((UPPER({quote(self.column)})) gin_trgm_ops)"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(self.name)}")

    def describe(self):
        return f"Trigram index {self.name} on PostgreSQL"

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.name, self.table, self.column], {})


class Migration(migrations.Migration):
    dependencies = [("incidents", "0009_note_permissions")]

    operations = [TrigramExtension()] + [TrigramIndexOnPostgreSQL(*index) for index in INDEXES]
