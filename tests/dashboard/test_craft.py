"""What every page owes its users: a content security policy with no inline script, 403 and 404
pages that say why, times with their zone."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from incidents import services

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"|\son[a-z]+=\"", re.IGNORECASE)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def every_page(manager, make_incident, customer):
    """Every page of the product a response team uses, with data in it."""
    from notifications.services import notice_draft

    incident = make_incident(state="declared")
    services.note_add(incident=incident, actor=manager, text="Checked the logs.")
    notice = notice_draft(incident=incident, actor=manager, kind="initial")
    return [
        "/",
        reverse("incidents:incident_list"),
        reverse("incidents:incident_new"),
        reverse("incidents:incident_detail", args=[incident.pk]),
        reverse("incidents:incident_edit", args=[incident.pk]),
        reverse("triage:assessment_new", args=[make_incident().pk]),
        reverse("notifications:incident_notification", args=[incident.pk]),
        reverse("notifications:notice_detail", args=[incident.pk, notice.number]),
        reverse("dashboard:metrics"),
        reverse("dashboard:customer_list"),
        reverse("dashboard:customer_new"),
        reverse("dashboard:customer_detail", args=[customer.pk]),
        reverse("dashboard:customer_import"),
        reverse("dashboard:contact_new", args=[customer.pk]),
        f"/incidents/{make_incident(state='post_mortem').pk}/post-mortem/",
        "/action-items/",
        "/training/overdue/",
    ]


def test_every_page_sends_a_content_security_policy_and_has_no_inline_script(manager, every_page):
    client = _client_for(manager)

    for url in every_page:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        ), url
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        page = response.content.decode()
        script = INLINE_SCRIPT.search(page)
        assert script is None, (url, script and script.group(0))
        if "notices/" not in url:  # the notice preview's frame holds the email's own styles
            style = INLINE_STYLE.search(page)
            assert style is None, (url, style and style.group(0))
            assert "style-src 'self'" in policy, url


def test_the_login_page_has_the_policy_too(db):
    response = Client().get(reverse("login"))

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not INLINE_SCRIPT.search(response.content.decode())


def test_a_403_page_says_why_in_words(auditor, make_incident):
    incident = make_incident()

    response = _client_for(auditor).get(reverse("incidents:incident_edit", args=[incident.pk]))

    page = response.content.decode()
    assert response.status_code == 403
    assert "You may not do this" in page
    assert "Your role may view this incident but not change it." in page
    assert "Nothing was changed." in page


def test_a_404_page_says_what_was_not_found_in_words(responder):
    response = _client_for(responder).get("/incidents/999999/")
    nowhere = _client_for(responder).get("/no/such/page/")

    assert response.status_code == 404 and nowhere.status_code == 404
    assert "Not found" in response.content.decode()
    assert "/no/such/page/" in nowhere.content.decode()
    assert "may not exist, or your role may not see it" in nowhere.content.decode()


def test_the_auditors_site_shows_every_time_with_its_zone(auditor, make_incident):
    incident = make_incident()

    page = _client_for(auditor).get(reverse("audit:incidents_incident_changelist")).content.decode()
    record = (
        _client_for(auditor)
        .get(reverse("audit:incidents_incident_change", args=[incident.pk]))
        .content.decode()
    )

    stamp = incident.created_at.strftime("%Y-%m-%d %H:%M")
    assert re.search(re.escape(stamp) + r":\d\d UTC", page)
    assert re.search(re.escape(stamp) + r":\d\d UTC", record)


def test_the_auditors_changelist_never_counts_the_whole_table(auditor, make_incident):
    from tests.queries import capture_queries

    make_incident()
    client = _client_for(auditor)
    with capture_queries("the auditors' changelist") as log:
        client.get(reverse("audit:incidents_incident_changelist"))
    counts = [sql for sql in log.statements if "COUNT(" in sql.upper()]
    assert counts and all("LIMIT 10000" in sql for sql in counts), counts
