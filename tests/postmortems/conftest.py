"""Fixtures for training tests: courses and completions made through the real services, and
LMS export files run through ``manage.py import_training``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def make_course(db):
    """``make_course(code, validity_days=365, is_mandatory=True, name=...)`` through
    ``course_create`` (the system as actor)."""
    from postmortems.training import course_create

    def build(code: str, *, validity_days: int = 365, is_mandatory: bool = True, name: str = ""):
        return course_create(
            actor=None,
            fields={
                "code": code,
                "name": name or f"Course {code}",
                "is_mandatory": is_mandatory,
                "validity_days": validity_days,
            },
        )

    return build


@pytest.fixture
def record_completions(db):
    """``record_completions([(email, code, completed_at, score), ...])``: store completions
    through ``training_records_import``; returns its ``ImportResult``."""
    from postmortems.training import Completion, normalise_email, training_records_import

    def record(rows: list[tuple[str, str, datetime, str | None]], *, at: datetime | None = None):
        completions = [
            Completion(
                line=number,
                email=normalise_email(email),
                course_code=code,
                completed_at=completed_at,
                score=Decimal(score).quantize(Decimal("0.01")) if score is not None else None,
            )
            for number, (email, code, completed_at, score) in enumerate(rows, start=2)
        ]
        return training_records_import(completions=completions, file_name="test", file_sha256="", at=at)

    return record


@dataclass
class ImportRun:
    """What ``manage.py import_training`` printed, and the ``CommandError`` it raised (or ``None``)."""

    out: str
    err: str
    error: CommandError | None

    @property
    def problems(self) -> list[str]:
        """The problem lines, without the leading file name."""
        return [line.split(": ", 1)[1] for line in self.err.splitlines() if ": " in line]


@pytest.fixture
def run_import(tmp_path):
    """``run_import(text, *args) -> ImportRun``: write ``text`` to a CSV file and run
    ``manage.py import_training`` on it."""
    counter = iter(range(1000))

    def run(text: str | bytes, *args: str, name: str | None = None) -> ImportRun:
        path = tmp_path / (name or f"export-{next(counter)}.csv")
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        out, err = StringIO(), StringIO()
        try:
            call_command("import_training", str(path), *args, stdout=out, stderr=err)
        except CommandError as error:
            return ImportRun(out.getvalue(), err.getvalue(), error)
        return ImportRun(out.getvalue(), err.getvalue(), None)

    return run
