"""Clock arithmetic is exact elapsed time in UTC; local time never enters the sum."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifications.clocks import customer_notice_window, due_at, thresholds_passed

SEVENTY_TWO_HOURS = timedelta(hours=72)


def test_it_counts_72_real_hours_across_berlins_spring_forward():
    declared = datetime(2027, 3, 28, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # CET, 23:30Z the day before

    assert due_at(declared, SEVENTY_TWO_HOURS) == datetime(2027, 3, 30, 23, 30, tzinfo=UTC)


def test_it_counts_72_real_hours_after_new_yorks_spring_forward():
    declared = datetime(2027, 3, 12, 9, 0, tzinfo=ZoneInfo("America/New_York"))  # EST, 14:00Z

    assert due_at(declared, SEVENTY_TWO_HOURS) == datetime(2027, 3, 15, 14, 0, tzinfo=UTC)


def test_a_local_wall_clock_sum_would_be_an_hour_off():
    """The trap the UTC rule avoids: 72 wall-clock hours in Berlin are 71 real hours here."""
    declared = datetime(2027, 3, 28, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    wall_clock_sum = (declared + SEVENTY_TWO_HOURS).astimezone(UTC)

    assert due_at(declared, SEVENTY_TWO_HOURS) - wall_clock_sum == timedelta(hours=1)


def test_weekends_and_holidays_do_not_move_a_deadline():
    christmas_eve = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)  # a Thursday before a long weekend
    assert due_at(christmas_eve, SEVENTY_TWO_HOURS) == datetime(2026, 12, 27, 18, 0, tzinfo=UTC)


def test_it_refuses_naive_instants_and_empty_windows():
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2027, 1, 1, 12, 0), SEVENTY_TWO_HOURS)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="positive"):
        due_at(datetime(2027, 1, 1, tzinfo=UTC), timedelta(0))


def test_a_contract_may_shorten_the_window_but_never_lengthen_it(settings):
    settings.NOTICE_WINDOW_HOURS = 72

    assert customer_notice_window(24) == timedelta(hours=24)
    assert customer_notice_window(72) == timedelta(hours=72)
    assert customer_notice_window(None) == timedelta(hours=72)
    settings.NOTICE_WINDOW_HOURS = 48
    assert customer_notice_window(72) == timedelta(hours=48)


@pytest.mark.parametrize(
    ("hours_before_due", "expected"),
    [
        (48 + 1 / 60, []),
        (48, ["48h"]),
        (24 + 1 / 60, ["48h"]),
        (24, ["48h", "24h"]),
        (12, ["48h", "24h", "12h"]),
        (6, ["48h", "24h", "12h", "6h"]),
        (1 + 1 / 60, ["48h", "24h", "12h", "6h"]),
        (1, ["48h", "24h", "12h", "6h", "1h"]),
        (0, ["48h", "24h", "12h", "6h", "1h"]),
        (-1 / 60, ["48h", "24h", "12h", "6h", "1h", "overdue"]),
    ],
)
def test_thresholds_are_reached_exactly_at_their_instant(hours_before_due, expected):
    starts = datetime(2027, 5, 3, 8, 0, tzinfo=UTC)
    due = starts + SEVENTY_TWO_HOURS

    assert (
        thresholds_passed(starts_at=starts, due=due, now=due - timedelta(hours=hours_before_due)) == expected
    )


def test_a_short_window_has_no_warnings_longer_than_itself():
    starts = datetime(2027, 5, 3, 8, 0, tzinfo=UTC)
    due = starts + timedelta(hours=24)

    assert thresholds_passed(starts_at=starts, due=due, now=starts) == []
    assert thresholds_passed(starts_at=starts, due=due, now=due - timedelta(hours=12)) == ["12h"]
