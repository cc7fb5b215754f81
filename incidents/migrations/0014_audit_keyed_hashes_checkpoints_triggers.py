"""Keys the audit trail (README, "Audit trail"): each row records the ``key_id`` of the
HMAC key that sealed it; the existing chains are re-sealed under the current key as far as they
verify under the old plain hash (``incidents.audit_migration`` says why re-seal, not legacy);
signed checkpoints of each chain's head get their table; on PostgreSQL a trigger refuses UPDATE
and DELETE on the audit tables and the checkpoints."""

from django.db import migrations, models

from incidents.audit_migration import (
    DROP_TRIGGER_FUNCTION,
    TRIGGER_FUNCTION,
    create_trigger_sql,
    drop_trigger_sql,
    reseal,
)

TABLES = ["incidents_auditevent", "incidents_customerauditevent", "incidents_auditcheckpoint"]


def seal(apps, schema_editor):
    reseal(apps.get_model("incidents", "AuditEvent"), "incident", ("from_state", "to_state"))
    reseal(apps.get_model("incidents", "CustomerAuditEvent"), "customer", ("actor_contact_email",))


def unseal(apps, schema_editor):
    reseal(apps.get_model("incidents", "AuditEvent"), "incident", ("from_state", "to_state"), unseal=True)
    reseal(
        apps.get_model("incidents", "CustomerAuditEvent"), "customer", ("actor_contact_email",), unseal=True
    )


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(TRIGGER_FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(create_trigger_sql(table))


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(drop_trigger_sql(table))
    schema_editor.execute(DROP_TRIGGER_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [
        ('incidents', '0013_addresses_unique_any_case_single_line'),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The audit key that sealed this row (its id).",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="customerauditevent",
            name="key_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The audit key that sealed this row (its id).",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("chain", models.CharField(max_length=32)),
                ("subject_id", models.PositiveBigIntegerField()),
                ("subject_label", models.CharField(blank=True, max_length=200)),
                ("length", models.PositiveIntegerField()),
                ("head_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=16)),
                ("signature", models.CharField(max_length=64)),
            ],
            options={
                "ordering": ["chain", "subject_id", "length"],
                "indexes": [
                    models.Index(
                        fields=["chain", "subject_id", "length"], name="incidents_auditcheckpoint_head"
                    )
                ],
            },
        ),
        migrations.RunPython(seal, unseal),
        # RunSQL cannot ask for the vendor; RunPython can (SQLite has no such trigger language).
        migrations.RunPython(create_triggers, drop_triggers),
    ]
