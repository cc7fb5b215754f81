"""``manage.py seed_demo_training``: the training part of the demo (run by ``seed_demo``).

Creates, once, through the real services (audited like any import):

- two mandatory courses, ``DP-101`` (data protection essentials, valid 365 days) and
  ``IR-201`` (personal data breach response, valid 730 days), and an optional one,
  ``SEC-110`` (secure remote support, 365 days);
- completions: the demo responder is trained; the demo incident manager (``manager``)
  completed ``DP-101`` 400 days ago, so it **lapsed** 35 days ago (the overdue page shows it,
  and making them an incident owner or approving a notice as them writes a
  ``training_lapse_warning``); two staff without an account here, one up to date and one who
  never took ``IR-201``.

Safe to re-run: when ``DP-101`` exists it changes nothing (completions are relative to the
first run, so a second run would otherwise record new ones).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from postmortems.models import Course
from postmortems.training import Completion, course_create, training_records_import

DEMO_COURSES: tuple[dict[str, object], ...] = (
    {"code": "DP-101", "name": "Data protection essentials", "is_mandatory": True, "validity_days": 365},
    {"code": "IR-201", "name": "Personal data breach response", "is_mandatory": True, "validity_days": 730},
    {"code": "SEC-110", "name": "Secure remote support", "is_mandatory": False, "validity_days": 365},
)

#: (email, course code, days ago, score).
DEMO_COMPLETIONS: tuple[tuple[str, str, int, str | None], ...] = (
    ("responder@breachdesk.test", "DP-101", 30, "92"),
    ("responder@breachdesk.test", "IR-201", 60, "88"),
    ("manager@breachdesk.test", "DP-101", 400, "81"),
    ("manager@breachdesk.test", "IR-201", 100, "95"),
    ("priya.sharma@breachdesk.test", "DP-101", 10, "100"),
    ("priya.sharma@breachdesk.test", "IR-201", 10, None),
    ("lukas.weber@breachdesk.test", "DP-101", 200, "76.5"),
    ("lukas.weber@breachdesk.test", "SEC-110", 200, "90"),
)


class Command(BaseCommand):
    help = (
        "Seed the training demo: mandatory courses DP-101 and IR-201, optional SEC-110, and "
        "completions (the demo incident manager's DP-101 has lapsed). Runs once; safe to re-run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if Course.objects.filter(code="DP-101").exists():
            self.stdout.write("Training: demo courses exist already; nothing changed.")
            return
        for fields in DEMO_COURSES:
            course_create(actor=None, fields=fields)
        now = timezone.now().replace(microsecond=0)
        completions = [
            Completion(
                line=number,
                email=email,
                course_code=code,
                completed_at=now - timedelta(days=days),
                score=Decimal(score).quantize(Decimal("0.01")) if score else None,
            )
            for number, (email, code, days, score) in enumerate(DEMO_COMPLETIONS, start=2)
        ]
        result = training_records_import(
            completions=completions, file_name="demo (seed_demo_training)", file_sha256=""
        )
        self.stdout.write(f"Training: {len(DEMO_COURSES)} courses. {result.line()}")
