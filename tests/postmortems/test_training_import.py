"""``manage.py import_training``: the LMS export's columns, per-row errors naming the line and
the column, nothing half-imported, idempotent re-imports, and who the records belong to."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from postmortems.models import TrainingAuditEvent, TrainingImport, TrainingRecord
from postmortems.training import read_training_csv, training_records_import

HEADER = "email,course_code,completed_at,score\n"


@pytest.fixture
def courses(make_course):
    return {
        "DP-101": make_course("DP-101", validity_days=365),
        "IR-201": make_course("IR-201", validity_days=730),
    }


def test_it_records_each_completion_with_its_expiry_and_prints_a_summary(run_import, courses, manager):
    run = run_import(
        HEADER
        + "Max.Manager@Breachdesk.TEST,DP-101,2026-03-01T09:30:00+01:00,87.5\n"
        + "ola.nordmann@staff.example,DP-101,2026-02-10,\n"
        + "ola.nordmann@staff.example,IR-201,2026-02-11T08:00:00Z,100\n"
    )

    assert run.error is None, run.err
    assert run.out.strip() == (
        "Training records: 3 rows; 3 recorded, 0 already recorded; courses DP-101, IR-201; "
        "2 people, 1 with an account."
    )
    max_record = TrainingRecord.objects.get(email="max.manager@breachdesk.test")
    assert max_record.user == manager  # matched case-insensitively
    assert max_record.completed_at == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert max_record.expires_at == datetime(2026, 3, 1, 8, 30, tzinfo=UTC) + timedelta(days=365)
    assert max_record.score == Decimal("87.50")
    ola_dp = TrainingRecord.objects.get(email="ola.nordmann@staff.example", course__code="DP-101")
    assert ola_dp.user is None  # staff without an account are recorded too
    assert ola_dp.completed_at == datetime(2026, 2, 10, tzinfo=UTC)  # a date: 00:00 UTC at its start
    assert ola_dp.score is None
    run_row = TrainingImport.objects.get()
    assert (run_row.rows, run_row.recorded, run_row.already_recorded) == (3, 3, 0)
    assert run_row.file_name.endswith(".csv") and len(run_row.file_sha256) == 64


def test_it_accepts_the_columns_in_any_order_and_without_score(run_import, courses):
    run = run_import("completed_at,email,course_code\n2026-05-04T10:00:00+02:00,a@staff.example,IR-201\n")

    assert run.error is None, run.err
    record = TrainingRecord.objects.get()
    assert (record.email, record.course.code, record.score) == ("a@staff.example", "IR-201", None)


def test_it_names_the_line_and_column_of_every_bad_row_and_stores_nothing(run_import, courses):
    run = run_import(
        HEADER
        + "good@staff.example,DP-101,2026-03-01T09:30:00+01:00,90\n"  # line 2: fine
        + "not-an-email,DP-101,2026-03-01T09:30:00+01:00,90\n"  # line 3
        + "b@staff.example,DP-999,2026-03-01T09:30:00+01:00,90\n"  # line 4
        + "c@staff.example,DP-101,2026-03-01T09:30:00,90\n"  # line 5: no offset
        + "d@staff.example,DP-101,2999-01-01T00:00:00Z,90\n"  # line 6: future
        + "e@staff.example,DP-101,2026-03-01,101\n"  # line 7
        + "f@staff.example,DP-101,2026-03-01,ninety\n"  # line 8
        + ",,,\n"  # line 9: blank, skipped
        + "g@staff.example,,01/03/2026,\n"  # line 10: two problems
        + "h@staff.example,DP-101\n"  # line 11
        + "i@staff.example,DP-101,2026-03-01,85.125\n"  # line 12
    )

    assert run.error is not None and "10 problem(s) found; nothing was stored" in str(run.error)
    assert run.problems == [
        "line 3, column email: 'not-an-email' is not a valid email address",
        "line 4, column course_code: unknown course 'DP-999' (courses are added in /admin/ first)",
        "line 5, column completed_at: '2026-03-01T09:30:00' has no timezone offset (add one, e.g. +01:00 or Z, or give a date)",
        "line 6, column completed_at: '2999-01-01T00:00:00Z' is in the future",
        "line 7, column score: '101' is not from 0 to 100",
        "line 8, column score: 'ninety' is not a number",
        "line 10, column course_code: required",
        "line 10, column completed_at: '01/03/2026' is neither a date (YYYY-MM-DD) nor an ISO 8601 instant (e.g. 2026-03-01T09:30:00+01:00)",
        "line 11: 2 cells, the header has 4",
        "line 12, column score: '85.125' has more than two decimal places",
    ]
    assert not TrainingRecord.objects.exists()
    assert not TrainingImport.objects.exists()
    assert not TrainingAuditEvent.objects.filter(verb="training_imported").exists()


def test_it_refuses_a_header_with_unknown_or_missing_columns(run_import, courses):
    run = run_import("email,course,completed_at,scores\na@staff.example,DP-101,2026-03-01,\n")

    assert run.error is not None
    assert run.problems == [
        "line 1, column course: unknown column; the columns are email, course_code, completed_at, score",
        "line 1, column scores: unknown column; the columns are email, course_code, completed_at, score",
        "line 1, column course_code: missing",
    ]
    assert not TrainingRecord.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "line 1: empty file"),
        (b"\xff\xfe\x00bad", "not UTF-8 text"),
        (HEADER.encode(), "no rows to import"),
    ],
)
def test_it_refuses_an_unusable_file_with_one_line(run_import, courses, content, message):
    run = run_import(content)

    assert run.error is not None
    assert message in str(run.error) + run.err
    assert not TrainingRecord.objects.exists()


def test_it_says_so_when_the_file_does_not_exist(courses):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no such file"):
        call_command("import_training", "/nonexistent/export.csv")


def test_a_second_import_of_the_same_file_stores_nothing_new(run_import, courses):
    text = (
        HEADER + "a@staff.example,DP-101,2026-03-01T09:30:00+01:00,90\nb@staff.example,IR-201,2026-03-02,\n"
    )
    run_import(text)

    again = run_import(text.replace("a@staff.example", "A@Staff.Example"))

    assert again.error is None, again.err
    assert "0 recorded, 2 already recorded" in again.out
    assert TrainingRecord.objects.count() == 2
    assert TrainingImport.objects.count() == 2  # each run is kept, with what it did
    assert TrainingImport.objects.order_by("id").values_list("recorded", flat=True)[1] == 0


def test_a_later_completion_of_the_same_course_is_a_new_record(run_import, courses):
    run_import(HEADER + "a@staff.example,DP-101,2025-03-01,70\n")

    run = run_import(HEADER + "a@staff.example,DP-101,2025-03-01,70\na@staff.example,DP-101,2026-03-01,95\n")

    assert "1 recorded, 1 already recorded" in run.out
    assert list(TrainingRecord.objects.filter(email="a@staff.example").values_list("score", flat=True)) == [
        Decimal("95.00"),
        Decimal("70.00"),
    ]


def test_a_repeated_row_counts_once_and_a_contradicting_row_is_refused(run_import, courses):
    repeated = run_import(
        HEADER + "a@staff.example,DP-101,2026-03-01,90\na@staff.example,DP-101,2026-03-01,90.00\n"
    )
    assert "1 recorded, 1 already recorded" in repeated.out

    contradicting = run_import(
        HEADER + "b@staff.example,DP-101,2026-03-01,90\nb@staff.example,DP-101,2026-03-01T00:00:00Z,60\n"
    )
    assert contradicting.problems == [
        "line 3, column score: line 2 records the same completion with score 90.00",
    ]
    assert not TrainingRecord.objects.filter(email="b@staff.example").exists()


def test_a_completion_already_recorded_with_another_score_is_refused_not_changed(run_import, courses):
    run_import(HEADER + "a@staff.example,DP-101,2026-03-01,90\n")

    run = run_import(
        HEADER + "new@staff.example,IR-201,2026-03-01,50\na@staff.example,DP-101,2026-03-01,40\n"
    )

    assert run.problems == [
        "line 3, column score: this completion is already recorded with score 90.00; records are never changed",
    ]
    assert TrainingRecord.objects.get(email="a@staff.example").score == Decimal("90.00")
    assert not TrainingRecord.objects.filter(email="new@staff.example").exists()


def test_it_reports_line_numbers_of_rows_after_a_quoted_cell_spanning_lines(run_import, courses):
    run = run_import(
        'email,course_code,completed_at,score\n"a@staff.example",DP-101,"2026-03-01\n",\nbad,DP-101,2026-03-01,\n'
    )

    assert "line 4, column email: 'bad' is not a valid email address" in run.problems


def test_records_are_never_edited_in_place(record_completions, courses):
    record_completions([("a@staff.example", "DP-101", datetime(2026, 3, 1, tzinfo=UTC), "90")])
    record = TrainingRecord.objects.get()

    record.score = Decimal("10")
    with pytest.raises(ValueError, match="never edited in place"):
        record.save()


def test_the_importer_named_with_by_is_recorded_and_needs_the_permission(
    run_import, courses, superuser, manager
):
    text = HEADER + "a@staff.example,DP-101,2026-03-01,90\n"

    forbidden = run_import(text, "--by", manager.username)
    assert forbidden.error is not None and "postmortems.add_trainingrecord" in str(forbidden.error)
    unknown = run_import(text, "--by", "nobody")
    assert unknown.error is not None and "no user 'nobody'" in str(unknown.error)
    assert not TrainingRecord.objects.exists()

    allowed = run_import(text, "--by", superuser.username)
    assert allowed.error is None
    assert TrainingImport.objects.get().imported_by == superuser
    assert TrainingAuditEvent.objects.get(verb="training_imported").actor_username == superuser.username


def test_the_service_checks_again_inside_its_transaction(courses, record_completions):
    """A completion stored with another score between reading the file and importing it (a
    concurrent import) refuses the whole import."""
    from io import StringIO

    from postmortems.training import TrainingImportRefused

    completions, problems = read_training_csv(
        StringIO(HEADER + "b@staff.example,IR-201,2026-03-01,80\na@staff.example,DP-101,2026-03-01,90\n")
    )
    assert problems == []
    record_completions([("a@staff.example", "DP-101", datetime(2026, 3, 1, tzinfo=UTC), "20")])

    with pytest.raises(TrainingImportRefused) as refused:
        training_records_import(completions=completions, file_name="x.csv", file_sha256="")

    assert refused.value.problems == [
        "line 3, column score: this completion is already recorded with score 20.00; records are never changed"
    ]
    assert not TrainingRecord.objects.filter(email="b@staff.example").exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_file_at_once_store_each_completion_once(make_course):
    """The course row lock serialises imports: the second waits, then finds every completion
    recorded (idempotent), instead of failing on the unique constraint or storing twice."""
    from io import StringIO

    from tests.conftest import ensure_groups

    ensure_groups()
    make_course("DP-101")
    text = HEADER + "".join(f"p{n}@staff.example,DP-101,2026-03-01T10:00:{n:02d}Z,{n}\n" for n in range(40))
    completions, problems = read_training_csv(StringIO(text))
    assert problems == []
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(
                training_records_import(completions=completions, file_name="x.csv", file_sha256="")
            )
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(result.training_import.recorded for result in results) == [0, 40]
    assert TrainingRecord.objects.count() == 40


def test_a_file_whose_only_fault_is_an_unknown_course_stores_nothing(run_import, courses):
    run = run_import(HEADER + "a@staff.example,DP-101,2026-03-01,90\nb@staff.example,XX-9,2026-03-01,90\n")

    assert run.error is not None and "1 problem(s) found; nothing was stored" in str(run.error)
    assert run.problems == [
        "line 3, column course_code: unknown course 'XX-9' (courses are added in /admin/ first)"
    ]
    assert not TrainingRecord.objects.exists()
    assert not TrainingImport.objects.exists()
