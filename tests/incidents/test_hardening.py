"""Hardening (issue 8.5): a clean ``check --deploy`` with only ``DEBUG=false`` and a
``SECRET_KEY``, ``HTTPS_ONLY=false`` for plain HTTP, the browsable API only in DEBUG, 405 for
methods a page does not take, and admin actions that refuse selected rows that are not ids."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import RequestFactory
from django.urls import reverse

from incidents.audit_site import audit_site

ROOT = Path(__file__).resolve().parents[2]

SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "HTTPS_ONLY": settings.HTTPS_ONLY,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_PROXY_SSL_HEADER": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
    "renderers": settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
}))
"""


def _bare_environment(tmp_path, **variables: str) -> dict[str, str]:
    """Nothing of the caller's Breachdesk settings: the path, a scratch var/ and ``variables``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "BREACHDESK_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **variables,
    }


def _run(tmp_path, arguments: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=_bare_environment(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings(tmp_path, **variables: str) -> dict:
    done = _run(tmp_path, ["-c", SETTINGS_PROBE], **variables)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SECRET = "a-test-secret-key-that-is-long-enough-and-random-8f3a9c2e1d7b6a5f4e3d2c1b0a9f8e7d"


def test_it_passes_check_deploy_with_only_debug_off_and_a_secret_key(tmp_path):
    done = _run(
        tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], DEBUG="0", SECRET_KEY=SECRET
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNINGS" not in done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_it_turns_https_only_on_whenever_debug_is_off(tmp_path):
    values = _settings(tmp_path, DEBUG="0", SECRET_KEY=SECRET)

    assert values["HTTPS_ONLY"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True


def test_it_turns_every_https_setting_off_with_https_only_false(tmp_path):
    values = _settings(tmp_path, DEBUG="0", SECRET_KEY=SECRET, HTTPS_ONLY="0")

    assert values["HTTPS_ONLY"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False


def test_it_takes_the_proxy_ssl_header_from_the_environment(tmp_path):
    values = _settings(
        tmp_path, DEBUG="0", SECRET_KEY=SECRET, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO"
    )

    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_it_refuses_a_proxy_ssl_header_that_is_not_a_request_header(tmp_path):
    done = _run(
        tmp_path, ["-c", SETTINGS_PROBE], DEBUG="0", SECRET_KEY=SECRET, SECURE_PROXY_SSL_HEADER="X-Proto"
    )

    assert done.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must name a request header" in done.stderr


def test_it_keeps_the_demo_on_plain_http_with_debug_on(tmp_path):
    values = _settings(tmp_path)

    assert values["HTTPS_ONLY"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert "rest_framework.renderers.BrowsableAPIRenderer" in values["renderers"]


def test_it_serves_the_api_as_json_only_when_debug_is_off(tmp_path):
    values = _settings(tmp_path, DEBUG="0", SECRET_KEY=SECRET)

    assert values["renderers"] == ["rest_framework.renderers.JSONRenderer"]


# --- 405 for methods a page does not take ---------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete", "options"])
def test_it_answers_405_to_methods_a_page_does_not_take(client, make_incident, manager, method):
    incident = make_incident(state="triaged")
    client.force_login(manager)
    title_before = incident.title

    for url in [
        reverse("dashboard:board"),
        reverse("incidents:incident_detail", args=[incident.pk]),
        reverse("incidents:incident_edit", args=[incident.pk]),
        reverse("incidents:incident_new"),
        reverse("dashboard:customer_new"),
        reverse("login"),
    ]:
        response = getattr(client, method)(
            url, "title=Changed", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 405, (url, method, response.status_code)
        assert response["Allow"]

    incident.refresh_from_db()
    assert incident.title == title_before


def test_it_answers_405_to_a_post_on_a_page_that_only_reads(client, make_incident, manager):
    incident = make_incident(state="triaged")
    client.force_login(manager)

    for url in [reverse("dashboard:board"), reverse("incidents:incident_detail", args=[incident.pk])]:
        response = client.post(url)
        assert response.status_code == 405, url
        assert response["Allow"] == "GET, HEAD"


def test_it_leaves_the_api_s_own_405_problem_answers(client, manager):
    client.force_login(manager)

    response = client.put("/api/incidents/", {}, content_type="application/json")

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/problem+json")


# --- Admin actions validate their input -----------------------------------------------------


def _admins_with_actions(user):
    """(site, model admin, first action name) for every registered admin with an action."""
    request = RequestFactory().get("/")
    request.user = user
    found = []
    for site in (admin.site, audit_site):
        for model, model_admin in site._registry.items():
            actions = model_admin.get_actions(request)
            if actions:
                found.append((site, model, next(iter(actions))))
    return found


def test_it_answers_400_to_a_selected_row_that_is_not_an_id_on_every_admin_with_actions(
    client, superuser, auditor, make_incident
):
    from incidents.models import AuditEvent

    make_incident(state="triaged")
    events_before = AuditEvent.objects.count()
    checked = 0
    for user in (superuser, auditor):
        client.force_login(user)
        for site, model, action in _admins_with_actions(user):
            url = reverse(f"{site.name}:{model._meta.app_label}_{model._meta.model_name}_changelist")
            for bad in ["abc", "1.5", "99999999999999999999999999"]:
                response = client.post(
                    url, {"action": action, ACTION_CHECKBOX_NAME: ["1", bad], "index": "0"}
                )
                assert response.status_code == 400, (url, action, bad, response.status_code)
                assert "No action was taken" in response.content.decode()
            checked += 1

    assert checked >= 5  # customers, contacts, products, suppliers, tokens, users, groups, ...
    assert AuditEvent.objects.count() == events_before


def test_it_still_runs_an_admin_action_on_real_ids(client, superuser):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="temporary reviewers")
    client.force_login(superuser)
    url = reverse("admin:auth_group_changelist")

    response = client.post(url, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(group.pk)]})

    assert response.status_code == 200  # Django's confirmation page
    assert "Are you sure" in response.content.decode()
