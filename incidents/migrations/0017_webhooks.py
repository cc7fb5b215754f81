"""Outgoing webhooks: subscribers, events, deliveries and their attempts (issue 10.5), and who
may manage them."""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models

from incidents.roles import grant_app_permissions

#: Incident managers register and change subscribers, read the delivery log and send a failed
#: delivery again; auditors read subscribers and the log; responders get nothing.
GRANTS = {
    "incident_manager": [
        "add_webhooksubscriber",
        "change_webhooksubscriber",
        "view_webhooksubscriber",
        "view_webhookdelivery",
        "redeliver_webhookdelivery",
    ],
    "auditor": ["view_webhooksubscriber", "view_webhookdelivery"],
}


def grant(apps, schema_editor):
    grant_app_permissions(apps, "incidents", GRANTS)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group_name, codenames in GRANTS.items():
        for group in Group.objects.filter(name=group_name):
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="incidents", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ('incidents', '0016_evidence_files_and_merge'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Sending"),
                            ("delivered", "Delivered"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("claimed_until", models.DateTimeField(blank=True, null=True)),
                ("claim_token", models.CharField(blank=True, max_length=32)),
                ("last_status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
            ],
            options={
                "verbose_name_plural": "webhook deliveries",
                "ordering": ["-created_at", "-id"],
                "permissions": [("redeliver_webhookdelivery", "Can send a failed webhook delivery again")],
            },
        ),
        migrations.CreateModel(
            name="WebhookAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("at", models.DateTimeField()),
                ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("duration", models.DurationField()),
                ("error", models.TextField(blank=True)),
                ("outcome", models.CharField(max_length=10)),
                (
                    "delivery",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempts_made",
                        to="incidents.webhookdelivery",
                    ),
                ),
            ],
            options={
                "ordering": ["delivery_id", "number"],
            },
        ),
        migrations.CreateModel(
            name="WebhookEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "type",
                    models.CharField(
                        choices=[
                            ("incident.created", "Incident recorded"),
                            ("incident.triaged", "Incident triaged"),
                            ("incident.declared", "Personal data breach declared"),
                            ("incident.notified", "Every affected customer notified"),
                            ("escalation.raised", "Escalation raised on a notification clock"),
                            ("delivery.failed", "A customer notice could not be delivered"),
                            ("incident.closed", "Incident closed"),
                        ],
                        max_length=40,
                    ),
                ),
                ("payload", models.JSONField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "incident",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_events",
                        to="incidents.incident",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="event",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="incidents.webhookevent",
            ),
        ),
        migrations.CreateModel(
            name="WebhookSubscriber",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
                ("url", models.URLField(max_length=2000)),
                ("secret_encrypted", models.TextField(editable=False)),
                ("previous_secret_encrypted", models.TextField(blank=True, editable=False)),
                ("previous_secret_expires_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("event_types", models.JSONField(default=list)),
                ("is_active", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("rotated_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="subscriber",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="incidents.webhooksubscriber",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(fields=["incident", "type"], name="incidents_webhookevent_by_type"),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["next_attempt_at", "id"],
                name="incidents_webhookdel_due",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "sending")),
                fields=["claimed_until"],
                name="incidents_webhookdel_claimed",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["subscriber", "-created_at", "-id"], name="incidents_webhookdel_log"),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                fields=("subscriber", "event"), name="incidents_webhookdelivery_unique_per_subscriber"
            ),
        ),
        migrations.RunPython(grant, revoke),
    ]
