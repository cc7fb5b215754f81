"""API tokens: per user, expiring, listed and revoked by their owner only; throttles per user
and per token."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.api.authentication import api_token_create
from incidents.models import AccountExpiry, ApiToken


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_an_owner_creates_lists_and_revokes_tokens(responder):
    session = APIClient()
    session.force_login(responder)

    created = session.post("/api/tokens/", {"name": "SIEM importer", "expires_in_days": 30}, format="json")

    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("bd_")
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert key not in token.key_hash and token.user == responder
    assert timedelta(days=29, hours=23) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert with_token(key).get("/api/incidents/").status_code == 200
    listed = session.get("/api/tokens/").json()["results"]
    assert [item["name"] for item in listed] == ["SIEM importer"] and "key" not in listed[0]

    revoked = session.delete(f"/api/tokens/{token.pk}/")

    assert revoked.status_code == 204
    after = with_token(key).get("/api/incidents/")
    assert after.status_code == 401 and "revoked" in after.json()["detail"]


def test_an_expired_token_answers_401(responder):
    token, key = api_token_create(user=responder, name="old", lifetime=timedelta(hours=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = with_token(key).get("/api/incidents/")

    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_token_of_an_inactive_user_answers_401(responder):
    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    type(responder).objects.filter(pk=responder.pk).update(is_active=False)

    assert with_token(key).get("/api/incidents/").status_code == 401


NEW_INCIDENT = {"title": "Laptop stolen from a car", "detection_source": "staff_escalation"}


def test_a_permission_revoked_or_granted_applies_from_the_next_request(responder, django_user_model):
    """The token's query reads the user's permissions (own and groups') for that request only:
    a revoked one is refused at once, a granted one (to the user or their group) allowed."""
    from django.contrib.auth.models import Group, Permission

    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    client = with_token(key)
    assert client.post("/api/incidents/", NEW_INCIDENT, format="json").status_code == 201

    responder.groups.clear()
    refused = client.post("/api/incidents/", NEW_INCIDENT, format="json")

    assert refused.status_code == 403
    add = Permission.objects.get(content_type__app_label="incidents", codename="add_incident")
    view = Permission.objects.get(content_type__app_label="incidents", codename="view_incident")
    responder.user_permissions.add(add, view)
    assert client.post("/api/incidents/", NEW_INCIDENT, format="json").status_code == 201
    responder.user_permissions.clear()
    outsiders = Group.objects.create(name="outsiders")
    outsiders.permissions.add(view)
    responder.groups.add(outsiders)
    assert client.get("/api/incidents/").status_code == 200
    assert client.post("/api/incidents/", NEW_INCIDENT, format="json").status_code == 403


def test_an_account_that_expires_is_refused_from_the_next_request(responder):
    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    client = with_token(key)
    expiry = AccountExpiry.objects.create(user=responder, expires_at=timezone.now() + timedelta(days=1))
    assert client.get("/api/incidents/").status_code == 200

    AccountExpiry.objects.filter(pk=expiry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = client.post("/api/incidents/", NEW_INCIDENT, format="json")

    assert refused.status_code == 401 and "This account expired at" in refused.json()["detail"]


def test_an_auditor_token_needs_an_account_expiry(auditor):
    _token, key = api_token_create(user=auditor, name="t", lifetime=timedelta(days=1))
    client = with_token(key)
    assert client.get("/api/incidents/").status_code == 200

    AccountExpiry.objects.filter(user=auditor).delete()
    refused = client.get("/api/incidents/")

    assert refused.status_code == 401 and "Auditor accounts need an expiry date" in refused.json()["detail"]


def test_a_revoked_token_answers_401_at_once(responder):
    from incidents.api.authentication import api_token_revoke

    token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    client = with_token(key)
    assert client.get("/api/incidents/").status_code == 200

    api_token_revoke(token=token)

    assert client.get("/api/incidents/").json()["detail"] == "This token was revoked."


def test_a_superusers_token_has_every_permission(superuser):
    _token, key = api_token_create(user=superuser, name="t", lifetime=timedelta(days=1))

    assert with_token(key).post("/api/incidents/", NEW_INCIDENT, format="json").status_code == 201


def test_nobody_sees_or_revokes_another_users_tokens(responder, manager):
    theirs, key = api_token_create(user=manager, name="theirs", lifetime=timedelta(days=1))
    client = APIClient()
    client.force_login(responder)

    assert client.get("/api/tokens/").json()["results"] == []
    assert client.delete(f"/api/tokens/{theirs.pk}/").status_code == 404
    assert with_token(key).get("/api/incidents/").status_code == 200


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": 367}]
)
def test_it_refuses_a_bad_token_request(responder, body):
    client = APIClient()
    client.force_login(responder)

    response = client.post("/api/tokens/", body, format="json")

    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_create_api_token_prints_the_key_alone_on_its_last_line(responder):
    out = io.StringIO()

    call_command("create_api_token", responder.username, "--days", "7", stdout=out)

    key = out.getvalue().rstrip("\n").splitlines()[-1]
    assert with_token(key).get("/api/incidents/").status_code == 200


@pytest.fixture
def tight_rates(settings):
    rates: dict[str, str | None] = {"user": "5/minute", "token": "3/minute", "alert_source": "100/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    cache.clear()
    yield
    SimpleRateThrottle.THROTTLE_RATES = original
    cache.clear()


def test_a_token_is_throttled_on_its_own_and_the_user_over_all_tokens(responder, tight_rates):
    _first, key_one = api_token_create(user=responder, name="one", lifetime=timedelta(days=1))
    _second, key_two = api_token_create(user=responder, name="two", lifetime=timedelta(days=1))

    one = [with_token(key_one).get("/api/incidents/").status_code for _ in range(4)]
    two = [with_token(key_two).get("/api/incidents/").status_code for _ in range(3)]

    assert one == [200, 200, 200, 429]  # the token's own rate: 3 a minute
    assert two == [200, 429, 429]  # the user's rate (5 a minute) is spent across both tokens
    throttled = with_token(key_two).get("/api/incidents/")
    assert throttled["Content-Type"] == "application/problem+json"
    assert throttled.json()["code"] == "throttled" and int(throttled["Retry-After"]) > 0


def test_a_cache_outage_lets_requests_through(responder, tight_rates, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    client = APIClient()
    client.force_login(responder)

    assert [client.get("/api/incidents/").status_code for _ in range(7)] == [200] * 7
