"""Gives the role groups the permissions of contact readiness: everyone reads the customers'
audit chains; incident managers and auditors see the readiness pages (who could not be reached
today)."""

from django.db import migrations

from incidents.roles import grant_app_permissions

SPEC = {
    "responder": ["view_customerauditevent"],
    "incident_manager": ["view_customerauditevent", "view_contact_readiness"],
    "auditor": ["view_customerauditevent", "view_contact_readiness"],
}


def grant(apps, schema_editor):
    grant_app_permissions(apps, "incidents", SPEC)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in SPEC.items():
        group = Group.objects.filter(name=group_name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="incidents", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0005_contact_confirmation_and_customer_audit_chain"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
