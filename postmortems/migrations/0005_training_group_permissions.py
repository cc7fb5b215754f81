"""Gives the role groups their training permissions (DESIGN.md section 6): incident managers
and auditors read courses, records, imports and the training audit chain (the overdue list);
responders see their own training status. Courses and imports are written by superusers."""

from django.db import migrations

from incidents.roles import grant_app_permissions

READ = ["view_course", "view_trainingrecord", "view_trainingimport", "view_trainingauditevent", "view_own_training"]
RESPONDER = ["view_own_training"]


def grant(apps, schema_editor):
    grant_app_permissions(apps, "postmortems", {"responder": RESPONDER, "incident_manager": READ, "auditor": READ})


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=("responder", "incident_manager", "auditor")):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="postmortems", codename__in=READ)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("postmortems", "0004_training_courses_records_and_audit_chain"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
