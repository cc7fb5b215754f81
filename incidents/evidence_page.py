"""The incident page's "Evidence files" card: its forms and its context
(``templates/incidents/_evidence_files.html``; the routes are in ``incidents.evidence_views``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest

from incidents.files import DELETABLE_STATES
from incidents.models import EvidenceFile, Incident, IncidentState


class EvidenceUploadForm(forms.Form):
    """Upload a file as evidence (``files.evidence_file_upload``)."""

    file = forms.FileField(label="File", allow_empty_file=True)
    description = forms.CharField(
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What the file is and where it came from.",
    )


class EvidenceSupersedeForm(forms.Form):
    """Replace a file with a new version (``files.evidence_file_supersede``)."""

    file = forms.FileField(label="New version", allow_empty_file=True)
    reason = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))


def evidence_context(request: HttpRequest, incident: Incident) -> dict[str, Any]:
    """What the incident page's "Evidence files" card needs (``templates/incidents/
    _evidence_files.html``): the files with their digests (empty without
    ``view_evidencefile``), whether the user may upload or delete, and the forms."""
    user = request.user
    can_view = user.has_perm("incidents.view_evidencefile")
    return {
        "can_view_evidence": can_view,
        "evidence_files": list(
            EvidenceFile.objects.filter(incident=incident)
            .select_related("supersedes")
            .order_by("uploaded_at", "id")
        )
        if can_view
        else [],
        "can_add_evidence": user.has_perm("incidents.add_evidencefile")
        and incident.state != IncidentState.MERGED,
        "can_delete_evidence": user.has_perm("incidents.delete_evidencefile")
        and incident.declared_at is None
        and incident.state in DELETABLE_STATES,
        "evidence_form": EvidenceUploadForm(prefix="evidence"),
        "evidence_max_mib": settings.EVIDENCE_MAX_BYTES // (1024 * 1024),
        "evidence_extensions": ", ".join(sorted(settings.EVIDENCE_ALLOWED_EXTENSIONS)),
    }
