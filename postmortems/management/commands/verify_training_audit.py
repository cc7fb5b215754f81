"""``python manage.py verify_training_audit [--course CODE ...]``: recompute the training audit
hash chains (one per course) and the digests of the records each import stored, and report any
break. Exit status 0 when everything verifies, 1 otherwise.

The training chain is registered with the audit trail, so ``verify_audit_trail`` (with its
checkpoints) covers it too; see ``postmortems.training_audit``.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from postmortems.models import Course
from postmortems.training_audit import verify_training_chains


class Command(BaseCommand):
    help = "Verify the training audit trail (one hash chain per course, and the imported records); exit 1 on a break."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--course",
            action="append",
            default=None,
            metavar="CODE",
            help="Only this course's chain (its code); repeatable.",
        )

    def handle(self, *args: Any, course: list[str] | None = None, **options: Any) -> None:
        course_ids = None
        if course:
            found = dict(Course.objects.filter(code__in=course).values_list("code", "pk"))
            unknown = sorted(set(course) - set(found))
            if unknown:
                raise CommandError(f"No course with code {', '.join(unknown)}.")
            course_ids = list(found.values())
        breaks = verify_training_chains(course_ids=course_ids)
        codes = dict(Course.objects.filter(pk__in={b.course_id for b in breaks}).values_list("pk", "code"))
        for chain_break in breaks:
            where = f" event {chain_break.sequence}" if chain_break.sequence else ""  # 0: the whole chain
            self.stderr.write(f"course {codes.get(chain_break.course_id)}{where}: {chain_break.reason}")
        if breaks:
            raise CommandError(f"Training audit trail does not verify: {len(breaks)} break(s).", returncode=1)
        self.stdout.write("Training audit trail verifies: every course's chain and its records are intact.")
