"""The incident lifecycle's guards, and the seam through which the apps built on it act at its
moments (DESIGN.md section 2).

Guards: ``missing_for`` answers with the names of the missing facts, so the API can answer 400
naming them and the web page can show them; the transition methods on ``Incident`` use the same
function as their django-fsm conditions.

The seam: ``incidents`` is the ground floor and knows nothing of clocks, notices, post-mortems
or triage; it imports no other app. Where a lifecycle moment must start work in an app above it
(clocks start on declaration, a post-mortem opens with ``begin_post_mortem``, closing needs the
post-mortem completed), that app registers a hook in one table, ``settings.LIFECYCLE_HOOKS``
(``config/settings.py``), by dotted path, in the order the hooks run. The table is resolved
once, at start-up (``IncidentsConfig.ready``), so a typo stops the process with a message
instead of surfacing on the first declaration.

The table maps a *moment* to its *stages*, each a list of dotted paths:

- moments: every transition name (``TRANSITION_NAMES``), ``affected_customer_added``,
  ``owner_assigned`` and ``notice_approved`` (see their constants below);
- stages, in the order the services run them inside one transaction that holds the incident's
  row lock (``incidents.services``):

  ``prepare``  ``hook(incident, context) -> dict | None``: after the lock, before the guard; may
               record inputs that the guard then checks; returns audit data.
  ``guard``    ``hook(incident) -> list[str]``: names of what the transition still lacks (the
               lifecycle's own guard runs first; see ``missing_for``).
  ``saved``    ``hook(incident, context) -> dict | None``: after the change is saved, in the
               same transaction; returns audit data, merged into the moment's audit event.

Hooks queue outside effects themselves with ``transaction.on_commit`` (they run in the order
they are registered, after anything queued before them in the same transaction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from incidents.models import Customer, Incident

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

    The lifecycle's own guards come first; then the ``guard`` hooks that the apps above register
    for the transition (``settings.LIFECYCLE_HOOKS``, below), each name once:

    - ``triage``: ``severity`` and ``malicious`` (yes, no or unknown) recorded.
    - ``rule_out_of_scope``: ``out_of_scope_category`` and ``scope_rationale``.
    - ``classify_as_customer_event``: ``scope_rationale`` and ``customer_informed_at``.
    - ``declare``: ``nature_of_breach`` and at least one of ``affected_customers``.
    - ``mark_notified``: at least one of ``affected_customers``; the notifications app adds
      that every affected customer's notice clock is met or waived.
    - ``begin_post_mortem``: nothing.
    - ``close``: nothing of its own; the post-mortems app adds a completed post-mortem and
      every action item settled.

    Raises ``KeyError`` for an unknown transition name.
    """
    checks = {
        "triage": _triage,
        "rule_out_of_scope": _rule_out_of_scope,
        "classify_as_customer_event": _classify_as_customer_event,
        "declare": _declare,
        "mark_notified": _has_affected_customers,
        "begin_post_mortem": _nothing,
        "close": _nothing,
    }
    names = checks[transition_name](incident)
    names.extend(name for name in hooks_missing(transition_name, incident) if name not in names)
    return names


def _nothing(incident: Incident) -> list[str]:
    return []


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
    missing.extend(_has_affected_customers(incident))
    return missing


def _has_affected_customers(incident: Incident) -> list[str]:
    if incident.pk is None or not incident.affected_customers.exists():
        return ["affected_customers"]
    return []


# The hook table ------------------------------------------------------------------------------

#: Moments that are not transitions. ``affected_customer_added``: a customer recorded as
#: affected (``context.customer``). ``owner_assigned``: the incident got a new owner (on
#: creation, edit or triage; ``context.inputs["owner"]`` is the user). ``notice_approved``: an
#: app above announces that an incident manager (``context.actor``, ``None`` for the scanner)
#: approved a customer notice (``context.inputs["notice"]``). Hooks run in the transaction that
#: made the change, after it is saved (stage ``saved``).
AFFECTED_CUSTOMER_ADDED = "affected_customer_added"
OWNER_ASSIGNED = "owner_assigned"
NOTICE_APPROVED = "notice_approved"

STAGES: tuple[str, ...] = ("prepare", "guard", "saved")


@dataclass(frozen=True)
class HookContext:
    """What a ``prepare`` or ``saved`` hook is told about the moment.

    ``actor``: the user acting, or ``None`` for the system. ``at``: the moment's instant (aware,
    UTC; for a transition, the instant recorded on the incident). ``inputs``: the transition's
    own inputs that the ground floor passes through without knowing them, and what a moment
    announces (``{"owner": user}``, ``{"notice": notice}``). ``customer``: for
    ``affected_customer_added``.
    """

    actor: Any | None
    at: datetime
    inputs: Mapping[str, Any] = field(default_factory=dict)
    customer: Customer | None = None


class ActionHook(Protocol):
    """A ``prepare`` or ``saved`` hook: returns audit data (``{}`` or ``None``: nothing)."""

    def __call__(self, incident: Incident, context: HookContext) -> dict[str, Any] | None: ...


class GuardHook(Protocol):
    """A ``guard`` hook: the names of what the transition still lacks (``[]``: nothing)."""

    def __call__(self, incident: Incident) -> list[str]: ...


def _moments() -> frozenset[str]:
    return frozenset({*TRANSITION_NAMES, AFFECTED_CUSTOMER_ADDED, OWNER_ASSIGNED, NOTICE_APPROVED})


@functools.cache
def hook_table() -> dict[tuple[str, str], tuple[Callable[..., Any], ...]]:
    """The resolved hook table: ``{(moment, stage): (callable, ...)}``.

    Raises ``ImproperlyConfigured`` naming an unknown moment or stage, or a path that does not
    import.
    """
    configured: Mapping[str, Mapping[str, list[str]]] = getattr(settings, "LIFECYCLE_HOOKS", {})
    moments = _moments()
    resolved: dict[tuple[str, str], tuple[Callable[..., Any], ...]] = {}
    for moment, stages in configured.items():
        if moment not in moments:
            raise ImproperlyConfigured(
                f"LIFECYCLE_HOOKS: unknown moment {moment!r}; one of {', '.join(sorted(moments))}."
            )
        for stage, paths in stages.items():
            if stage not in STAGES:
                raise ImproperlyConfigured(
                    f"LIFECYCLE_HOOKS[{moment!r}]: unknown stage {stage!r}; one of {', '.join(STAGES)}."
                )
            try:
                resolved[(moment, stage)] = tuple(import_string(path) for path in paths)
            except ImportError as error:
                raise ImproperlyConfigured(f"LIFECYCLE_HOOKS[{moment!r}][{stage!r}]: {error}") from error
    return resolved


def _hooks(moment: str, stage: str) -> tuple[Callable[..., Any], ...]:
    return hook_table().get((moment, stage), ())


def run_hooks(moment: str, stage: str, incident: Incident, context: HookContext) -> dict[str, Any]:
    """Run the ``prepare`` or ``saved`` hooks of ``moment`` in order; return their audit data
    merged (a later hook's key wins)."""
    data: dict[str, Any] = {}
    for hook in _hooks(moment, stage):
        data.update(hook(incident, context) or {})
    return data


def hooks_missing(moment: str, incident: Incident) -> list[str]:
    """The names that the ``guard`` hooks of ``moment`` report missing, in order, each once."""
    names: list[str] = []
    for hook in _hooks(moment, "guard"):
        names.extend(name for name in hook(incident) if name not in names)
    return names


def _reset(*, setting: str, **_: Any) -> None:
    if setting == "LIFECYCLE_HOOKS":
        hook_table.cache_clear()


setting_changed.connect(_reset)
