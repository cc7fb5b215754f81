"""``manage.py seed_demo_webhooks``: the demo's webhook subscriber (run by ``seed_demo``; safe to
run again).

Registers "Demo receiver" for every event type at ``WEBHOOK_DEMO_RECEIVER_URL`` (default
``http://127.0.0.1:8026/breachdesk``, where ``scripts/run`` starts ``run_webhook_receiver``), as
the demo incident manager, and writes its secret to ``var/demo-webhook-secret`` (mode 0600) for
the receiver to verify signatures with. Does nothing unless ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``
is on (a local receiver is a private address), or when the subscriber exists already.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from incidents.models import WebhookEventType, WebhookSubscriber
from incidents.webhooks import webhook_subscriber_create

NAME = "Demo receiver"


class Command(BaseCommand):
    help = "Register the demo's local webhook receiver (needs WEBHOOK_ALLOW_PRIVATE_ADDRESSES)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
            self.stdout.write("Webhooks: no demo subscriber (WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off).")
            return
        if WebhookSubscriber.objects.filter(name=NAME).exists():
            self.stdout.write(f"Webhooks: {NAME!r} exists already.")
            return
        manager = get_user_model().objects.filter(groups__name="incident_manager", is_active=True).first()
        if manager is None:
            self.stdout.write("Webhooks: no incident manager to register the demo subscriber.")
            return
        url = os.environ.get("WEBHOOK_DEMO_RECEIVER_URL", "http://127.0.0.1:8026/breachdesk")
        subscriber, secret = webhook_subscriber_create(
            actor=manager, name=NAME, url=url, event_types=WebhookEventType.values
        )
        path = Path(settings.VAR_DIR) / "demo-webhook-secret"
        path.write_text(secret + "\n")
        path.chmod(0o600)
        self.stdout.write(f"Webhooks: {NAME!r} at {subscriber.url}; its secret is in {path}.")
