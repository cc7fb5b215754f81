"""The response metrics: precomputed per month, the page with charts and tables, the CSV, and
``GET /api/metrics/``."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.metrics import metrics_for_period, metrics_refresh, metrics_refresh_changed, month_of
from dashboard.models import MetricsRefresh, MonthlyMetric
from incidents.models import Incident
from notifications.models import Clock
from tests.queries import assert_query_count, assert_same_query_count, capture_queries

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _timed(incident, *, created, triaged=None, declared=None, notified=None):
    Incident.objects.filter(pk=incident.pk).update(
        created_at=created, triaged_at=triaged, declared_at=declared, notified_at=notified
    )


def _march(make_incident):
    """Three real incidents and a drill recorded in March 2026, with known response times."""
    fast = make_incident(state="notified", title="Fast")
    _timed(
        fast,
        created=START,
        triaged=START + timedelta(hours=2),
        declared=START + timedelta(hours=4),
        notified=START + timedelta(hours=10),
    )
    Clock.objects.filter(incident=fast).update(
        starts_at=START + timedelta(hours=4),
        due_at=START + timedelta(hours=76),
        met_at=START + timedelta(hours=10),
    )
    slow = make_incident(state="notified", title="Slow")
    Incident.objects.filter(pk=slow.pk).update(severity="high")
    _timed(
        slow,
        created=START,
        triaged=START + timedelta(hours=6),
        declared=START + timedelta(hours=8),
        notified=START + timedelta(hours=90),
    )
    Clock.objects.filter(incident=slow).update(
        starts_at=START + timedelta(hours=8),
        due_at=START + timedelta(hours=80),
        met_at=START + timedelta(hours=90),
    )
    waiting = make_incident(title="Waiting", detection_source="customer_report")
    _timed(waiting, created=START + timedelta(days=3))
    drill = make_incident(state="triaged", title="Drill", is_drill=True)
    _timed(drill, created=START, triaged=START + timedelta(hours=100))
    return fast, slow, waiting, drill


def test_it_computes_medians_counts_and_the_share_within_the_window_per_month(db, make_incident):
    _march(make_incident)

    metrics_refresh(now=START + timedelta(days=20))
    figures = metrics_for_period(start=date(2026, 2, 1), end=date(2026, 4, 1))

    february, march, april = figures.months
    assert february.incidents == 0 and april.incidents == 0  # months with nothing are listed
    assert march.incidents == 3  # the drill is not counted
    assert (march.triage_count, march.triage_median_hours) == (2, 4.0)
    assert (march.declare_count, march.declare_median_hours) == (2, 6.0)
    assert (march.notify_count, march.notify_median_hours) == (2, 44.0)
    assert (march.clocks_settled, march.clocks_on_time, march.on_time_share) == (2, 1, 0.5)
    assert figures.by_severity == {"medium": 1, "high": 1, "": 1}
    assert figures.by_detection_source == {"staff_escalation": 2, "customer_report": 1}


def test_it_counts_drills_only_when_asked(db, make_incident):
    _march(make_incident)
    metrics_refresh(now=START + timedelta(days=20))

    with_drills = metrics_for_period(start=date(2026, 3, 1), end=date(2026, 3, 1), include_drills=True)

    march = with_drills.months[0]
    assert march.incidents == 4
    assert march.triage_count == 3
    # 2 real (median 4 h) and 1 drill (100 h): weighted by their counts
    assert march.triage_median_hours == round((2 * 4 + 1 * 100) / 3, 2)


def test_a_refresh_picks_up_what_changed_since_the_last_one(db, make_incident):
    incident = make_incident(title="Late change")
    metrics_refresh_changed()
    assert MetricsRefresh.objects.get().refreshed_at is not None
    month = month_of(incident.created_at)
    assert MonthlyMetric.objects.get(month=month, is_drill=False).triage_count == 0

    from incidents import services

    services.incident_triage(incident=incident, actor=incident.created_by, severity="low", malicious="no")
    metrics_refresh_changed()

    assert MonthlyMetric.objects.get(month=month, is_drill=False).triage_count == 1


def test_the_page_shows_tables_and_charts_and_downloads_the_same_numbers_as_csv(responder, make_incident):
    _march(make_incident)
    metrics_refresh(now=START + timedelta(days=20))
    client = _client_for(responder)

    page = client.get(reverse("dashboard:metrics"), {"from": "2026-03", "to": "2026-03"})
    download = client.get(reverse("dashboard:metrics"), {"from": "2026-03", "to": "2026-03", "format": "csv"})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="chart-times"' in html and "vendor/chartjs/chart.umd.min.js" in html
    assert 'id="metrics-data" type="application/json"' in html
    assert "<td>4 h" in html and "50 %" in html
    assert download["Content-Type"].startswith("text/csv")
    assert "attachment" in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0][:4] == ["month", "incidents", "triaged", "time_to_triage_median_hours"]
    assert rows[1] == ["2026-03", "3", "2", "4", "2", "6", "2", "44", "2", "1", "0.5"]


def test_the_api_answers_the_same_figures_as_json(auditor, make_incident):
    _march(make_incident)
    metrics_refresh(now=START + timedelta(days=20))
    client = _client_for(auditor)

    body = client.get("/api/metrics/", {"from": "2026-03", "to": "2026-03"}).json()
    drills = client.get("/api/metrics/", {"from": "2026-03-01", "to": "2026-03-31", "drills": "true"}).json()

    assert body["months"] == [
        {
            "month": "2026-03",
            "incidents": 3,
            "time_to_triage_median_hours": 4.0,
            "triaged": 2,
            "time_to_declare_median_hours": 6.0,
            "declared": 2,
            "time_to_notify_median_hours": 44.0,
            "notified": 2,
            "clocks_settled": 2,
            "clocks_on_time": 1,
            "notified_within_window_share": 0.5,
        }
    ]
    assert body["include_drills"] is False and body["refreshed_at"].endswith("Z")
    assert drills["months"][0]["incidents"] == 4


def test_bad_periods_answer_400_with_the_reason(responder):
    client = _client_for(responder)

    assert client.get("/api/metrics/", {"from": "March"}).status_code == 400
    backwards = client.get("/api/metrics/", {"from": "2026-05", "to": "2026-01"})
    assert backwards.status_code == 400 and "ends before it starts" in backwards.content.decode()
    assert client.get("/api/metrics/", {"drills": "maybe"}).status_code == 400
    page = client.get(reverse("dashboard:metrics"), {"from": "2026-13"})
    assert page.status_code == 400 and "YYYY-MM" in page.content.decode()
    assert client.get(reverse("dashboard:metrics"), {"format": "xml"}).status_code == 400


def test_the_metrics_page_says_when_nothing_was_computed_yet(responder):
    page = _client_for(responder).get(reverse("dashboard:metrics")).content.decode()

    assert "Not computed yet" in page


def test_only_roles_that_see_incidents_see_metrics(outsider):
    client = _client_for(outsider)

    assert client.get(reverse("dashboard:metrics")).status_code == 403
    assert client.get("/api/metrics/").status_code == 403


def test_the_page_reads_in_a_fixed_number_of_queries(responder, make_incident):
    client = _client_for(responder)
    metrics_refresh(now=timezone.now())
    client.get(reverse("dashboard:metrics"))
    make_incident(title="The first")
    metrics_refresh(now=timezone.now())
    with capture_queries("metrics over 1 incident") as one:
        client.get(reverse("dashboard:metrics"), {"from": "2020-01", "to": "2026-12"})
    for number in range(49):
        make_incident(title=f"Incident {number}")
    metrics_refresh(now=timezone.now())
    with capture_queries("metrics over 50 incidents") as fifty:
        client.get(reverse("dashboard:metrics"), {"from": "2020-01", "to": "2026-12"})
    assert_same_query_count(one, fifty)
    # session, user, account expiry, user and group permissions, the audit-site check, the rows
    with assert_query_count(one.count, "the metrics API"):
        client.get("/api/metrics/", {"from": "2020-01", "to": "2026-12"})


def test_a_lifecycle_moment_recomputes_its_month_after_commit(
    db, make_incident, django_capture_on_commit_callbacks
):
    """The dashboard's hook in settings.LIFECYCLE_HOOKS: triage and declaration show at once."""
    with django_capture_on_commit_callbacks(execute=True):
        incident = make_incident(state="declared")

    row = MonthlyMetric.objects.get(month=month_of(incident.created_at), is_drill=False)

    assert (row.incidents, row.triage_count, row.declare_count) == (1, 1, 1)
