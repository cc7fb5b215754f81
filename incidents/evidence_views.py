"""Pages for an incident's evidence files: the list with digests and the upload form on the
incident page (``evidence_context``), upload, supersede, delete and download routes.

Access as everywhere on the incident pages: no ``incidents.view_incident`` is 404; then
``incidents.view_evidencefile`` to list and download, ``incidents.add_evidencefile`` to upload
or supersede, ``incidents.delete_evidencefile`` to delete (403 otherwise). Refusals from the
services re-show the incident page with the form's error: a refused type or empty file 400, a
file over ``EVIDENCE_MAX_BYTES`` 413, a deletion after declaration 409.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from incidents import files
from incidents.evidence_page import EvidenceSupersedeForm, EvidenceUploadForm
from incidents.exceptions import EvidenceTooLarge, LifecycleConflict
from incidents.models import EvidenceFile, Incident
from incidents.selectors import incidents_visible_to
from incidents.views import render_incident_page


def _incident(request: HttpRequest, pk: int, permission: str) -> Incident:
    """The incident ``pk`` (404 without ``incidents.view_incident`` or if absent); 403 without
    ``permission``."""
    if not request.user.has_perm("incidents.view_incident"):
        raise Http404("No such incident.")
    incident = get_object_or_404(incidents_visible_to(request.user), pk=pk)
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Your role may not do this (needs {permission}).")
    return incident


def _evidence(incident: Incident, file_id: int) -> EvidenceFile:
    return get_object_or_404(EvidenceFile.objects.select_related("incident"), pk=file_id, incident=incident)


def _refused(request: HttpRequest, incident: Incident, message: str, status: int) -> HttpResponse:
    messages.error(request, message)
    return render_incident_page(request, incident, status=status)


def _limited(request: HttpRequest) -> files.EvidenceUploadLimitHandler:
    """Put the size-limiting handler first (before the body is read: the views are
    CSRF-exempt outside and protected inside, as Django's upload handler docs require)."""
    limiter = files.EvidenceUploadLimitHandler(request)
    request.upload_handlers.insert(0, limiter)
    return limiter


def _form_errors(form: forms.Form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


@login_required
@csrf_exempt
@require_POST
def evidence_file_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a file to the incident (``files.evidence_file_upload``); redirect to the
    incident page's evidence card. Needs ``incidents.add_evidencefile`` (403)."""
    limiter = _limited(request)
    return _upload(request, pk, limiter)


@csrf_protect
def _upload(request: HttpRequest, pk: int, limiter: files.EvidenceUploadLimitHandler) -> HttpResponse:
    incident = _incident(request, pk, "incidents.add_evidencefile")
    form = EvidenceUploadForm(request.POST, request.FILES, prefix="evidence")
    if limiter.exceeded:
        return _refused(request, incident, str(EvidenceTooLarge(limit=limiter.limit)), 413)
    if not form.is_valid():
        return _refused(request, incident, _form_errors(form) or "Choose a file to upload.", 400)
    try:
        evidence = files.evidence_file_upload(
            incident=incident,
            actor=request.user,
            upload=form.cleaned_data["file"],
            description=form.cleaned_data["description"],
        )
    except EvidenceTooLarge as error:
        return _refused(request, incident, str(error), 413)
    except ValidationError as error:
        return _refused(request, incident, " ".join(error.messages), 400)
    except LifecycleConflict as conflict:
        return _refused(request, incident, str(conflict), 409)
    messages.success(request, f"{evidence.original_name} added (SHA-256 {evidence.sha256}).")
    return redirect(reverse("incidents:incident_detail", args=[pk]) + "#evidence")


@login_required
@csrf_exempt
@require_POST
def evidence_file_supersede(request: HttpRequest, pk: int, file_id: int) -> HttpResponse:
    """Replace a file with a new version, with a reason (``files.evidence_file_supersede``).
    Needs ``incidents.add_evidencefile`` (403)."""
    limiter = _limited(request)
    return _supersede(request, pk, file_id, limiter)


@csrf_protect
def _supersede(
    request: HttpRequest, pk: int, file_id: int, limiter: files.EvidenceUploadLimitHandler
) -> HttpResponse:
    incident = _incident(request, pk, "incidents.add_evidencefile")
    evidence = _evidence(incident, file_id)
    form = EvidenceSupersedeForm(request.POST, request.FILES, prefix=f"supersede-{file_id}")
    if limiter.exceeded:
        return _refused(request, incident, str(EvidenceTooLarge(limit=limiter.limit)), 413)
    if not form.is_valid():
        return _refused(request, incident, _form_errors(form) or "Choose the new version and say why.", 400)
    try:
        new = files.evidence_file_supersede(
            evidence=evidence,
            actor=request.user,
            upload=form.cleaned_data["file"],
            reason=form.cleaned_data["reason"],
        )
    except EvidenceTooLarge as error:
        return _refused(request, incident, str(error), 413)
    except ValidationError as error:
        return _refused(request, incident, " ".join(error.messages), 400)
    except LifecycleConflict as conflict:
        return _refused(request, incident, str(conflict), 409)
    messages.success(
        request, f"{evidence.original_name} superseded by {new.original_name} (SHA-256 {new.sha256})."
    )
    return redirect(reverse("incidents:incident_detail", args=[pk]) + "#evidence")


@login_required
@require_POST
def evidence_file_delete(request: HttpRequest, pk: int, file_id: int) -> HttpResponse:
    """Delete a file before declaration (``files.evidence_file_delete``); afterwards the page
    with the reason (409). Needs ``incidents.delete_evidencefile`` (403)."""
    incident = _incident(request, pk, "incidents.delete_evidencefile")
    evidence = _evidence(incident, file_id)
    try:
        files.evidence_file_delete(evidence=evidence, actor=request.user)
    except LifecycleConflict as conflict:
        return _refused(request, incident, str(conflict), 409)
    messages.success(request, f"{evidence.original_name} deleted.")
    return redirect(reverse("incidents:incident_detail", args=[pk]) + "#evidence")


@login_required
@require_GET
def evidence_file_download(request: HttpRequest, pk: int, file_id: int) -> FileResponse:
    """The file's bytes as an attachment, never inline (``files.download_response``). Needs
    ``incidents.view_evidencefile`` (403); an auditor's download is in the read log."""
    incident = _incident(request, pk, "incidents.view_evidencefile")
    return files.download_response(_evidence(incident, file_id))
