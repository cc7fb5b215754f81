"""``python manage.py send_contact_confirmations [--customer ACCOUNT ...]``: ask customers to
confirm their administrative contacts.

Without ``--customer``: first marks "unconfirmed" the customers whose last links expired
unanswered, then asks every customer that is due (never asked, or asked
``CONTACT_CONFIRMATION_DAYS`` or more ago, with a deliverable administrative contact), the same
work beat runs daily. With ``--customer``: asks those customers now, due or not. Each request is
an email in the outbox (the recipient's language), sent by the worker (or by
``manage.py check_deadlines``). Exit status 1 with one line for an unknown account reference.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.models import Customer
from notifications.confirmations import contacts_confirmation_request, contacts_confirmation_round


class Command(BaseCommand):
    help = "Email customers' administrative contacts a link to confirm or correct them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customer",
            action="append",
            default=None,
            metavar="ACCOUNT",
            help="Ask this customer now (its account reference), whether due or not; repeatable.",
        )

    def handle(self, *args: Any, customer: list[str] | None = None, **options: Any) -> None:
        if customer:
            found = {c.account_reference: c for c in Customer.objects.filter(account_reference__in=customer)}
            unknown = sorted(set(customer) - set(found))
            if unknown:
                raise CommandError(f"No customer with account reference {', '.join(unknown)}.")
            for reference in customer:
                links = contacts_confirmation_request(customer=found[reference])
                if links:
                    self.stdout.write(f"{reference}: {len(links)} confirmation request(s) queued.")
                else:
                    self.stderr.write(f"{reference}: nobody to ask (no deliverable administrative contact).")
            return
        asked = requests = marked = 0
        while True:
            result = contacts_confirmation_round()
            asked += result.customers_asked
            requests += result.requests
            marked += result.customers_marked_unconfirmed
            if not result.more_due:
                break
        self.stdout.write(
            f"Marked {marked} customer(s) unconfirmed. Asked {asked} customer(s): "
            f"{requests} confirmation request(s) queued."
        )
