"""The query-count helper (``tests.queries``) fails with every query listed, and passes when
the count is right."""

from __future__ import annotations

import pytest

from tests.queries import assert_query_count, assert_same_query_count, capture_queries


def _two_queries() -> None:
    from incidents.models import Customer

    list(Customer.objects.all())
    Customer.objects.filter(account_reference="NONE").exists()


def test_it_passes_when_the_count_is_right(db):
    with assert_query_count(2, "two reads") as log:
        _two_queries()
    assert log.count == 2


def test_it_fails_listing_every_query_when_the_count_is_off(db):
    with pytest.raises(pytest.fail.Exception) as failure:
        with assert_query_count(1, "one read"):
            _two_queries()
    message = str(failure.value)
    assert "Expected 1 queries for one read, but 2 ran:" in message
    assert "1. SELECT" in message and "2. SELECT" in message
    assert "NONE" in message


def test_it_compares_two_blocks_and_lists_both_when_they_differ(db):
    with capture_queries("one row") as small:
        _two_queries()
    with capture_queries("fifty rows") as large:
        _two_queries()
        _two_queries()
    with capture_queries("again") as again:
        _two_queries()

    assert_same_query_count(small, again)
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_same_query_count(small, large)
    assert "one row ran 2 queries and fifty rows 4" in str(failure.value)
    assert str(failure.value).count("SELECT") == 6


def test_every_test_that_counts_queries_uses_the_helper():
    """Query counts are pinned one way: pytest-django's counters and Django's capture context
    print nothing useful when a count is off, so tests use ``tests.queries`` instead."""
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    others = ("django_assert_num_queries", "django_assert_max_num_queries", "CaptureQueriesContext")
    offenders = sorted(
        f"{path.relative_to(tests)}: {name}"
        for path in tests.rglob("*.py")
        if path.name not in ("queries.py", Path(__file__).name)
        for name in others
        if name in path.read_text()
    )
    assert offenders == []
