"""Gives the role groups their note permissions: responders and incident managers add notes to
an incident's timeline; auditors read them."""

from django.db import migrations

from incidents.roles import grant_app_permissions


def grant(apps, schema_editor):
    grant_app_permissions(
        apps,
        "incidents",
        {
            "responder": ["view_note", "add_note"],
            "incident_manager": ["view_note", "add_note"],
            "auditor": ["view_note"],
        },
    )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    notes = Permission.objects.filter(content_type__app_label="incidents", codename__in=["view_note", "add_note"])
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["responder", "incident_manager", "auditor"]):
        group.permissions.remove(*notes)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0008_notes_and_board_indexes")]

    operations = [migrations.RunPython(grant, revoke)]
