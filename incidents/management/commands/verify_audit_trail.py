"""``python manage.py verify_audit_trail [--incident REFERENCE ...]``: recompute the audit hash
chains and report any break. Exit status 0 when every chain verifies, 1 otherwise."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.audit import verify_chain
from incidents.models import Incident


class Command(BaseCommand):
    help = "Verify the hash chains of the audit trail; non-zero exit if any row was tampered with."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--incident",
            action="append",
            default=None,
            metavar="REFERENCE",
            help="Only this incident (e.g. BD-2026-00042); repeatable.",
        )

    def handle(self, *args: Any, incident: list[str] | None = None, **options: Any) -> None:
        incident_ids = None
        if incident:
            found = dict(Incident.objects.filter(reference__in=incident).values_list("reference", "pk"))
            unknown = sorted(set(incident) - set(found))
            if unknown:
                raise CommandError(f"No incident with reference {', '.join(unknown)}.")
            incident_ids = list(found.values())
        breaks = verify_chain(incident_ids=incident_ids)
        references = dict(
            Incident.objects.filter(pk__in={b.incident_id for b in breaks}).values_list("pk", "reference")
        )
        for chain_break in breaks:
            self.stderr.write(
                f"{references.get(chain_break.incident_id)} event {chain_break.sequence}: {chain_break.reason}"
            )
        if breaks:
            raise CommandError(f"Audit trail does not verify: {len(breaks)} break(s).", returncode=1)
        self.stdout.write("Audit trail verifies: every chain is intact.")
