"""Writes to the reference data that incidents point at (products, the sub-processor register,
customers) where such a write changes what an incident says: audited on every incident it
touches, or refused.

The admin (``/admin/``) saves and deletes these rows only through here
(``incidents.admin``). A product renamed or deleted, or a supplier changed, changes what the
incidents that list it show, so each such incident gets an audit event in its chain, in the
same transaction, under its row lock. Deletions that would rewrite a finished record are
refused (``LifecycleConflict``, HTTP 409): a product listed by a closed (or ruled-out)
incident, a supplier named as an incident's sub-processor, a customer with an audit chain or
affected by an incident. Every write is also logged in the admin history (``LogEntry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models, transaction
from django.db.models.deletion import ProtectedError

from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden, LifecycleConflict
from incidents.models import AffectedCustomer, Customer, CustomerAuditEvent, Incident, Product, Supplier

#: Incident states whose record no longer changes (``services.FINAL_STATES``, repeated here so
#: this module does not import the services it sits beside).
_FINAL = ("closed", "out_of_scope", "customer_event")


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise ActionForbidden(f"Your role may not do this (needs {permission}).")


def _log(actor: Any, row: models.Model, flag: int, message: str) -> None:
    from django.contrib.admin.models import LogEntry

    LogEntry.objects.log_actions(
        user_id=actor.pk, queryset=[row], action_flag=flag, change_message=message, single_object=True
    )


def _locked_incidents(incidents: models.QuerySet[Incident]) -> list[Incident]:
    # In id order, so two writers locking overlapping sets cannot deadlock.
    return list(Incident.objects.select_for_update().filter(pk__in=incidents.values("pk")).order_by("pk"))


def _diff(before: models.Model | None, after: models.Model, fields: list[str]) -> dict[str, list[Any]]:
    return {
        name: [getattr(before, name) if before is not None else None, getattr(after, name)]
        for name in fields
        if before is None or getattr(before, name) != getattr(after, name)
    }


def _references(incidents: list[Incident]) -> str:
    shown = ", ".join(str(incident.reference) for incident in incidents[:5])
    return shown + (f" and {len(incidents) - 5} more" if len(incidents) > 5 else "")


def _reference_save[R: models.Model](
    *,
    actor: Any,
    row: R,
    fields: list[str],
    incidents: Callable[[], models.QuerySet[Incident]],
    verb: str,
    key: str,
) -> R:
    """Create ``row`` (unsaved) or save a stored one's changes to ``fields``, in one
    transaction: the permission ``incidents.add_<model>`` / ``change_<model>``, ``full_clean``,
    then, for a change, ``verb`` with ``{key: id, "changes": {field: [old, new]}}`` on each of
    the incidents ``incidents()`` names (locked in id order; called once the row is saved),
    and the admin history entry."""
    from django.contrib.admin.models import ADDITION, CHANGE

    creating = row.pk is None
    model = row._meta.model_name
    _require(actor, f"incidents.add_{model}" if creating else f"incidents.change_{model}")
    row.full_clean()
    with transaction.atomic():
        before = None if creating else type(row)._default_manager.select_for_update().get(pk=row.pk)
        changes = _diff(before, row, fields)
        row.save()
        if not creating and changes:
            for incident in _locked_incidents(incidents()):
                audit_append(
                    incident=incident, actor=actor, verb=verb, data={key: row.pk, "changes": changes}
                )
        _log(
            actor,
            row,
            ADDITION if creating else CHANGE,
            "Created." if creating else f"Changed {', '.join(changes) or 'nothing'}.",
        )
    return row


def product_save(*, actor: Any, product: Product) -> Product:
    """Create ``product`` (unsaved) or save a stored one's changes; return it.

    A change (name, description) is audited as ``product_changed`` (``{"product": id,
    "changes": {field: [old, new]}}``) on every incident that lists the product, closed ones
    included (their record shows the new name). Needs ``incidents.add_product`` /
    ``incidents.change_product`` (``ActionForbidden``); ``ValidationError`` for a bad value or
    a duplicate name.
    """
    return _reference_save(
        actor=actor,
        row=product,
        fields=["name", "description"],
        incidents=lambda: Incident.objects.filter(products=product),
        verb="product_changed",
        key="product",
    )


def product_delete(*, actor: Any, product: Product) -> None:
    """Delete ``product``, removing it from every incident that lists it, each audited as
    ``product_deleted`` (``{"product": {"id", "name"}, "changes": {"products": [old ids, new
    ids]}}``).

    Raises ``ActionForbidden`` without ``incidents.delete_product``; ``LifecycleConflict``
    (nothing deleted) when a closed or ruled-out incident lists it: a finished record does not
    change.
    """
    from django.contrib.admin.models import DELETION

    _require(actor, "incidents.delete_product")
    with transaction.atomic():
        locked = Product.objects.select_for_update().get(pk=product.pk)
        incidents = _locked_incidents(Incident.objects.filter(products=locked))
        final = [incident for incident in incidents if incident.state in _FINAL]
        if final:
            raise LifecycleConflict(
                f"Product {locked.name} is listed by finished incident(s) {_references(final)}, whose record "
                "does not change: it cannot be deleted."
            )
        for incident in incidents:
            before = sorted(incident.products.values_list("pk", flat=True))
            audit_append(
                incident=incident,
                actor=actor,
                verb="product_deleted",
                data={
                    "product": {"id": locked.pk, "name": locked.name},
                    "changes": {"products": [before, [pk for pk in before if pk != locked.pk]]},
                },
            )
        _log(actor, locked, DELETION, f"Deleted; removed from {len(incidents)} incident(s).")
        locked.delete()


def supplier_save(*, actor: Any, supplier: Supplier) -> Supplier:
    """Create ``supplier`` (unsaved) or save a stored one's changes; return it.

    A change is audited as ``sub_processor_changed`` (``{"supplier": id, "changes": {field:
    [old, new]}}``) on every incident that names it as sub-processor. Needs
    ``incidents.add_supplier`` / ``incidents.change_supplier`` (``ActionForbidden``);
    ``ValidationError`` for a bad value or a duplicate name.
    """
    return _reference_save(
        actor=actor,
        row=supplier,
        fields=["name", "services", "country", "contact"],
        incidents=lambda: Incident.objects.filter(sub_processor=supplier),
        verb="sub_processor_changed",
        key="supplier",
    )


def supplier_delete(*, actor: Any, supplier: Supplier) -> None:
    """Delete ``supplier`` from the sub-processor register.

    Raises ``ActionForbidden`` without ``incidents.delete_supplier``; ``LifecycleConflict``
    (nothing deleted) when an incident names it as sub-processor (clear it there first, which
    is audited) or another record still refers to it.
    """
    from django.contrib.admin.models import DELETION

    _require(actor, "incidents.delete_supplier")
    with transaction.atomic():
        locked = Supplier.objects.select_for_update().get(pk=supplier.pk)
        named = list(Incident.objects.filter(sub_processor=locked).order_by("pk"))
        if named:
            raise LifecycleConflict(
                f"Supplier {locked.name} is the sub-processor of incident(s) {_references(named)}: "
                "it cannot be deleted."
            )
        _log(actor, locked, DELETION, "Deleted.")
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError as error:
            raise LifecycleConflict(
                f"Supplier {locked.name} is still referred to: it cannot be deleted."
            ) from error


def customer_delete(*, actor: Any, customer: Customer) -> None:
    """Delete a customer that has no history: no audit chain, no incident, nothing else that
    refers to it (its contacts go with it).

    Raises ``ActionForbidden`` without ``incidents.delete_customer``; ``LifecycleConflict``
    (nothing deleted) for a customer with an audit chain (every contact ever added is in it),
    affected by an incident, or referred to by a notice, delivery or clock: its history is
    kept.
    """
    from django.contrib.admin.models import DELETION

    _require(actor, "incidents.delete_customer")
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        affected = list(
            Incident.objects.filter(
                pk__in=AffectedCustomer.objects.filter(customer=locked).values("incident_id")
            )
        )
        if affected:
            raise LifecycleConflict(
                f"Customer {locked.account_reference} is affected by incident(s) {_references(affected)}: "
                "its history is kept, it cannot be deleted."
            )
        if CustomerAuditEvent.objects.filter(customer=locked).exists():
            raise LifecycleConflict(
                f"Customer {locked.account_reference} has an audit trail: its history is kept, it cannot be "
                "deleted (deactivate its contacts instead)."
            )
        _log(actor, locked, DELETION, "Deleted.")
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError as error:
            raise LifecycleConflict(
                f"Customer {locked.account_reference} is still referred to (notices, deliveries, clocks): "
                "it cannot be deleted."
            ) from error
