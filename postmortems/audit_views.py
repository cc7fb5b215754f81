"""The auditors' exports on the read-only auditor site (``/audit/``): the breach register and
an incident's evidence pack. Served through ``audit_site.admin_view`` (auditors and
superusers; everyone else is sent to the site's login), GET only."""

from __future__ import annotations

from datetime import date

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_safe

from incidents.selectors import incidents_visible_to
from postmortems.evidence import evidence_pack, register_csv, register_incidents, register_xlsx


def _period(request: HttpRequest) -> tuple[date | None, date | None] | str:
    """``(from, to)`` of ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (each optional), or the reason they
    are not valid."""
    bounds: list[date | None] = []
    for name in ("from", "to"):
        text = request.GET.get(name, "").strip()
        if not text:
            bounds.append(None)
            continue
        try:
            bounds.append(date.fromisoformat(text))
        except ValueError:
            return f"'{name}' must be a date as YYYY-MM-DD, not {text!r}."
    if bounds[0] and bounds[1] and bounds[0] > bounds[1]:
        return "'from' must not be after 'to'."
    return bounds[0], bounds[1]


def _filename(stem: str, period: tuple[date | None, date | None], suffix: str) -> str:
    start, end = period
    span = f"-{start or 'start'}-to-{end or timezone.now().date()}" if start or end else ""
    return f"{stem}{span}.{suffix}"


@require_safe
def breach_register_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """``GET /audit/register.csv?from=&to=``: the breach register (GDPR Art. 33(5)) as CSV
    (UTF-8, one header row), streamed. 400 for a bad date."""
    period = _period(request)
    if isinstance(period, str):
        return HttpResponseBadRequest(period, content_type="text/plain; charset=utf-8")
    rows = register_csv(
        register_incidents(viewer=request.user, start=period[0], end=period[1]).iterator(chunk_size=500)
    )
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename("breach-register", period, "csv")}"'
    return response


@require_safe
def breach_register_xlsx(request: HttpRequest) -> HttpResponse:
    """``GET /audit/register.xlsx?from=&to=``: the breach register as an XLSX workbook. 400 for
    a bad date."""
    period = _period(request)
    if isinstance(period, str):
        return HttpResponseBadRequest(period, content_type="text/plain; charset=utf-8")
    content = register_xlsx(
        register_incidents(viewer=request.user, start=period[0], end=period[1]).iterator(chunk_size=500)
    )
    response = HttpResponse(
        content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename("breach-register", period, "xlsx")}"'
    return response


@require_safe
def incident_evidence_pack(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET /audit/incidents/{id}/evidence-pack.zip``: the incident's evidence pack
    (``postmortems.evidence.evidence_pack``). 404 for an unknown incident or one the user may
    not see (``incidents.selectors``)."""
    incident = get_object_or_404(incidents_visible_to(request.user), pk=pk)
    pack = evidence_pack(incident)
    response = HttpResponse(pack.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{incident.reference}-evidence-pack.zip"'
    return response
