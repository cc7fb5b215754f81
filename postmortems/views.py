"""Server-rendered pages of the second half of the process: an incident's post-mortem (with its
action items and customer summary), its drill record, and the action items across incidents.

Access: the incident must be visible (``incidents.view_incident``, else 404). The post-mortem
is confidential: its page needs ``postmortems.view_postmortem`` (incident managers and
auditors; a responder gets 403). Writes need the service's permission (403 otherwise);
auditors write only their review of a completed post-mortem and their verification of an
action item. Each view validates a form and calls one service; a service's
``ValidationError`` re-shows the page with the errors (400), ``LifecycleConflict`` shows the
reason (409).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from incidents.exceptions import LifecycleConflict
from incidents.models import Incident, IncidentState
from incidents.selectors import visible_related
from incidents.views import _add_validation_errors, _get_incident_for_user
from notifications.models import Notice
from postmortems import services
from postmortems.forms import (
    FIELD_LABELS,
    FINDING_LABELS,
    ActionItemForm,
    ActionItemStatusForm,
    DrillCompleteForm,
    DrillForm,
    NoteForm,
    PostMortemForm,
    SummaryIntoNoticeForm,
    VerifyForm,
)
from postmortems.models import ActionItem, Drill, PostMortem


def _require(request: HttpRequest, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied(f"Your role may not do this (needs {', '.join(permissions)}).")


def _post_mortem_or_none(incident: Incident) -> PostMortem | None:
    return (
        PostMortem.objects.select_related("completed_by", "reviewed_by")
        .prefetch_related("summary_statements")
        .filter(incident=incident)
        .first()
    )


def _post_mortem_page(
    request: HttpRequest,
    incident: Incident,
    *,
    status: int = 200,
    form: PostMortemForm | None = None,
    item_form: ActionItemForm | None = None,
    review_form: NoteForm | None = None,
) -> HttpResponse:
    user = request.user
    post_mortem = _post_mortem_or_none(incident)
    if post_mortem is None:
        # An action on an incident whose post-mortem has not begun (complete, review, the summary,
        # an action item) answers with the page that says so, not the post-mortem's own.
        return render(request, "postmortems/no_post_mortem.html", {"incident": incident}, status=404)
    items = (
        list(
            ActionItem.objects.filter(post_mortem=post_mortem)
            .select_related("owner", "verified_by")
            .order_by("id")
        )
        if post_mortem
        else []
    )
    is_draft = post_mortem is not None and post_mortem.status == PostMortem.Status.DRAFT
    open_for_follow_up = incident.state == IncidentState.POST_MORTEM
    now = timezone.now()
    context: dict[str, Any] = {
        "incident": incident,
        "post_mortem": post_mortem,
        "findings": [
            (FINDING_LABELS[name], getattr(post_mortem, name))
            for name in FINDING_LABELS
            if post_mortem is not None
        ],
        "finding_labels": FIELD_LABELS,
        "missing_to_complete": services.post_mortem_missing_to_complete(post_mortem)
        if is_draft and post_mortem
        else [],
        "items": [(item, item.is_overdue_at(now)) for item in items],
        "can_edit": is_draft and user.has_perm("postmortems.change_postmortem"),
        "can_complete": is_draft and user.has_perm("postmortems.complete_postmortem"),
        "can_review": post_mortem is not None
        and post_mortem.status == PostMortem.Status.COMPLETED
        and user.has_perm("postmortems.review_postmortem"),
        "can_add_item": post_mortem is not None
        and open_for_follow_up
        and user.has_perm("postmortems.add_actionitem"),
        "can_change_items": open_for_follow_up and user.has_perm("postmortems.change_actionitem"),
        "can_verify": user.has_perm("postmortems.verify_actionitem"),
        "can_take_summary": post_mortem is not None
        and post_mortem.status != PostMortem.Status.DRAFT
        and user.has_perm("notifications.change_notice"),
        "summary_drafts": list(
            Notice.objects.filter(
                incident=incident,
                status=Notice.Status.DRAFT,
                kind__in=[Notice.Kind.UPDATE, Notice.Kind.FINAL],
            ).values_list("number", flat=True)
        ),
        "status_choices": ActionItem.Status.choices,
        "user_id": user.pk,
    }
    if context["can_edit"]:
        context["form"] = form or PostMortemForm(post_mortem=post_mortem)
    if context["can_add_item"]:
        context["item_form"] = item_form or ActionItemForm(prefix="item")
    if context["can_review"]:
        context["review_form"] = review_form or NoteForm(prefix="review")
    return render(request, "postmortems/post_mortem.html", context, status=status)


def _incident_with(request: HttpRequest, pk: int, *permissions: str) -> Incident:
    incident = _get_incident_for_user(request, pk)
    _require(request, *permissions)
    return incident


def _back(pk: int, anchor: str = "") -> HttpResponse:
    return redirect(reverse("postmortems:post_mortem", args=[pk]) + anchor)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def post_mortem(request: HttpRequest, pk: int) -> HttpResponse:
    """``/incidents/<pk>/post-mortem/``: the post-mortem page; POST saves the draft
    (``services.post_mortem_update``: incident managers). 404 before ``begin_post_mortem``."""
    incident = _incident_with(request, pk, "postmortems.view_postmortem")
    if _post_mortem_or_none(incident) is None:
        return render(request, "postmortems/no_post_mortem.html", {"incident": incident}, status=404)
    if request.method != "POST":
        return _post_mortem_page(request, incident)
    _require(request, "postmortems.change_postmortem")
    form = PostMortemForm(request.POST)
    if not form.is_valid():
        return _post_mortem_page(request, incident, form=form, status=400)
    try:
        saved = services.post_mortem_update(incident=incident, actor=request.user, changes=form.changes())
    except ValidationError as error:
        _add_validation_errors(form, error)
        return _post_mortem_page(request, incident, form=form, status=400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _post_mortem_page(request, incident, status=409)
    messages.success(request, f"Post-mortem saved (version {saved.version}).")
    return _back(pk)


@login_required
@require_POST
def post_mortem_complete(request: HttpRequest, pk: int) -> HttpResponse:
    """Complete the draft (``services.post_mortem_complete``: incident managers); 400 naming
    what is still missing."""
    incident = _incident_with(request, pk, "postmortems.view_postmortem", "postmortems.complete_postmortem")
    try:
        services.post_mortem_complete(incident=incident, actor=request.user)
    except ValidationError as error:
        missing = ", ".join(
            FINDING_LABELS.get(name, name.replace("_", " ")).lower() for name in error.message_dict
        )
        messages.error(request, f"To complete the post-mortem, record: {missing}.")
        return _post_mortem_page(request, incident, status=400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _post_mortem_page(request, incident, status=409)
    messages.success(request, "Post-mortem completed.")
    return _back(pk)


@login_required
@require_POST
def post_mortem_review(request: HttpRequest, pk: int) -> HttpResponse:
    """An auditor's review of the completed post-mortem (``services.post_mortem_review``)."""
    incident = _incident_with(request, pk, "postmortems.view_postmortem", "postmortems.review_postmortem")
    form = NoteForm(request.POST, prefix="review")
    if not form.is_valid():
        return _post_mortem_page(request, incident, review_form=form, status=400)
    try:
        services.post_mortem_review(incident=incident, actor=request.user, note=form.cleaned_data["note"])
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _post_mortem_page(request, incident, status=409)
    messages.success(request, "Review recorded.")
    return _back(pk)


@login_required
@require_POST
def post_mortem_summary_into_notice(request: HttpRequest, pk: int) -> HttpResponse:
    """Take the customer summary into an update or final notice draft
    (``services.post_mortem_summary_into_notice``); then show that notice."""
    incident = _incident_with(request, pk, "postmortems.view_postmortem", "notifications.change_notice")
    if _post_mortem_or_none(incident) is None:
        return _post_mortem_page(request, incident)  # the page saying there is none yet (404)
    form = SummaryIntoNoticeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the notice draft to take the summary into.")
        return _post_mortem_page(request, incident, status=400)
    notice = get_object_or_404(Notice, incident=incident, number=form.cleaned_data["notice"])
    try:
        release = services.post_mortem_summary_into_notice(notice=notice, actor=request.user)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _post_mortem_page(request, incident, status=409)
    messages.success(
        request, f"Summary (version {release.post_mortem_version}) taken into notice {notice.number}."
    )
    return redirect("notifications:notice_detail", pk=pk, number=notice.number)


@login_required
@require_POST
def action_item_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add an action item (``services.action_item_create``: incident managers)."""
    incident = _incident_with(request, pk, "postmortems.add_actionitem")
    form = ActionItemForm(request.POST, prefix="item")
    if not form.is_valid():
        return _post_mortem_page(request, incident, item_form=form, status=400)
    try:
        services.action_item_create(incident=incident, actor=request.user, **form.cleaned_data)
    except ValidationError as error:
        _add_validation_errors(form, error)
        return _post_mortem_page(request, incident, item_form=form, status=400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _post_mortem_page(request, incident, status=409)
    messages.success(request, "Action item added.")
    return _back(pk, "#action-items")


@login_required
@require_POST
def action_item_status(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Settle an action item or open it again (``services.action_item_update``: incident
    managers, or the item's owner marking it done)."""
    incident = _get_incident_for_user(request, pk)
    item = get_object_or_404(
        ActionItem.objects.select_related("post_mortem"), pk=item_pk, post_mortem__incident=incident
    )
    user = request.user
    may_settle = user.has_perm("postmortems.change_actionitem") or (
        item.owner_id == user.pk and user.has_perm("incidents.change_incident")
    )
    if not may_settle:
        # Refused before the form is read: a role that may not settle it gets 403, not a form error.
        raise PermissionDenied(
            "Your role may not do this (needs postmortems.change_actionitem, or to own the item)."
        )
    form = ActionItemStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a status.")
        return _back(pk, "#action-items")
    try:
        services.action_item_update(item=item, actor=request.user, changes=form.cleaned_data)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _after_item_error(request, incident, 400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _after_item_error(request, incident, 409)
    messages.success(request, f"Action item {item.pk}: {form.cleaned_data['status'].replace('_', ' ')}.")
    if request.user.has_perm("postmortems.view_postmortem"):
        return _back(pk, "#action-items")
    return redirect("postmortems:action_items")


def _after_item_error(request: HttpRequest, incident: Incident, status: int) -> HttpResponse:
    if request.user.has_perm("postmortems.view_postmortem"):
        return _post_mortem_page(request, incident, status=status)
    return _action_items_page(request, status=status)


@login_required
@require_POST
def action_item_verify(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """An auditor verifies a settled action item (``services.action_item_verify``)."""
    incident = _incident_with(request, pk, "postmortems.verify_actionitem")
    item = get_object_or_404(
        ActionItem.objects.select_related("post_mortem"), pk=item_pk, post_mortem__incident=incident
    )
    form = VerifyForm(request.POST)
    form.is_valid()
    try:
        services.action_item_verify(item=item, actor=request.user, note=form.cleaned_data.get("note", ""))
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _after_item_error(request, incident, 409)
    messages.success(request, f"Action item {item.pk} verified.")
    if request.user.has_perm("postmortems.view_postmortem"):
        return _back(pk, "#action-items")
    return redirect("postmortems:action_items")


def _action_items_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    now = timezone.now()
    items = list(
        visible_related(
            request.user,
            ActionItem.objects.filter(Q(status=ActionItem.Status.OPEN) | Q(verified_at__isnull=True)),
            "post_mortem__incident",
        )
        .select_related("post_mortem__incident", "owner")
        .order_by("status", "due_at", "id")[:500]
    )
    context = {
        "overdue": [item for item in items if item.is_overdue_at(now)],
        "open": [
            item for item in items if item.status == ActionItem.Status.OPEN and not item.is_overdue_at(now)
        ],
        "unverified": [item for item in items if item.status != ActionItem.Status.OPEN],
        "can_verify": request.user.has_perm("postmortems.verify_actionitem"),
        "user_id": request.user.pk,
    }
    return render(request, "postmortems/action_items.html", context, status=status)


@login_required
@require_safe
def action_items(request: HttpRequest) -> HttpResponse:
    """``/action-items/``: overdue action items first, then the other open ones, then those
    settled but not yet verified by an auditor; at most 500 (oldest due first). Needs
    ``postmortems.view_actionitem``."""
    _require(request, "incidents.view_incident", "postmortems.view_actionitem")
    return _action_items_page(request)


# Drills -----------------------------------------------------------------------------------------


def _drill_page(
    request: HttpRequest,
    incident: Incident,
    *,
    status: int = 200,
    form: DrillForm | None = None,
    complete_form: DrillCompleteForm | None = None,
) -> HttpResponse:
    drill = Drill.objects.filter(incident=incident).prefetch_related("participants").first()
    may_write = request.user.has_perm("postmortems.add_drill") and incident.is_drill
    editable = may_write and (drill is None or drill.completed_at is None)
    context: dict[str, Any] = {"incident": incident, "drill": drill, "editable": editable}
    if editable:
        if form is None:
            initial: dict[str, Any] = {"held_on": timezone.now().date()}
            if drill is not None:
                initial = {
                    "scenario": drill.scenario,
                    "held_on": drill.held_on,
                    "objectives": drill.objectives,
                }
                for number, participant in enumerate(drill.participants.all()):
                    initial[f"participant_{number}_function"] = participant.function
                    initial[f"participant_{number}_name"] = participant.name
            form = DrillForm(initial=initial)
        context["form"] = form
        if drill is not None and request.user.has_perm("postmortems.change_drill"):
            context["complete_form"] = complete_form or DrillCompleteForm(prefix="complete")
    return render(request, "postmortems/drill.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def drill(request: HttpRequest, pk: int) -> HttpResponse:
    """``/incidents/<pk>/drill/``: the drill record of an incident marked as a drill; POST
    records or changes it (``services.drill_record``: incident managers)."""
    incident = _incident_with(request, pk, "postmortems.view_drill")
    if request.method != "POST":
        return _drill_page(request, incident)
    _require(request, "postmortems.add_drill")
    form = DrillForm(request.POST)
    if not form.is_valid():
        return _drill_page(request, incident, form=form, status=400)
    data = form.cleaned_data
    try:
        services.drill_record(
            incident=incident,
            actor=request.user,
            scenario=data["scenario"],
            held_on=data["held_on"],
            objectives=data["objectives"],
            participants=form.participants(),
        )
    except ValidationError as error:
        _add_validation_errors(form, error)
        return _drill_page(request, incident, form=form, status=400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _drill_page(request, incident, status=409)
    messages.success(request, "Drill recorded.")
    return redirect("postmortems:drill", pk=pk)


@login_required
@require_POST
def drill_complete(request: HttpRequest, pk: int) -> HttpResponse:
    """Complete the drill with its outcome (``services.drill_complete``)."""
    incident = _incident_with(request, pk, "postmortems.change_drill")
    form = DrillCompleteForm(request.POST, prefix="complete")
    if not form.is_valid():
        return _drill_page(request, incident, complete_form=form, status=400)
    try:
        services.drill_complete(incident=incident, actor=request.user, outcome=form.cleaned_data["outcome"])
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _drill_page(request, incident, status=409)
    messages.success(request, "Drill completed.")
    return redirect("postmortems:drill", pk=pk)
