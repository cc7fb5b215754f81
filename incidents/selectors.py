"""Who may see which incident: the one selector every read path uses (issue 10, item 1).

An incident with an ``IncidentRestriction`` ("need to know") is visible only to its members;
an unrestricted incident is visible to everyone whose role may view incidents (role
permissions stay with the views: this module only takes restricted incidents away). Use:

- ``incidents_visible_to(user, queryset=None)``: incidents the user may see;
- ``visible_related(user, queryset, path="incident")``: rows that belong to an incident
  (clocks, notices, deliveries, post-mortems, action items, tasks, notes...) whose incident the
  user may see; ``path`` is the lookup from the row to its incident (``"notice__incident"`` for
  a delivery, ``"post_mortem__incident"`` for an action item);
- ``incident_visible(user, incident)``: the same test for one incident already in hand;
- ``without_restricted(queryset, path="pk")``: only unrestricted rows, for shared aggregates
  that no single viewer owns (the precomputed metrics);
- ``invisible_incident_ids(user)``: the restricted incidents the user is not a member of, for
  records that name an incident by a bare id (the auditors' read log);
- ``addresses_outside(incident, addresses)``: who must get the neutral staff email
  (``RESTRICTED_SUBJECT``) instead of one naming the incident.

A view that finds nothing answers 404, never 403, so a restricted incident's existence does
not leak. Superusers are not exempt: need-to-know cases include investigations of staff, and an
administrator may be one. All of it is two ``EXISTS`` subqueries: no extra query per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, Model, OuterRef, Q, QuerySet

from incidents.models import Incident, IncidentRestriction, IncidentRestrictionMember, ReadLogEntry


def visibility_condition(user: Any, path: str = "pk") -> Q:
    """A ``Q`` true for rows whose incident (reached by ``path``; ``"pk"`` on ``Incident``
    itself) is unrestricted or has ``user`` among its members. An anonymous or missing user
    sees only unrestricted incidents. Rows whose ``path`` is null (no incident) pass."""
    restricted = Exists(IncidentRestriction.objects.filter(incident_id=OuterRef(path)))
    user_id = getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None
    if user_id is None:
        return ~Q(restricted)
    member = Exists(IncidentRestrictionMember.objects.filter(restriction_id=OuterRef(path), user_id=user_id))
    return ~Q(restricted) | Q(member)


def incidents_visible_to(user: Any, queryset: QuerySet[Incident] | None = None) -> QuerySet[Incident]:
    """The incidents of ``queryset`` (default: all) that ``user`` may see: unrestricted ones and
    restricted ones it is a member of. Keeps the queryset's ordering, ``select_related`` and
    the like; adds no query."""
    incidents = Incident.objects.all() if queryset is None else queryset
    return incidents.filter(visibility_condition(user, "pk"))


def visible_related[M: Model](user: Any, queryset: QuerySet[M], path: str = "incident") -> QuerySet[M]:
    """The rows of ``queryset`` whose incident (the lookup ``path`` from the row, for example
    ``"incident"``, ``"notice__incident"``, ``"post_mortem__incident"``) ``user`` may see.
    Rows without an incident (a null ``path``) are kept."""
    return queryset.filter(visibility_condition(user, path))


def without_restricted[M: Model](queryset: QuerySet[M], path: str = "pk") -> QuerySet[M]:
    """The rows of ``queryset`` whose incident (``path``) is not restricted at all: for shared
    aggregates computed once for everyone (``dashboard.metrics``), so no viewer can count an
    incident it may not see."""
    return queryset.filter(~Q(Exists(IncidentRestriction.objects.filter(incident_id=OuterRef(path)))))


def invisible_incident_ids(user: Any) -> list[int]:
    """The ids of the restricted incidents ``user`` is not a member of (few: restriction is the
    exception), for records that name an incident by a bare id (the read log, chain breaks)."""
    user_id = getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None
    restrictions = IncidentRestriction.objects.all()
    if user_id is not None:
        restrictions = restrictions.exclude(members__user_id=user_id)
    return list(restrictions.values_list("incident_id", flat=True))


def read_log_visible_to(user: Any, queryset: QuerySet[ReadLogEntry]) -> QuerySet[ReadLogEntry]:
    """The read-log entries of ``queryset`` (``ReadLogEntry``: an auditor opened a record) that
    do not name a restricted incident ``user`` is not a member of, by its id or by its path
    (pages, the API, the evidence pack and the admin sites)."""
    hidden = [str(pk) for pk in invisible_incident_ids(user)]
    if not hidden:
        return queryset
    ids = "|".join(hidden)
    names_hidden = (
        Q(object_type__startswith="incident", object_id__in=hidden)
        | Q(path__regex=rf"^/(api/|audit/)?incidents/({ids})(/|$)")
        | Q(path__regex=rf"^/(admin|audit)/incidents/incident/({ids})/")
    )
    return queryset.exclude(names_hidden)


def incident_visible(user: Any, incident: Incident | int | None) -> bool:
    """Whether ``user`` may see ``incident`` (an instance or an id; ``None``: no incident, so
    ``True``). One query."""
    if incident is None:
        return True
    pk = incident if isinstance(incident, int) else incident.pk
    return incidents_visible_to(user, Incident.objects.filter(pk=pk)).exists()


def incident_is_restricted(incident: Incident | int) -> bool:
    """Whether the incident (an instance or an id) is restricted. One query."""
    pk = incident if isinstance(incident, int) else incident.pk
    return IncidentRestriction.objects.filter(incident_id=pk).exists()


# --- Emails to staff -------------------------------------------------------------------------

#: The subject of an email about a restricted incident to someone who is not its member: it
#: names nothing (issue 10, item 1: "invisible ... in every email subject").
RESTRICTED_SUBJECT = "[Breachdesk] A restricted incident needs attention"

#: The body of that email: no reference, title, customer or link to the incident.
RESTRICTED_BODY = (
    "Something needs attention on an incident whose details are restricted to named people.\n"
    "Ask an incident manager if you should be one of them.\n"
)


def addresses_outside(incident: Incident | int, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` (email addresses, any case) that may not read about ``incident``:
    none when it is unrestricted; otherwise each address that is not the email of an active
    member (a group mailbox is never a member). One query when unrestricted, two otherwise.
    Callers send these people ``RESTRICTED_SUBJECT``/``RESTRICTED_BODY`` instead."""
    wanted = {address for address in addresses if address}
    if not wanted or not incident_is_restricted(incident):
        return set()
    pk = incident if isinstance(incident, int) else incident.pk
    members = {
        email.lower()
        for email in IncidentRestrictionMember.objects.filter(
            restriction_id=pk, user__is_active=True
        ).values_list("user__email", flat=True)
        if email
    }
    return {address for address in wanted if address.lower() not in members}
