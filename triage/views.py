"""Server-rendered triage pages: the assessment form of an incident and ticking response tasks.

Access as in ``incidents.views``: every view needs a login; a user without
``incidents.view_incident`` gets 404 for an incident (it is invisible); a user who may view but
not do this (an auditor) gets 403. Views validate input with ``triage.forms`` and call one
service; ``ValidationError`` and ``GuardFailed`` re-show the form with its errors (400),
``LifecycleConflict`` shows the page with a message (409), ``ActionForbidden`` is 403.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from incidents.exceptions import GuardFailed, LifecycleConflict
from incidents.forms import describe_missing
from incidents.models import Incident, IncidentState
from incidents.selectors import incidents_visible_to
from incidents.templatetags.breachdesk import display_zone
from triage import services
from triage.forms import AssessmentForm, SeverityPreviewForm, TaskUpdateForm
from triage.models import Assessment, ResponseTask


def _get_incident_for(request: HttpRequest, pk: int, permission: str) -> Incident:
    """The incident ``pk`` if the user may see it and holds ``permission``.

    ``Http404`` when it does not exist, the user lacks ``incidents.view_incident`` or may not see
    it (``incidents.selectors``);
    ``PermissionDenied`` (403) without ``permission``.
    """
    if not request.user.has_perm("incidents.view_incident"):
        raise Http404("No such incident.")
    incident = get_object_or_404(
        incidents_visible_to(request.user, Incident.objects.select_related("owner")), pk=pk
    )
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your role may view this incident but not do this.")
    return incident


def _add_service_errors(form: AssessmentForm, error: ValidationError) -> None:
    """Put a service's ``ValidationError`` on the fields it names. A message that starts with a
    form field's name (``"ease_of_identification: required"``) goes on that field; the rest are
    form-wide errors naming what they are about."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, field_errors in error.message_dict.items():
        for message in field_errors:
            prefix = message.split(":", 1)[0]
            if name in form.fields:
                form.add_error(name, message)
            elif prefix in form.fields:
                form.add_error(prefix, message.split(":", 1)[1].strip())
            else:
                form.add_error(None, f"{name.replace('_', ' ')}: {message}")


def _preview(echo: SeverityPreviewForm) -> tuple[dict[str, Any] | None, str]:
    """The ENISA severity of the severity inputs in ``echo`` (the POST, every field optional),
    as JSON; or ``None`` and a message saying what is still missing or wrong."""
    echo.is_valid()
    inputs = echo.severity_inputs()
    if inputs is None:
        return None, "Tick the data categories and choose the ease of identification."
    try:
        result = services.severity_preview(
            severity_inputs=inputs,
            data_categories=echo.cleaned_data.get("data_categories") or [],
            malicious=echo.cleaned_data.get("malicious") or None,
        )
    except ValidationError as error:
        return None, "; ".join(error.messages)
    return services.severity_result_json(result), ""


def _unbound_copy(echo: SeverityPreviewForm) -> AssessmentForm:
    """An unbound form showing what was posted, so a preview shows no "required" errors."""
    echo.is_valid()
    initial = dict(echo.cleaned_data)
    data = echo.data
    assert isinstance(data, QueryDict)  # the form is bound to request.POST
    for name in echo.errors:
        if name in echo.fields:
            multiple = isinstance(echo.fields[name], forms.MultipleChoiceField)
            initial[name] = data.getlist(name) if multiple else data.get(name)
    return AssessmentForm(initial=initial)


def _render_form(
    request: HttpRequest,
    incident: Incident,
    form: AssessmentForm,
    *,
    status: int = 200,
    preview: dict[str, Any] | None = None,
    preview_note: str = "",
) -> HttpResponse:
    context = {
        "incident": incident,
        "form": form,
        "latest": incident.assessments.order_by("-version").first(),
        "preview": preview,
        "preview_note": preview_note,
        "severity_api_url": reverse("triage_api:severity"),
        "display_time_zone": display_zone().key,
    }
    return render(request, "triage/assessment_form.html", context, status=status)


@login_required
def assessment_new(request: HttpRequest, pk: int) -> HttpResponse:
    """The triage form of incident ``pk`` (``GET``) and its submission (``POST``, through
    ``services.assessment_record``); needs ``triage.add_assessment`` (responders, incident
    managers).

    The form starts from the latest assessment's inputs (or the incident's facts). A ``POST``
    with ``preview`` shows the ENISA severity of the inputs without recording anything (the
    path without JavaScript). Success: redirect to the incident page with a message. Invalid
    input: the form with its errors and the severity computed so far (400). The incident's
    state does not allow it: the form with a message (409).
    """
    incident = _get_incident_for(request, pk, "triage.add_assessment")
    if request.method != "POST":
        latest = incident.assessments.order_by("-version").first()
        form = AssessmentForm(initial=AssessmentForm.initial_for(incident, latest))
        preview = latest.severity_result if latest else None
        return _render_form(request, incident, form, preview=preview)
    echo = SeverityPreviewForm(request.POST)
    if "preview" in request.POST:
        preview, note = _preview(echo)
        form = _unbound_copy(echo)
        return _render_form(request, incident, form, preview=preview, preview_note=note)
    form = AssessmentForm(request.POST)
    status = 400
    if not form.is_valid() and incident.state == IncidentState.DETECTED:
        form.add_error(None, services.TRIAGE_NEEDS_ASSESSMENT)
    if form.is_valid():
        try:
            assessment = services.assessment_record(
                incident=incident, actor=request.user, **form.service_kwargs()
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        except GuardFailed as failure:
            for fact in failure.missing:
                field = fact if fact in form.fields else None
                form.add_error(field, f"Needs {describe_missing(fact, failure.transition_name)}.")
        except LifecycleConflict as conflict:
            messages.error(request, str(conflict))
            status = 409
        else:
            messages.success(request, _success_message(assessment))
            return redirect(reverse("incidents:incident_detail", args=[pk]) + "#triage")
    preview, note = _preview(echo)
    fresh = Incident.objects.select_related("owner").get(pk=pk)
    return _render_form(request, fresh, form, status=status, preview=preview, preview_note=note)


@login_required
@require_POST
def triage_transition(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /incidents/<pk>/transitions/triage/`` (served here, ahead of the incident pages'
    transition route): triage takes an assessment, so this refuses with
    ``services.TRIAGE_NEEDS_ASSESSMENT`` (400) and shows the triage form, whose submission
    records the assessment and triages (one triage path, web and API). 404 for an invisible
    incident; 403 without ``incidents.triage_incident``."""
    incident = _get_incident_for(request, pk, "incidents.triage_incident")
    messages.error(request, services.TRIAGE_NEEDS_ASSESSMENT)
    latest = incident.assessments.order_by("-version").first()
    form = AssessmentForm(initial=AssessmentForm.initial_for(incident, latest))
    return _render_form(request, incident, form, status=400)


def _success_message(assessment: Assessment) -> str:
    text = f"Assessment v{assessment.version} recorded: {assessment.get_scope_display().lower()}"
    if assessment.band:
        text += f", severity {assessment.get_band_display().lower()}"
    return text + "."


@login_required
@require_POST
def task_update(request: HttpRequest, pk: int, task_pk: int) -> HttpResponse:
    """Tick response task ``task_pk`` of incident ``pk`` done (``done=1``) or open it again
    (``done=0``) through ``services.response_task_update``; needs
    ``triage.change_responsetask``. Success: back to the incident page. A bad ``done`` value:
    400; the incident is closed or ruled out: the page with the reason (409)."""
    from incidents.views import _render_detail

    incident = _get_incident_for(request, pk, "triage.change_responsetask")
    task = get_object_or_404(ResponseTask, pk=task_pk, incident=incident)
    form = TaskUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say whether the task is done (done=1) or not (done=0).")
        return _render_detail(request, incident, status=400)
    try:
        services.response_task_update(task=task, actor=request.user, done=form.cleaned_data["done"])
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _render_detail(request, incident, status=409)
    state = "done" if form.cleaned_data["done"] else "open again"
    messages.success(request, f"Task “{Truncator(task.description).chars(80)}” {state}.")
    return redirect(reverse("incidents:incident_detail", args=[pk]) + "#triage-tasks")
