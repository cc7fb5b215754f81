"""Readiness: which customers could not be reached if a breach were declared today.

A customer is *unreachable* when it has no deliverable administrative contact
(``Contact.objects.deliverable()``: active, administrative, not refused for good by its mail
server, not a new address still waiting to confirm itself), and *unconfirmed* when its
contacts were not confirmed through the last confirmation link before it expired
(``Customer.contacts_unconfirmed_since``). The readiness page, the customer API's
``?deliverable=`` and ``?unconfirmed=`` filters and ``GET /api/customers/readiness/`` read these
queries; a metrics page shows ``readiness_figures``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db.models import Exists, OuterRef, QuerySet

from incidents.models import Contact, Customer


def has_deliverable_contact() -> Exists:
    """``Exists`` over the customer's deliverable administrative contacts (partial index
    ``incidents_contact_deliverable``), for ``annotate`` or ``filter`` on customers."""
    return Exists(Contact.objects.deliverable().filter(customer_id=OuterRef("pk")))


def customers_unreachable() -> QuerySet[Customer]:
    """Customers with no deliverable administrative contact."""
    return Customer.objects.filter(~has_deliverable_contact())


def customers_unconfirmed() -> QuerySet[Customer]:
    """Customers marked "unconfirmed" (partial index ``incidents_customer_unconfirmed``)."""
    return Customer.objects.filter(contacts_unconfirmed_since__isnull=False)


@dataclass(frozen=True)
class ReadinessFigures:
    """Counts for the readiness page, the API and a metrics page.

    ``customers_unreachable``: customers with no deliverable administrative contact;
    ``customers_unconfirmed``: customers marked unconfirmed; ``contacts_undeliverable``: active
    administrative contacts refused for good; ``contacts_pending_confirmation``: new addresses
    waiting to confirm themselves.
    """

    customers_unreachable: int
    customers_unconfirmed: int
    contacts_undeliverable: int
    contacts_pending_confirmation: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def readiness_figures() -> ReadinessFigures:
    """Today's ``ReadinessFigures``: four counting queries. The unreachable count reads every
    customer once against the partial contact index (a report, not a list page; measured in
    ``bench/readiness.py``)."""
    administrative = Contact.objects.administrative()
    return ReadinessFigures(
        customers_unreachable=customers_unreachable().count(),
        customers_unconfirmed=customers_unconfirmed().count(),
        contacts_undeliverable=administrative.filter(undeliverable_at__isnull=False).count(),
        contacts_pending_confirmation=administrative.filter(pending_confirmation=True).count(),
    )
