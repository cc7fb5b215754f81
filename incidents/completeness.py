"""How many of the required breach fields of an incident are known (DESIGN.md section 1, step 4).

A customer notice carries, where known: the nature of the breach; mitigation measures; the
product, service or application involved; how long personal data was exposed; the volume of
affected records; sub-processor or supplier details. These six are the "required breach
fields"; the board and the incident page show how many are known.

``breach_fields`` answers for one incident in Python; ``known_breach_fields_expression`` is the
same rule as one SQL expression, so a list can show the number without a query per row.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Exists, ExpressionWrapper, IntegerField, OuterRef, Q, Value, When
from django.db.models.expressions import Combinable

from incidents.models import Incident

#: ``(name, label)`` of the required breach fields, in the order notices show them.
BREACH_FIELDS: tuple[tuple[str, str], ...] = (
    ("nature_of_breach", "Nature of the breach"),
    ("mitigation_measures", "Mitigation measures"),
    ("products", "Product, service or application"),
    ("exposure", "How long personal data was exposed"),
    ("records_affected", "Volume of affected records"),
    ("sub_processor", "Sub-processor or supplier details"),
)


@dataclass(frozen=True)
class BreachField:
    name: str
    label: str
    known: bool


def breach_fields(incident: Incident, *, has_products: bool) -> list[BreachField]:
    """The six required breach fields of ``incident``, each with whether it is known.

    ``has_products``: whether the incident names a product (passed in, so a page that already
    loaded the products asks no query). Exposure is known when both its start and its end are;
    the sub-processor when one is chosen from the register or details are written.
    """
    known = {
        "nature_of_breach": bool(incident.nature_of_breach),
        "mitigation_measures": bool(incident.mitigation_measures),
        "products": has_products,
        "exposure": incident.exposure_started_at is not None and incident.exposure_ended_at is not None,
        "records_affected": incident.records_affected is not None,
        "sub_processor": incident.sub_processor_id is not None or bool(incident.sub_processor_details),
    }
    return [BreachField(name, label, known[name]) for name, label in BREACH_FIELDS]


def _one_if(condition: Q | Exists) -> Case:
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def known_breach_fields_expression(prefix: str = "") -> Combinable:
    """An integer SQL expression (0 to 6): how many required breach fields of the incident are
    known, by the rule of ``breach_fields``. ``prefix`` names the path to the incident from the
    queried model (for example ``"incident__"``); empty for ``Incident`` itself."""
    products = Incident.products.through.objects.filter(incident_id=OuterRef(f"{prefix}pk"))
    parts = [
        _one_if(~Q(**{f"{prefix}nature_of_breach": ""})),
        _one_if(~Q(**{f"{prefix}mitigation_measures": ""})),
        _one_if(Exists(products)),
        _one_if(
            Q(**{f"{prefix}exposure_started_at__isnull": False, f"{prefix}exposure_ended_at__isnull": False})
        ),
        _one_if(Q(**{f"{prefix}records_affected__isnull": False})),
        _one_if(
            Q(**{f"{prefix}sub_processor__isnull": False}) | ~Q(**{f"{prefix}sub_processor_details": ""})
        ),
    ]
    total: Combinable = parts[0]
    for part in parts[1:]:
        total = total + part
    return ExpressionWrapper(total, output_field=IntegerField())
