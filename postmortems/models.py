"""Post-mortems: the confidential review of how a breach was handled, and its action items.

An incident gets its post-mortem when it enters ``post_mortem``; it can be closed once the
post-mortem is completed and every action item is done or accepted (DESIGN.md section 2).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class PostMortem(models.Model):
    """The confidential review of one incident. ``customer_summary`` may go into a notice."""

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="post_mortem"
    )
    started_at = models.DateTimeField(default=timezone.now)
    findings = models.TextField(blank=True, help_text="Was the response sufficient; what changes.")
    customer_summary = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Post-mortem of {self.incident.reference}"


class ActionItem(models.Model):
    """A follow-up from a post-mortem; external auditors check that these were done."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        ACCEPTED = "accepted", "Risk accepted"

    post_mortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="action_items")
    description = models.TextField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.TextField(blank=True, help_text="What was done, or why the risk is accepted.")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["post_mortem_id", "id"]

    def __str__(self) -> str:
        return self.description[:80]
