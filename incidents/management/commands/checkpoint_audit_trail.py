"""``python manage.py checkpoint_audit_trail``: write a signed checkpoint of every audit chain
that grew since its last one (what beat runs every 15 minutes; ``incidents.checkpoints``), and
say how many. Safe to run at any time, and twice."""

from typing import Any

from django.core.management.base import BaseCommand

from incidents.checkpoints import audit_checkpoints_write


class Command(BaseCommand):
    help = "Checkpoint every audit chain that grew (signed length and head hash, outside the audit tables)."

    def handle(self, *args: Any, **options: Any) -> None:
        written = audit_checkpoints_write()
        self.stdout.write(f"Wrote {len(written)} audit checkpoint(s).")
