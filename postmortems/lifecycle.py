"""What the post-mortems app does at lifecycle moments: the hooks it registers in
``settings.LIFECYCLE_HOOKS`` (see ``incidents.lifecycle``). Thin: each calls one service."""

from __future__ import annotations

from typing import Any

from incidents.lifecycle import HookContext
from incidents.models import Incident
from postmortems.models import ActionItem, PostMortem
from postmortems.services import post_mortem_open, post_mortem_record_summary_sent


def open_post_mortem(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``begin_post_mortem``, ``saved``: the incident's post-mortem exists (a draft, version 1).
    No audit data."""
    post_mortem_open(incident=incident, actor=context.actor, at=context.at)
    return {}


def missing_to_close(incident: Incident) -> list[str]:
    """``close``, ``guard``: ``post_mortem.completed`` until the post-mortem is completed (or
    reviewed); ``post_mortem.action_items`` while any action item is open (neither done nor its
    risk accepted)."""
    post_mortem = PostMortem.objects.filter(incident=incident).first()
    if post_mortem is None:
        return ["post_mortem.completed"]
    missing = []
    if post_mortem.status == PostMortem.Status.DRAFT:
        missing.append("post_mortem.completed")
    if post_mortem.action_items.filter(status=ActionItem.Status.OPEN).exists():
        missing.append("post_mortem.action_items")
    return missing


def record_summary_sent(incident: Incident, context: HookContext) -> dict[str, Any]:
    """``notice_approved``, ``saved``: a notice carrying the post-mortem's customer summary
    records which version went out (``post_mortem_summary_sent``). No audit data of its own."""
    post_mortem_record_summary_sent(notice=context.inputs["notice"], at=context.at)
    return {}
