#!/usr/bin/env python
"""Readiness benchmark: the readiness counts, the first page of ``GET /api/customers/?deliverable=
false`` and the confirmation round's "who is due?" query over 10,000 and then 100,000 customers.

Run from the repository root (PostgreSQL: the plans are the point):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/readiness.py

It creates and drops its own database (``bench_breachdesk_readiness``, or ``--database``). Each customer has two
administrative contacts; 1 % of customers have both refused (unreachable), 1 % are marked
unconfirmed, and every customer was asked 100 days ago except 1 % never asked (due). It prints
for each size the median of five runs of each query and the ratio large / small. The counts read
every customer (a report), so they grow with the table; the list page and the due query read a
page or a batch, so they should not. Nothing is asserted; it exits 1 only if a figure is wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def load(first: int, count: int, now: datetime) -> None:
    """Customers ``first`` .. ``first + count - 1`` with two administrative contacts each."""
    from incidents.models import Contact, Customer

    asked = now - timedelta(days=100)
    customers = Customer.objects.bulk_create(
        (
            Customer(
                name=f"Readiness Customer {n:07d}",
                account_reference=f"READY-{n:07d}",
                contacts_confirmation_requested_at=None if n % 100 == 1 else asked,
                contacts_confirmed_at=asked,
                contacts_unconfirmed_since=now if n % 100 == 2 else None,
            )
            for n in range(first, first + count)
        ),
        batch_size=2000,
    )
    Contact.objects.bulk_create(
        (
            Contact(
                customer=customer,
                name=f"Admin {index}",
                email=f"admin{index}@{customer.account_reference.lower()}.example",
                undeliverable_at=now if customer.account_reference.endswith("00") else None,
                undeliverable_reason="550 No such user" if customer.account_reference.endswith("00") else "",
            )
            for customer in customers
            for index in (1, 2)
        ),
        batch_size=4000,
    )


def median_seconds(function: Callable[[], object], runs: int = 5) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument(
        "--database",
        default="bench_breachdesk_readiness",
        help="name of the throwaway database (dropped after)",
    )
    args = parser.parse_args()
    if args.large <= args.small or args.small % 100 or args.large % 100:
        parser.error("--large must be above --small, both multiples of 100")

    from _throwaway import throwaway_database

    with throwaway_database(args.database) as vendor:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db import connection
        from django.utils import timezone
        from rest_framework.test import APIClient

        from incidents.readiness import readiness_figures
        from notifications.confirmations import customers_due_for_confirmation

        now = timezone.now()
        manager = get_user_model().objects.create_user("bench.manager")
        manager.groups.add(Group.objects.get(name="incident_manager"))
        api = APIClient(HTTP_HOST="127.0.0.1")  # an allowed host without a test runner
        api.force_authenticate(manager)
        print(f"Database: {vendor}; {args.small:,} and {args.large:,} customers, two contacts each")
        results = {}
        loaded = 0
        wrong = []
        for size in (args.small, args.large):
            started = time.perf_counter()
            load(loaded, size - loaded, now)
            loaded = size
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            load_seconds = time.perf_counter() - started
            figures = readiness_figures()
            if figures.customers_unreachable != size // 100 or figures.customers_unconfirmed != size // 100:
                wrong.append(f"{size:,}: {figures}")

            def first_page(size: int = size) -> None:
                response = api.get("/api/customers/?deliverable=false")
                assert response.status_code == 200 and len(response.json()["results"]) == min(50, size // 100)

            def due_batch(size: int = size) -> None:
                assert len(customers_due_for_confirmation(now, limit=501)) == min(501, size // 100)

            results[size] = (
                median_seconds(readiness_figures),
                median_seconds(first_page),
                median_seconds(due_batch),
            )
            counts, page, due = results[size]
            print(
                f"{size:>8,} customers (loaded in {load_seconds:.1f} s): counts {counts * 1000:.1f} ms, "
                f"first page of ?deliverable=false {page * 1000:.1f} ms, due batch {due * 1000:.1f} ms "
                f"(medians of 5)"
            )
        small, large = results[args.small], results[args.large]
        print(
            f"Ratio {args.large:,} / {args.small:,}: counts {large[0] / small[0]:.2f}, "
            f"list page {large[1] / small[1]:.2f}, due batch {large[2] / small[2]:.2f}"
        )
    for problem in wrong:
        print(f"FAIL: wrong figures at {problem}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
