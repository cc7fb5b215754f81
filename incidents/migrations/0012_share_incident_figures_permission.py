"""Gives incident managers the right to let notices state incident-wide figures
(``incidents.share_incident_figures``); responders and auditors do not get it."""

from django.db import migrations

from incidents.roles import grant_app_permissions

INCIDENT_MANAGER = ["share_incident_figures"]


def grant(apps, schema_editor):
    grant_app_permissions(apps, "incidents", {"incident_manager": INCIDENT_MANAGER})


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name="incident_manager"):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="incidents", codename__in=INCIDENT_MANAGER)
        )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0011_notice_facts_and_customer_figures")]

    operations = [migrations.RunPython(grant, revoke)]
