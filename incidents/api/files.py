"""REST API for an incident's evidence files (issue 10, item 2).

- ``GET /api/incidents/{id}/files/``: the incident's files, oldest first (superseded ones
  included, marked), keyset-paginated. Needs ``incidents.view_evidencefile`` (403).
- ``POST /api/incidents/{id}/files/``: ``multipart/form-data`` with ``file`` (required),
  ``description``, and optionally ``note`` (a note id) or ``task`` (a playbook task id) of the
  same incident. 201 with the file (``id``, ``name``, ``size`` in bytes, ``sha256`` hex,
  ``download_url``...). 400 for a refused type, an empty file or a bad field; 413
  (``file_too_large``) over ``EVIDENCE_MAX_BYTES``; 409 on a merged incident. Needs
  ``incidents.add_evidencefile``.
- ``GET /api/incidents/{id}/files/{file_id}/``: one file's record.
- ``DELETE /api/incidents/{id}/files/{file_id}/``: 204 before declaration; 409 once declared
  (``incidents.delete_evidencefile``).
- ``POST /api/incidents/{id}/files/{file_id}/supersede/``: multipart ``file``, ``reason``
  (required), ``description``: a new version replacing this one; 201 with the new file.
- ``GET /api/incidents/{id}/files/{file_id}/download/``: the bytes, as an attachment
  (``incidents.files.download_response``).

Both POSTs take ``Idempotency-Key`` (``incidents.api.writes``): a retry with the same key and
fields gets the first answer and stores nothing twice. Anonymous requests: 401. An incident the user may not see (no ``incidents.view_incident``):
404, as for every route under an incident. Errors are problems (``incidents.api.problems``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView, get_object_or_404
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import files
from incidents.api.pagination import KeysetPagination
from incidents.api.problems import ApiProblem
from incidents.api.query import is_list_request, refuse_unknown_query_parameters
from incidents.api.serializers import ErrorSerializer
from incidents.api.writes import IDEMPOTENCY_KEY, idempotent_create
from incidents.exceptions import EvidenceTooLarge
from incidents.models import EvidenceFile, Incident, Note
from incidents.selectors import incidents_visible_to, visible_related

_ERROR = OpenApiResponse(ErrorSerializer)


class EvidenceFileSerializer(serializers.ModelSerializer):
    """One evidence file as the API shows it. ``size``: bytes; ``sha256``: hex digest of the
    bytes computed at upload; instants in UTC; ``task``: the playbook task's id or ``null``."""

    name = serializers.CharField(source="original_name", read_only=True)
    task = serializers.IntegerField(source="task_object_id", read_only=True, allow_null=True)
    superseded = serializers.BooleanField(source="is_superseded", read_only=True)
    supersedes = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = EvidenceFile
        fields = [
            "id",
            "incident",
            "name",
            "description",
            "size",
            "content_type",
            "sha256",
            "note",
            "task",
            "uploaded_by_username",
            "uploaded_at",
            "superseded",
            "superseded_by",
            "superseded_at",
            "superseded_reason",
            "supersedes",
            "download_url",
        ]
        read_only_fields = fields

    def get_supersedes(self, evidence: EvidenceFile) -> int | None:
        """The id of the file this one replaced, or ``None``."""
        previous = getattr(evidence, "supersedes", None)
        return previous.pk if previous is not None else None

    def get_download_url(self, evidence: EvidenceFile) -> str:
        """The API route that streams the bytes as an attachment."""
        return reverse("api:incident-file-download", args=[evidence.incident_id, evidence.pk])


class EvidenceUploadBody(serializers.Serializer):
    """``POST .../files/``: the multipart fields."""

    file = serializers.FileField(allow_empty_file=True, help_text="The evidence file (multipart).")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    note = serializers.IntegerField(required=False, min_value=1, help_text="A note of this incident.")
    task = serializers.IntegerField(
        required=False, min_value=1, help_text="A playbook task of this incident."
    )


class EvidenceSupersedeBody(serializers.Serializer):
    """``POST .../files/{file_id}/supersede/``: the multipart fields."""

    file = serializers.FileField(allow_empty_file=True, help_text="The new version (multipart).")
    reason = serializers.CharField(max_length=10_000, help_text="Why the old version is replaced.")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


#: Method -> permission for the evidence routes.
_METHOD_PERMISSIONS = {
    "GET": "incidents.view_evidencefile",
    "HEAD": "incidents.view_evidencefile",
    "OPTIONS": "incidents.view_evidencefile",
    "POST": "incidents.add_evidencefile",
    "DELETE": "incidents.delete_evidencefile",
}


class EvidencePermission(BasePermission):
    """Anonymous: refused (401). No ``incidents.view_incident``: 404 (the incident is
    invisible). Then the method's permission (``_METHOD_PERMISSIONS``), else 403 naming it."""

    message = "Your role may not do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not is_list_request(request, view):
            refuse_unknown_query_parameters(request, view, listing=False)
        if not request.user.has_perm("incidents.view_incident"):
            raise Http404
        required = _METHOD_PERMISSIONS.get(request.method or "", "incidents.change_evidencefile")
        if request.user.has_perm(required):
            return True
        self.message = f"Your role may not do this (needs {required})."
        return False


class EvidenceFileKeysetPagination(KeysetPagination):
    """Oldest upload first."""

    ordering = ("uploaded_at", "id")


class _EvidenceView(GenericAPIView):
    permission_classes = [EvidencePermission]
    serializer_class = EvidenceFileSerializer
    pagination_class: Any = None
    # Uploads are multipart; the other methods of these routes take no body.
    parser_classes = [MultiPartParser]
    filter_backends: list[Any] = []

    def incident(self) -> Incident:
        return get_object_or_404(incidents_visible_to(self.request.user), pk=self.kwargs["pk"])

    def evidence(self) -> EvidenceFile:
        return get_object_or_404(
            visible_related(self.request.user, EvidenceFile.objects.select_related("incident", "supersedes")),
            pk=self.kwargs["file_id"],
            incident_id=self.kwargs["pk"],
        )

    def get_queryset(self) -> QuerySet[EvidenceFile]:
        if getattr(self, "swagger_fake_view", False):
            return EvidenceFile.objects.none()
        return visible_related(
            self.request.user,
            EvidenceFile.objects.filter(incident_id=self.kwargs["pk"]).select_related("supersedes"),
        )

    def _upload_body(self, request: Request, body_class: type[serializers.Serializer]) -> dict[str, Any]:
        """The validated multipart body; 413 when a file passed ``EVIDENCE_MAX_BYTES`` while it
        was being read (the rest was not stored)."""
        limiter = files.EvidenceUploadLimitHandler(request._request)
        request._request.upload_handlers.insert(0, limiter)
        data = request.data
        if limiter.exceeded:
            raise _too_large(EvidenceTooLarge(limit=limiter.limit))
        body = body_class(data=data)
        body.is_valid(raise_exception=True)
        return dict(body.validated_data)

    def _created(self, evidence: EvidenceFile) -> Response:
        fresh = EvidenceFile.objects.select_related("supersedes").get(pk=evidence.pk)
        return Response(EvidenceFileSerializer(fresh).data, status=status.HTTP_201_CREATED)


def _too_large(error: EvidenceTooLarge) -> ApiProblem:
    return ApiProblem(status_code=413, detail=str(error), code="file_too_large", limit=error.limit)


class IncidentFilesView(_EvidenceView):
    """``GET|POST /api/incidents/{id}/files/`` (see the module docstring)."""

    pagination_class = EvidenceFileKeysetPagination

    @extend_schema(responses={200: EvidenceFileSerializer(many=True), 403: _ERROR, 404: _ERROR})
    def get(self, request: Request, pk: int) -> Response:
        """The incident's evidence files, oldest first."""
        return self.list(request, pk)

    def list(self, request: Request, pk: int) -> Response:
        """One keyset page (``?cursor=``, ``?page_size=``; the paginator refuses any other
        query parameter, as on every list)."""
        self.incident()
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(EvidenceFileSerializer(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request={"multipart/form-data": EvidenceUploadBody},
        responses={
            201: EvidenceFileSerializer,
            400: _ERROR,
            403: _ERROR,
            404: _ERROR,
            409: _ERROR,
            413: _ERROR,
        },
    )
    @idempotent_create
    def post(self, request: Request, pk: int) -> Response:
        """Upload a file through ``incidents.files.evidence_file_upload``; 201 with its record
        (``sha256``, ``size``, ``name``, ``id``, ``download_url``)."""
        incident = self.incident()
        body = self._upload_body(request, EvidenceUploadBody)
        note = None
        if body.get("note") is not None:
            note = Note.objects.filter(pk=body["note"], incident=incident).first()
            if note is None:
                raise serializers.ValidationError({"note": ["No such note on this incident."]})
        task = None
        if body.get("task") is not None:
            task = files.task_model()._default_manager.filter(pk=body["task"], incident=incident).first()
            if task is None:
                raise serializers.ValidationError({"task": ["No such playbook task on this incident."]})
        try:
            evidence = files.evidence_file_upload(
                incident=incident,
                actor=request.user,
                upload=body["file"],
                description=body.get("description", ""),
                note=note,
                task=task,
            )
        except EvidenceTooLarge as error:
            raise _too_large(error) from None
        return self._created(evidence)


class IncidentFileView(_EvidenceView):
    """``GET|DELETE /api/incidents/{id}/files/{file_id}/``."""

    @extend_schema(responses={200: EvidenceFileSerializer, 403: _ERROR, 404: _ERROR})
    def get(self, request: Request, pk: int, file_id: int) -> Response:
        """One evidence file's record."""
        return Response(EvidenceFileSerializer(self.evidence()).data)

    @extend_schema(responses={204: None, 403: _ERROR, 404: _ERROR, 409: _ERROR})
    def delete(self, request: Request, pk: int, file_id: int) -> Response:
        """Delete the file (``incidents.files.evidence_file_delete``): 204 before declaration,
        409 afterwards (supersede it instead)."""
        files.evidence_file_delete(evidence=self.evidence(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IncidentFileSupersedeView(_EvidenceView):
    """``POST /api/incidents/{id}/files/{file_id}/supersede/``."""

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request={"multipart/form-data": EvidenceSupersedeBody},
        responses={
            201: EvidenceFileSerializer,
            400: _ERROR,
            403: _ERROR,
            404: _ERROR,
            409: _ERROR,
            413: _ERROR,
        },
    )
    @idempotent_create
    def post(self, request: Request, pk: int, file_id: int) -> Response:
        """Upload a new version replacing the file (``evidence_file_supersede``); 201 with the
        new file. 409 when the file is already superseded or the incident merged."""
        evidence = self.evidence()
        body = self._upload_body(request, EvidenceSupersedeBody)
        try:
            new = files.evidence_file_supersede(
                evidence=evidence,
                actor=request.user,
                upload=body["file"],
                reason=body["reason"],
                description=body.get("description", ""),
            )
        except EvidenceTooLarge as error:
            raise _too_large(error) from None
        return self._created(new)


class IncidentFileDownloadView(_EvidenceView):
    """``GET /api/incidents/{id}/files/{file_id}/download/``."""

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 403: _ERROR, 404: _ERROR}
    )
    def get(self, request: Request, pk: int, file_id: int) -> Any:
        """The file's bytes: ``application/octet-stream``, ``Content-Disposition: attachment;
        filename*=UTF-8''<name>``, ``X-Content-Type-Options: nosniff``, ``X-Evidence-SHA256``."""
        return files.download_response(self.evidence())
