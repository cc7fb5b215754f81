"""Errors raised by the incident services; the API and web views map them to HTTP answers."""

from django.core.exceptions import PermissionDenied


class ActionForbidden(PermissionDenied):
    """The actor's role may not do this (HTTP 403)."""


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
