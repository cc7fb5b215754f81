"""The roles for the second half of the process (issue: post-mortems are confidential).

- Post-mortems are read by incident managers and auditors only: responders lose
  ``view_postmortem`` and ``change_postmortem``; they keep reading action items (they may own
  one) and read drill records, and may no longer begin a post-mortem (``begin_incident_post_mortem``: incident managers).
- Incident managers write post-mortems, action items and drills, and complete them.
- Auditors read everything here and write only their own review records: a post-mortem review
  (``review_postmortem``) and an action item's verification (``verify_actionitem``).
- Incident managers and auditors read the read log.
"""

from django.db import migrations

from incidents.roles import create_all_permissions, grant_app_permissions

READ = [
    "view_postmortem",
    "view_actionitem",
    "view_actionitemreminder",
    "view_customersummarystatement",
    "view_summaryrelease",
    "view_postmortemversion",
    "view_drill",
    "view_drillparticipant",
]
INCIDENT_MANAGER = READ + [
    "change_postmortem",
    "complete_postmortem",
    "add_actionitem",
    "change_actionitem",
    "add_drill",
    "change_drill",
]
AUDITOR = READ + ["review_postmortem", "verify_actionitem"]
#: Responders take part in drills and own action items: they read those, never post-mortems.
RESPONDER = ["view_actionitem", "view_drill", "view_drillparticipant"]
RESPONDER_LOSES = {
    "postmortems": ["view_postmortem", "change_postmortem", "add_actionitem", "change_actionitem"],
    "incidents": ["begin_incident_post_mortem"],
}


def grant(apps, schema_editor):
    create_all_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    responder = Group.objects.get(name="responder")
    for app_label, codenames in RESPONDER_LOSES.items():
        responder.permissions.remove(
            *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )
    grant_app_permissions(
        apps, "postmortems", {"incident_manager": INCIDENT_MANAGER, "auditor": AUDITOR, "responder": RESPONDER}
    )
    grant_app_permissions(
        apps, "incidents", {"incident_manager": ["view_readlogentry"], "auditor": ["view_readlogentry"]}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("postmortems", "0002_post_mortem_review_action_items_drills"),
        ("incidents", "0004_drill_customers_read_log_account_expiry"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
