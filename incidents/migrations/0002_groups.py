"""Creates the groups whose names are a contract (DESIGN.md section 6) with their permissions:
``responder`` (intake, triage, edit, draft notices), ``incident_manager`` (everything a
responder does, plus declare, approve and send notices, withhold details, close) and ``auditor``
(read everything, change nothing)."""

from django.db import migrations

from incidents.roles import create_all_permissions

DOMAIN_APPS = ("incidents", "postmortems")

RESPONDER = {
    "incidents": [
        "view_incident",
        "add_incident",
        "change_incident",
        "triage_incident",
        "rule_incident_out_of_scope",
        "classify_incident_as_customer_event",
        "begin_incident_post_mortem",
        "view_customer",
        "add_customer",
        "change_customer",
        "view_contact",
        "add_contact",
        "change_contact",
        "view_product",
        "add_product",
        "change_product",
        "view_supplier",
        "add_supplier",
        "change_supplier",
        "view_affectedcustomer",
        "add_affectedcustomer",
        "change_affectedcustomer",
        "delete_affectedcustomer",
        "view_auditevent",
        "view_workerheartbeat",
    ],
    "postmortems": [
        "view_postmortem",
        "change_postmortem",
        "view_actionitem",
        "add_actionitem",
        "change_actionitem",
    ],
}
INCIDENT_MANAGER_EXTRA = {"incidents": ["declare_incident", "close_incident"]}


def create_groups(apps, schema_editor):
    create_all_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permissions(spec):
        found = []
        for app_label, codenames in spec.items():
            found += list(
                Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            )
        wanted = sum(len(codenames) for codenames in spec.values())
        if len(found) != wanted:
            raise RuntimeError(f"Expected {wanted} permissions, found {len(found)}.")
        return found

    responder, _ = Group.objects.get_or_create(name="responder")
    responder.permissions.set(permissions(RESPONDER))
    manager_spec = {app: list(codes) for app, codes in RESPONDER.items()}
    for app, codes in INCIDENT_MANAGER_EXTRA.items():
        manager_spec[app] = manager_spec.get(app, []) + codes
    manager, _ = Group.objects.get_or_create(name="incident_manager")
    manager.permissions.set(permissions(manager_spec))
    auditor, _ = Group.objects.get_or_create(name="auditor")
    auditor.permissions.set(
        Permission.objects.filter(content_type__app_label__in=DOMAIN_APPS, codename__startswith="view_")
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["responder", "incident_manager", "auditor"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("postmortems", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
