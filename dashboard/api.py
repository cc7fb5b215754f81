"""``GET /api/metrics/``: the response metrics as JSON (the numbers of the metrics page)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import metrics as metrics_module
from dashboard.forms import MetricsPeriodForm


class MayViewIncidents(BasePermission):
    """Metrics are for users who may see incidents (``incidents.view_incident``)."""

    message = "Your role may not see incidents, so it may not see their metrics."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(
            request.user
            and request.user.is_authenticated
            and request.user.has_perm("incidents.view_incident")
        )


class MetricsView(APIView):
    """``GET /api/metrics/?from=YYYY-MM&to=YYYY-MM&drills=true``: per month (UTC, the month an
    incident was recorded) the median hours to triage, to declare and to notify, how many
    customer clocks settled and how many were met within their window (and the share, 0 to 1);
    and the period's incidents by severity, scenario and detection source. Drills are excluded
    unless ``drills`` is true. Default period: the last 12 months. Precomputed
    (``refreshed_at`` says when; see ``dashboard.metrics``). 400 for a bad month or a period that
    ends before it starts; 403 without ``incidents.view_incident``."""

    permission_classes = [MayViewIncidents]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.STR, description="First month, YYYY-MM (or a date in it)."),
            OpenApiParameter("to", OpenApiTypes.STR, description="Last month, YYYY-MM (or a date in it)."),
            OpenApiParameter("drills", OpenApiTypes.BOOL, description="Count drills too (default false)."),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        query = request.query_params.copy()
        if query.get("drills", "").lower() in ("true", "1", "yes"):
            query["drills"] = "on"
        elif query.get("drills", "").lower() in ("false", "0", "no", ""):
            query["drills"] = ""
        else:
            raise ValidationError({"drills": ["Give true or false."]})
        form = MetricsPeriodForm(query)
        if not form.is_valid():
            names = {"from_month": "from", "to_month": "to"}
            raise ValidationError({names.get(k, k): [str(e) for e in v] for k, v in form.errors.items()})
        default_start, default_end = metrics_module.default_period()
        start = form.cleaned_data["from_month"] or default_start
        end = form.cleaned_data["to_month"] or max(default_end, start)
        if (end.year - start.year) * 12 + end.month - start.month > 240:
            raise ValidationError({"to": ["Ask for at most 20 years at once."]})
        figures = metrics_module.metrics_for_period(
            start=start, end=end, include_drills=form.cleaned_data["drills"]
        )
        return Response(metrics_module.as_dict(figures))
