#!/usr/bin/env python
"""Board benchmark: the response team's pages at 10,000, 100,000 and 1,000,000 incidents.

Run from the repository root against PostgreSQL (index plans are the point):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/board.py
    #   --sizes 10000,100000 (a quick run), --repeat 15, --gunicorn-port 8303, --no-gunicorn

It creates and drops its own database (``bd_board_bench``; ``--database`` to rename it) and grows
it by bulk SQL (``INSERT ... SELECT generate_series``) from one size to the next: about 10% of
the incidents open (detected 4%, triaged 2%, declared 1% with running clocks, notified 1.5%,
post-mortem 1.5%), the rest closed, ruled out or customer events; 3,000 customers with one
administrative contact each; for every declared incident two affected customers, their clocks,
an approved notice with its deliveries (once notified) and audit events; 2% drills; one incident
with 50 affected customers.

At each size, for each page: p50 and p90 over ``--repeat`` requests in-process (Django's test
client, logged in as an incident manager, after warm-up) and the number of queries; then the
board, the deep board page, the metrics and the incident page through gunicorn (2 workers on
``--gunicorn-port``). In the same run: a baseline board view that renders the board's template
from one hand-written keyset SQL query through ``connection.cursor()``, and the raw SQL of each
filtered API list. It prints a table per size, the ratios against the issue's targets, and
EXPLAIN of the searches (an index must be used). It asserts no timing; it exits 1 only when a
search or a deep page plans a sequential scan of the incident table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _throwaway import throwaway_database  # noqa: E402

CUSTOMERS = 3000
PASSWORD = "bench password 1"
SCENARIOS = (
    "misdirected_communication",
    "lost_or_stolen_device",
    "malicious_insider",
    "unauthorised_access",
    "malware_or_ransomware",
    "accidental_publication",
    "supplier_breach",
    "customer_supplied_sensitive_data",
    "other",
)
SOURCES = (
    "automated_alert",
    "customer_report",
    "external_report",
    "staff_escalation",
    "vulnerability_report",
)
WORDS = ("payroll", "laptop", "mailbox", "backup", "portal", "phishing", "invoice", "badge")


# --- Seeding ------------------------------------------------------------------------------

STATE_SQL = """
CASE
  WHEN r < 40 THEN 'detected' WHEN r < 60 THEN 'triaged' WHEN r < 70 THEN 'declared'
  WHEN r < 85 THEN 'notified' WHEN r < 100 THEN 'post_mortem' WHEN r < 400 THEN 'closed'
  WHEN r < 800 THEN 'out_of_scope' ELSE 'customer_event' END
"""


def seed_reference_data(cursor: Any) -> None:
    cursor.execute(
        """
        INSERT INTO incidents_customer (name, account_reference, country, preferred_language,
            notification_window_hours, created_at, is_drill_customer)
        SELECT 'Bench Customer ' || n || ' ' || (ARRAY['Logistics','Pharma','Retail','Bank','Energy'])[1 + n %% 5],
               'BENCH-' || lpad(n::text, 5, '0'), 'DE', (ARRAY['en','de','fr','es','ja'])[1 + n %% 5], 72, now(),
               false
        FROM generate_series(1, %s) AS n
        """,
        [CUSTOMERS],
    )
    cursor.execute(
        """
        INSERT INTO incidents_contact (customer_id, name, email, language, role, is_active, created_at,
            pending_confirmation, undeliverable_reason)
        SELECT id, 'Admin ' || id, 'admin' || id || '@bench.example', '', 'administrative', true, now(),
               false, ''
        FROM incidents_customer
        """
    )


def seed_incidents(cursor: Any, start: int, end: int, owner_id: int) -> None:
    """Incidents numbered ``start`` to ``end - 1`` (older as the number grows) with their
    affected customers, clocks, notices, deliveries and audit events."""
    cursor.execute("SELECT min(id) FROM incidents_customer")
    first_customer = cursor.fetchone()[0]
    cursor.execute(
        f"""
        INSERT INTO incidents_incident (title, summary, detection_source, occurred_on_precision, reported_by,
            state, scenario, severity, malicious, is_drill, nature_of_breach, mitigation_measures,
            records_affected, records_affected_is_estimate, sub_processor_details, out_of_scope_category,
            scope_rationale, reference, owner_id, triaged_at, declared_at, notified_at, closed_at,
            created_at, updated_at, adverse_effect_measures, data_subjects_affected_is_estimate,
            incident_figures_shareable)
        SELECT 'Bench incident ' || n || ' ' || (ARRAY{list(WORDS)})[1 + n %% 8] || ' k' || ((n * 7919) %% 100000),
               'Signal number ' || n || ' about the ' || (ARRAY{list(WORDS)})[1 + (n / 8) %% 8] || '.',
               (ARRAY{list(SOURCES)})[1 + (n * 3) %% 5], '', '', state,
               (ARRAY{list(SCENARIOS)})[1 + n %% 9],
               CASE WHEN state = 'detected' THEN NULL ELSE (ARRAY['low','medium','high','very_high'])[1 + n %% 4] END,
               CASE WHEN state = 'detected' THEN NULL ELSE 'unknown' END,
               n %% 50 = 0,
               CASE WHEN declared THEN 'Personal data reached an unauthorised party.' ELSE '' END,
               CASE WHEN declared AND n %% 3 = 0 THEN 'Access revoked.' ELSE '' END,
               CASE WHEN declared AND n %% 2 = 0 THEN 100 + n %% 5000 END, false, '', '', '',
               'BD-B-' || lpad(n::text, 7, '0'),
               CASE WHEN state = 'detected' THEN NULL ELSE %(owner)s END,
               CASE WHEN state <> 'detected' THEN created_at + ((n * 13) %% 48 + 1) * interval '1 hour' END,
               CASE WHEN state = 'declared' THEN now() - ((n * 31) %% 82) * interval '1 hour'
                    WHEN declared THEN created_at + ((n * 17) %% 60 + 50) * interval '1 hour' END,
               CASE WHEN declared AND state <> 'declared'
                    THEN created_at + ((n * 17) %% 60 + 50 + (n * 19) %% 80 + 1) * interval '1 hour' END,
               CASE WHEN state IN ('closed', 'out_of_scope', 'customer_event') THEN created_at + interval '30 days' END,
               created_at, created_at, '', false, false
        FROM (
            SELECT n, {STATE_SQL} AS state, r < 400 AND r >= 60 AS declared,
                   now() - interval '2 hours' - n * interval '95 seconds' AS created_at
            FROM (SELECT n, (n * 7919) %% 1000 AS r FROM generate_series(%(start)s::bigint, %(end)s - 1) AS n) numbered
        ) rows
        """,
        {"owner": owner_id, "start": start, "end": end},
    )
    # Two affected customers per declared incident, a clock each; met when notified.
    cursor.execute(
        """
        INSERT INTO incidents_affectedcustomer (incident_id, customer_id, added_at, records_affected, notes,
            records_affected_is_estimate, data_subjects_affected_is_estimate)
        SELECT i.id, %(first)s + ((i.id + k * 1500) %% %(customers)s), i.declared_at - interval '1 hour', 40, '',
               false, false
        FROM incidents_incident i CROSS JOIN (VALUES (0), (1)) AS pair(k)
        WHERE i.declared_at IS NOT NULL AND i.reference BETWEEN %(low)s AND %(high)s
        """,
        {
            "first": first_customer,
            "customers": CUSTOMERS,
            "low": f"BD-B-{start:07d}",
            "high": f"BD-B-{end - 1:07d}",
        },
    )
    range_condition = "i.reference BETWEEN %(low)s AND %(high)s"
    bounds = {"low": f"BD-B-{start:07d}", "high": f"BD-B-{end - 1:07d}"}
    cursor.execute(
        f"""
        INSERT INTO notifications_clock (incident_id, kind, customer_id, starts_at, "window", due_at, met_at,
            late_reason, waiver_reason, created_at)
        SELECT i.id, 'customer_notice', a.customer_id, i.declared_at, interval '72 hours',
               i.declared_at + interval '72 hours', i.notified_at, '', '', i.declared_at
        FROM incidents_incident i JOIN incidents_affectedcustomer a ON a.incident_id = i.id
        WHERE i.declared_at IS NOT NULL AND {range_condition}
        """,
        bounds,
    )
    cursor.execute(
        f"""
        INSERT INTO notifications_notice (incident_id, number, kind, status, contact_point, likely_consequences,
            post_mortem_summary, observation, help_offered, content, withheld, changes, is_automatic,
            created_at, approved_at, translations, delivery_creation)
        SELECT i.id, 1, 'initial', 'approved', 'privacy@bench.example', '', '', '', '', '{{}}', '{{}}', '[]', false,
               i.declared_at, i.declared_at + interval '1 hour', '{{}}', 'done'
        FROM incidents_incident i WHERE i.notified_at IS NOT NULL AND {range_condition}
        """,
        bounds,
    )
    cursor.execute(
        f"""
        INSERT INTO notifications_delivery (notice_id, contact_id, customer_id, address, language, subject,
            body_text, body_html, message_id, status, attempts, last_error, next_attempt_at, claim_token,
            sent_at, created_at, in_reply_to, "references")
        SELECT notice.id, contact.id, a.customer_id, contact.email, 'en',
               'Notice about ' || i.reference, 'text', '<p>text</p>',
               '<' || i.reference || '.' || contact.id || '@bench.example>', 'sent', 1, '',
               i.notified_at, '', i.notified_at, i.declared_at, '', ''
        FROM incidents_incident i
        JOIN notifications_notice notice ON notice.incident_id = i.id
        JOIN incidents_affectedcustomer a ON a.incident_id = i.id
        JOIN incidents_contact contact ON contact.customer_id = a.customer_id
        WHERE {range_condition}
        """,
        bounds,
    )
    cursor.execute(
        f"""
        INSERT INTO incidents_auditevent (incident_id, sequence, occurred_at, actor_username, verb, from_state,
            to_state, data, previous_hash, hash, key_id)
        SELECT i.id, step.sequence, i.created_at + step.sequence * interval '1 minute', 'bench', step.verb,
               step.from_state, step.to_state, '{{}}', md5(i.id::text || step.sequence), md5(i.reference || step.sequence), ''
        FROM incidents_incident i CROSS JOIN (VALUES (1, 'created', '', 'detected'), (2, 'updated', '', ''))
             AS step(sequence, verb, from_state, to_state)
        WHERE {range_condition}
        """,
        bounds,
    )


def seed_fifty_customer_incident(manager: Any) -> Any:
    """A declared incident with 50 affected customers, built through the real services."""
    from incidents import services
    from incidents.models import Customer

    incident = services.incident_create(
        actor=manager,
        fields={"title": "Bench: shared support mailbox exposed", "detection_source": "staff_escalation"},
    )
    incident = services.incident_triage(incident=incident, actor=manager, severity="high", malicious="yes")
    for customer in Customer.objects.order_by("id")[:50]:
        services.affected_customer_add(
            incident=incident, customer=customer, actor=manager, records_affected=120
        )
    services.note_add(incident=incident, actor=manager, text="Mailbox rules changed by an unknown party.")
    return services.incident_declare(
        incident=incident, actor=manager, nature_of_breach="A mailbox was accessed."
    )


# --- Measuring ----------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    p50_ms: float
    p90_ms: float
    queries: int
    status: int
    rows: int | None = None
    note: str = ""
    #: Median CPU time of this process per request (ms): Python's share, not the database's.
    cpu_ms: float = 0.0
    #: p50 / the baseline's p50, for the figures that have a baseline.
    ratio: float | None = None


@dataclass
class SizeResult:
    size: int
    figures: dict[str, Figure] = field(default_factory=dict)
    seconds_to_seed: float = 0.0
    metrics_refresh_s: float = 0.0
    explain: dict[str, str] = field(default_factory=dict)


def _timed(run: Callable[[], Any], repeat: int, cpu: list[float] | None = None) -> tuple[list[float], Any]:
    """Wall ms of each of ``repeat`` runs after two warm-ups (and CPU ms into ``cpu``)."""
    for _ in range(2):
        result = run()
    times = []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - started_cpu) * 1000)
    return times, result


def measure(
    name: str,
    run: Callable[[], Any],
    repeat: int,
    *,
    rows: Callable[[Any], int] | None = None,
    note: str = "",
) -> Figure:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cpu: list[float] = []
    times, response = _timed(run, repeat, cpu)
    with CaptureQueriesContext(connection) as captured:
        response = run()
    status = getattr(response, "status_code", 200)
    quantiles = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return Figure(
        name=name,
        p50_ms=statistics.median(times),
        p90_ms=quantiles[8],
        queries=len(captured.captured_queries),
        status=status,
        rows=rows(response) if rows else None,
        note=note,
        cpu_ms=statistics.median(cpu),
    )


def baseline_board(request: Any) -> Any:
    """The board's template rendered from one hand-written keyset SQL query (the issue's
    baseline): the same rows and figures as ``dashboard.board.board_page`` on page one, no ORM."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.shortcuts import render
    from django.utils import timezone

    from dashboard.board import BoardRow
    from dashboard.forms import BoardFilterForm
    from incidents.models import Incident

    user_model = get_user_model()

    sql = """
    WITH keys AS (
      (SELECT 1 AS part, c.due_at AS key, c.id AS row_id, c.incident_id
       FROM notifications_clock c JOIN incidents_incident i ON i.id = c.incident_id
       WHERE c.met_at IS NULL AND c.waived_at IS NULL
         AND i.state IN ('detected','triaged','declared','notified','post_mortem')
         AND NOT EXISTS (SELECT 1 FROM notifications_clock e WHERE e.incident_id = c.incident_id
             AND e.met_at IS NULL AND e.waived_at IS NULL AND (e.due_at, e.id) < (c.due_at, c.id))
       ORDER BY c.due_at, c.id LIMIT 51)
      UNION ALL
      (SELECT 2, i.created_at, i.id, i.id FROM incidents_incident i
       WHERE i.state IN ('detected','triaged','declared','notified','post_mortem')
         AND NOT EXISTS (SELECT 1 FROM notifications_clock e WHERE e.incident_id = i.id
             AND e.met_at IS NULL AND e.waived_at IS NULL)
       ORDER BY i.created_at DESC, i.id DESC LIMIT 51)
    )
    SELECT k.part, k.key, k.row_id, i.id, i.reference, i.title, i.state, i.severity, i.scenario,
           i.detection_source, i.is_drill, i.created_at, u.username,
           (SELECT min(due_at) FROM notifications_clock e WHERE e.incident_id = i.id AND e.met_at IS NULL AND e.waived_at IS NULL),
           (SELECT count(*) FROM incidents_affectedcustomer a WHERE a.incident_id = i.id),
           (SELECT count(*) FROM notifications_clock e WHERE e.incident_id = i.id AND e.met_at IS NOT NULL),
           (CASE WHEN i.nature_of_breach <> '' THEN 1 ELSE 0 END + CASE WHEN i.mitigation_measures <> '' THEN 1 ELSE 0 END
            + CASE WHEN EXISTS (SELECT 1 FROM incidents_incident_products p WHERE p.incident_id = i.id) THEN 1 ELSE 0 END
            + CASE WHEN i.exposure_started_at IS NOT NULL AND i.exposure_ended_at IS NOT NULL THEN 1 ELSE 0 END
            + CASE WHEN i.records_affected IS NOT NULL THEN 1 ELSE 0 END
            + CASE WHEN i.sub_processor_id IS NOT NULL OR i.sub_processor_details <> '' THEN 1 ELSE 0 END)
    FROM keys k JOIN incidents_incident i ON i.id = k.incident_id LEFT JOIN auth_user u ON u.id = i.owner_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        fetched = cursor.fetchall()
    running = sorted((r for r in fetched if r[0] == 1), key=lambda r: (r[1], r[2]))
    recorded = sorted((r for r in fetched if r[0] == 2), key=lambda r: (r[1], r[2]), reverse=True)
    rows = []
    for r in (running + recorded)[:50]:
        incident = Incident(
            id=r[3],
            reference=r[4],
            title=r[5],
            severity=r[7],
            scenario=r[8],
            detection_source=r[9],
            is_drill=r[10],
            created_at=r[11],
        )
        incident.__dict__["state"] = r[6]
        incident.owner = user_model(username=r[12]) if r[12] else None
        rows.append(
            BoardRow(
                incident=incident,
                due_at=r[13],
                affected=r[14],
                unnotified=max(r[14] - r[15], 0),
                known_fields=r[16],
            )
        )
    context = {
        "form": BoardFilterForm(),
        "rows": rows,
        "next_cursor": "x",
        "is_first_page": True,
        "error": None,
        "now": timezone.now(),
        "sort": "due",
        "display_time_zone": "UTC",
    }
    return render(request, "dashboard/board.html", context)


# The API list's baseline: the same page of GET /api/incidents/?<filter> (keys, values, links)
# from one hand-written keyset SQL query through connection.cursor(), behind the same middleware
# and the same token/session authentication, with no serializer, filterset or paginator.
BASELINE_API_LIST_SQL = """
SELECT i.id, i.reference, i.state, i.title, i.summary, i.detection_source, i.detected_at,
       i.occurred_on, i.occurred_on_precision, i.reported_by, owner.username, i.scenario, i.severity,
       i.malicious, i.is_drill, i.nature_of_breach, i.mitigation_measures,
       (SELECT coalesce(json_agg(p.name ORDER BY p.name), '[]') FROM incidents_incident_products ip
        JOIN incidents_product p ON p.id = ip.product_id WHERE ip.incident_id = i.id),
       i.exposure_started_at, i.exposure_ended_at, i.records_affected, i.records_affected_is_estimate,
       i.data_categories, i.data_subject_categories, i.data_subjects_affected,
       i.data_subjects_affected_is_estimate, i.likely_consequences, i.adverse_effect_measures,
       i.sub_processor_id, i.sub_processor_details, i.incident_figures_shareable,
       i.out_of_scope_category, i.scope_rationale, i.customer_informed_at, i.triaged_at,
       i.declared_at, declarer.username, i.notified_at, i.closed_at, i.merged_into_id, i.merged_at,
       i.external_reference,
       (SELECT coalesce(json_agg(c.account_reference ORDER BY c.name, a.id), '[]')
        FROM incidents_affectedcustomer a JOIN incidents_customer c ON c.id = a.customer_id
        WHERE a.incident_id = i.id),
       i.created_at, i.updated_at
FROM incidents_incident i
LEFT JOIN auth_user owner ON owner.id = i.owner_id
LEFT JOIN auth_user declarer ON declarer.id = i.declared_by_id
WHERE i.{column} = %(value)s {after}
  AND (NOT EXISTS (SELECT 1 FROM incidents_incidentrestriction r WHERE r.incident_id = i.id)
       OR EXISTS (SELECT 1 FROM incidents_incidentrestrictionmember m
                  WHERE m.restriction_id = i.id AND m.user_id = %(user)s))
ORDER BY i.created_at DESC, i.id DESC OFFSET %(offset)s LIMIT 51
"""

#: The columns of BASELINE_API_LIST_SQL, in its order, under their API names.
BASELINE_API_LIST_KEYS = [
    "id",
    "reference",
    "state",
    "title",
    "summary",
    "detection_source",
    "detected_at",
    "occurred_on",
    "occurred_on_precision",
    "reported_by",
    "owner",
    "scenario",
    "severity",
    "malicious",
    "is_drill",
    "nature_of_breach",
    "mitigation_measures",
    "products",
    "exposure_started_at",
    "exposure_ended_at",
    "records_affected",
    "records_affected_is_estimate",
    "data_categories",
    "data_subject_categories",
    "data_subjects_affected",
    "data_subjects_affected_is_estimate",
    "likely_consequences",
    "adverse_effect_measures",
    "sub_processor",
    "sub_processor_details",
    "incident_figures_shareable",
    "out_of_scope_category",
    "scope_rationale",
    "customer_informed_at",
    "triaged_at",
    "declared_at",
    "declared_by",
    "notified_at",
    "closed_at",
    "merged_into",
    "merged_at",
    "external_reference",
    "affected_customers",
    "created_at",
    "updated_at",
]

#: The API's keys in its order: the columns and three computed ones.
BASELINE_API_LIST_ORDER = [
    *BASELINE_API_LIST_KEYS[: BASELINE_API_LIST_KEYS.index("exposure_ended_at") + 1],
    "exposure_duration_hours",
    *BASELINE_API_LIST_KEYS[
        BASELINE_API_LIST_KEYS.index("records_affected") : BASELINE_API_LIST_KEYS.index("affected_customers")
        + 1
    ],
    "available_transitions",
    "created_at",
    "updated_at",
]

BASELINE_INSTANTS = {
    "detected_at", "exposure_started_at", "exposure_ended_at", "customer_informed_at", "triaged_at",
    "declared_at", "notified_at", "closed_at", "merged_at", "created_at", "updated_at",
}  # fmt: skip


def baseline_api_list(request: Any) -> Any:
    """``GET /api/incidents/?state=|severity=|detection_source=<value>[&cursor=]`` answered by
    hand: the API's authentication classes (token, then session), ``view_incident``, one keyset
    SQL query (need-to-know conditions, json_agg of products and affected customers), the
    transitions per state, ``{"next", "previous", "results"}`` with DRF's cursor links."""
    import base64
    import json
    from datetime import UTC
    from urllib.parse import parse_qs, urlencode

    from django.db import connection
    from django.http import HttpResponse
    from rest_framework.request import Request
    from rest_framework.settings import api_settings
    from rest_framework.utils.urls import replace_query_param

    from incidents.api.serializers import available_transitions

    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]  # type: ignore[operator]  # classes once loaded
    api_request = Request(request, authenticators=authenticators)
    user = api_request.user
    if not user.is_authenticated:
        return HttpResponse(status=401)
    if not user.has_perm("incidents.view_incident"):
        return HttpResponse(status=403)
    ((column, value),) = ((k, v) for k, v in request.GET.items() if k != "cursor")
    assert column in ("state", "severity", "detection_source")
    offset, position = 0, None
    if request.GET.get("cursor"):
        tokens = parse_qs(base64.b64decode(request.GET["cursor"]).decode())
        assert "r" not in tokens, "the baseline pages forward only"
        offset = int(tokens.get("o", ["0"])[0])
        position = tokens.get("p", [None])[0]
    after = "AND i.created_at < %(position)s::timestamptz" if position is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            BASELINE_API_LIST_SQL.format(column=column, after=after),  # noqa: S608 - fixed names
            {"value": value, "user": user.pk, "offset": offset, "position": position},
        )
        fetched = cursor.fetchall()
    transitions: dict[str, list[str]] = {}
    results = []
    for row in fetched[:50]:
        values = dict(zip(BASELINE_API_LIST_KEYS, row, strict=True))
        for key in BASELINE_INSTANTS:
            if values[key] is not None:
                values[key] = values[key].astimezone(UTC).isoformat().replace("+00:00", "Z")
        if values["occurred_on"] is not None:
            values["occurred_on"] = values["occurred_on"].isoformat()
        started, ended = row[18], row[19]
        values["exposure_duration_hours"] = (
            (ended - started).total_seconds() / 3600 if started and ended else None
        )
        state = values["state"]
        if state not in transitions:
            transitions[state] = available_transitions(SimpleNamespace(state=state), user)  # type: ignore[arg-type]
        values["available_transitions"] = transitions[state]
        results.append({key: values[key] for key in BASELINE_API_LIST_ORDER})

    def link(cursor_offset: int, reverse: bool, cursor_position: str | None) -> str:
        tokens = {"o": str(cursor_offset)} if cursor_offset else {}
        if reverse:
            tokens["r"] = "1"
        if cursor_position is not None:
            tokens["p"] = cursor_position
        encoded = base64.b64encode(urlencode(tokens).encode("ascii")).decode("ascii")
        return replace_query_param(
            request.build_absolute_uri("/api/incidents/?" + request.GET.urlencode()), "cursor", encoded
        )

    # DRF's cursors: the next one names the last row whose instant differs from the following
    # row's (with an offset past rows sharing it); the previous one, the first row's.
    # The bench's incidents have distinct instants, so the pages never need DRF's
    # fallbacks for a page of equal instants (refused here).
    page = fetched[:50]
    instants = [str(row[-2]) for row in fetched]
    next_link = previous_link = None
    if len(fetched) > 50:
        skip = 0
        while skip < 50 and instants[49 - skip] == instants[50]:
            skip += 1
        assert skip < 50, "a page of equal instants"
        next_link = link(skip, False, instants[49 - skip])
    if page and (position is not None or offset):
        compare = instants[0] if offset else position
        skip = 0
        while skip < len(page) and instants[skip] == compare:
            skip += 1
        assert skip < len(page), "a page of equal instants"
        previous_link = link(skip, True, instants[skip])
    body = json.dumps(
        {"next": next_link, "previous": previous_link, "results": results},
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    return HttpResponse(body.encode(), content_type="application/json")


def explain(sql_and_params: tuple[str, Any]) -> str:
    from django.db import connection

    sql, params = sql_and_params
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def raw_api_query(condition: str, params: list) -> float:
    """Median ms of the API list's own query written by hand (keyset page, no DISTINCT)."""
    from django.db import connection

    sql = (
        "SELECT * FROM incidents_incident WHERE " + condition + " ORDER BY created_at DESC, id DESC LIMIT 51"  # noqa: S608
    )

    def run() -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    times, _ = _timed(run, 15)
    return statistics.median(times)


#: The filtered API lists of the issue: (figure name, query string, bare SQL condition, params).
API_LISTS = (
    ("state", "state=detected", "state = %s", ["detected"]),
    ("severity", "severity=high", "severity = %s", ["high"]),
    ("source", "detection_source=customer_report", "detection_source = %s", ["customer_report"]),
)


def same_page_as_the_api(client: Any, query: str, **headers: Any) -> None:
    """Assert that the baseline answers pages 1 and 2 of ``/api/incidents/?<query>`` with the
    API's JSON (keys in the same order, values, links), so the ratio compares like for like."""
    url = f"/api/incidents/?{query}"
    for page in (1, 2):
        api = client.get(url, **headers)
        baseline = client.get("/bench-baseline" + url, **headers)
        assert api.status_code == baseline.status_code == 200, (api.status_code, baseline.status_code)
        expected, answered = api.json(), baseline.json()
        assert answered == expected, f"the baseline's page {page} of {url} is not the API's"
        assert [list(item) for item in answered["results"]] == [list(item) for item in expected["results"]]
        assert len(expected["results"]) == 50 and expected["next"], f"{url}: page {page} not full"
        url = expected["next"].removeprefix("http://testserver")


def run_api_lists(client: Any, user: Any, repeat: int, fig: dict[str, Figure]) -> None:
    """The filtered API lists, their hand-written baseline (``baseline_api_list``: same page,
    same JSON, asserted) and, for information, the bare page SELECT (``raw_api_query``)."""
    from datetime import timedelta

    from incidents.api.authentication import api_token_create

    _, key = api_token_create(user=user, name="bench", lifetime=timedelta(days=1))
    for name, query, condition, params in API_LISTS:
        same_page_as_the_api(client, query)
        same_page_as_the_api(client, query, HTTP_AUTHORIZATION=f"Token {key}")
        figure = measure(
            f"GET /api/incidents/?{query}", partial(client.get, f"/api/incidents/?{query}"), repeat
        )
        baseline = measure(
            "  baseline (hand-written SQL, same JSON)",
            partial(client.get, f"/bench-baseline/api/incidents/?{query}"),
            repeat,
        )
        raw = raw_api_query(condition, params)
        figure.ratio = figure.p50_ms / baseline.p50_ms
        figure.note = (
            f"CPU {figure.cpu_ms:.1f} ms; / baseline {figure.ratio:.2f} (CPU {figure.cpu_ms / baseline.cpu_ms:.2f});"
            f" bare SELECT {raw:.2f} ms (x{figure.p50_ms / raw:.0f})"
        )
        baseline.note = f"CPU {baseline.cpu_ms:.1f} ms"
        fig[f"api_{name}"] = figure
        fig[f"api_{name}_baseline"] = baseline


def run_size(
    size: int, args: Any, client: Any, audit_client: Any, fifty: Any, result: SizeResult, manager: Any
) -> None:
    from django.db import connection

    from dashboard import board
    from dashboard.metrics import metrics_refresh
    from incidents.models import Incident
    from incidents.views import _encode_cursor

    repeat = args.repeat
    started = time.perf_counter()
    metrics_refresh()
    result.metrics_refresh_s = time.perf_counter() - started

    def get(url: str, **extra: Any) -> Callable[[], Any]:
        return lambda: client.get(url, **extra)

    def rows(response: Any) -> int:
        return response.content.decode().count('class="state state-')

    fig = result.figures
    run_api_lists(client, manager, repeat, fig)
    if args.only_api_lists:
        return
    fig["board"] = measure("board, first page", get("/"), repeat, rows=rows)
    # The deepest board page up to 200 (at 10,000 incidents there are about 20 pages).
    cursor, depth = None, 1
    while depth < 200:
        page = board.board_page({}, cursor=cursor)
        if page.next_cursor is None:
            break
        cursor, depth = page.next_cursor, depth + 1
    fig["board_deep"] = measure(
        f"board, page {depth}", get(f"/?cursor={cursor}" if cursor else "/"), repeat, rows=rows
    )
    fig["board_filtered"] = measure("board, severity=high", get("/?severity=high"), repeat, rows=rows)
    fig["board_search"] = measure("board, search k4242", get("/?q=k4242"), repeat, rows=rows)
    fig["board_no_match"] = measure("board, no-match search", get("/?q=zzqx-nothing"), repeat, rows=rows)
    fig["baseline"] = measure("baseline board (raw SQL)", get("/bench-baseline/"), repeat)

    list_rows = rows
    fig["list"] = measure("incident list, first page", get("/incidents/"), repeat, rows=list_rows)
    deep_page = min(10_000, size // 50)
    boundary = Incident.objects.order_by("-created_at", "-id").only("id", "created_at")[
        (deep_page - 1) * 50 - 1
    ]
    fig["list_deep"] = measure(
        f"incident list, page {deep_page}",
        get(f"/incidents/?cursor={_encode_cursor(boundary)}"),
        repeat,
        rows=list_rows,
    )
    fig["list_no_match"] = measure(
        "incident list, no-match search", get("/incidents/?q=zzqx-nothing"), repeat, rows=list_rows
    )
    fig["list_search"] = measure(
        "incident list, search k4242", get("/incidents/?q=k4242"), repeat, rows=list_rows
    )
    fig["incident"] = measure("incident page, 50 customers", get(f"/incidents/{fifty.pk}/"), repeat)
    fig["metrics"] = measure("metrics page (5 years)", get("/metrics/?from=2022-01&to=2026-12"), repeat)
    fig["metrics_api"] = measure("GET /api/metrics/", get("/api/metrics/?from=2022-01&to=2026-12"), repeat)
    fig["clocks_api"] = measure(
        "GET /api/clocks/?status=open", get("/api/clocks/?status=open&ordering=due_at"), repeat
    )
    fig["audit_changelist"] = measure(
        "auditors' incident changelist", lambda: audit_client.get("/audit/incidents/incident/"), repeat
    )

    # Plans: searches must use the trigram indexes, deep pages an index condition.
    from incidents.forms import IncidentFilter

    result.explain["board first page"] = explain(board.union_sql(board.first_page_parts({})))
    result.explain["board no-match search"] = explain(
        board.union_sql(board.first_page_parts({"q": "zzqx-nothing"}))
    )
    search = IncidentFilter({"q": "zzqx-nothing"}, queryset=Incident.objects.all()).qs.order_by(
        "-created_at", "-id"
    )[:51]
    result.explain["incident search"] = explain(search.query.sql_with_params())
    with connection.cursor() as db:
        db.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM incidents_incident "
            "WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT 51",
            [boundary.created_at, boundary.pk],
        )
        result.explain["incident list deep page"] = "\n".join(row[0] for row in db.fetchall())


def through_gunicorn(port: int, session_key: str, paths: dict[str, str], repeat: int) -> dict[str, float]:
    """p50 ms of each path through gunicorn (2 workers) with the given session."""
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret"),
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        opener = urllib.request.build_opener()
        opener.addheaders = [("Cookie", f"sessionid={session_key}")]
        figures = {}
        for name, path in paths.items():

            def run(path: str = path) -> Any:
                with opener.open(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                    response.read()
                    if response.status != 200 or not response.geturl().endswith(path):
                        raise RuntimeError(
                            f"gunicorn answered {path} with {response.status} at {response.geturl()}"
                        )
                    return SimpleNamespace(status_code=response.status)

            times, _ = _timed(run, repeat)
            figures[name] = statistics.median(times)
        return figures
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database", default="bd_board_bench")
    parser.add_argument("--gunicorn-port", type=int, default=8303)
    parser.add_argument("--no-gunicorn", action="store_true")
    parser.add_argument(
        "--only-api-lists",
        action="store_true",
        help="measure only the filtered API lists and their baseline (no board, pages, gunicorn)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print("bench/board.py needs PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)
    # As in production: DEBUG on would log every query and render templates with debug data.
    os.environ["DEBUG"] = "false"
    with throwaway_database(args.database) as vendor:
        assert vendor == "postgresql"
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.contrib.sessions.backends.db import SessionStore
        from django.db import connection
        from django.test import Client
        from django.urls import clear_url_caches, path

        import config.urls

        settings.ALLOWED_HOSTS = ["*"]
        config.urls.urlpatterns.append(path("bench-baseline/", baseline_board))
        config.urls.urlpatterns.append(path("bench-baseline/api/incidents/", baseline_api_list))
        clear_url_caches()
        manager = get_user_model().objects.create_user(username="bench.manager", password=PASSWORD)
        manager.groups.add(Group.objects.get(name="incident_manager"))
        manager = get_user_model().objects.get(pk=manager.pk)
        client = Client()
        client.force_login(manager)
        # The auditors' changelist is measured as an auditor (whose account must expire).
        from datetime import timedelta

        from django.utils import timezone

        from incidents.models import AccountExpiry

        auditor = get_user_model().objects.create_user(username="bench.auditor", password=PASSWORD)
        auditor.groups.add(Group.objects.get(name="auditor"))
        AccountExpiry.objects.create(
            user=auditor, expires_at=timezone.now() + timedelta(days=30), note="bench"
        )
        audit_client = Client()
        audit_client.force_login(get_user_model().objects.get(pk=auditor.pk))
        answer = audit_client.get("/audit/incidents/incident/")
        if answer.status_code != 200:
            print(
                f"The auditor cannot open /audit/: {answer.status_code} {answer.get('Location')}",
                file=sys.stderr,
            )
        session = SessionStore()
        session["_auth_user_id"] = str(manager.pk)
        session["_auth_user_backend"] = (
            "incidents.backends.ModelBackendOneQuery"  # axes comes first, without get_user
        )
        session["_auth_user_hash"] = manager.get_session_auth_hash()
        session.create()

        with connection.cursor() as cursor:
            seed_reference_data(cursor)
        fifty = seed_fifty_customer_incident(manager)
        results: list[SizeResult] = []
        seeded = 0
        for size in sizes:
            result = SizeResult(size=size)
            started = time.perf_counter()
            with connection.cursor() as cursor:
                step = 200_000
                for start in range(seeded, size, step):
                    seed_incidents(cursor, start + 1, min(size, start + step) + 1, manager.pk)
                cursor.execute("ANALYZE")
            seeded = size
            result.seconds_to_seed = time.perf_counter() - started
            print(f"\n== {size:,} incidents (seeded in {result.seconds_to_seed:.0f} s)", flush=True)
            run_size(size, args, client, audit_client, fifty, result, manager)
            if not (args.no_gunicorn or args.only_api_lists):
                from dashboard import board

                deep = None
                for _ in range(min(199, size // 500)):
                    deep = board.board_page({}, cursor=deep).next_cursor or deep
                paths = {
                    "board": "/",
                    "board_deep": f"/?cursor={deep}" if deep else "/",
                    "incident": f"/incidents/{fifty.pk}/",
                    "metrics": "/metrics/?from=2022-01&to=2026-12",
                }
                for name, p50 in through_gunicorn(
                    args.gunicorn_port, session.session_key or "", paths, args.repeat
                ).items():
                    result.figures[name].note = (
                        result.figures[name].note + f" gunicorn p50 {p50:.1f} ms"
                    ).strip()
            for figure in result.figures.values():
                print(
                    f"  {figure.name:<44} p50 {figure.p50_ms:8.1f} ms  p90 {figure.p90_ms:8.1f} ms  "
                    f"cpu {figure.cpu_ms:6.1f} ms  {figure.queries:3d} queries  {figure.status}"
                    + (f"  rows {figure.rows}" if figure.rows is not None else "")
                    + (f"  {figure.note}" if figure.note else ""),
                    flush=True,
                )
            print(f"  metrics refresh (all months, in the worker): {result.metrics_refresh_s:.2f} s")
            results.append(result)

        failed = report(results)
        out = os.environ.get("BENCH_JSON")
        if out:
            Path(out).write_text(
                json.dumps(
                    [
                        {
                            "size": r.size,
                            "seed_s": r.seconds_to_seed,
                            "metrics_refresh_s": r.metrics_refresh_s,
                            "figures": {k: vars(v) for k, v in r.figures.items()},
                            "explain": r.explain,
                        }
                        for r in results
                    ],
                    indent=2,
                )
            )
        return 1 if failed else 0


def report(results: list[SizeResult]) -> bool:
    first, last = results[0], results[-1]

    def p50(result: SizeResult, name: str) -> float:
        return result.figures[name].p50_ms

    print("\n== Targets")
    lines: list[tuple[str, str, bool]] = []
    if "board" in last.figures:  # not with --only-api-lists
        pages = ("board", "board_deep", "board_filtered", "board_search", "board_no_match")
        per_page = {n: {r.figures[n].queries for r in results} for n in pages}
        same = all(len(counts) == 1 for counts in per_page.values())
        most = max(max(counts) for counts in per_page.values())
        lines += [
            (
                "board queries: the same for a page at every size, at most 8",
                f"{ {n: sorted(c) for n, c in per_page.items()} }",
                same and most <= 8,
            ),
            (
                f"board p50 {last.size:,} / {first.size:,} (<= 1.3)",
                f"{p50(last, 'board') / p50(first, 'board'):.2f}",
                p50(last, "board") / p50(first, "board") <= 1.3,
            ),
            (
                "board deep page / first page, largest size (<= 1.5)",
                f"{p50(last, 'board_deep') / p50(last, 'board'):.2f}",
                p50(last, "board_deep") / p50(last, "board") <= 1.5,
            ),
            (
                "board p50 / baseline, largest size (<= 1.5)",
                f"{p50(last, 'board') / p50(last, 'baseline'):.2f}",
                p50(last, "board") / p50(last, "baseline") <= 1.5,
            ),
            (
                "metrics page, largest size (< 1000 ms)",
                f"{p50(last, 'metrics'):.1f} ms",
                p50(last, "metrics") < 1000,
            ),
            (
                "no-match search, incident list, largest size (< 200 ms)",
                f"{p50(last, 'list_no_match'):.1f} ms",
                p50(last, "list_no_match") < 200,
            ),
            (
                "no-match search, board, largest size (< 200 ms)",
                f"{p50(last, 'board_no_match'):.1f} ms",
                p50(last, "board_no_match") < 200,
            ),
            (
                "incident list deep page / first, largest size (<= 1.5)",
                f"{p50(last, 'list_deep') / p50(last, 'list'):.2f}",
                p50(last, "list_deep") / p50(last, "list") <= 1.5,
            ),
            (
                f"auditors' changelist {last.size:,} / {first.size:,} (<= 1.5)",
                f"{p50(last, 'audit_changelist') / p50(first, 'audit_changelist'):.2f}",
                p50(last, "audit_changelist") / p50(first, "audit_changelist") <= 1.5,
            ),
            (
                "incident page, 50 customers, in-process (< 150 ms)",
                f"{p50(last, 'incident'):.1f} ms",
                p50(last, "incident") < 150,
            ),
        ]
    for name in ("api_state", "api_severity", "api_source"):
        figure = last.figures[name]
        ratio = figure.ratio if figure.ratio is not None else float("inf")
        lines.append((f"{figure.name} / baseline (<= 2)", f"{ratio:.2f}", ratio <= 2))
    for name, value, met in lines:
        print(f"  {name:<62} {value:>14}  {'met' if met else 'MISSED'}")
    print(f"  (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if last.explain:  # not with --only-api-lists
        print("\n== Plans at the largest size")
    failed = False
    for name, plan in last.explain.items():
        print(f"-- {name}\n{plan}")
        if re.search(r"Seq Scan on incidents_incident\b", plan):
            print(f"!! {name}: sequential scan of the incident table", file=sys.stderr)
            failed = True
    return failed


if __name__ == "__main__":
    sys.exit(main())
