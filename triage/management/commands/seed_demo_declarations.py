"""``manage.py seed_demo_declarations``: two of the demo's imported incidents, triaged through a
recorded assessment and declared, so the board shows running deadlines (run by ``seed_demo``;
safe to run again: does nothing once any incident has been declared).

It takes the same path a responder takes in the browser or the API (one triage path, issue 12):
``triage.services.assessment_record`` records an in-scope assessment (ENISA severity from its
inputs, the GDPR Art. 33/34 notification assessment), then the demo incident manager declares.
The assessment takes what the imported VERIS record says of the incident (its data categories,
scenario and whether it was malicious; the plan's values only where the record says nothing),
and the nature of the breach is the record's own summary, so the triage fits the incident it
describes. Each affected customer gets its own figures (records and data subjects), different
per customer, as a notice tells each controller only its own.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from incidents import services
from incidents.models import Customer, Incident, IncidentState
from triage.services import assessment_record

#: Fallbacks where the imported record says nothing, the severity inputs, and per-customer
#: (records, data subjects).
PLANS: tuple[dict[str, Any], ...] = (
    {
        "scenario": "misdirected_communication",
        "malicious": "no",
        "data_categories": ["health"],
        "severity_inputs": {"ease_of_identification": "significant"},
        "breach_types": ["confidentiality"],
        "nature": "Personal data was disclosed to an unauthorised party.",
        "figures": ((240, 180), (40, 35)),
    },
    {
        "scenario": "lost_or_stolen_device",
        "malicious": "unknown",
        "data_categories": ["behavioural"],
        "severity_inputs": {"ease_of_identification": "maximum"},
        "breach_types": ["confidentiality", "availability"],
        "nature": "A device holding customer data was lost.",
        "figures": ((1200, 900), (75, 60)),
    },
)


class Command(BaseCommand):
    help = "Triage (through an assessment) and declare two demo incidents for two customers each."

    def handle(self, *args: Any, **options: Any) -> None:
        if Incident.objects.exclude(declared_at=None).exists():
            self.stdout.write("Declarations: a declared incident exists already.")
            return
        users = get_user_model().objects
        responder = users.filter(username="responder").first()
        manager = users.filter(username="manager").first()
        customers = list(
            Customer.objects.filter(account_reference__startswith="DEMO-", is_drill_customer=False).order_by(
                "account_reference"
            )
        )
        candidates = list(Incident.objects.filter(state=IncidentState.DETECTED).order_by("id")[: len(PLANS)])
        if (
            responder is None
            or manager is None
            or len(customers) < 2 * len(PLANS)
            or len(candidates) < len(PLANS)
        ):
            self.stdout.write(
                "Declarations: the demo users, customers or incidents are missing; none declared."
            )
            return
        for index, (incident, plan) in enumerate(zip(candidates, PLANS, strict=True)):
            assessment_record(
                incident=incident,
                actor=responder,
                scope="in_scope",
                scope_rationale="Customer personal data is involved (demo).",
                malicious=incident.malicious or plan["malicious"],
                scenario=incident.scenario or plan["scenario"],
                data_categories=list(incident.data_categories or plan["data_categories"]),
                severity_inputs=plan["severity_inputs"],
                notification_facts={"breach_types": plan["breach_types"]},
            )
            affected = customers[2 * index : 2 * index + 2]
            for customer, (records, data_subjects) in zip(affected, plan["figures"], strict=True):
                services.affected_customer_add(
                    incident=incident,
                    customer=customer,
                    actor=responder,
                    records_affected=records,
                    data_subjects_affected=data_subjects,
                )
            nature = (incident.summary or "").strip() or incident.title or plan["nature"]
            services.incident_declare(
                incident=Incident.objects.get(pk=incident.pk), actor=manager, nature_of_breach=nature
            )
        self.stdout.write(
            f"Declared {len(PLANS)} of the imported incidents after a recorded triage assessment,"
            " so the board shows running deadlines."
        )
