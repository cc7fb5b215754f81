"""Gives the role groups their triage permissions (DESIGN.md section 6): responders and incident
managers record assessments and work response tasks, and read stakeholder groups, alerts and
playbooks; auditors read everything."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

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
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in (
        ("responder", HANDLER),
        ("incident_manager", HANDLER),
        ("auditor", READ),
    ):
        permissions = list(
            Permission.objects.filter(content_type__app_label="triage", codename__in=codenames)
        )
        if len(permissions) != len(codenames):
            raise RuntimeError(f"Expected {len(codenames)} triage permissions for {group_name}.")
        Group.objects.get(name=group_name).permissions.add(*permissions)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(
        name__in=["responder", "incident_manager", "auditor"]
    ):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="triage"))


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_initial"),
        ("incidents", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
