#!/usr/bin/env python
"""Deadline-scanner benchmark: one ``deadlines_scan`` pass over 10,000 and then 1,000,000 open
clocks, 100 of them due within the escalation horizon (48 hours), the same 100 both times.

Run from the repository root against PostgreSQL (the index plan is the point):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/scanner.py

It creates and drops its own database (``bench_breachdesk_scanner``), loads clocks with COPY (bulk_create
in batches on SQLite, slowly), runs ANALYZE, and reports for each size: the first pass (which
records the 100 clocks' escalations) and the median of three further passes (nothing new to
record), and the ratio 1,000,000 / 10,000 (target at most 1.5). It prints EXPLAIN ANALYZE of the
scanner's clock queries and exits 1 if PostgreSQL plans a sequential scan on the clock table
instead of using the partial index ``notifications_clock_open_due``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

CUSTOMERS = 1000  # each incident has a clock for each of them: clocks = incidents x customers
DUE = 100

#: (incident id, customer id, starts_at, window, due_at) of one clock.
type ClockRow = tuple[int, int, datetime, timedelta, datetime]


def make_parties(incidents: int, *, first_incident: int, now: datetime) -> tuple[list[int], list[int]]:
    """``incidents`` declared incidents (minimal rows, no lifecycle history) and, the first time,
    the customers; returns (incident ids, customer ids)."""
    from incidents.models import Customer, Incident

    if not Customer.objects.exists():
        Customer.objects.bulk_create(
            (
                Customer(name=f"Scan Customer {n:04d}", account_reference=f"SCAN-{n:04d}")
                for n in range(CUSTOMERS)
            ),
            batch_size=1000,
        )
    Incident.objects.bulk_create(
        (
            Incident(
                title=f"Scanner benchmark incident {n}",
                detection_source="staff_escalation",
                state="declared",
                reference=f"SCAN-{n:06d}",
                declared_at=now - timedelta(hours=1),
            )
            for n in range(first_incident, first_incident + incidents)
        ),
        batch_size=1000,
    )
    incident_ids = list(
        Incident.objects.filter(reference__startswith="SCAN-").order_by("id").values_list("id", flat=True)
    )[first_incident:]
    customer_ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    return incident_ids, customer_ids


def clock_rows(
    incident_ids: list[int], customer_ids: list[int], *, now: datetime, due: int
) -> Iterator[ClockRow]:
    """One open clock per (incident, customer); the first ``due`` are due within 48 hours
    (from one hour overdue to 47 hours left), the rest in 49 to 71 hours."""
    window = timedelta(hours=72)
    n = 0
    for incident_id in incident_ids:
        for customer_id in customer_ids:
            if n < due:
                due_at = now - timedelta(hours=1) + timedelta(minutes=n * 28)
            else:
                due_at = now + timedelta(hours=49) + timedelta(seconds=(n * 7919) % (22 * 3600))
            yield incident_id, customer_id, due_at - window, window, due_at
            n += 1


def load_clocks(rows: Iterable[ClockRow], vendor: str, now: datetime) -> int:
    from django.db import connection

    from notifications.models import Clock

    count = 0
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            columns = 'incident_id, kind, customer_id, starts_at, "window", due_at, late_reason, waiver_reason, created_at'
            with cursor.cursor.copy(f"COPY notifications_clock ({columns}) FROM STDIN") as copy:
                for incident_id, customer_id, starts_at, window, due_at in rows:
                    copy.write_row(
                        (incident_id, "customer_notice", customer_id, starts_at, window, due_at, "", "", now)
                    )
                    count += 1
        return count
    batch = []
    for incident_id, customer_id, starts_at, window, due_at in rows:
        batch.append(
            Clock(
                incident_id=incident_id,
                customer_id=customer_id,
                starts_at=starts_at,
                window=window,
                due_at=due_at,
                created_at=now,
            )
        )
        if len(batch) == 5000:
            count += len(Clock.objects.bulk_create(batch))
            batch = []
    count += len(Clock.objects.bulk_create(batch))
    return count


def analyze(vendor: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if vendor == "postgresql" else "ANALYZE")


def time_passes(now: datetime) -> tuple[float, float, int]:
    """(first pass seconds, median of three more, escalations the first pass recorded)."""
    from notifications.scanner import deadlines_scan

    started = time.perf_counter()
    first = deadlines_scan(now=now)
    first_seconds = time.perf_counter() - started
    again = []
    for _ in range(3):
        started = time.perf_counter()
        deadlines_scan(now=now)
        again.append(time.perf_counter() - started)
    return first_seconds, statistics.median(again), first.escalations


def explain(now: datetime, vendor: str) -> list[tuple[str, str]]:
    """EXPLAIN ANALYZE (SQLite: EXPLAIN QUERY PLAN) of every query on the clock table that one
    scanner pass runs, captured as the scanner sent them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications.scanner import deadlines_scan

    with CaptureQueriesContext(connection) as captured:
        deadlines_scan(now=now)
    clock_queries = []
    for query in captured.captured_queries:
        # The escalation pass iterates through a server-side cursor: DECLARE ... FOR SELECT.
        sql = re.sub(r'^DECLARE "[^"]+" .*? CURSOR .*?FOR (?=SELECT)', "", query["sql"])
        if sql.startswith("SELECT") and sql.partition(" FROM ")[2].startswith('"notifications_clock"'):
            clock_queries.append(sql)
    plans = []
    with connection.cursor() as cursor:
        for sql in clock_queries:
            cursor.execute(("EXPLAIN ANALYZE " if vendor == "postgresql" else "EXPLAIN QUERY PLAN ") + sql)
            plans.append((sql, "\n".join(str(row[-1]) for row in cursor.fetchall())))
    return plans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.small % CUSTOMERS or args.large % CUSTOMERS or args.large <= args.small:
        parser.error(f"sizes must be multiples of {CUSTOMERS} and --large above --small")

    from _throwaway import throwaway_database

    with throwaway_database("bench_breachdesk_scanner") as vendor:
        from django.utils import timezone

        from notifications.models import Clock, Escalation

        now = timezone.now()
        print(f"Database: {vendor}; {args.small:,} and {args.large:,} open clocks, {DUE} due within 48 h")
        results = {}
        plans = {}
        loaded = 0
        for size in (args.small, args.large):
            started = time.perf_counter()
            incident_ids, customer_ids = make_parties(
                (size - loaded) // CUSTOMERS, first_incident=loaded // CUSTOMERS, now=now
            )
            loaded += load_clocks(
                clock_rows(incident_ids, customer_ids, now=now, due=DUE if loaded == 0 else 0), vendor, now
            )
            analyze(vendor)
            load_seconds = time.perf_counter() - started
            assert Clock.objects.count() == size == loaded, (Clock.objects.count(), size, loaded)
            Escalation.objects.all().delete()  # the same 100 clocks escalate again at this size
            first, steady, escalations = time_passes(now)
            results[size] = (first, steady, escalations)
            plans[size] = explain(now, vendor)
            print(
                f"{size:>9,} open clocks (loaded in {load_seconds:.1f} s): first pass {first * 1000:.1f} ms "
                f"({escalations} escalations recorded for the {DUE} due clocks), later passes "
                f"{steady * 1000:.1f} ms (median of 3)"
            )

        small, large = results[args.small], results[args.large]
        print(
            f"Ratio {args.large:,} / {args.small:,}: first pass {large[0] / small[0]:.2f}, "
            f"later passes {large[1] / small[1]:.2f} (target <= 1.5)"
        )
        seq_scans = []
        for size, size_plans in plans.items():
            for name, plan in size_plans:
                print(
                    f"\n{size:,} clocks: {name}\nEXPLAIN{' ANALYZE' if vendor == 'postgresql' else ''}:\n{plan}"
                )
                if "Seq Scan on notifications_clock" in plan or (
                    "SCAN notifications_clock" in plan and "INDEX" not in plan
                ):
                    seq_scans.append((size, name))
                elif "notifications_clock_open_due" not in plan:
                    seq_scans.append(
                        (size, f"{name} (the partial index notifications_clock_open_due is not used)")
                    )
        if not all(plans.values()):
            seq_scans.append((0, "no query on the clock table was captured"))
    if seq_scans:
        for size, name in seq_scans:
            print(f"FAIL: sequential scan of the clock table at {size:,} clocks: {name}", file=sys.stderr)
        return 1
    print("\nBoth clock queries use the partial index notifications_clock_open_due at every size.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
