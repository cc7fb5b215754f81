"""``manage.py seed_demo_drill`` (run by ``seed_demo``): a completed drill for the demo, run
end to end through the real services: recorded, triaged, declared for the drill customer
``DEMO-DRILL-001``, its initial notice approved and accepted, the post-mortem completed with an
action item done, the incident closed and the drill completed. Safe to re-run (keyed on the
incident's external reference ``demo:drill``).

The notice "goes out" to Django's in-memory mail backend while seeding, so no mail sink needs to
run yet; the deliveries and clocks are recorded exactly as a real sending records them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import Customer, Incident
from notifications import services as notification_services
from notifications.sender import deliveries_send_due
from postmortems import services

EXTERNAL_REFERENCE = "demo:drill"


class Command(BaseCommand):
    help = "Seed a completed demo drill (after seed_demo's users and drill customer)."

    def handle(self, *args: Any, **options: Any) -> None:
        if Incident.objects.filter(external_reference=EXTERNAL_REFERENCE).exists():
            self.stdout.write("Drill: the demo drill exists already.")
            return
        users = get_user_model().objects
        manager = users.filter(username="manager").first()
        responder = users.filter(username="responder").first()
        customer = Customer.objects.filter(account_reference="DEMO-DRILL-001").first()
        if manager is None or responder is None or customer is None:
            raise CommandError("Run seed_demo first: the demo users and DEMO-DRILL-001 are missing.")
        incident = incident_services.incident_create(
            actor=responder,
            external_reference=EXTERNAL_REFERENCE,
            fields={
                "title": "Drill: support laptop with customer exports lost on a train",
                "detection_source": "staff_escalation",
                "detected_at": timezone.now() - timedelta(minutes=40),
                "is_drill": True,
                "summary": "Yearly drill. A consultant reports a lost laptop holding customer exports.",
            },
        )
        incident = incident_services.incident_triage(
            incident=incident,
            actor=responder,
            severity="high",
            malicious="unknown",
            scenario="lost_or_stolen_device",
        )
        incident_services.affected_customer_add(
            incident=incident, customer=customer, actor=responder, records_affected=120
        )
        incident = incident_services.incident_declare(
            incident=incident,
            actor=manager,
            nature_of_breach="A laptop holding support exports was lost; its disk encryption is being confirmed.",
        )
        notice = notification_services.notice_draft(incident=incident, actor=manager, kind="initial")
        notice = notification_services.notice_approve(notice=notice, actor=manager)
        # What the delivery worker does after the approval's commit, here in this command.
        notification_services.notice_deliveries_create(notice_id=notice.pk)
        with override_settings(
            MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
        ):
            deliveries_send_due()
        incident.refresh_from_db()
        services.drill_record(
            incident=incident,
            actor=manager,
            scenario="A consultant loses a laptop with customer exports on a train; encryption status unknown.",
            held_on=timezone.now().date(),
            objectives="Declare within 1 hour; notify the drill customer within 24 hours.",
            participants=[
                {"function": "response_team", "name": "Max Manager"},
                {"function": "response_team", "name": "Rita Responder"},
                {"function": "security", "name": "Sami Security"},
                {"function": "legal", "name": "Lena Legal"},
                {"function": "communications", "name": "Cora Comms"},
            ],
        )
        incident = incident_services.incident_begin_post_mortem(incident=incident, actor=manager)
        services.post_mortem_update(
            incident=incident,
            actor=manager,
            changes={
                "timeline_summary": "Reported 40 minutes before declaration; the drill customer was notified at once.",
                "root_cause": "Exports were kept on a laptop instead of the consulting workspace.",
                "what_went_well": "Declaration and the initial notice were quick.",
                "what_did_not_go_well": "Nobody could say at once whether the disk was encrypted.",
                "response_sufficient": True,
                "procedures_sufficient": False,
                "procedure_changes": "Check disk encryption in the first hour; keep exports off laptops.",
                "customer_summary": [
                    {
                        "text": "We now check disk encryption within the first hour.",
                        "finding": "procedure_changes",
                    }
                ],
            },
        )
        services.post_mortem_complete(incident=incident, actor=manager)
        item = services.action_item_create(
            incident=incident,
            actor=manager,
            description="Add the disk-encryption check to the lost-device playbook.",
            owner=responder,
            due_at=timezone.now() + timedelta(days=14),
        )
        services.action_item_update(
            item=item, actor=manager, changes={"status": "done", "resolution": "Playbook step added."}
        )
        incident = incident_services.incident_close(incident=incident, actor=manager)
        drill = services.drill_complete(
            incident=incident, actor=manager, outcome="Declared in 40 minutes; notified within minutes."
        )
        self.stdout.write(f"Drill: {incident.reference} completed ({drill.held_on:%Y-%m-%d}).")
