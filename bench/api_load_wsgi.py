"""The product's WSGI application plus, for ``bench/api_load.py`` only, the baseline: a minimal
view at ``/bench/raw-insert/`` that inserts the same incident row through
``connection.cursor()`` (no DRF, no validation, no audit event) and answers its id."""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


def raw_insert(request: Any) -> Any:
    from django.db import connection, transaction
    from django.http import JsonResponse
    from django.utils import timezone

    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = {}
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO incidents_incident (title, summary, detection_source, detected_at, occurred_on_precision,"
            " reported_by, state, is_drill, nature_of_breach, mitigation_measures, records_affected_is_estimate,"
            " sub_processor_details, out_of_scope_category, scope_rationale, data_subjects_affected_is_estimate,"
            " adverse_effect_measures, incident_figures_shareable, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, '', '', 'detected', false, '', '', false, '', '', '', false, '', false, %s, %s)"
            " RETURNING id",
            [
                data.get("title", "raw"),
                data.get("summary", ""),
                data.get("detection_source", "staff_escalation"),
                data.get("detected_at"),
                now,
                now,
            ],
        )
        incident_id = cursor.fetchone()[0]
    return JsonResponse({"id": incident_id}, status=201)


def install_raw_view() -> None:
    """Add ``/bench/raw-insert/`` to the URL patterns (before the first request)."""
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    import config.urls

    if not any(getattr(p, "name", "") == "bench-raw-insert" for p in config.urls.urlpatterns):
        config.urls.urlpatterns.insert(
            0, path("bench/raw-insert/", csrf_exempt(raw_insert), name="bench-raw-insert")
        )


install_raw_view()
