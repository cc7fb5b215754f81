"""Server-rendered pages of the incident register.

Every view needs a login. Access follows one helper, ``_get_incident_for_user``: a user without
``incidents.view_incident`` gets 404 for an incident (it is invisible) and 403 for the list; a
user who may view but not write (an auditor) gets 403 on every write (DESIGN.md section 6).
Views validate input with ``incidents.forms`` and call one service; the services own the rules
and raise the errors mapped here: ``GuardFailed`` and ``ValidationError`` re-show the form with
its errors (400), ``LifecycleConflict`` shows the page with a message (409),
``ActionForbidden`` (a ``PermissionDenied``) is 403.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django_fsm import can_proceed

from incidents import services
from incidents.completeness import breach_fields
from incidents.evidence_page import evidence_context
from incidents.exceptions import GuardFailed, LifecycleConflict, TransitionNotAvailable
from incidents.forms import (
    TRANSITION_FORMS,
    AffectedCustomerAddForm,
    IncidentCreateForm,
    IncidentEditForm,
    IncidentFilter,
    NoteForm,
    TransitionForm,
    describe_missing,
)
from incidents.heartbeat import worker_heartbeat
from incidents.lifecycle import TRANSITION_NAMES, missing_for
from incidents.merge_page import merge_context
from incidents.models import (
    TRANSITION_PERMISSIONS,
    AffectedCustomer,
    AuditEvent,
    Customer,
    DataCategory,
    Incident,
    IncidentState,
    Note,
)
from incidents.reversing import url_maker
from incidents.selectors import incidents_visible_to
from incidents.templatetags.breachdesk import audit_items, display_zone, humanize, local, utc

#: Incidents per page of the list.
PAGE_SIZE = 50

#: States from which affected customers may still be removed (``affected_customer_remove``).
_REMOVABLE_STATES = (IncidentState.DETECTED, IncidentState.TRIAGED)


def _get_incident_for_user(request: HttpRequest, pk: int, write: bool = False) -> Incident:
    """The incident ``pk`` if the logged-in user may see it (and, with ``write``, change it).

    Raises ``Http404`` when the incident does not exist or the user lacks
    ``incidents.view_incident`` or may not see it (a restricted incident it is not a member of,
    ``incidents.selectors``: an outsider cannot tell these apart); ``PermissionDenied``
    (403) when ``write`` is asked and the user lacks ``incidents.change_incident`` (a read-only
    auditor). Finer checks (which transition a role may take) stay with the services.
    """
    if not request.user.has_perm("incidents.view_incident"):
        raise Http404("No such incident.")
    incident = get_object_or_404(
        incidents_visible_to(
            request.user,
            Incident.objects.select_related("owner", "created_by", "declared_by", "sub_processor"),
        ),
        pk=pk,
    )
    if write and not request.user.has_perm("incidents.change_incident"):
        raise PermissionDenied("Your role may view this incident but not change it.")
    return incident


# --- The list -----------------------------------------------------------------------------


def _encode_cursor(incident: Incident) -> str:
    """An opaque keyset cursor for "older than ``incident``" (base64 of created_at and id)."""
    raw = json.dumps([incident.created_at.isoformat(), incident.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(created_at, id)`` from a cursor made by ``_encode_cursor``; ``ValueError`` if bad."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at_text, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created_at = datetime.fromisoformat(created_at_text)
        if timezone.is_naive(created_at) or type(pk) is not int or not 0 < pk < 2**63:
            raise ValueError("bad cursor")
        created_at = created_at.astimezone(UTC)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise ValueError("bad cursor") from None
    return created_at, pk


@login_required
@require_safe
def incident_list(request: HttpRequest) -> HttpResponse:
    """Incidents newest first, filtered by ``state``, ``severity``, ``detection_source``,
    ``drill`` (``real`` or ``drill``) and a text search ``q``; ``?cursor=`` pages to older ones (keyset on ``(created_at, id)``, no
    COUNT). Bad filters or a bad cursor answer 400 with the reason. 403 without
    ``incidents.view_incident``."""
    if not request.user.has_perm("incidents.view_incident"):
        raise PermissionDenied("Your role may not see incidents.")
    columns = ("reference", "title", "state", "severity", "detection_source", "is_drill", "created_at")
    filterset = IncidentFilter(
        request.GET, queryset=incidents_visible_to(request.user, Incident.objects.only(*columns))
    )
    context: dict[str, Any] = {
        "filter_form": filterset.form,
        "heartbeat": worker_heartbeat(),
        "incidents": [],
        "older_cursor": None,
        "is_first_page": "cursor" not in request.GET,
        "error": None,
    }
    if not filterset.is_valid():
        context["error"] = "Some filters are not valid; see below."
        return render(request, "incidents/incident_list.html", context, status=400)
    incidents: QuerySet[Incident] = filterset.qs.order_by("-created_at", "-id")
    if request.GET.get("cursor"):
        try:
            created_at, pk = _decode_cursor(request.GET["cursor"])
        except ValueError:
            context["error"] = "That page link is not valid; start again from the newest incidents."
            return render(request, "incidents/incident_list.html", context, status=400)
        # A row-value comparison, which PostgreSQL uses as an index condition on
        # incidents_incident_recent (``a < x OR (a = x AND b < y)`` it can only filter).
        table = Incident._meta.db_table
        incidents = incidents.filter(
            RawSQL(  # noqa: S611 - the table name is the model's; the values are parameters
                f'("{table}"."created_at", "{table}"."id") < (%s, %s)',
                (connection.ops.adapt_datetimefield_value(created_at), pk),
                output_field=BooleanField(),
            )
        )
    page = list(incidents[: PAGE_SIZE + 1])
    if len(page) > PAGE_SIZE:
        page = page[:PAGE_SIZE]
        context["older_cursor"] = _encode_cursor(page[-1])
    context["incidents"] = page
    return render(request, "incidents/incident_list.html", context)


# --- Creating and editing -----------------------------------------------------------------


def _add_validation_errors(form: BaseForm, error: ValidationError) -> None:
    """Put a service's ``ValidationError`` on the form: on a field it names if the form has it,
    otherwise as a form-wide error naming the field."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, field_errors in error.message_dict.items():
        if name in form.fields:
            form.add_error(name, field_errors)
        else:
            label = name.replace("_", " ")
            form.add_error(None, [f"{label}: {message}" for message in field_errors])


@login_required
def incident_new(request: HttpRequest) -> HttpResponse:
    """Record a new signal (``services.incident_create``); needs ``incidents.add_incident``.
    ``detected_at`` is read in ``settings.DISPLAY_TIME_ZONE``."""
    if not request.user.has_perm("incidents.add_incident"):
        raise PermissionDenied("Your role may not record incidents.")
    form = IncidentCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            incident = services.incident_create(actor=request.user, fields=form.service_fields())
        except ValidationError as error:
            _add_validation_errors(form, error)
        else:
            messages.success(request, f"{incident.reference} recorded.")
            return redirect("incidents:incident_detail", pk=incident.pk)
    status = 400 if form.errors else 200
    context = {"form": form, "display_time_zone": display_zone().key}
    return render(request, "incidents/incident_form.html", context, status=status)


@login_required
def incident_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit an incident's facts (``services.incident_update``); needs
    ``incidents.change_incident``. A final incident (closed, out of scope, customer event)
    cannot be edited: 409 with the reason."""
    incident = _get_incident_for_user(request, pk, write=True)
    if incident.state in services.FINAL_STATES:
        messages.error(request, f"A {incident.get_state_display().lower()} incident cannot be edited.")
        return _render_detail(request, incident, status=409)
    form = IncidentEditForm(request.POST or None, instance=incident)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.incident_update(
                    incident=incident, actor=request.user, changes=form.service_changes()
                )
            except ValidationError as error:
                _add_validation_errors(form, error)
            except LifecycleConflict as error:
                messages.error(request, str(error))
                return _render_detail(request, Incident.objects.get(pk=pk), status=409)
            else:
                changed = ", ".join(form.changed_data) or "nothing"
                messages.success(request, f"Saved (changed: {changed}).")
                return redirect("incidents:incident_detail", pk=incident.pk)
        status = 400
    context = {
        "form": form,
        "incident": Incident.objects.get(pk=pk),  # the stored facts, not the form's edits
        "display_time_zone": display_zone().key,
    }
    return render(request, "incidents/incident_form.html", context, status=status)


# --- The incident page --------------------------------------------------------------------


def _transition_panels(
    request: HttpRequest, incident: Incident, bound: dict[str, TransitionForm]
) -> list[dict[str, Any]]:
    """One panel per transition the user may take from the incident's current state: its form
    (the bound one after a failed attempt) and the guard facts still missing that the form
    cannot supply (for example an affected customer before declaring)."""
    panels = []
    for name in TRANSITION_NAMES:
        if not (
            can_proceed(getattr(incident, name), check_conditions=False)
            and request.user.has_perm(TRANSITION_PERMISSIONS[name])
        ):
            continue
        form = bound.get(name) or TRANSITION_FORMS[name](incident=incident, prefix=name)
        missing = [
            describe_missing(fact, name)
            for fact in missing_for(incident, name)
            if form.field_for_fact(fact) is None
        ]
        panels.append(
            {
                "name": name,
                "form": form,
                "missing": missing,
                "confirm": IRREVERSIBLE.get(name, ""),
                "open": name in bound,
            }
        )
    return panels


#: Transitions that cannot be undone: their button asks for confirmation first.
IRREVERSIBLE = {
    "declare": "Declare a personal data breach? This starts every affected customer's notification clock and cannot be undone.",
    "rule_out_of_scope": "Rule this incident out of scope? It is then closed and cannot be reopened.",
    "classify_as_customer_event": "Classify this as a customer-driven event? It is then closed and cannot be reopened.",
    "close": "Close this incident? A closed incident cannot be reopened.",
}


@dataclass(frozen=True)
class AuditEventRow:
    """An audit event as the incident page shows it in the timeline and the audit trail, its
    text computed once in Python (filters on each of many rows were most of the page's
    rendering time). ``when``: the instant in UTC; ``actor``: who (``system`` when empty);
    ``verb``: in words; ``states``: ``from → to`` as stored (``""`` without a state change);
    ``summary``: the timeline's line after the time; ``items``: the data as ``(label, text)``
    pairs in words (``breachdesk.audit_items``). Plain text: the template escapes it."""

    event: AuditEvent
    when: str
    actor: str
    verb: str
    states: str
    summary: str
    items: list[tuple[str, str]]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventRow:
        actor = event.actor_username or "system"
        verb = humanize(event.verb)
        summary = f"{actor}: {verb}"
        if event.to_state and event.from_state:
            summary += f" ({humanize(event.from_state)} → {humanize(event.to_state)})"
        states = ""
        if event.from_state or event.to_state:
            states = f"{event.from_state or '—'} → {event.to_state or '—'}"
        return cls(
            event=event,
            when=utc(event.occurred_at),
            actor=actor,
            verb=verb,
            states=states,
            summary=summary,
            items=[(humanize(label), text) for label, text in audit_items(event.data)],
        )


@dataclass(frozen=True)
class AffectedCustomerRow:
    """An affected customer as the incident page lists it, its cells' text computed once:
    ``records`` and ``data_subjects`` (``—`` when not known, `` (estimate)`` appended),
    ``added`` (local time and who) and the link that removes it (``""`` when not offered)."""

    affected: AffectedCustomer
    records: str
    data_subjects: str
    added: str
    remove_url: str

    @staticmethod
    def figure(value: int | None, is_estimate: bool) -> str:
        text = "—" if value is None else str(value)
        return f"{text} (estimate)" if is_estimate else text


def _affected_rows(
    incident: Incident, affected_customers: list[AffectedCustomer], *, removable: bool
) -> list[AffectedCustomerRow]:
    remove_url = url_maker("incidents:affected_customer_remove", incident.pk) if removable else None
    rows = []
    for affected in affected_customers:
        added = local(affected.added_at)
        if affected.added_by:
            added += f" by {affected.added_by.get_username()}"
        rows.append(
            AffectedCustomerRow(
                affected=affected,
                records=AffectedCustomerRow.figure(
                    affected.records_affected, affected.records_affected_is_estimate
                ),
                data_subjects=AffectedCustomerRow.figure(
                    affected.data_subjects_affected, affected.data_subjects_affected_is_estimate
                ),
                added=added,
                remove_url=remove_url(affected.customer_id) if remove_url else "",
            )
        )
    return rows


def _timeline(audit_events: list[Any], notes: list[Note]) -> list[dict[str, Any]]:
    """Audit events and notes in one list, in the order they were recorded (UTC). A note's
    ``occurred_at`` (when the thing happened) is shown beside when it was recorded, never used
    to reorder: the timeline is what we knew when. ``audit_events``: ``AuditEventRow``s (each
    entry's ``event`` is the row's event, its ``row`` the row)."""
    entries = [
        {"kind": "event", "at": row.event.occurred_at, "event": row.event, "row": row} for row in audit_events
    ]
    entries += [{"kind": "note", "at": note.created_at, "note": note} for note in notes]
    entries.sort(key=lambda entry: (entry["at"], entry["kind"] == "event"))
    return entries


#: How many customers the incident page offers as suggestions when adding an affected one.
CUSTOMER_SUGGESTIONS = 500


def _render_detail(
    request: HttpRequest,
    incident: Incident,
    *,
    status: int = 200,
    bound: dict[str, TransitionForm] | None = None,
    affected_form: AffectedCustomerAddForm | None = None,
    note_form: NoteForm | None = None,
) -> HttpResponse:
    """The incident page, optionally with a form that failed (bound, showing its errors)."""
    user = request.user
    is_final = incident.state in services.FINAL_STATES
    categories = dict(DataCategory.choices)
    products = list(incident.products.all())
    audit_events = list(incident.audit_events.order_by("sequence"))
    audit_rows = [AuditEventRow.of(event) for event in audit_events]
    notes = list(incident.notes.order_by("created_at", "id")) if user.has_perm("incidents.view_note") else []
    fields = breach_fields(incident, has_products=bool(products))
    affected_customers = list(
        incident.affected_customers.select_related("customer", "added_by").order_by("customer__name", "id")
    )
    can_remove_customer = (
        user.has_perm("incidents.change_incident")
        and user.has_perm("incidents.delete_affectedcustomer")
        and incident.state in _REMOVABLE_STATES
    )
    context = {
        "incident": incident,
        "products": products,
        "breach_fields": fields,
        "known_fields": sum(field.known for field in fields),
        "timeline": _timeline(audit_rows, notes),
        "can_add_note": user.has_perm("incidents.add_note"),
        "note_form": note_form or NoteForm(prefix="note"),
        "data_categories": [categories.get(value, value) for value in incident.data_categories or []],
        "affected_customers": affected_customers,
        "affected_rows": _affected_rows(incident, affected_customers, removable=can_remove_customer),
        "audit_events": audit_events,
        "audit_rows": audit_rows,
        "transitions": _transition_panels(request, incident, bound or {}),
        "can_edit": user.has_perm("incidents.change_incident") and not is_final,
        "can_add_customer": user.has_perm("incidents.change_incident")
        and user.has_perm("incidents.add_affectedcustomer")
        and not is_final,
        "can_remove_customer": can_remove_customer,
        "affected_form": affected_form or AffectedCustomerAddForm(prefix="affected"),
        "display_time_zone": display_zone().key,
    }
    if context["can_add_customer"]:
        # Suggestions for the "add affected customer" field; a long register is searched by
        # typing the exact reference or name instead.
        suggestions = Customer.objects.exclude(incidents__incident=incident)
        if not incident.is_drill:  # a drill customer may be added to drills only
            suggestions = suggestions.exclude(is_drill_customer=True)
        context["customer_suggestions"] = list(
            suggestions.order_by("name").values_list("account_reference", "name")[:CUSTOMER_SUGGESTIONS]
        )
    context.update(evidence_context(request, incident))
    context.update(merge_context(request, incident))
    return render(request, "incidents/incident_detail.html", context, status=status)


#: The incident page, for the routes of other modules of this app that re-show it with an error.
render_incident_page = _render_detail


@login_required
@require_safe
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The incident page: facts, breach fields, scope decision, affected customers, the audit
    trail (UTC) and a form per transition the user may take now. 404 without
    ``incidents.view_incident``."""
    incident = _get_incident_for_user(request, pk)
    return _render_detail(request, incident)


@login_required
@require_POST
def incident_transition(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """Run lifecycle transition ``name`` through ``services.TRANSITION_SERVICES[name]`` with the
    form's inputs.

    Success: redirect to the incident page with a message. Guard not met or a bad value: the
    page again with the form and its errors (400, nothing changed). Not available from the
    current state: the page with a message (409). The role may not: 403. Unknown name: 404.
    """
    incident = _get_incident_for_user(request, pk, write=True)
    if name not in services.TRANSITION_SERVICES:
        raise Http404("No such transition.")
    form = TRANSITION_FORMS[name](request.POST, incident=incident, prefix=name)
    if form.is_valid():
        try:
            services.TRANSITION_SERVICES[name](incident=incident, actor=request.user, **form.service_kwargs())
        except GuardFailed as failure:
            for fact in failure.missing:
                field = form.field_for_fact(fact)
                message = f"{form.button_label} needs {describe_missing(fact, name)}."
                form.add_error(field, message)
        except ValidationError as error:
            _add_validation_errors(form, error)
        except TransitionNotAvailable as conflict:
            current = IncidentState(conflict.state).label.lower()
            messages.error(request, f"“{form.button_label}” is not possible: the incident is {current}.")
            return _render_detail(request, Incident.objects.get(pk=pk), status=409)
        except LifecycleConflict as conflict:
            messages.error(request, str(conflict))
            return _render_detail(request, Incident.objects.get(pk=pk), status=409)
        else:
            messages.success(request, f"{form.button_label}: done.")
            return redirect("incidents:incident_detail", pk=pk)
    return _render_detail(request, incident, status=400, bound={name: form})


@login_required
@require_POST
def affected_customer_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a customer (by account reference) as affected
    (``services.affected_customer_add``). Unknown customer: 400; already recorded or the
    incident is final: 409; a drill customer on a real incident: 400; each re-shows the page
    with the form's error."""
    incident = _get_incident_for_user(request, pk, write=True)
    form = AffectedCustomerAddForm(request.POST, prefix="affected")
    status = 400
    if form.is_valid():
        try:
            affected = services.affected_customer_add(
                incident=incident,
                customer=form.cleaned_data["account_reference"],
                actor=request.user,
                notes=form.cleaned_data["notes"],
                **form.figures(),
            )
        except LifecycleConflict as conflict:
            form.add_error(None, str(conflict))
            status = 409
        except ValidationError as error:
            _add_validation_errors(form, error)
        else:
            messages.success(request, f"{affected.customer} recorded as affected.")
            return redirect("incidents:incident_detail", pk=pk)
    return _render_detail(request, incident, status=status, affected_form=form)


@login_required
@require_POST
def affected_customer_remove(request: HttpRequest, pk: int, customer_pk: int) -> HttpResponse:
    """Remove an affected customer before declaration (``services.affected_customer_remove``);
    after declaration, or when not recorded: the page with the reason (409)."""
    incident = _get_incident_for_user(request, pk, write=True)
    customer = get_object_or_404(Customer, pk=customer_pk)
    try:
        services.affected_customer_remove(incident=incident, customer=customer, actor=request.user)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _render_detail(request, incident, status=409)
    messages.success(request, f"{customer} is no longer recorded as affected.")
    return redirect("incidents:incident_detail", pk=pk)


@login_required
@require_POST
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a note to the incident's timeline (``services.note_add``); ``occurred_at`` is read in
    ``settings.DISPLAY_TIME_ZONE``. Needs ``incidents.add_note`` (403); a blank note or a time in
    the future: the page with the form's error (400), nothing stored."""
    incident = _get_incident_for_user(request, pk)
    if not request.user.has_perm("incidents.add_note"):
        raise PermissionDenied("Your role may read this incident's notes but not add one.")
    form = NoteForm(request.POST, prefix="note")
    if form.is_valid():
        try:
            services.note_add(
                incident=incident,
                actor=request.user,
                text=form.cleaned_data["text"],
                occurred_at=form.cleaned_data["occurred_at"],
            )
        except ValidationError as error:
            _add_validation_errors(form, error)
        else:
            messages.success(request, "Note added to the timeline.")
            return redirect(reverse("incidents:incident_detail", args=[pk]) + "#timeline")
    return _render_detail(request, incident, status=400, note_form=form)
