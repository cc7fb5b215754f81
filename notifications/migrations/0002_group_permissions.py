"""Gives the role groups their notification permissions (DESIGN.md section 6): responders draft
notices; incident managers also approve and send them, withhold details and manage clocks;
auditors read everything."""

from django.db import migrations

from incidents.roles import grant_app_permissions, revoke_app_permissions

READ = ["view_clock", "view_escalation", "view_notice", "view_withholding", "view_delivery"]
RESPONDER = READ + ["add_notice", "change_notice"]
INCIDENT_MANAGER = RESPONDER + ["approve_notice", "withhold_notice_field", "change_clock"]


def grant(apps, schema_editor):
    grant_app_permissions(apps, "notifications", {"responder": RESPONDER, "incident_manager": INCIDENT_MANAGER, "auditor": READ})


def revoke(apps, schema_editor):
    revoke_app_permissions(apps, "notifications")


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("incidents", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
