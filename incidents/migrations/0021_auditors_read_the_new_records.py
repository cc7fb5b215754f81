"""Auditors read the records added since their role was first set up (0002 gave them every
``view_`` permission that existed then): audit checkpoints, security audit events, need-to-know
restrictions and their members, webhook events and attempts. A fresh database already has them
(0002 runs after the models exist there); an upgraded one gets them here."""

from django.db import migrations

from incidents.roles import grant_app_permissions

GRANTS = {
    "auditor": [
        "view_auditcheckpoint",
        "view_securityauditevent",
        "view_incidentrestriction",
        "view_incidentrestrictionmember",
        "view_webhookevent",
        "view_webhookattempt",
    ],
}


def grant(apps, schema_editor):
    grant_app_permissions(apps, "incidents", GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ('incidents', '0019_security_audit_event'),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
