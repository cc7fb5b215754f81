"""``POST /incidents/<id>/merge/``: merge the incident into a surviving one from its page
(``merging.incident_merge``). No ``incidents.view_incident``: 404; no
``incidents.merge_incident``: 403; an unknown survivor or a refused merge: the page again with
the reason (400, or 409 for a state that does not allow it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from incidents.exceptions import LifecycleConflict
from incidents.merge_page import MergeForm
from incidents.merging import incident_merge
from incidents.models import MERGE_PERMISSION, Incident
from incidents.selectors import incidents_visible_to
from incidents.views import render_incident_page


def _survivor(request: HttpRequest, value: str) -> Incident | None:
    """The incident named by ``value`` (an id or a reference, any case) among those the user
    may see (need to know), or ``None``."""
    value = value.strip()
    visible = incidents_visible_to(request.user)
    if value.isdigit():
        return visible.filter(pk=int(value)).first()
    return visible.filter(reference__iexact=value).first()


@login_required
@require_POST
def incident_merge_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge incident ``pk`` into the incident named by ``merge-into`` (reference or id);
    redirect to the surviving incident's page with a message."""
    if not request.user.has_perm("incidents.view_incident"):
        raise Http404("No such incident.")
    incident = get_object_or_404(incidents_visible_to(request.user), pk=pk)
    if not request.user.has_perm(MERGE_PERMISSION):
        raise PermissionDenied(f"Your role may not do this (needs {MERGE_PERMISSION}).")
    form = MergeForm(request.POST, prefix="merge")
    into = _survivor(request, form.data.get("merge-into", "")) if form.is_valid() else None
    if into is None:
        messages.error(request, "Name the surviving incident by its reference (BD-…) or id.")
        return render_incident_page(request, incident, status=400)
    try:
        incident_merge(incident=incident, into=into, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return render_incident_page(request, incident, status=400)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return render_incident_page(request, Incident.objects.get(pk=pk), status=409)
    messages.success(
        request, f"{incident.reference} merged into {into.reference}: its reports, notes and files are here."
    )
    return redirect("incidents:incident_detail", pk=into.pk)
