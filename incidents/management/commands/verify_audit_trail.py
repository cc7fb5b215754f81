"""``python manage.py verify_audit_trail [--incident REFERENCE ...] [--customer ACCOUNT ...]
[--chain NAME ...] [--checkpoint-file PATH]``: recompute the audit hash chains (one per incident,
one per customer, one per training course: every chain in ``incidents.audit.CHAINS``) under
the audit keys, check them against the signed checkpoints, and report each break on standard
error, one line each: the chain (incident reference, ``customer ACCOUNT``, ``course CODE``), the
row, the reason and the kind in brackets (``incidents.audit``: ``changed_row``,
``unkeyed_hash``, ``unknown_key``, ``deleted_row``, ``truncated_tail``, ``checkpoint_mismatch``,
``deleted_chain``, ``checkpoint_signature``, ``records_changed``). Exit status 0 when every
chain verifies, 1 on any break (or a bad argument).

The checkpoints are those in the database plus, when given (default ``AUDIT_CHECKPOINT_FILE``),
those in the checkpoint file, so deleting checkpoint rows does not hide a truncation.
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.audit import CHAINS, verify_chain
from incidents.checkpoints import read_checkpoint_file
from incidents.models import AuditCheckpoint, Customer, Incident


class Command(BaseCommand):
    help = "Verify the hash chains of the audit trail; non-zero exit if any row was tampered with."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--incident",
            action="append",
            default=None,
            metavar="REFERENCE",
            help="Only this incident's chain (e.g. BD-2026-00042); repeatable.",
        )
        parser.add_argument(
            "--customer",
            action="append",
            default=None,
            metavar="ACCOUNT",
            help="Only this customer's chain (its account reference); repeatable.",
        )
        parser.add_argument(
            "--chain",
            action="append",
            default=None,
            metavar="NAME",
            help=f"Only the chains of this kind ({', '.join(CHAINS)}); repeatable.",
        )
        parser.add_argument(
            "--checkpoint-file",
            default=None,
            metavar="PATH",
            help="Also check against the checkpoints in this file (default: AUDIT_CHECKPOINT_FILE when set).",
        )

    def handle(
        self,
        *args: Any,
        incident: list[str] | None = None,
        customer: list[str] | None = None,
        chain: list[str] | None = None,
        checkpoint_file: str | None = None,
        **options: Any,
    ) -> None:
        subjects: dict[str, list[int] | None] = {}
        for name in chain or []:
            if name not in CHAINS:
                raise CommandError(f"No audit chain named {name}; the chains are {', '.join(CHAINS)}.")
            subjects[name] = None
        if incident:
            found = dict(Incident.objects.filter(reference__in=incident).values_list("reference", "pk"))
            unknown = sorted(set(incident) - set(found))
            if unknown:
                raise CommandError(f"No incident with reference {', '.join(unknown)}.")
            subjects["incident"] = list(found.values())
        if customer:
            found = dict(
                Customer.objects.filter(account_reference__in=customer).values_list("account_reference", "pk")
            )
            unknown = sorted(set(customer) - set(found))
            if unknown:
                raise CommandError(f"No customer with account reference {', '.join(unknown)}.")
            subjects["customer"] = list(found.values())
        extra: list[AuditCheckpoint] = []
        path = checkpoint_file or settings.AUDIT_CHECKPOINT_FILE
        if path and (checkpoint_file or Path(path).exists()):
            try:
                extra = list(read_checkpoint_file(Path(path)))
            except (OSError, ValueError) as error:
                raise CommandError(f"Cannot read the checkpoint file: {error}") from error
        breaks = verify_chain(subjects=subjects or None, extra_checkpoints=extra)
        for chain_break in breaks:
            self.stderr.write(f"{chain_break.describe()} [{chain_break.kind}]")
        if breaks:
            raise CommandError(f"Audit trail does not verify: {len(breaks)} break(s).", returncode=1)
        self.stdout.write("Audit trail verifies: every chain is intact.")
