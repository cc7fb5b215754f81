"""Training: courses, completion records imported from the LMS, who is overdue, and the
warning when someone whose mandatory training has lapsed takes charge of a breach.

People are identified by email address, normalised (trimmed, lower case): an LMS export names
staff by email, most of whom have no account here. The people who must be trained are the
active members of ``TRAINED_GROUPS`` (the response team) and everyone with a training record.
A completion counts from ``completed_at`` until ``expires_at`` (exclusive: at that instant it
has lapsed). A mandatory course is *lapsed* for a person whose latest completion has expired,
and *never completed* for one with no completion of it.

Writes (every one audited in the course's hash chain, ``postmortems.training_audit``):
``course_create``, ``course_update`` and ``training_records_import``. Reads: ``training_statuses``,
``training_lapses_for_user``, ``training_overdue``. Lifecycle hooks (``settings.LIFECYCLE_HOOKS``):
``warn_owner_training_lapsed`` and ``warn_approver_training_lapsed``.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.db.models.functions import Lower, Trim
from django.utils import timezone

from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden
from incidents.lifecycle import HookContext
from incidents.models import Incident
from postmortems.models import Course, TrainingImport, TrainingRecord
from postmortems.training_audit import IMPORT_VERB, records_digest, training_audit_append

#: Groups whose active members must hold every mandatory course: the response team. Auditors
#: (external, read-only) are not among them, unless the LMS export lists them.
TRAINED_GROUPS: tuple[str, ...] = ("responder", "incident_manager")

#: A completion later than now by more than this is a typing error, not a fact.
CLOCK_SKEW = timedelta(minutes=5)

#: The people on one page of the overdue list (API and web).
OVERDUE_PAGE_SIZE = 100

#: Rows the SQLite driver may bind at once is limited; lists of emails are queried in chunks.
_CHUNK = 500


def normalise_email(email: str) -> str:
    """The form in which people are matched: trimmed and in lower case (``" Ann@X.example"``
    becomes ``"ann@x.example"``)."""
    return email.strip().lower()


# --- Status ---------------------------------------------------------------------------------


class Status:
    """A person's standing in one mandatory course (values are an API contract)."""

    VALID = "valid"
    LAPSED = "lapsed"
    NEVER_COMPLETED = "never_completed"


@dataclass(frozen=True)
class CourseStatus:
    """One person's standing in one mandatory course at an instant.

    ``status``: ``Status.VALID``, ``LAPSED`` or ``NEVER_COMPLETED``. ``since`` (aware, UTC):
    for ``lapsed``, when the latest completion expired; for ``never_completed``, when the
    course became due for the person (the later of ``course.mandatory_since`` and the
    account's creation; ``mandatory_since`` alone for people without an account); ``None``
    when valid. ``last_completed_at``, ``expires_at``: the latest completion and the latest
    expiry, ``None`` when never completed.
    """

    course: Course
    status: str
    since: datetime | None
    last_completed_at: datetime | None
    expires_at: datetime | None

    @property
    def is_valid(self) -> bool:
        return self.status == Status.VALID

    def as_json(self) -> dict[str, Any]:
        """``{"code", "name", "status", "since", "last_completed_at", "expires_at"}``; instants
        as ISO 8601 strings in UTC, or ``None``."""
        return {
            "code": self.course.code,
            "name": self.course.name,
            "status": self.status,
            "since": _iso(self.since),
            "last_completed_at": _iso(self.last_completed_at),
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True)
class PersonStatus:
    """One person: ``email`` (normalised; ``""`` for an account without an address), the
    matching account (``None``: staff without one), and the statuses of the courses listed."""

    email: str
    user: Any | None
    courses: list[CourseStatus]

    @property
    def overdue(self) -> list[CourseStatus]:
        """The courses that are lapsed or never completed."""
        return [status for status in self.courses if not status.is_valid]


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def mandatory_courses() -> list[Course]:
    """Every mandatory course, by code."""
    return list(Course.objects.filter(is_mandatory=True).order_by("code"))


def _latest(
    emails: Sequence[str], courses: Sequence[Course]
) -> dict[tuple[str, int], tuple[datetime, datetime]]:
    """``{(email, course id): (latest completed_at, latest expires_at)}`` for ``emails``."""
    latest: dict[tuple[str, int], tuple[datetime, datetime]] = {}
    course_ids = [course.pk for course in courses]
    for start in range(0, len(emails), _CHUNK):
        rows = (
            TrainingRecord.objects.filter(email__in=emails[start : start + _CHUNK], course_id__in=course_ids)
            .values("email", "course_id")
            .annotate(last_completed_at=Max("completed_at"), expires_at=Max("expires_at"))
            .order_by()
        )
        for row in rows:
            latest[(row["email"], row["course_id"])] = (row["last_completed_at"], row["expires_at"])
    return latest


def _course_status(
    course: Course, latest: tuple[datetime, datetime] | None, user: Any | None, at: datetime
) -> CourseStatus:
    if latest is None:
        due_from = course.mandatory_since or course.created_at
        joined = getattr(user, "date_joined", None)
        if joined is not None and joined > due_from:
            due_from = joined
        return CourseStatus(course, Status.NEVER_COMPLETED, due_from, None, None)
    last_completed_at, expires_at = latest
    if expires_at > at:
        return CourseStatus(course, Status.VALID, None, last_completed_at, expires_at)
    return CourseStatus(course, Status.LAPSED, expires_at, last_completed_at, expires_at)


def _users_by_email(emails: Sequence[str]) -> dict[str, Any]:
    """The account for each of ``emails`` (normalised), where one exists: an active account
    before an inactive one, then the oldest."""
    users: dict[str, Any] = {}
    user_model = get_user_model()
    for start in range(0, len(emails), _CHUNK):
        for user in (
            user_model.objects.annotate(normalised_email=Lower(Trim("email")))
            .filter(normalised_email__in=emails[start : start + _CHUNK])
            .order_by("-is_active", "id")
        ):
            users.setdefault(user.normalised_email, user)
    return users


def training_statuses(
    emails: Sequence[str],
    *,
    at: datetime,
    users: Mapping[str, Any] | None = None,
    courses: Sequence[Course] | None = None,
) -> list[PersonStatus]:
    """The standing of each person in ``emails`` (normalised) in every mandatory course at
    ``at`` (aware), in the order given. ``users``: the accounts by email, and ``courses``: the
    mandatory courses (``mandatory_courses()``), when already known (otherwise looked up).
    At most three queries whatever the number of people (per 500 of them)."""
    courses = mandatory_courses() if courses is None else courses
    if users is None:
        users = _users_by_email(list(emails))
    latest = _latest(list(emails), courses) if courses else {}
    return [
        PersonStatus(
            email=email,
            user=users.get(email),
            courses=[
                _course_status(course, latest.get((email, course.pk)), users.get(email), at)
                for course in courses
            ],
        )
        for email in emails
    ]


def training_status_for_user(
    user: Any, *, at: datetime | None = None, courses: Sequence[Course] | None = None
) -> PersonStatus:
    """``user``'s standing in every mandatory course (``courses`` when already fetched) at
    ``at`` (default now). An account with no email address cannot be matched to LMS records:
    every mandatory course is never completed for it."""
    at = at or timezone.now()
    courses = mandatory_courses() if courses is None else courses
    email = normalise_email(user.email or "")
    if not email:
        return PersonStatus("", user, [_course_status(course, None, user, at) for course in courses])
    return training_statuses([email], at=at, users={email: user}, courses=courses)[0]


def training_lapses_for_user(user: Any, *, at: datetime | None = None) -> list[CourseStatus]:
    """The mandatory courses ``user`` has let lapse or never completed at ``at`` (default now);
    ``[]`` when every one is valid (or none is mandatory)."""
    return training_status_for_user(user, at=at).overdue


@dataclass(frozen=True)
class OverduePage:
    """A page of the overdue list: ``people`` (each with only their overdue courses) in email
    order, and ``next_after``: the email to continue after, ``None`` on the last page."""

    people: list[PersonStatus]
    next_after: str | None


def _trained_users() -> Any:
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=TRAINED_GROUPS)
        .annotate(normalised_email=Lower(Trim("email")))
    )


def training_overdue(
    *,
    at: datetime,
    after: str | None = None,
    limit: int = OVERDUE_PAGE_SIZE,
    courses: Sequence[Course] | None = None,
) -> OverduePage:
    """The people whose mandatory training has lapsed or was never done at ``at`` (aware), in
    email order, ``limit`` people from the one after ``after`` (a normalised email; ``None``:
    from the start). Each person carries only the courses that are overdue.

    Keyset pagination, no counting: candidates come from two ordered, limited queries that each
    find only people who are overdue: (1) people with records holding a valid completion of
    fewer mandatory courses than there are, grouped by email; (2) members of ``TRAINED_GROUPS``
    with no record at all. A page ends where the first of them was cut short, so nobody is
    skipped. Accounts of the response team without an email address (which no LMS record can
    match) come first on the first page. ``courses``: the mandatory courses when already
    fetched. Six queries per page at most.
    """
    courses = mandatory_courses() if courses is None else courses
    if not courses:
        return OverduePage([], None)
    course_ids = [course.pk for course in courses]
    fetch = limit + 1

    with_records = TrainingRecord.objects.all()
    if after is not None:
        with_records = with_records.filter(email__gt=after)
    record_candidates = [
        row["email"]
        for row in with_records.values("email")
        .annotate(
            valid=Count("course_id", distinct=True, filter=Q(course_id__in=course_ids, expires_at__gt=at))
        )
        .filter(valid__lt=len(course_ids))
        .order_by("email")[:fetch]
    ]
    trained = _trained_users().exclude(normalised_email="")
    if after is not None:
        trained = trained.filter(normalised_email__gt=after)
    account_candidates = list(
        trained.exclude(Exists(TrainingRecord.objects.filter(email=OuterRef("normalised_email"))))
        .order_by("normalised_email")
        .values_list("normalised_email", flat=True)
        .distinct()[:fetch]
    )

    # Complete up to the smallest last email of a source that was cut short.
    boundaries = [source[-1] for source in (record_candidates, account_candidates) if len(source) == fetch]
    boundary = min(boundaries) if boundaries else None
    candidates = sorted(
        email for email in {*record_candidates, *account_candidates} if boundary is None or email <= boundary
    )
    taken = candidates[:limit]
    more = len(candidates) > limit or boundary is not None
    next_after = taken[-1] if more and taken else None

    people = [person for person in training_statuses(taken, at=at, courses=courses) if person.overdue]
    people = [PersonStatus(person.email, person.user, person.overdue) for person in people]
    if after is None:
        without_email = [
            PersonStatus("", user, [_course_status(course, None, user, at) for course in courses])
            for user in _trained_users().filter(normalised_email="").distinct().order_by("username")
        ]
        people = without_email + people
    return OverduePage(people, next_after)


# --- Courses --------------------------------------------------------------------------------

#: Course fields that ``course_create`` and ``course_update`` set.
COURSE_FIELDS: tuple[str, ...] = ("code", "name", "is_mandatory", "validity_days")


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def course_create(*, actor: Any, fields: Mapping[str, Any]) -> Course:
    """Create a course from ``fields`` (``COURSE_FIELDS``: ``code``, ``name`` and
    ``validity_days`` required) and return it. A mandatory course is mandatory from now.

    ``actor``: the user (needs ``postmortems.add_course``: superusers), or ``None`` for the
    system (the demo seed). Raises ``ActionForbidden``; ``ValidationError`` for unknown fields,
    bad values or a code in use. Writes the course and the first event of its chain
    (``course_created`` with the fields).
    """
    if actor is not None:
        _require(actor, "postmortems.add_course")
    unknown = sorted(set(fields).difference(COURSE_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    with transaction.atomic():
        now = timezone.now()
        course = Course(**fields, created_at=now)
        if course.is_mandatory:
            course.mandatory_since = now
        course.full_clean()
        course.save()
        training_audit_append(
            course=course,
            actor=actor,
            verb="course_created",
            data={"fields": {name: getattr(course, name) for name in COURSE_FIELDS}},
            at=now,
        )
    return course


def course_update(*, course: Course, actor: Any, changes: Mapping[str, Any]) -> Course:
    """Change a course's ``COURSE_FIELDS`` and return it. Making it mandatory sets
    ``mandatory_since`` to now; making it optional clears it. A new ``validity_days`` applies to
    completions recorded from then on: records already stored keep their ``expires_at``
    (records are never edited in place).

    Raises ``ActionForbidden`` without ``postmortems.change_course``; ``ValidationError`` for
    unknown fields or bad values. Writes ``course_updated`` with ``{field: [old, new]}`` in the
    course's chain when anything changed.
    """
    _require(actor, "postmortems.change_course")
    unknown = sorted(set(changes).difference(COURSE_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be set here."))
    with transaction.atomic():
        locked = Course.objects.select_for_update().get(pk=course.pk)
        diff = {
            name: [getattr(locked, name), value]
            for name, value in changes.items()
            if getattr(locked, name) != value
        }
        if not diff:
            return locked
        for name, value in changes.items():
            setattr(locked, name, value)
        now = timezone.now()
        if "is_mandatory" in diff:
            locked.mandatory_since = now if locked.is_mandatory else None
        locked.full_clean()
        locked.save()
        training_audit_append(
            course=locked, actor=actor, verb="course_updated", data={"changes": diff}, at=now
        )
    return locked


# --- Import ---------------------------------------------------------------------------------

#: The LMS export's columns (header row required, in any order). ``score`` may be left out.
COLUMNS: tuple[str, ...] = ("email", "course_code", "completed_at", "score")
REQUIRED_COLUMNS: tuple[str, ...] = ("email", "course_code", "completed_at")


@dataclass(frozen=True)
class Completion:
    """One validated row of an LMS export: ``line`` (the file's line number, the header is
    line 1), ``email`` normalised, ``completed_at`` aware UTC, ``score`` 0-100 or ``None``."""

    line: int
    email: str
    course_code: str
    completed_at: datetime
    score: Decimal | None

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.email, self.course_code, self.completed_at)


class TrainingImportRefused(Exception):
    """The import stored nothing; ``problems``: one line each, ``line N, column X: what``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) found; nothing was stored.")


def parse_completed_at(text: str) -> datetime:
    """An LMS completion instant: ISO 8601 with an offset (``2026-03-01T09:30:00+01:00``,
    ``...Z``), or a date alone (``2026-03-01``), taken as 00:00 UTC at its start so that a
    completion never counts longer than it can have. Returns an aware UTC instant; raises
    ``ValueError`` with the reason (no offset, not a date)."""
    text = text.strip()
    unreadable = "is neither a date (YYYY-MM-DD) nor an ISO 8601 instant (e.g. 2026-03-01T09:30:00+01:00)"
    if len(text) == 10:
        try:
            day = datetime.strptime(text, "%Y-%m-%d")  # noqa: DTZ007 (made aware on the next line)
        except ValueError:
            raise ValueError(unreadable) from None
        return day.replace(tzinfo=UTC)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(unreadable) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("has no timezone offset (add one, e.g. +01:00 or Z, or give a date)")
    return instant.astimezone(UTC)


def _parse_score(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        score = Decimal(text)
    except InvalidOperation:
        raise ValueError("is not a number") from None
    if not score.is_finite() or not 0 <= score <= 100:
        raise ValueError("is not from 0 to 100")
    if score != score.quantize(Decimal("0.01")):
        raise ValueError("has more than two decimal places")
    return score.quantize(Decimal("0.01"))


def read_training_csv(
    handle: TextIO, *, at: datetime | None = None, defer_stored_checks: bool = False
) -> tuple[list[Completion], list[str]]:
    """Parse and check an LMS export (``COLUMNS``, see the module docstring and README) and
    return its completions with the problems found, each ``line N, column X: what is wrong``,
    in line order. The completions are usable only when there is no problem.

    Checks per cell: a valid email, a course code, ``completed_at`` (``parse_completed_at``)
    not in the future (beyond ``CLOCK_SKEW`` after ``at``, default now), ``score`` empty or 0 to
    100 with at most two decimals. Then per file (``check_completions``): known course codes,
    and no completion that contradicts another row or a stored record. Blank lines are skipped.
    ``defer_stored_checks``: leave the per-file checks to ``training_records_import`` (which
    makes them in its transaction anyway) unless a cell is wrong, so that a clean file is read
    against the stored records once, and a bad one still has every problem listed at once.
    Raises ``csv.Error`` for a file the csv module cannot read.
    """
    at = at or timezone.now()
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        return [], ["line 1: empty file, expected a header row: " + ",".join(COLUMNS)]
    names = [cell.strip().lower() for cell in header]
    problems = [
        f"line 1, column {name or '(blank)'}: unknown column; the columns are {', '.join(COLUMNS)}"
        for name in names
        if name not in COLUMNS
    ]
    problems += [f"line 1, column {name}: missing" for name in REQUIRED_COLUMNS if name not in names]
    problems += [f"line 1, column {name}: appears twice" for name in COLUMNS if names.count(name) > 1]
    if problems:
        return [], problems

    completions: list[Completion] = []
    for cells in reader:
        # The line the row ends on (a quoted cell may span lines).
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            problems.append(f"line {line}: {len(cells)} cells, the header has {len(names)}")
            continue
        cell = {name: value.strip() for name, value in zip(names, cells, strict=True)}
        row_problems: list[str] = []
        email = normalise_email(cell["email"])
        if not email:
            row_problems.append("column email: required")
        else:
            try:
                if len(email) > 254:
                    raise ValidationError("too long")
                validate_email(email)
            except ValidationError:
                row_problems.append(f"column email: {cell['email']!r} is not a valid email address")
        code = cell["course_code"]
        if not code:
            row_problems.append("column course_code: required")
        completed_at = None
        if not cell["completed_at"]:
            row_problems.append("column completed_at: required")
        else:
            try:
                completed_at = parse_completed_at(cell["completed_at"])
            except ValueError as error:
                row_problems.append(f"column completed_at: {cell['completed_at']!r} {error}")
            else:
                if completed_at > at + CLOCK_SKEW:
                    row_problems.append(f"column completed_at: {cell['completed_at']!r} is in the future")
        score = None
        try:
            score = _parse_score(cell.get("score", ""))
        except ValueError as error:
            row_problems.append(f"column score: {cell['score']!r} {error}")
        if row_problems or completed_at is None:
            problems += [f"line {line}, {problem}" for problem in row_problems]
            continue
        completions.append(Completion(line, email, code, completed_at, score))
    if problems or not defer_stored_checks:
        problems += check_completions(completions)
    return completions, sorted(problems, key=_line_of)


def _line_of(problem: str) -> int:
    match = re.match(r"line (\d+)", problem)
    return int(match.group(1)) if match else 0


@dataclass
class _Plan:
    """What an import would do: the courses by code, the new completions, how many rows were
    already recorded (or repeated in the file), and the problems."""

    courses: dict[str, Course] = field(default_factory=dict)
    new: list[Completion] = field(default_factory=list)
    already_recorded: int = 0
    problems: list[str] = field(default_factory=list)


def _plan(completions: Sequence[Completion], *, lock: bool = False) -> _Plan:
    plan = _Plan()
    codes = sorted({completion.course_code for completion in completions})
    courses = Course.objects.filter(code__in=codes).order_by("pk")
    if lock:
        courses = courses.select_for_update()
    plan.courses = {course.code: course for course in courses}
    seen: dict[tuple[str, str, datetime], Completion] = {}
    known: list[Completion] = []
    for completion in completions:
        if completion.course_code not in plan.courses:
            plan.problems.append(
                f"line {completion.line}, column course_code: unknown course {completion.course_code!r} "
                "(courses are added in /admin/ first)"
            )
            continue
        earlier = seen.get(completion.key)
        if earlier is not None:
            if earlier.score != completion.score:
                plan.problems.append(
                    f"line {completion.line}, column score: line {earlier.line} records the same completion "
                    f"with score {_score(earlier.score)}"
                )
            else:
                plan.already_recorded += 1
            continue
        seen[completion.key] = completion
        known.append(completion)

    stored: dict[tuple[str, int, datetime], Decimal | None] = {}
    emails = sorted({completion.email for completion in known})
    course_ids = [course.pk for course in plan.courses.values()]
    for start in range(0, len(emails), _CHUNK):
        for email, course_id, completed_at, score in TrainingRecord.objects.filter(
            email__in=emails[start : start + _CHUNK], course_id__in=course_ids
        ).values_list("email", "course_id", "completed_at", "score"):
            stored[(email, course_id, completed_at)] = score
    for completion in known:
        key = (completion.email, plan.courses[completion.course_code].pk, completion.completed_at)
        if key not in stored:
            plan.new.append(completion)
        elif _same_score(stored[key], completion.score):
            plan.already_recorded += 1
        else:
            plan.problems.append(
                f"line {completion.line}, column score: this completion is already recorded with score "
                f"{_score(stored[key])}; records are never changed"
            )
    return plan


def _same_score(stored: Decimal | None, given: Decimal | None) -> bool:
    if stored is None or given is None:
        return stored is None and given is None
    return Decimal(stored).quantize(Decimal("0.01")) == given


def _score(score: Decimal | None) -> str:
    return "(none)" if score is None else str(score)


def check_completions(completions: Sequence[Completion]) -> list[str]:
    """The problems that the stored data reveals in ``completions`` (``line N, column X: what``):
    unknown course codes, and a completion (person, course, completed_at) given again with
    another score, in the file or against a stored record. Reads only."""
    return _plan(completions).problems


@dataclass(frozen=True)
class ImportResult:
    """What ``training_records_import`` did: the ``TrainingImport`` row (with its counts), the
    course codes in the file, and how many distinct people, of whom how many have an account."""

    training_import: TrainingImport
    course_codes: list[str]
    people: int
    people_with_account: int

    def line(self) -> str:
        """The summary line the command prints."""
        run = self.training_import
        return (
            f"Training records: {run.rows} rows; {run.recorded} recorded, {run.already_recorded} already recorded; "
            f"courses {', '.join(self.course_codes)}; {self.people} people, {self.people_with_account} with an account."
        )


def training_records_import(
    *,
    completions: Sequence[Completion],
    file_name: str,
    file_sha256: str,
    actor: Any | None = None,
    at: datetime | None = None,
) -> ImportResult:
    """Store the completions of one LMS export, all or nothing, and return what was done.

    ``completions``: from ``read_training_csv`` (validated). ``file_name``, ``file_sha256``:
    which file (kept on the ``TrainingImport`` row and in the audit events). ``actor``: the user
    running it (needs ``postmortems.add_trainingrecord``), or ``None`` for an operator at the
    command line. ``at``: when (default now, aware).

    In one transaction: locks the courses named (in id order), re-checks every completion
    against the stored records (``check_completions``), stores the new ones with
    ``expires_at = completed_at + course.validity`` and the account with that email, if any;
    a completion already stored with the same score is counted, not stored again (idempotent).
    Appends ``training_imported`` to each named course's chain with the counts and
    ``records_sha256``. Raises ``TrainingImportRefused`` (nothing stored) for unknown courses,
    contradictions or a concurrent import of the same completion; ``ActionForbidden``.
    """
    if actor is not None:
        _require(actor, "postmortems.add_trainingrecord")
    at = at or timezone.now()
    try:
        with transaction.atomic():
            plan = _plan(completions, lock=True)
            if plan.problems:
                raise TrainingImportRefused(plan.problems)
            run = TrainingImport.objects.create(
                file_name=file_name[:500],
                file_sha256=file_sha256,
                imported_at=at,
                imported_by=actor,
                rows=len(completions),
                recorded=len(plan.new),
                already_recorded=plan.already_recorded,
            )
            emails = sorted({completion.email for completion in completions})
            users = _users_by_email(emails)
            # In UTC before adding: an instant in a zone with DST would add wall-clock days
            # (23 or 25 real hours across a change), not elapsed time.
            records = [
                TrainingRecord(
                    email=completion.email,
                    user=users.get(completion.email),
                    course=plan.courses[completion.course_code],
                    completed_at=completion.completed_at.astimezone(UTC),
                    expires_at=completion.completed_at.astimezone(UTC)
                    + plan.courses[completion.course_code].validity,
                    score=completion.score,
                    imported_in=run,
                    recorded_at=at,
                )
                for completion in plan.new
            ]
            TrainingRecord.objects.bulk_create(records, batch_size=1000)
            by_course: dict[str, list[TrainingRecord]] = defaultdict(list)
            for record in records:
                by_course[record.course.code].append(record)
            rows_by_course: dict[str, int] = defaultdict(int)
            for completion in completions:
                rows_by_course[completion.course_code] += 1
            for code, course in sorted(plan.courses.items()):
                added = by_course.get(code, [])
                training_audit_append(
                    course=course,
                    actor=actor,
                    verb=IMPORT_VERB,
                    data={
                        "import": run.pk,
                        "file_name": run.file_name,
                        "file_sha256": file_sha256,
                        "rows": rows_by_course[code],
                        "recorded": len(added),
                        "records_sha256": records_digest(
                            (r.email, r.completed_at, r.expires_at, r.score) for r in added
                        ),
                    },
                    at=at,
                )
    except IntegrityError:
        # Another import stored one of these completions between our check and our insert.
        raise TrainingImportRefused(
            ["line 1: another import stored some of these completions at the same time; run it again"]
        ) from None
    return ImportResult(
        training_import=run,
        course_codes=sorted(plan.courses),
        people=len(emails),
        people_with_account=len(users),
    )


# --- Lifecycle hooks (settings.LIFECYCLE_HOOKS) ----------------------------------------------

#: The verb of the warning in the incident's audit trail (shown as "Training lapse warning").
WARNING_VERB = "training_lapse_warning"


def _warn(incident: Incident, *, person: Any, role: str, context: HookContext, extra: dict[str, Any]) -> None:
    lapses = training_lapses_for_user(person, at=context.at)
    if not lapses:
        return
    audit_append(
        incident=incident,
        actor=context.actor,
        verb=WARNING_VERB,
        data={
            "person": person.get_username(),
            "email": normalise_email(person.email or ""),
            "as": role,
            **extra,
            "lapsed_courses": [
                {"code": s.course.code, "status": s.status, "since": _iso(s.since)} for s in lapses
            ],
        },
        at=context.at,
    )


def warn_owner_training_lapsed(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``owner_assigned``, ``saved``: when the new owner (``context.inputs["owner"]``) has a
    mandatory course lapsed or never completed, append ``training_lapse_warning`` to the
    incident's audit trail (``{"person", "email", "as": "incident owner", "lapsed_courses":
    [{"code", "status", "since"}]}``). Warns; never refuses. No audit data returned."""
    owner = context.inputs.get("owner")
    if owner is not None:
        _warn(incident, person=owner, role="incident owner", context=context, extra={})
    return {}


def warn_approver_training_lapsed(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``notice_approved``, ``saved``: the same warning, ``"as": "notice approver"`` with the
    notice's number, when the approving incident manager (``context.actor``) has a mandatory
    course lapsed or never completed. The deadline scanner's automatic notice (no actor) is
    not warned about. No audit data returned."""
    if context.actor is not None:
        notice = context.inputs.get("notice")
        extra = {"notice": notice.number} if notice is not None else {}
        _warn(incident, person=context.actor, role="notice approver", context=context, extra=extra)
    return {}
