"""Guards of the incident lifecycle (DESIGN.md section 2): what each transition still needs.

``missing_for`` answers with the names of the missing facts, so the API can answer 400 naming
them and the web page can show them; the transition methods on ``Incident`` use the same
function as their django-fsm conditions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q

if TYPE_CHECKING:
    from incidents.models import Incident

#: Every transition name, in lifecycle order. Values are an API contract.
TRANSITION_NAMES: tuple[str, ...] = (
    "triage",
    "rule_out_of_scope",
    "classify_as_customer_event",
    "declare",
    "mark_notified",
    "begin_post_mortem",
    "close",
)


def missing_for(incident: Incident, transition_name: str) -> list[str]:
    """Names of the facts that ``transition_name`` needs and ``incident`` lacks (``[]``: none).

    - ``triage``: ``severity`` and ``malicious`` (yes, no or unknown) recorded.
    - ``rule_out_of_scope``: ``out_of_scope_category`` and ``scope_rationale``.
    - ``classify_as_customer_event``: ``scope_rationale`` and ``customer_informed_at``.
    - ``declare``: ``nature_of_breach`` and at least one of ``affected_customers``.
    - ``mark_notified``: every affected customer's notice clock met (its initial notice accepted
      by the mail relay) or waived by an incident manager (undeliverable): ``affected_customers``.
    - ``begin_post_mortem``: nothing.
    - ``close``: a completed post-mortem (``post_mortem.findings``) and every action item done
      or accepted (``post_mortem.action_items``).

    Raises ``KeyError`` for an unknown transition name.
    """
    checks = {
        "triage": _triage,
        "rule_out_of_scope": _rule_out_of_scope,
        "classify_as_customer_event": _classify_as_customer_event,
        "declare": _declare,
        "mark_notified": _mark_notified,
        "begin_post_mortem": lambda incident: [],
        "close": _close,
    }
    return checks[transition_name](incident)


def _triage(incident: Incident) -> list[str]:
    return [name for name in ("severity", "malicious") if not getattr(incident, name)]


def _rule_out_of_scope(incident: Incident) -> list[str]:
    missing = []
    if not incident.out_of_scope_category:
        missing.append("out_of_scope_category")
    if not incident.scope_rationale.strip():
        missing.append("scope_rationale")
    return missing


def _classify_as_customer_event(incident: Incident) -> list[str]:
    missing = []
    if not incident.scope_rationale.strip():
        missing.append("scope_rationale")
    if incident.customer_informed_at is None:
        missing.append("customer_informed_at")
    return missing


def _declare(incident: Incident) -> list[str]:
    missing = []
    if not incident.nature_of_breach.strip():
        missing.append("nature_of_breach")
    if incident.pk is None or not incident.affected_customers.exists():
        missing.append("affected_customers")
    return missing


def _mark_notified(incident: Incident) -> list[str]:
    from notifications.models import Clock

    if incident.pk is None or not incident.affected_customers.exists():
        return ["affected_customers"]
    clocks = Clock.objects.filter(incident=incident, kind=Clock.Kind.CUSTOMER_NOTICE)
    settled = clocks.filter(Q(met_at__isnull=False) | Q(waived_at__isnull=False))
    covered = settled.values_list("customer_id", flat=True)
    if incident.affected_customers.exclude(customer_id__in=covered).exists():
        return ["affected_customers"]
    return []


def _close(incident: Incident) -> list[str]:
    from postmortems.models import ActionItem, PostMortem

    try:
        post_mortem = incident.post_mortem
    except PostMortem.DoesNotExist:
        return ["post_mortem.findings"]
    missing = []
    if not post_mortem.findings.strip() or post_mortem.completed_at is None:
        missing.append("post_mortem.findings")
    if post_mortem.action_items.filter(status=ActionItem.Status.OPEN).exists():
        missing.append("post_mortem.action_items")
    return missing
