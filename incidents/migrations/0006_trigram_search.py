"""Text search that uses an index on PostgreSQL: pg_trgm and GIN trigram indexes over what the
incident list and the board search (reference, title, summary) and the customer search (name,
account reference).

Django's ``icontains`` compares ``UPPER(column) LIKE UPPER('%term%')`` on PostgreSQL, so the
indexes are on ``UPPER(column)`` with ``gin_trgm_ops``: the planner then answers a search with
a bitmap index scan instead of reading every row. PostgreSQL only: on SQLite these operations
do nothing and search stays a plain ``LIKE`` over the table (fine at a laptop's size). The
indexes are not part of the models' state, so SQLite and PostgreSQL share one model history.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations
from django.db.models.functions import Upper


def _trigram(field, name):
    return GinIndex(OpClass(Upper(field), name="gin_trgm_ops"), name=name)


INDEXES = [
    ("incident", _trigram("reference", "incidents_incident_ref_trgm")),
    ("incident", _trigram("title", "incidents_incident_title_trgm")),
    ("incident", _trigram("summary", "incidents_incident_summary_trgm")),
    ("customer", _trigram("name", "incidents_customer_name_trgm")),
    ("customer", _trigram("account_reference", "incidents_customer_ref_trgm")),
]


class OnPostgreSQL(migrations.AddIndex):
    """``AddIndex`` that runs on PostgreSQL only and leaves the model state alone."""

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            model = from_state.apps.get_model(app_label, self.model_name)
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0005_note_permissions")]

    operations = [TrigramExtension()] + [OnPostgreSQL(model_name=model, index=index) for model, index in INDEXES]
