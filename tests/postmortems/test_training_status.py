"""Expiry arithmetic and the overdue list: who must be trained, lapsed versus never completed,
since when, and keyset pages that skip nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from postmortems.models import TrainingRecord
from postmortems.training import (
    Status,
    course_update,
    training_lapses_for_user,
    training_overdue,
    training_status_for_user,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_expiry_is_completion_plus_validity_in_exact_elapsed_time_across_a_dst_change(
    make_course, record_completions
):
    make_course("DAY-1", validity_days=1)
    # 28 March 2026, noon in Berlin (CET, +01:00); the clocks go forward that night.
    completed = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    record_completions([("a@staff.example", "DAY-1", completed, None)])

    record = TrainingRecord.objects.get()
    assert record.expires_at - record.completed_at == timedelta(hours=24)
    assert record.expires_at == datetime(2026, 3, 29, 11, 0, tzinfo=UTC)
    assert record.expires_at.astimezone(BERLIN).hour == 13  # not noon: 24 real hours later


def test_a_completion_counts_until_the_instant_it_expires(make_course, record_completions, responder):
    make_course("DP-101", validity_days=365)
    completed = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    record_completions([(responder.email, "DP-101", completed, "90")])
    expires = completed + timedelta(days=365)

    just_before = training_status_for_user(responder, at=expires - timedelta(microseconds=1)).courses[0]
    at_expiry = training_status_for_user(responder, at=expires).courses[0]

    assert (just_before.status, just_before.expires_at) == (Status.VALID, expires)
    assert (at_expiry.status, at_expiry.since) == (Status.LAPSED, expires)
    assert training_lapses_for_user(responder, at=expires - timedelta(microseconds=1)) == []


def test_the_latest_completion_decides(make_course, record_completions, responder):
    make_course("DP-101", validity_days=365)
    now = timezone.now()
    record_completions(
        [
            (responder.email, "DP-101", now - timedelta(days=700), "60"),
            (responder.email, "DP-101", now - timedelta(days=10), "90"),
        ]
    )

    status = training_status_for_user(responder, at=now).courses[0]

    assert status.status == Status.VALID
    assert status.last_completed_at == (now - timedelta(days=10))


def test_a_new_validity_applies_to_completions_recorded_afterwards(
    make_course, record_completions, superuser
):
    course = make_course("DP-101", validity_days=365)
    first = datetime(2026, 1, 5, tzinfo=UTC)
    record_completions([("a@staff.example", "DP-101", first, None)])

    course_update(course=course, actor=superuser, changes={"validity_days": 30})
    record_completions([("b@staff.example", "DP-101", first, None)])

    assert TrainingRecord.objects.get(email="a@staff.example").expires_at == first + timedelta(days=365)
    assert TrainingRecord.objects.get(email="b@staff.example").expires_at == first + timedelta(days=30)


def test_the_overdue_list_names_lapsed_and_never_completed_courses_with_since_when(
    make_course, record_completions, personas, django_user_model
):
    now = timezone.now()
    dp = make_course("DP-101", validity_days=365)
    make_course("IR-201", validity_days=730)
    make_course("SEC-110", validity_days=30, is_mandatory=False)
    responder, manager, auditor = personas["responder"], personas["incident_manager"], personas["auditor"]
    record_completions(
        [
            # The responder is fully trained (an optional course lapsed: no matter).
            (responder.email, "DP-101", now - timedelta(days=5), "90"),
            (responder.email, "IR-201", now - timedelta(days=5), "90"),
            (responder.email, "SEC-110", now - timedelta(days=300), "90"),
            # The manager's DP-101 lapsed 35 days ago; IR-201 never done.
            (manager.email.upper(), "DP-101", now - timedelta(days=400), "81"),
            # Staff without an account: one fully trained, one lapsed.
            ("zoe@staff.example", "DP-101", now - timedelta(days=1), None),
            ("zoe@staff.example", "IR-201", now - timedelta(days=1), None),
            ("yann@staff.example", "IR-201", now - timedelta(days=800), None),
            ("yann@staff.example", "DP-101", now - timedelta(days=2), None),
        ]
    )
    # An incident manager with no record at all, who joined after DP-101 became mandatory.
    newcomer = django_user_model.objects.create_user(username="nina.new", email="Nina.New@breachdesk.test")
    newcomer.groups.add(Group.objects.get(name="incident_manager"))
    # Not on the response team and no records: not listed (the auditor, an outsider, an inactive manager).
    retired = django_user_model.objects.create_user(
        username="old", email="old@breachdesk.test", is_active=False
    )
    retired.groups.add(Group.objects.get(name="incident_manager"))

    page = training_overdue(at=now)

    listed = {
        person.email: (
            person.user.username if person.user else None,
            [(c.course.code, c.status) for c in person.courses],
        )
        for person in page.people
    }
    assert listed == {
        "max.manager@breachdesk.test": ("max.manager", [("DP-101", "lapsed"), ("IR-201", "never_completed")]),
        "nina.new@breachdesk.test": (
            "nina.new",
            [("DP-101", "never_completed"), ("IR-201", "never_completed")],
        ),
        "yann@staff.example": (None, [("IR-201", "lapsed")]),
    }
    assert [person.email for person in page.people] == sorted(listed)
    assert page.next_after is None
    manager_dp = page.people[0].courses[0]
    assert manager_dp.since == TrainingRecord.objects.get(email="max.manager@breachdesk.test").expires_at
    assert manager_dp.since < now
    newcomer_dp = page.people[1].courses[0]
    newcomer.refresh_from_db()
    assert newcomer_dp.since == max(dp.mandatory_since, newcomer.date_joined) == newcomer.date_joined
    assert auditor.email not in listed


def test_a_course_that_stops_being_mandatory_leaves_the_list(make_course, personas, superuser):
    course = make_course("DP-101")
    assert training_overdue(at=timezone.now()).people

    course_update(course=course, actor=superuser, changes={"is_mandatory": False})

    assert training_overdue(at=timezone.now()).people == []
    course.refresh_from_db()
    assert course.mandatory_since is None


def test_an_account_without_an_email_is_listed_first_as_never_trained(make_course, django_user_model):
    make_course("DP-101")
    nameless = django_user_model.objects.create_user(username="no.mail", email="")
    from tests.conftest import ensure_groups

    ensure_groups()
    nameless.groups.add(Group.objects.get(name="responder"))

    first = training_overdue(at=timezone.now())

    assert [(p.email, p.user, p.courses[0].status) for p in first.people] == [
        ("", nameless, Status.NEVER_COMPLETED)
    ]
    assert training_lapses_for_user(nameless)[0].status == Status.NEVER_COMPLETED


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_pages_of_the_overdue_list_cover_everyone_once_in_email_order(
    make_course, record_completions, django_user_model, limit
):
    from tests.conftest import ensure_groups

    ensure_groups()
    now = timezone.now()
    make_course("DP-101")
    make_course("IR-201")
    rows = []
    expected = []
    for n in range(9):
        email = f"p{n}@staff.example"
        if n % 3 == 0:  # trained: not listed
            rows += [
                (email, "DP-101", now - timedelta(days=1), None),
                (email, "IR-201", now - timedelta(days=1), None),
            ]
        else:
            rows.append((email, "DP-101", now - timedelta(days=400 if n % 2 else 1), None))
            expected.append(email)
    record_completions(rows)
    team = Group.objects.get(name="responder")
    for name in ("p05a", "p2a", "zz"):  # accounts without any record, interleaved
        user = django_user_model.objects.create_user(username=name, email=f"{name}@staff.example")
        user.groups.add(team)
        expected.append(f"{name}@staff.example")

    seen: list[str] = []
    after = None
    for _ in range(30):
        page = training_overdue(at=now, after=after, limit=limit)
        assert len(page.people) <= limit
        seen += [person.email for person in page.people]
        if page.next_after is None:
            break
        after = page.next_after

    assert seen == sorted(expected)


def test_nobody_is_overdue_without_a_mandatory_course(make_course, personas):
    make_course("SEC-110", is_mandatory=False)

    assert training_overdue(at=timezone.now()).people == []
    assert training_lapses_for_user(personas["responder"]) == []
