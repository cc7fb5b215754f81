"""Errors raised by the incident services; the API and web views map them to HTTP answers."""

from django.core.exceptions import PermissionDenied
from django.http import Http404


class ActionForbidden(PermissionDenied):
    """The actor's role may not do this (HTTP 403)."""


class IncidentNotFound(Http404):
    """No such incident, or one the actor may not see (a restricted incident it is not a
    member of): HTTP 404, so a restricted incident's existence does not leak."""


class LifecycleConflict(Exception):
    """The action does not fit the incident's current state (HTTP 409). Nothing was changed."""


class TransitionNotAvailable(LifecycleConflict):
    """The transition is not available from the incident's current state (HTTP 409)."""

    def __init__(self, *, transition_name: str, state: str) -> None:
        self.transition_name = transition_name
        self.state = state
        super().__init__(f"'{transition_name}' is not available from state '{state}'.")


class GuardFailed(Exception):
    """The transition's guard is not met: ``missing`` names the facts it needs (HTTP 400)."""

    def __init__(self, *, transition_name: str, missing: list[str]) -> None:
        self.transition_name = transition_name
        self.missing = missing
        super().__init__(f"'{transition_name}' needs: {', '.join(missing)}.")


class DuplicateExternalReference(Exception):
    """Another incident from the same detection source already has this external reference
    (HTTP 409 naming it). Nothing was created."""

    def __init__(self, *, external_reference: str, detection_source: str, incident_id: int) -> None:
        self.external_reference = external_reference
        self.detection_source = detection_source
        self.incident_id = incident_id
        super().__init__(
            f"Incident {incident_id} from source {detection_source!r} already has external reference "
            f"{external_reference!r}."
        )


class AlertRefused(Exception):
    """A signed alert was refused (HTTP 401): ``code`` is ``bad_signature``,
    ``stale_timestamp`` or ``replayed``. Nothing was stored."""

    def __init__(self, message: str, *, code: str) -> None:
        self.code = code
        super().__init__(message)


class ReportThrottled(Exception):
    """Too many customer reports from one address or IP address in the last hour (HTTP 429 on
    the page). Nothing was stored."""


class EvidenceTooLarge(Exception):
    """An evidence file is larger than ``settings.EVIDENCE_MAX_BYTES`` (HTTP 413). Nothing was
    stored."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The file is larger than the limit of {limit} bytes ({limit // (1024 * 1024)} MiB)."
        )
