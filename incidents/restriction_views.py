"""The incident page's need-to-know form: ``POST /incidents/<pk>/restriction/``.

``action=set`` with ``restriction-members`` (usernames separated by spaces or commas): restrict
the incident to those people or replace its members (``services.incident_restriction_set``);
``action=lift``: lift it (``services.incident_restriction_lift``). Needs
``incidents.restrict_incident`` (403); an incident the user may not see is 404. Unknown
usernames or people whose role may not see incidents: the page again with the reason (400),
nothing changed; lifting an unrestricted incident: 409.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from incidents import services
from incidents.exceptions import LifecycleConflict
from incidents.forms import RestrictionForm
from incidents.views import _get_incident_for_user, _render_detail


@login_required
@require_POST
def incident_restriction(request: HttpRequest, pk: int) -> HttpResponse:
    """Restrict the incident, change its members or lift the restriction (module docstring).
    Success: back to the incident page (``#restriction``) with a message."""
    incident = _get_incident_for_user(request, pk)
    if not request.user.has_perm(services.RESTRICT_PERMISSION):
        raise PermissionDenied("Your role may not restrict incidents.")
    action = request.POST.get("action", "set")
    back = redirect(reverse("incidents:incident_detail", args=[pk]) + "#restriction")
    if action == "lift":
        try:
            services.incident_restriction_lift(incident=incident, actor=request.user)
        except LifecycleConflict as conflict:
            messages.error(request, str(conflict))
            return _render_detail(request, incident, status=409)
        messages.success(
            request, "The restriction is lifted: everyone whose role may view incidents sees it."
        )
        return back
    if action != "set":
        messages.error(request, "Choose to save the members or to lift the restriction.")
        return _render_detail(request, incident, status=400)
    form = RestrictionForm(request.POST, prefix="restriction")
    if not form.is_valid():
        messages.error(
            request, "; ".join(str(e) for e in form.errors.get("members", ["The members are not valid."]))
        )
        return _render_detail(request, incident, status=400)
    usernames = form.usernames()
    users = {
        u.get_username(): u for u in get_user_model().objects.filter(username__in=usernames, is_active=True)
    }
    unknown = [name for name in usernames if name not in users]
    if unknown:
        messages.error(
            request, f"No active user with these usernames: {', '.join(unknown)}. Nothing was changed."
        )
        return _render_detail(request, incident, status=400)
    try:
        services.incident_restriction_set(
            incident=incident, actor=request.user, members=[users[name] for name in usernames]
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages) + " Nothing was changed.")
        return _render_detail(request, incident, status=400)
    messages.success(request, "Only the members now see this incident.")
    return back
