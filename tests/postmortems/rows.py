"""One row of every training model, built through the services, for the tests that walk every
admin and audit-site page (``tests/incidents/test_admin.py``, ``test_audit_site.py``)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone


def training_rows() -> None:
    """A mandatory course (with its audit chain), one import and one completion record."""
    from postmortems.training import Completion, course_create, training_records_import

    course_create(
        actor=None,
        fields={
            "code": "DP-101",
            "name": "Data protection essentials",
            "is_mandatory": True,
            "validity_days": 365,
        },
    )
    training_records_import(
        completions=[Completion(2, "ann@staff.example", "DP-101", timezone.now() - timedelta(days=3), None)],
        file_name="lms.csv",
        file_sha256="0" * 64,
    )
