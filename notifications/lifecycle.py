"""What the notification system does at lifecycle moments: the hooks this app registers in
``settings.LIFECYCLE_HOOKS`` (see ``incidents.lifecycle``). Thin: each calls one service."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db import transaction
from django.db.models import Q

from incidents.lifecycle import HookContext
from incidents.models import Incident
from notifications.models import Clock, Withholding
from notifications.services import (
    clock_start_for_customer,
    clocks_start_for_declaration,
    incident_settle_if_notified,
)


def start_clocks_on_declaration(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``declare``, ``saved``: one notice clock per affected customer from the declaration
    instant (``context.at``, recorded as ``incident.declared_at``). Audit data:
    ``{"clocks": [{"customer": account reference, "due_at": UTC ISO 8601}]}``."""
    started = clocks_start_for_declaration(incident=incident, at=context.at)
    if started and not any(clock.is_open for clock in started):
        # Every clock closed at once (real customers in a drill): nothing will be sent, so the
        # incident moves on to notified as soon as the declaration commits.
        transaction.on_commit(lambda: incident_settle_if_notified(incident_id=incident.pk))
    return {
        "clocks": [
            {"customer": clock.customer.account_reference, "due_at": clock.due_at.astimezone(UTC).isoformat()}
            for clock in started
            if clock.customer is not None
        ]
    }


def start_clock_for_added_customer(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``affected_customer_added``, ``saved``: a customer added after declaration gets its own
    clock from the moment it was added (``context.at``). Audit data: ``{"clock_due_at": ...}``
    (UTC ISO 8601), or nothing before declaration."""
    if incident.declared_at is None or context.customer is None:
        return {}
    clock = clock_start_for_customer(incident=incident, customer=context.customer, at=context.at)
    return {"clock_due_at": clock.due_at.astimezone(UTC).isoformat()}


def customers_not_yet_notified(incident: Incident) -> list[str]:
    """``mark_notified``, ``guard``: ``["affected_customers"]`` while any affected customer's
    notice clock is neither met (its initial notice accepted by the mail relay) nor waived by
    an incident manager (undeliverable)."""
    if incident.pk is None:
        return ["affected_customers"]
    settled = Clock.objects.filter(incident=incident, kind=Clock.Kind.CUSTOMER_NOTICE).filter(
        Q(met_at__isnull=False) | Q(waived_at__isnull=False)
    )
    covered = settled.values_list("customer_id", flat=True)
    if incident.affected_customers.exclude(customer_id__in=covered).exists():
        return ["affected_customers"]
    return []


def withholdings_still_active(incident: Incident) -> list[str]:
    """``close``, ``guard``: ``withholdings`` while any breach field is still withheld from the
    customers (released neither to a notice nor on review)."""
    if Withholding.objects.filter(incident=incident, released_at__isnull=True).exists():
        return ["withholdings"]
    return []
