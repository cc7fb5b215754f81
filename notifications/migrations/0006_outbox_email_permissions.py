"""Gives the role groups read access to the outbox's other emails, the confirmation requests and
the recipients a notice skipped (the system writes them; nobody changes them)."""

from django.db import migrations

from incidents.roles import grant_app_permissions

READ = ["view_outgoingemail", "view_contactconfirmationrequest", "view_skippedrecipient"]
SPEC = {"responder": READ, "incident_manager": READ, "auditor": READ}


def grant(apps, schema_editor):
    grant_app_permissions(apps, "notifications", SPEC)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=SPEC):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="notifications", codename__in=READ))


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0005_outbox_emails_and_contact_confirmation"),
        ("incidents", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
