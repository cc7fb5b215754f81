"""What the post-mortems app does at lifecycle moments: the hooks it registers in
``settings.LIFECYCLE_HOOKS`` (see ``incidents.lifecycle``)."""

from __future__ import annotations

from typing import Any

from incidents.lifecycle import HookContext
from incidents.models import Incident
from postmortems.models import ActionItem, PostMortem


def open_post_mortem(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``begin_post_mortem``, ``saved``: the incident's post-mortem record exists (created
    once). No audit data."""
    PostMortem.objects.get_or_create(incident=incident)
    return {}


def record_findings(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``close``, ``prepare``: ``findings`` given with the close (``context.inputs``) complete the
    post-mortem at ``context.at``. Audit data: ``{"post_mortem_completed": True}``, or nothing
    when no findings were given."""
    findings = context.inputs.get("findings")
    if findings is None or not findings.strip():
        return {}
    post_mortem, _ = PostMortem.objects.get_or_create(incident=incident)
    post_mortem.findings = findings
    post_mortem.completed_at = context.at
    post_mortem.save()
    return {"post_mortem_completed": True}


def missing_to_close(incident: Incident) -> list[str]:
    """``close``, ``guard``: ``post_mortem.findings`` until the post-mortem is completed with
    findings; ``post_mortem.action_items`` while any action item is open."""
    try:
        post_mortem = incident.post_mortem
    except PostMortem.DoesNotExist:
        return ["post_mortem.findings"]
    missing = []
    if not post_mortem.findings.strip() or post_mortem.completed_at is None:
        missing.append("post_mortem.findings")
    if post_mortem.action_items.filter(status=ActionItem.Status.OPEN).exists():
        missing.append("post_mortem.action_items")
    return missing
