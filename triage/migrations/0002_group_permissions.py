"""Gives the role groups their triage permissions (DESIGN.md section 6): responders and incident
managers record assessments and work response tasks, and read stakeholder groups, alerts and
playbooks; auditors read everything."""

from django.db import migrations

from incidents.roles import grant_app_permissions, revoke_app_permissions

READ = [
    "view_assessment",
    "view_stakeholdergroup",
    "view_stakeholderalert",
    "view_playbooktemplate",
    "view_playbookstep",
    "view_responsetask",
]
HANDLER = READ + ["add_assessment", "change_assessment", "add_responsetask", "change_responsetask"]


def grant(apps, schema_editor):
    grant_app_permissions(apps, "triage", {"responder": HANDLER, "incident_manager": HANDLER, "auditor": READ})


def revoke(apps, schema_editor):
    revoke_app_permissions(apps, "triage")


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_initial"),
        ("incidents", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
