#!/usr/bin/env python
"""Training benchmark: an LMS export for a large staff imported with ``import_training``, the
same file imported again (nothing new: the idempotent path), and pages of the overdue list.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/training.py
    #   --people N (default 50,000; 3 mandatory courses, about 3 completions each),
    #   --database NAME (the throwaway database, default bench_breachdesk_training)

It creates and drops its own database (``bench_breachdesk_training``). Of the people, 1 in 20
has let one course lapse and 1 in 20 never took one; the rest are up to date. It reports the
import's time and rows per second, the re-import's, and for the first, a middle and the last
page of the overdue list: the time and the number of queries, and the ratio of the last page's
time to the first's (keyset pages should not slow down with depth). On PostgreSQL it prints
EXPLAIN ANALYZE of the candidate query. Nothing is asserted; it exits 1 only if the list is
wrong (a person missing or listed twice).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

COURSES = (("DP-101", 365), ("IR-201", 730), ("SEC-110", 365))


def write_export(path: Path, people: int, now: datetime) -> set[str]:
    """Write the LMS export; return the emails of the people who are overdue."""
    overdue = set()
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,course_code,completed_at,score\n")
        for n in range(people):
            email = f"person{n:06d}@staff.example"
            for index, (code, validity) in enumerate(COURSES):
                if n % 20 == 1 and index == 2:  # never took SEC-110
                    overdue.add(email)
                    continue
                days = validity + 10 if (n % 20 == 2 and index == 0) else (n % 300) + 1
                if days > validity:
                    overdue.add(email)
                completed = (now - timedelta(days=days, seconds=n % 86400)).isoformat()
                handle.write(f"{email},{code},{completed},{70 + n % 31}\n")
    return overdue


def timed[T](function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument(
        "--database",
        default="bench_breachdesk_training",
        help="Name of the throwaway PostgreSQL database (created and dropped).",
    )
    options = parser.parse_args()

    from _throwaway import throwaway_database

    with throwaway_database(options.database) as vendor:
        from django.core.management import call_command
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from postmortems.training import course_create, training_overdue

        now = timezone.now()
        for code, validity in COURSES:
            course_create(
                actor=None,
                fields={"code": code, "name": code, "is_mandatory": True, "validity_days": validity},
            )
        folder = Path(tempfile.mkdtemp(prefix="breachdesk-bench-training-"))
        export = folder / "lms-export.csv"
        expected = write_export(export, options.people, now)
        rows = sum(1 for _ in export.open(encoding="utf-8")) - 1
        print(f"{vendor}: {options.people:,} people, {rows:,} completion rows, {len(expected):,} overdue")

        out = StringIO()
        _, first = timed(call_command, "import_training", str(export), stdout=out)
        print(f"import:    {first:7.1f} s  ({rows / first:,.0f} rows/s)  {out.getvalue().strip()}")
        if connection.vendor == "postgresql":
            # As autovacuum would soon after a large import: with the statistics of an empty
            # table the planner scans the whole table for each chunk of emails.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        out = StringIO()
        _, again = timed(call_command, "import_training", str(export), stdout=out)
        print(f"re-import: {again:7.1f} s  ({rows / again:,.0f} rows/s)  {out.getvalue().strip()}")

        seen: list[str] = []
        pages: list[tuple[float, int]] = []
        after = None
        at = timezone.now()
        while True:
            with CaptureQueriesContext(connection) as queries:
                page, seconds = timed(training_overdue, at=at, after=after)
            pages.append((seconds, len(queries)))
            seen += [person.email for person in page.people]
            if page.next_after is None:
                break
            after = page.next_after
        first_page, middle, last = pages[0], pages[len(pages) // 2], pages[-1]
        print(
            f"overdue list: {len(pages)} pages of up to 100 people; "
            f"first {first_page[0] * 1000:.0f} ms ({first_page[1]} queries), "
            f"middle {middle[0] * 1000:.0f} ms ({middle[1]}), last {last[0] * 1000:.0f} ms ({last[1]}); "
            f"median {statistics.median(p[0] for p in pages) * 1000:.0f} ms; "
            f"ratio last / first {last[0] / first_page[0]:.2f}"
        )
        if connection.vendor == "postgresql":
            from django.db.models import Count, Q

            from postmortems.models import Course, TrainingRecord

            ids = list(Course.objects.values_list("pk", flat=True))
            query = (
                TrainingRecord.objects.filter(email__gt=seen[len(seen) // 2])
                .values("email")
                .annotate(
                    valid=Count("course_id", distinct=True, filter=Q(course_id__in=ids, expires_at__gt=at))
                )
                .filter(valid__lt=len(ids))
                .order_by("email")[:101]
            )
            print("EXPLAIN ANALYZE of a middle page's candidate query:")
            print("  " + query.explain(analyze=True).replace("\n", "\n  "))
        if seen != sorted(expected):
            print(f"WRONG: listed {len(seen)}, expected {len(expected)}", file=sys.stderr)
            return 1
        print("every overdue person listed exactly once, in email order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
