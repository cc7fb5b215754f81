"""One incident from many reports (issue 10, item 3): merging a duplicate into the surviving
incident, and suggesting likely duplicates.

The rules (``incident_merge``):

- The duplicate must be ``detected`` or ``triaged``: a declared incident has its own clocks,
  notices and deliveries, which cannot move; merge the other report into it instead. Merging
  closes the duplicate as ``merged`` (django-fsm transition ``merge``, a final state) with
  ``merged_into`` and ``merged_at``.
- The surviving incident must be another incident, still open (``detected`` up to
  ``post_mortem``; it may be declared: a late report of a declared breach joins it), not
  itself merged (merge into the one it was merged into), and a drill only if the duplicate is.
- What moves to the survivor: the duplicate's detection records (signed alerts, the alert
  thread that routes later alerts of the same key, customer reports), its notes and its
  evidence files; its affected customers are added to the survivor (with their figures; a
  customer added after the survivor's declaration gets its clock then), and its products.
  The survivor keeps the earliest detection time: ``detected_at`` becomes the earlier of the
  two awareness instants (``detected_at``, or when recorded if unknown), because that is when
  the organisation became aware of the breach. A note on the survivor records the duplicate's
  own detection facts (source, time, reporter, external reference, title and summary). The
  duplicate's audit chain and assessments stay with it; its playbook tasks stay with it too.
- Both chains record it: ``merge`` on the duplicate (from, to ``merged``), and
  ``duplicate_merged`` on the survivor, each naming the other and what moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_fsm import ConcurrentTransition

from incidents import services
from incidents.audit import audit_append
from incidents.exceptions import ActionForbidden, LifecycleConflict, TransitionNotAvailable
from incidents.models import (
    MERGE_PERMISSION,
    OPEN_STATES,
    AffectedCustomer,
    Alert,
    AlertThread,
    CustomerReport,
    EvidenceFile,
    Incident,
    IncidentState,
    Note,
)

#: States a duplicate may be merged from (the ``merge`` transition's sources).
MERGEABLE_STATES = (IncidentState.DETECTED, IncidentState.TRIAGED)


def awareness(incident: Incident) -> datetime:
    """When the organisation became aware of ``incident``: ``detected_at``, or when it was
    recorded if that is unknown (aware, UTC)."""
    return incident.detected_at or incident.created_at


def _iso(instant: datetime | None) -> str | None:
    return instant.astimezone(UTC).isoformat() if instant else None


def _when(instant: datetime | None) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if instant else "not known"


def _detection_note(duplicate: Incident) -> str:
    lines = [
        f"Merged duplicate {duplicate.reference}: {duplicate.title}",
        f"Detected by: {duplicate.get_detection_source_display()}, at {_when(duplicate.detected_at)} "
        f"(recorded {_when(duplicate.created_at)}).",
    ]
    if duplicate.reported_by:
        lines.append(f"Reported by: {duplicate.reported_by}.")
    if duplicate.external_reference:
        lines.append(f"External reference: {duplicate.external_reference}.")
    if duplicate.summary:
        lines.append(f"Summary: {duplicate.summary}")
    return "\n".join(lines)


def _check(duplicate: Incident, survivor: Incident) -> None:
    if duplicate.state not in MERGEABLE_STATES:
        if duplicate.state == IncidentState.MERGED:
            raise TransitionNotAvailable(transition_name="merge", state=duplicate.state)
        if duplicate.declared_at is not None:
            raise LifecycleConflict(
                f"{duplicate.reference} is declared: it has clocks and notices of its own and cannot be "
                f"merged into another incident; merge {survivor.reference} into it instead, if it is "
                "still detected or triaged."
            )
        raise TransitionNotAvailable(transition_name="merge", state=duplicate.state)
    if survivor.state == IncidentState.MERGED:
        raise LifecycleConflict(
            f"{survivor.reference} was itself merged into incident {survivor.merged_into_id}; merge into that one."
        )
    if survivor.state not in OPEN_STATES:
        raise LifecycleConflict(
            f"{survivor.reference} is {survivor.get_state_display().lower()}: only an open incident can take a duplicate."
        )
    if survivor.is_drill != duplicate.is_drill:
        raise ValidationError({"into": "A drill and a real incident cannot be merged."})


def incident_merge(*, incident: Incident, into: Incident, actor: Any) -> Incident:
    """Merge the duplicate ``incident`` into the surviving incident ``into`` as described in the
    module docstring; return the duplicate, now ``merged``.

    One transaction, both incidents locked (in id order, so two merges cannot deadlock).
    Raises ``ActionForbidden`` (403) without ``incidents.merge_incident`` (responders,
    incident managers); ``ValidationError`` (400) when ``into`` is the incident itself or the
    two differ in being a drill; ``TransitionNotAvailable`` (409) when the duplicate is not
    ``detected`` or ``triaged``; ``LifecycleConflict`` (409) for a declared duplicate, or a
    survivor that is merged, closed or ruled out.
    """
    if actor is None or not actor.has_perm(MERGE_PERMISSION):
        raise ActionForbidden(f"Your role may not do this (needs {MERGE_PERMISSION}).")
    if incident.pk == into.pk:
        raise ValidationError({"into": "An incident cannot be merged into itself."})
    try:
        with transaction.atomic():
            locked = {
                row.pk: row
                for row in Incident.objects.select_for_update()
                .filter(pk__in=[incident.pk, into.pk])
                .order_by("pk")
            }
            duplicate, survivor = locked[incident.pk], locked[into.pk]
            _check(duplicate, survivor)
            now = timezone.now()
            moved = _move_records(duplicate, survivor)
            customers_added = _add_customers(duplicate, survivor, actor)
            product_ids = set(survivor.products.values_list("pk", flat=True))
            new_products = [p for p in duplicate.products.all() if p.pk not in product_ids]
            survivor.products.add(*new_products)
            detected_change = None
            if awareness(duplicate) < awareness(survivor):
                detected_change = [_iso(survivor.detected_at), _iso(awareness(duplicate))]
                survivor.detected_at = awareness(duplicate)
                survivor.save(update_fields=["detected_at", "updated_at"])
            note = Note.objects.create(
                incident=survivor,
                author=actor,
                author_username=actor.get_username(),
                text=_detection_note(duplicate),
                occurred_at=duplicate.detected_at,
            )
            from_state = duplicate.state
            duplicate.merge(at=now, into=survivor)
            duplicate.save()
            audit_append(
                incident=duplicate,
                actor=actor,
                verb="merge",
                from_state=from_state,
                to_state=duplicate.state,
                data={"into": survivor.pk, "into_reference": survivor.reference, "moved": moved},
                at=now,
            )
            audit_append(
                incident=survivor,
                actor=actor,
                verb="duplicate_merged",
                data={
                    "duplicate": duplicate.pk,
                    "duplicate_reference": duplicate.reference,
                    "moved": moved,
                    "affected_customers_added": customers_added,
                    "products_added": sorted(p.name for p in new_products),
                    "detected_at": detected_change,
                    "note": note.pk,
                },
                at=now,
            )
    except ConcurrentTransition:
        current = Incident.objects.only("state").get(pk=incident.pk).state
        raise TransitionNotAvailable(transition_name="merge", state=current) from None
    return duplicate


def _move_records(duplicate: Incident, survivor: Incident) -> dict[str, list[int]]:
    """Re-point the duplicate's detection records, notes and files at the survivor; return
    the ids moved per kind."""
    moved: dict[str, list[int]] = {}
    for name, model in (
        ("alerts", Alert),
        ("alert_threads", AlertThread),
        ("customer_reports", CustomerReport),
        ("notes", Note),
        ("evidence_files", EvidenceFile),
    ):
        rows = model._default_manager.filter(incident=duplicate)
        moved[name] = sorted(rows.values_list("pk", flat=True))
        rows.update(incident=survivor)
    return moved


def _add_customers(duplicate: Incident, survivor: Incident, actor: Any) -> list[str]:
    """Add to the survivor each customer the duplicate affects that it does not (with the
    duplicate's figures for it, through ``services.affected_customer_add``); return their
    account references."""
    present = set(survivor.affected_customers.values_list("customer_id", flat=True))
    added = []
    rows = AffectedCustomer.objects.filter(incident=duplicate).select_related("customer").order_by("id")
    for row in rows:
        if row.customer_id in present:
            continue
        services.affected_customer_add(
            incident=survivor,
            customer=row.customer,
            actor=actor,
            records_affected=row.records_affected,
            notes="\n".join(
                part for part in (f"From merged duplicate {duplicate.reference}.", row.notes) if part
            ),
            **{
                name: getattr(row, name)
                for name in AffectedCustomer.FIGURE_FIELDS
                if name != "records_affected"
            },
        )
        added.append(row.customer.account_reference)
    return added


# Suggestions -------------------------------------------------------------------------------------

#: Below this title similarity (0 to 1) titles are not called similar: PostgreSQL's trigram
#: similarity (pg_trgm, as the search indexes use), or the share of shared words elsewhere.
TITLE_SIMILARITY_THRESHOLD = 0.3
#: How many incidents are looked at, and how many suggested.
CANDIDATES = 200
SUGGESTIONS = 5

_WORD = re.compile(r"\w{3,}", re.UNICODE)


def token_similarity(first: str, second: str) -> float:
    """Shared words (three letters or more, case-folded) over all words of both titles, 0 to 1
    (Jaccard): the portable stand-in for trigram similarity."""
    words_a = {word.casefold() for word in _WORD.findall(first)}
    words_b = {word.casefold() for word in _WORD.findall(second)}
    if not words_a or not words_b:
        return 0.0
    return len(words_a & words_b) / len(words_a | words_b)


@dataclass
class DuplicateSuggestion:
    """A likely duplicate of an incident: ``incident`` (the other one), ``score`` (higher is
    likelier), ``reasons`` (why, as a person reads it), ``title_similarity`` (0 to 1),
    ``shared_customers`` (account references), ``hours_apart`` (between the awareness
    instants)."""

    incident: Incident
    score: float
    title_similarity: float
    hours_apart: float
    shared_customers: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def duplicate_suggestions(
    incident: Incident, *, visible: QuerySet[Incident] | None = None, limit: int = SUGGESTIONS
) -> list[DuplicateSuggestion]:
    """Open incidents that are likely the same breach as ``incident``, likeliest first.

    ``visible``: the incidents the viewer may see (default: all); suggestions come from it
    only, so a suggestion never reveals an incident the viewer could not open.

    Candidates: other open incidents of the same kind (drill or real), not merged, whose
    awareness instant lies within ``settings.DUPLICATE_WINDOW_HOURS`` of this one's, or that
    affect one of its customers (at most ``CANDIDATES``, newest first). A candidate is
    suggested when it shares an affected customer or its title is similar (trigram similarity
    on PostgreSQL, shared words elsewhere, at least ``TITLE_SIMILARITY_THRESHOLD``). Score:
    2 per shared customer, plus the similarity, plus 1 inside the time window.
    """
    window = timedelta(hours=settings.DUPLICATE_WINDOW_HOURS)
    aware = awareness(incident)
    customer_ids = list(incident.affected_customers.values_list("customer_id", flat=True))
    in_window = Q(detected_at__range=(aware - window, aware + window)) | Q(
        detected_at__isnull=True, created_at__range=(aware - window, aware + window)
    )
    near = in_window | Q(affected_customers__customer_id__in=customer_ids) if customer_ids else in_window
    candidates = (
        (Incident.objects.all() if visible is None else visible)
        .filter(near, state__in=OPEN_STATES, is_drill=incident.is_drill)
        .exclude(pk=incident.pk)
        .distinct()
        .order_by("-created_at", "-id")
    )
    postgres = connection.vendor == "postgresql"
    if postgres:
        from django.contrib.postgres.search import TrigramSimilarity

        candidates = candidates.annotate(title_similarity=TrigramSimilarity("title", incident.title))
    rows = list(candidates[:CANDIDATES])
    shared: dict[int, list[str]] = {}
    if customer_ids and rows:
        for incident_id, reference in AffectedCustomer.objects.filter(
            incident_id__in=[row.pk for row in rows], customer_id__in=customer_ids
        ).values_list("incident_id", "customer__account_reference"):
            shared.setdefault(incident_id, []).append(reference)
    suggestions = []
    for row in rows:
        similarity = (
            float(getattr(row, "title_similarity", 0) or 0)
            if postgres
            else token_similarity(incident.title, row.title)
        )
        customers = sorted(shared.get(row.pk, []))
        if not customers and similarity < TITLE_SIMILARITY_THRESHOLD:
            continue
        hours = abs((awareness(row) - aware).total_seconds()) / 3600
        reasons = [f"same customer: {', '.join(customers)}"] if customers else []
        if similarity >= TITLE_SIMILARITY_THRESHOLD:
            reasons.append(f"similar title ({similarity:.0%})")
        inside = hours <= window.total_seconds() / 3600
        if inside:
            reasons.append(f"detected {hours:.0f} h apart")
        suggestions.append(
            DuplicateSuggestion(
                incident=row,
                score=2 * len(customers) + similarity + (1 if inside else 0),
                title_similarity=similarity,
                hours_apart=hours,
                shared_customers=customers,
                reasons=reasons,
            )
        )
    suggestions.sort(
        key=lambda suggestion: (-suggestion.score, suggestion.hours_apart, suggestion.incident.pk)
    )
    return suggestions[:limit]
