"""Pinning the number of SQL queries a request or a block runs, and saying which ones they were
when the number is off (after zulip's ``assert_database_query_count``).

    from tests.queries import assert_query_count, capture_queries, assert_same_query_count

    with assert_query_count(7, "the incident list"):
        client.get("/incidents/")

    with capture_queries() as small:
        client.get(page_with_3_rows)
    with capture_queries() as large:
        client.get(page_with_30_rows)
    assert_same_query_count(small, large)

A failure lists every query, numbered, with its SQL, so the one that appeared (an N+1, a
forgotten ``select_related``) can be read off the test output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext


@dataclass
class QueryLog:
    """The SQL of the queries a block ran, in order (filled when the block ends)."""

    label: str = ""
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)

    def listing(self) -> str:
        """Every query, numbered from 1, one per paragraph."""
        return "\n".join(f"  {number}. {sql}" for number, sql in enumerate(self.statements, start=1))


@contextmanager
def capture_queries(label: str = "", *, using: str = DEFAULT_DB_ALIAS) -> Iterator[QueryLog]:
    """Record the queries the block runs on database ``using`` into the ``QueryLog`` it yields."""
    log = QueryLog(label=label)
    with CaptureQueriesContext(connections[using]) as captured:
        yield log
    log.statements = [query["sql"] for query in captured.captured_queries]


@contextmanager
def assert_query_count(
    expected: int, label: str = "", *, using: str = DEFAULT_DB_ALIAS
) -> Iterator[QueryLog]:
    """Fail unless the block runs exactly ``expected`` queries on ``using``; the failure lists
    each query that ran. Yields the ``QueryLog``."""
    with capture_queries(label, using=using) as log:
        yield log
    if log.count != expected:
        what = f" for {label}" if label else ""
        pytest.fail(
            f"Expected {expected} queries{what}, but {log.count} ran:\n{log.listing()}",
            pytrace=False,
        )


def assert_same_query_count(first: QueryLog, second: QueryLog) -> None:
    """Fail unless two captured blocks ran as many queries (the same page with 1 row and 50, on
    page 1 and page 200); the failure lists both."""
    if first.count != second.count:
        pytest.fail(
            f"{first.label or 'The first block'} ran {first.count} queries and "
            f"{second.label or 'the second'} {second.count}.\n"
            f"{first.label or 'First'}:\n{first.listing()}\n{second.label or 'Second'}:\n{second.listing()}",
            pytrace=False,
        )
