"""``manage.py import_training FILE.csv [--by USERNAME]``: store the completions of an LMS
export, all or nothing.

The file (UTF-8, a header row, comma-separated) has the columns, in any order:

    email, course_code, completed_at, score

``email``: the person (matched case-insensitively; staff without an account here are recorded
too). ``course_code``: a course that exists (``/admin/``). ``completed_at``: an ISO 8601 instant
with an offset (``2026-03-01T09:30:00+01:00``, ``2026-03-01T08:30:00Z``) or a date
(``2026-03-01``: 00:00 UTC at its start). ``score``: 0 to 100, up to two decimals, or empty;
the column may be left out.

Every row is checked before anything is written; any problem prints one line per problem
(``FILE: line N, column X: what is wrong``), stores nothing and exits non-zero. Importing the
same file again stores nothing new (a completion is a person, a course and an instant). On
success it prints one summary line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from postmortems.training import COLUMNS, TrainingImportRefused, read_training_csv, training_records_import


class Command(BaseCommand):
    help = (
        "Import training completions from an LMS export (CSV with a header row; columns: "
        + ", ".join(COLUMNS)
        + "; score optional). All or nothing: any bad row stores nothing, lists each problem by "
        "line and column (the header is line 1) and exits non-zero. Re-importing is harmless."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, metavar="FILE.csv")
        parser.add_argument(
            "--by",
            metavar="USERNAME",
            default=None,
            help="Record this user as the importer (needs the permission to add training records).",
        )

    def handle(self, *args: Any, file: Path, by: str | None = None, **options: Any) -> None:
        actor = None
        if by is not None:
            actor = get_user_model().objects.filter(username=by).first()
            if actor is None:
                raise CommandError(f"--by: no user {by!r}.")
        try:
            content = file.read_bytes()
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file.") from None
        except OSError as error:
            raise CommandError(f"{file}: cannot be read ({error.strerror or error}).") from None
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text.") from None
        try:
            completions, problems = read_training_csv(io.StringIO(text, newline=""), defer_stored_checks=True)
        except csv.Error as error:
            raise CommandError(f"{file}: not a readable CSV file ({error}).") from None
        if not problems and not completions:
            raise CommandError(f"{file}: no rows to import.")
        if not problems:
            try:
                result = training_records_import(
                    completions=completions,
                    file_name=file.name,
                    file_sha256=hashlib.sha256(content).hexdigest(),
                    actor=actor,
                )
            except TrainingImportRefused as refused:
                problems = refused.problems
            except PermissionDenied as error:
                raise CommandError(f"--by {by}: {error}") from None
        if problems:
            for problem in problems:
                self.stderr.write(f"{file}: {problem}")
            raise CommandError(f"{file}: {len(problems)} problem(s) found; nothing was stored.")
        self.stdout.write(result.line())
