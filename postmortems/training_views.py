"""The overdue training list: the page ``/training/overdue/`` and ``GET /api/training/overdue/``;
and the training audit trail's verification on the auditor site (``/audit/training/verify/``).

Who sees what (DESIGN.md section 6, "read-only for auditors"; both routes are reads):

- incident managers and auditors (``postmortems.view_trainingrecord``): everyone whose
  mandatory training has lapsed or was never done, a page of people at a time;
- responders (``postmortems.view_own_training`` only): their own standing, so that each member
  of the response team can see what they must renew, and nobody else's;
- anyone else logged in: 403; not logged in: the login page (web) or 401/403 (API).

Both answer 400 for a page link (``?cursor=``) that is not valid. The list is computed by
``postmortems.training.training_overdue`` (keyset pagination by email; no counting).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.query import refuse_unknown_query_parameters
from incidents.api.serializers import ErrorSerializer
from incidents.audit_site import audit_site
from postmortems.models import Course, TrainingAuditEvent
from postmortems.training import PersonStatus, mandatory_courses, training_overdue, training_status_for_user
from postmortems.training_audit import verify_training_chains

#: Who may see everyone's training; who may see their own.
VIEW_EVERYONE = "postmortems.view_trainingrecord"
VIEW_OWN = "postmortems.view_own_training"


def _scope(user: Any) -> str:
    """``"everyone"``, ``"own"``, or raise ``PermissionDenied`` (403)."""
    if user.has_perm(VIEW_EVERYONE):
        return "everyone"
    if user.has_perm(VIEW_OWN):
        return "own"
    raise PermissionDenied("Your role may not see training records.")


def encode_cursor(email: str) -> str:
    """An opaque page link for "people after ``email``"."""
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The email a cursor made by ``encode_cursor`` continues after; ``ValueError`` if bad."""
    try:
        email = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None
    if not email or len(email) > 254 or email != email.strip().lower():
        raise ValueError("bad cursor")
    return email


class BadCursor(Exception):
    pass


def _people(
    request: HttpRequest, scope: str, at: datetime, courses: list[Course]
) -> tuple[list[PersonStatus], str | None]:
    """The overdue people this user may see, and the cursor of the next page (``None``: last)."""
    if scope == "own":
        mine = training_status_for_user(request.user, at=at, courses=courses)
        people = [PersonStatus(mine.email, mine.user, mine.overdue)] if mine.overdue else []
        return people, None
    after = None
    if request.GET.get("cursor"):
        try:
            after = decode_cursor(request.GET["cursor"])
        except ValueError:
            raise BadCursor from None
    page = training_overdue(at=at, after=after, courses=courses)
    return page.people, encode_cursor(page.next_after) if page.next_after else None


@require_safe
@login_required
def training_overdue_page(request: HttpRequest) -> HttpResponse:
    """The overdue list (incident managers, auditors; read-only) or, for a responder, their own
    standing in every mandatory course. 403 for other users; 400 for a bad page link."""
    scope = _scope(request.user)
    at = timezone.now()
    courses = mandatory_courses()
    mine = None
    if request.user.has_perm(VIEW_OWN):
        mine = training_status_for_user(request.user, at=at, courses=courses)
    context: dict[str, Any] = {"scope": scope, "at": at, "mine": mine, "people": [], "next_cursor": None}
    try:
        context["people"], context["next_cursor"] = _people(request, scope, at, courses)
    except BadCursor:
        context["error"] = "That page link is not valid; start again from the first page."
        return render(request, "postmortems/training_overdue.html", context, status=400)
    context["is_first_page"] = "cursor" not in request.GET
    return render(request, "postmortems/training_overdue.html", context)


# --- API --------------------------------------------------------------------------------------


class CourseStatusSerializer(serializers.Serializer):
    """One overdue course of a person. ``status``: ``lapsed`` or ``never_completed``. ``since``
    (UTC): when it lapsed, or when it became due for the person. ``last_completed_at``,
    ``expires_at``: the latest completion and expiry, ``null`` if never completed."""

    code = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["lapsed", "never_completed"])
    since = serializers.DateTimeField(allow_null=True)
    last_completed_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class OverduePersonSerializer(serializers.Serializer):
    """A person with overdue mandatory training: ``email`` (normalised; ``""`` for an account
    without one), ``user`` (the account's username, ``null`` for staff without an account)."""

    email = serializers.CharField()
    user = serializers.CharField(allow_null=True)
    courses = CourseStatusSerializer(many=True)


class OverdueListSerializer(serializers.Serializer):
    """``as_of``: the instant the list was computed (UTC). ``scope``: ``everyone`` or ``own``.
    ``next``: the next page's URL, ``null`` on the last page."""

    as_of = serializers.DateTimeField()
    scope = serializers.ChoiceField(choices=["everyone", "own"])
    next = serializers.CharField(allow_null=True)
    results = OverduePersonSerializer(many=True)


def person_json(person: PersonStatus) -> dict[str, Any]:
    """A person of the overdue list as the API shows it (``OverduePersonSerializer``)."""
    return {
        "email": person.email,
        "user": person.user.get_username() if person.user is not None else None,
        "courses": [status.as_json() for status in person.courses],
    }


class TrainingOverdueView(APIView):
    """``GET /api/training/overdue/``: people whose mandatory training has lapsed or was never
    done, in email order, 100 people a page (``?cursor=`` from ``next``). Incident managers and
    auditors see everyone; a responder sees only themselves (``results`` empty or one
    person). 403 for other users; 400 for a bad cursor."""

    permission_classes = [IsAuthenticated]
    extra_query_parameters = {"GET": ["cursor"]}

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str, description="From the previous answer's `next`.")],
        responses={200: OverdueListSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_query_parameters(request, self, listing=False)
        scope = _scope(request.user)
        at = timezone.now()
        try:
            people, next_cursor = _people(request, scope, at, mandatory_courses())
        except BadCursor:
            return Response({"detail": "Invalid cursor."}, status=400)
        next_url = None
        if next_cursor:
            next_url = request.build_absolute_uri(f"{request.path}?cursor={next_cursor}")
        return Response(
            {
                "as_of": at.isoformat().replace("+00:00", "Z"),
                "scope": scope,
                "next": next_url,
                "results": [person_json(person) for person in people],
            }
        )


# --- The auditor site ---------------------------------------------------------------------------


def training_audit_verify(request: HttpRequest) -> HttpResponse:
    """``GET /audit/training/verify/`` (routed in ``config/urls.py`` through
    ``audit_site.admin_view``: auditors and superusers): recompute every course's audit chain
    and the digests of the records each import stored, now, and show each break (the course,
    the row and why) or that everything verifies. The same check as
    ``manage.py verify_training_audit``. Reads only; 405 for anything but GET and HEAD."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    breaks = verify_training_chains()
    codes = dict(Course.objects.filter(pk__in={b.course_id for b in breaks}).values_list("pk", "code"))
    context = {
        **audit_site.each_context(request),
        "title": "Training audit trail verification",
        "breaks": [(codes.get(b.course_id, b.course_id), b.sequence, b.reason) for b in breaks],
        "chains": TrainingAuditEvent.objects.values("course_id").distinct().count(),
        "events": TrainingAuditEvent.objects.count(),
        "verified_at": timezone.now(),
    }
    return TemplateResponse(request, "admin/training_audit_verify.html", context)
