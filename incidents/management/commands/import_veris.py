"""``manage.py import_veris PATH [PATH ...]``: import VERIS JSON incident records as ``detected``
incidents (see ``incidents.veris`` for the mapping)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.veris import FileOutcome, import_veris_files, veris_files


class Command(BaseCommand):
    help = (
        "Import VERIS incident records (JSON files, or folders of files ending in .json in any "
        "letter case) as detected incidents. One transaction per file: a bad file is reported on "
        "stderr and the others still import. The record's incident_id is the idempotency key, "
        "so re-running imports nothing new. Exits non-zero if any file failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="A file or folder.")

    def handle(self, *args: Any, paths: list[Path], verbosity: int = 1, **options: Any) -> None:
        try:
            files = veris_files(paths)
        except OSError as error:  # A missing path, or a folder that cannot be listed.
            raise CommandError(str(error)) from None
        if not files:
            raise CommandError(f"No .json files in: {', '.join(str(path) for path in paths)}")

        def report(outcome: FileOutcome) -> None:
            if outcome.status == "failed":
                self.stderr.write(f"{outcome.path}: {outcome.reason}")
            elif verbosity >= 2:
                assert outcome.incident is not None  # set unless the file failed
                verb = "imported as" if outcome.status == "imported" else "already present as"
                self.stdout.write(f"{outcome.path}: {verb} {outcome.incident.reference}")

        summary = import_veris_files(files, on_outcome=report)
        self.stdout.write(summary.line())
        if summary.failed:
            raise CommandError(
                f"{len(summary.failed)} of {len(files)} files failed to import (reasons above)."
            )
