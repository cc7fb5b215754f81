"""Keys the training audit trail like the incidents' (``incidents.0014``): ``key_id`` on each
row, the chains re-sealed under the current key as far as they verify, and on PostgreSQL the
append-only trigger (its function comes from ``incidents.0014``)."""

from django.db import migrations, models

from incidents.audit_migration import create_trigger_sql, drop_trigger_sql, reseal

TABLE = "postmortems_trainingauditevent"


def seal(apps, schema_editor):
    reseal(apps.get_model("postmortems", "TrainingAuditEvent"), "course")


def unseal(apps, schema_editor):
    reseal(apps.get_model("postmortems", "TrainingAuditEvent"), "course", unseal=True)


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(create_trigger_sql(TABLE))


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(drop_trigger_sql(TABLE))


class Migration(migrations.Migration):
    dependencies = [
        ('postmortems', '0005_training_group_permissions'),
        ("incidents", "0014_audit_keyed_hashes_checkpoints_triggers"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingauditevent",
            name="key_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The audit key that sealed this row (its id).",
                max_length=16,
            ),
        ),
        migrations.RunPython(seal, unseal),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
