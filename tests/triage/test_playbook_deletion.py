"""A playbook an incident has tasks from is not deleted in /admin/ (nor are its steps): that
would cut the incident's response tasks loose from their steps with no audit event."""

from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import reverse

from triage.models import PlaybookTemplate


def test_a_playbook_with_tasks_on_an_incident_cannot_be_deleted(superuser, make_incident, assess):
    template = PlaybookTemplate.objects.get(scenario="malware_or_ransomware")
    request = RequestFactory().get("/admin/")
    request.user = superuser
    model_admin = admin.site._registry[PlaybookTemplate]
    (inline,) = model_admin.get_inline_instances(request, template)
    assert model_admin.has_delete_permission(request, template)

    assess(make_incident(), scenario="malware_or_ransomware")

    assert not model_admin.has_delete_permission(request, template)
    assert not inline.has_delete_permission(request, template)
    client = Client()
    client.force_login(superuser)
    url = reverse("admin:triage_playbooktemplate_delete", args=[template.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert PlaybookTemplate.objects.filter(pk=template.pk).exists()
