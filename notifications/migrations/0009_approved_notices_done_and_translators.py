"""Notices approved before approval became asynchronous already have their deliveries: mark them
``done``. Every role reads translations, notice recipients and shared messages; incident
managers may give a notice's free text per language (``translate_notice_text``)."""

from django.db import migrations

from incidents.roles import grant_app_permissions

READ = ["view_translation", "view_noticerecipient", "view_noticemessage"]
INCIDENT_MANAGER = [*READ, "translate_notice_text"]


def forwards(apps, schema_editor):
    Notice = apps.get_model("notifications", "Notice")
    Notice.objects.filter(status="approved", delivery_creation="").update(delivery_creation="done")
    grant(apps, schema_editor)


def grant(apps, schema_editor):
    grant_app_permissions(
        apps, "notifications", {"responder": READ, "incident_manager": INCIDENT_MANAGER, "auditor": READ}
    )


def backwards(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name="incident_manager"):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="notifications", codename__in=INCIDENT_MANAGER)
        )
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["responder", "auditor"]):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="notifications", codename__in=READ)
        )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0008_asynchronous_approval_threads_translations")]

    operations = [migrations.RunPython(forwards, backwards)]
