"""Gives the role groups their notification permissions (DESIGN.md section 6): responders draft
notices; incident managers also approve and send them, withhold details and manage clocks;
auditors read everything."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["view_clock", "view_escalation", "view_notice", "view_withholding", "view_delivery"]
RESPONDER = READ + ["add_notice", "change_notice"]
INCIDENT_MANAGER = RESPONDER + ["approve_notice", "withhold_notice_field", "change_clock"]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in (
        ("responder", RESPONDER),
        ("incident_manager", INCIDENT_MANAGER),
        ("auditor", READ),
    ):
        permissions = list(
            Permission.objects.filter(content_type__app_label="notifications", codename__in=codenames)
        )
        if len(permissions) != len(codenames):
            raise RuntimeError(f"Expected {len(codenames)} notification permissions for {group_name}.")
        Group.objects.get(name=group_name).permissions.add(*permissions)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(
        name__in=["responder", "incident_manager", "auditor"]
    ):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="notifications"))


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("incidents", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
