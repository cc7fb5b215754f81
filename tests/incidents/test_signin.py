"""Sign-in that resists attack (issue 8.3): django-axes' lock-out on every login page, a second
factor (TOTP end to end; WebAuthn enrolment's page and registration options) for incident
managers and auditors, session idle and absolute timeouts on a moved clock, the security audit
events, and single sign-on through OpenID Connect against a fake provider that signs its ID
tokens (a real HTTP server in the test process)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from incidents.models import SecurityAuditEvent
from incidents.oidc import groups_from_claims
from incidents.signin import LAST_SEEN_AT

PASSWORD = "correct horse battery"  # tests/conftest.py gives every persona this one
LOGIN = "/accounts/login/"
VERIFY = "/accounts/two-factor/"
SETUP = "/accounts/two-factor/setup/"
Kind = SecurityAuditEvent.Kind


def _log_in(client: Client, username: str, password: str = PASSWORD, path: str = LOGIN, **extra: Any) -> Any:
    return client.post(path, {"username": username, "password": password}, **extra)


def _signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def _code(device: TOTPDevice, at: float | None = None) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        totp.time = at
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def two_factor(settings):
    """The production rule: incident managers and auditors pass a second factor."""
    settings.TWO_FACTOR_REQUIRED = True
    return settings


# --- Lock-out -------------------------------------------------------------------------------


def test_it_locks_out_after_repeated_failures_and_then_refuses_the_right_password(responder, settings):
    client = Client()
    answers = [
        _log_in(client, responder.username, "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert answers[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[-1] == 429
    response = _log_in(client, responder.username)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert "Too many failed logins" in response.content.decode()
    assert not _signed_in(client)
    assert SecurityAuditEvent.objects.filter(kind=Kind.LOCKED_OUT, username=responder.username).exists()
    assert (
        SecurityAuditEvent.objects.filter(kind=Kind.LOGIN_FAILED, user=responder).count()
        >= settings.AXES_FAILURE_LIMIT
    )


def test_it_locks_out_on_the_admin_and_audit_logins_too(superuser, auditor, settings):
    for path, username in (("/admin/login/", superuser.username), ("/audit/login/", auditor.username)):
        client = Client()
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _log_in(client, username, "wrong", path=path)

        response = _log_in(client, username, path=path)

        assert response.status_code == 429, path
        assert not _signed_in(client)


def test_it_locks_the_username_and_address_together(responder, settings):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(attacker, responder.username, "wrong")

    colleague = Client(REMOTE_ADDR="198.51.100.20")
    assert _log_in(colleague, responder.username).status_code == 302
    assert _signed_in(colleague)
    assert _log_in(attacker, responder.username).status_code == 429


def test_it_lets_the_right_password_in_once_the_cool_off_has_passed(responder, settings):
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _log_in(client, responder.username, "wrong")
        clock.shift(timedelta(minutes=14))
        assert _log_in(client, responder.username).status_code == 429
        # Each attempt while locked out starts the wait again.
        clock.shift(timedelta(minutes=15, seconds=1))
        assert _log_in(client, responder.username).status_code == 302
    assert _signed_in(client)


def test_it_answers_a_locked_out_api_style_request_with_a_problem(responder, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _log_in(client, responder.username, "wrong", HTTP_X_REQUESTED_WITH="XMLHttpRequest")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "locked_out"


# --- Second factor ----------------------------------------------------------------------------


def test_it_sends_an_incident_manager_and_an_auditor_without_a_device_to_enrol(two_factor, manager, auditor):
    for user in (manager, auditor):
        client = Client()
        assert _log_in(client, user.username).status_code == 302

        response = client.get("/incidents/")

        assert response.status_code == 302
        assert response["Location"] == f"{SETUP}?next=%2Fincidents%2F"
        assert client.get("/audit/").status_code == 302
        api = client.get("/api/incidents/")
        assert api.status_code == 403
        assert api.json()["code"] == "second_factor_required"
        # An Authorization header the API does not take leaves the session as it was: held.
        assert client.get("/api/incidents/", HTTP_AUTHORIZATION="Basic eDp5").status_code == 403
        assert client.get("/incidents/", HTTP_AUTHORIZATION="Token x")["Location"].startswith(SETUP)


def test_it_asks_a_user_with_a_device_for_it_before_anything_else(two_factor, manager):
    TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    client = Client()
    _log_in(client, manager.username)

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY}?next=%2F"
    # Enrolling another device needs the first one: a stolen password must not add the thief's.
    assert client.get(SETUP)["Location"].startswith(VERIFY)
    assert client.post("/accounts/webauthn/registration/begin/").status_code == 403


def test_it_lets_an_api_token_through_without_a_session(two_factor, manager):
    from incidents.api.authentication import api_token_create

    _token, key = api_token_create(user=manager, name="script", lifetime=timedelta(days=1))

    assert Client().get("/api/incidents/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_it_does_not_ask_a_responder_for_a_second_factor(two_factor, responder):
    client = Client()
    _log_in(client, responder.username)

    assert client.get("/incidents/").status_code == 200


def test_it_asks_nobody_when_two_factor_is_not_required(manager, settings):
    assert settings.TWO_FACTOR_REQUIRED is False  # the tests' default, as in scripts/run
    client = Client()
    _log_in(client, manager.username)

    assert client.get("/incidents/").status_code == 200


def test_it_enrols_an_authenticator_app_and_signs_in_with_it(two_factor, manager):
    client = Client()
    _log_in(client, manager.username)
    page = client.get(SETUP, {"next": "/incidents/"})
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.content.decode()
    device = TOTPDevice.objects.get(user=manager, confirmed=False)

    start = time.time()
    with time_machine.travel(start, tick=False) as clock:
        assert (
            client.post(SETUP, {"token": "000000" if _code(device) != "000000" else "111111"}).status_code
            == 400
        )
        clock.shift(2)  # django-otp throttles the next try after a wrong code (1 s, then 2, 4...)
        enrolled = client.post(SETUP, {"token": _code(device, start + 2), "next": "/incidents/"})

    assert enrolled.status_code == 302
    assert enrolled["Location"] == "/incidents/"
    assert client.get("/incidents/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert SecurityAuditEvent.objects.filter(kind=Kind.SECOND_FACTOR_ENROLLED, user=manager).exists()

    # The next sign-in asks for the app's code (a later one: a code is accepted once).
    client.post("/accounts/logout/")
    later = time.time() + 60
    with time_machine.travel(later, tick=False) as clock:
        _log_in(client, manager.username)
        assert client.get("/incidents/")["Location"] == f"{VERIFY}?next=%2Fincidents%2F"
        wrong = client.post(VERIFY, {"token": "12345x"})
        assert wrong.status_code == 400
        assert client.post(VERIFY, {"token": "1234567"}).status_code == 400
        clock.shift(2)
        passed = client.post(VERIFY, {"token": _code(device, later + 2), "next": "/incidents/"})
        assert passed.status_code == 302
        assert passed["Location"] == "/incidents/"
        assert client.get("/incidents/").status_code == 200
    assert SecurityAuditEvent.objects.filter(kind=Kind.SECOND_FACTOR_FAILED, user=manager).exists()
    assert SecurityAuditEvent.objects.filter(kind=Kind.SECOND_FACTOR_PASSED, user=manager).exists()


def test_it_refuses_a_wrong_or_replayed_code(two_factor, auditor):
    device = TOTPDevice.objects.create(user=auditor, name="phone", confirmed=True)
    client = Client()
    _log_in(client, auditor.username)
    code = _code(device)

    assert client.post(VERIFY, {"token": code}).status_code == 302
    client.post("/accounts/logout/")
    _log_in(client, auditor.username)
    assert client.post(VERIFY, {"token": code}).status_code == 400
    assert client.get("/audit/").status_code == 302


def test_it_offers_webauthn_enrolment_with_registration_options(two_factor, manager, settings):
    client = Client()
    _log_in(client, manager.username)

    page = client.get(SETUP).content.decode()
    assert 'id="passkey-register-button"' in page
    assert 'id="otp_webauthn_config"' in page
    assert "django_otp_webauthn/otp_webauthn_register.js" in page
    response = client.post("/accounts/webauthn/registration/begin/")

    assert response.status_code == 200
    options = response.json()
    assert options["rp"]["id"] == settings.OTP_WEBAUTHN_RP_ID
    assert options["user"]["name"] == manager.username
    assert len(options["challenge"]) >= 16
    assert "otp_webauthn_register_state" in client.session


# --- Session timeouts -------------------------------------------------------------------------


def test_it_ends_a_session_after_the_idle_timeout(responder, settings):
    settings.SESSION_IDLE_TIMEOUT = 30 * 60
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = Client()
        client.force_login(responder)
        clock.shift(timedelta(minutes=29))
        assert client.get("/incidents/").status_code == 200
        clock.shift(timedelta(minutes=29))
        assert client.get("/incidents/").status_code == 200  # activity kept it alive
        clock.shift(timedelta(minutes=30, seconds=61))

        response = client.get("/incidents/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=%2Fincidents%2F"
    assert not _signed_in(client)
    event = SecurityAuditEvent.objects.get(kind=Kind.SESSION_EXPIRED)
    assert event.user == responder
    assert event.detail["reason"] == "idle"


def test_it_ends_a_session_after_the_absolute_timeout_however_active(responder, settings):
    settings.SESSION_IDLE_TIMEOUT = 30 * 60
    settings.SESSION_ABSOLUTE_TIMEOUT = 2 * 60 * 60
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = Client()
        client.force_login(responder)
        for _ in range(5):  # every 20 minutes up to 1 h 40
            clock.shift(timedelta(minutes=20))
            assert client.get("/incidents/").status_code == 200
        clock.shift(timedelta(minutes=20, seconds=1))
        api = client.get("/api/incidents/")

    assert api.status_code == 401
    assert api.json()["code"] == "session_expired"
    assert SecurityAuditEvent.objects.get(kind=Kind.SESSION_EXPIRED).detail["reason"] == "absolute"


def test_it_does_not_count_the_boards_own_refresh_as_activity(responder, settings):
    settings.SESSION_IDLE_TIMEOUT = 30 * 60
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = Client()
        client.force_login(responder)
        seen = client.session[LAST_SEEN_AT]
        clock.shift(timedelta(minutes=10))
        assert client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="board-rows").status_code == 200
        assert client.session[LAST_SEEN_AT] == seen
        clock.shift(timedelta(minutes=21))

        assert client.get("/").status_code == 302


# --- Audit events -----------------------------------------------------------------------------


def test_it_records_logins_failures_and_logouts_with_the_address(responder):
    client = Client(REMOTE_ADDR="192.0.2.10")
    _log_in(client, "nobody.here", "guess")
    _log_in(client, responder.username)
    client.post("/accounts/logout/")

    failed = SecurityAuditEvent.objects.get(kind=Kind.LOGIN_FAILED)
    assert (failed.username, failed.user, failed.ip_address) == ("nobody.here", None, "192.0.2.10")
    assert failed.detail == {"method": "password", "locked_out": False}
    login = SecurityAuditEvent.objects.get(kind=Kind.LOGIN)
    assert (login.user, login.ip_address, login.detail) == (responder, "192.0.2.10", {"method": "password"})
    assert SecurityAuditEvent.objects.filter(kind=Kind.LOGOUT, user=responder).exists()
    assert "guess" not in json.dumps(list(SecurityAuditEvent.objects.values_list("detail", flat=True)))


def test_it_records_permission_denials_and_refused_tokens(outsider, responder, make_incident):
    client = Client()
    client.force_login(outsider)
    assert client.get("/api/incidents/").status_code == 403
    anonymous = Client()
    assert anonymous.get("/api/incidents/", HTTP_AUTHORIZATION="Token bd_not-a-real-key").status_code == 401

    denied = SecurityAuditEvent.objects.get(kind=Kind.PERMISSION_DENIED)
    assert (denied.user, denied.path, denied.detail["method"]) == (outsider, "/api/incidents/", "GET")
    refused = SecurityAuditEvent.objects.get(kind=Kind.API_TOKEN_REFUSED)
    assert refused.user is None
    assert refused.detail["reason"] == "Invalid token."


def test_it_records_a_page_refused_with_its_reason(outsider):
    client = Client(REMOTE_ADDR="192.0.2.44")
    client.force_login(outsider)

    assert client.get("/incidents/").status_code == 403

    denied = SecurityAuditEvent.objects.get(kind=Kind.PERMISSION_DENIED)
    assert (denied.user, denied.ip_address, denied.path) == (outsider, "192.0.2.44", "/incidents/")
    assert denied.detail == {"method": "GET", "status": 403, "reason": "Your role may not see incidents."}


def test_it_shows_the_security_events_read_only_to_auditors(auditor, responder):
    _log_in(Client(), responder.username, "wrong")
    client = Client()
    client.force_login(auditor)

    listing = client.get("/audit/incidents/securityauditevent/")

    assert listing.status_code == 200
    assert responder.username in listing.content.decode()
    assert client.get("/audit/incidents/securityauditevent/add/").status_code == 403
    event = SecurityAuditEvent.objects.filter(kind=Kind.LOGIN_FAILED).first()
    assert event is not None
    assert (
        client.post(f"/audit/incidents/securityauditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


# --- Single sign-on (OpenID Connect) ---------------------------------------------------------

CLIENT_ID = "breachdesk-test"
ISSUER = "http://127.0.0.1:18731"


def test_it_maps_the_groups_claim_to_roles(settings):
    settings.OIDC_GROUPS_CLAIM = "roles"
    settings.OIDC_GROUPS_MAPPING = {
        "bd-managers": "incident_manager",
        "bd-readers": "auditor",
        "bd-x": "admin",
    }

    assert groups_from_claims({"roles": ["bd-managers", "staff"]}) == {"incident_manager"}
    assert groups_from_claims({"roles": "bd-readers"}) == {"auditor"}
    assert groups_from_claims({"roles": ["bd-x", 7, None]}) == set()  # never a group that is not a role
    assert groups_from_claims({"groups": ["bd-managers"]}) == set()  # another claim
    assert groups_from_claims({}) == set()


class _FakeProvider:
    """An OpenID provider's token, userinfo and JWKS endpoints on 127.0.0.1 (a real HTTP server),
    signing ID tokens with its own RSA key."""

    def __init__(self, port: int) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.claims: dict[str, Any] = {}
        self.nonce = ""
        self.audience = CLIENT_ID
        self.token_requests: list[dict[str, list[str]]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    self._json({"keys": [{**jwk, "kid": "test", "alg": "RS256", "use": "sig"}]})
                else:  # /userinfo
                    self._json({"sub": provider.claims["sub"], "email_verified": True, **provider.claims})

            def do_POST(self) -> None:  # /token
                length = int(self.headers["Content-Length"])
                provider.token_requests.append(parse_qs(self.rfile.read(length).decode()))
                now = int(time.time())
                id_token = jwt.encode(
                    {
                        "iss": ISSUER,
                        "aud": provider.audience,
                        "iat": now,
                        "exp": now + 300,
                        "nonce": provider.nonce,
                        **provider.claims,
                    },
                    provider.key,
                    algorithm="RS256",
                    headers={"kid": "test"},
                )
                self._json({"access_token": "access", "token_type": "Bearer", "id_token": id_token})

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider(db, settings, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fake = _FakeProvider(18731)
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "test-secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{ISSUER}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{ISSUER}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{ISSUER}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{ISSUER}/jwks"
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_GROUPS_MAPPING = {"bd-managers": "incident_manager", "bd-responders": "responder"}
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "incidents.oidc.OidcBackend"]
    yield fake
    fake.stop()


def _sso(
    client: Client, provider: _FakeProvider, claims: dict[str, Any], next_url: str = "/incidents/"
) -> Any:
    start = client.get("/oidc/authenticate/", {"next": next_url})
    assert start.status_code == 302
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    provider.nonce = query["nonce"][0]
    provider.claims = claims
    return client.get("/oidc/callback/", {"code": "the-code", "state": query["state"][0]})


def test_it_signs_in_through_the_provider_and_maps_its_groups(provider, two_factor):
    client = Client()
    response = _sso(
        client,
        provider,
        {"sub": "u-1", "email": "Nina.Newcomer@Example.com", "groups": ["bd-managers", "all-staff"]},
    )

    assert response.status_code == 302
    assert response["Location"] == "/incidents/"
    user = get_user_model().objects.get(email__iexact="nina.newcomer@example.com")
    assert user.username == "nina.newcomer@example.com"
    assert not user.has_usable_password()
    assert set(user.groups.values_list("name", flat=True)) == {"incident_manager"}
    # The provider asked for the second factor (OIDC_SATISFIES_TWO_FACTOR): no second one here.
    assert client.get("/incidents/").status_code == 200
    assert provider.token_requests[0]["code_verifier"]
    login = SecurityAuditEvent.objects.get(kind=Kind.LOGIN)
    assert (login.user, login.detail) == (user, {"method": "oidc"})

    # Next time the provider says responder: the role follows; no mapped group: no role at all.
    _sso(
        Client(), provider, {"sub": "u-1", "email": "nina.newcomer@example.com", "groups": ["bd-responders"]}
    )
    assert set(user.groups.values_list("name", flat=True)) == {"responder"}
    _sso(Client(), provider, {"sub": "u-1", "email": "nina.newcomer@example.com", "groups": ["all-staff"]})
    assert not user.groups.exists()


def test_it_matches_an_existing_account_by_its_address(provider, responder):
    response = _sso(
        Client(), provider, {"sub": "u-2", "email": responder.email.upper(), "groups": ["bd-managers"]}
    )

    assert response.status_code == 302
    assert get_user_model().objects.filter(email__iexact=responder.email).count() == 1
    assert set(responder.groups.values_list("name", flat=True)) == {"incident_manager"}


def test_it_refuses_a_token_meant_for_another_client(provider):
    provider.audience = "someone-else"
    client = Client()

    response = _sso(client, provider, {"sub": "u-3", "email": "eve@example.com", "groups": ["bd-managers"]})

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert not _signed_in(client)
    assert not get_user_model().objects.filter(email="eve@example.com").exists()
    failed = SecurityAuditEvent.objects.get(kind=Kind.LOGIN_FAILED)
    assert failed.detail["method"] == "oidc"


def test_it_never_signs_a_superuser_in_through_the_provider(provider, superuser):
    client = Client()
    _sso(client, provider, {"sub": "u-4", "email": superuser.email, "groups": ["bd-managers"]})

    assert not _signed_in(client)
    assert not superuser.groups.exists()


def test_it_answers_404_for_single_sign_on_when_not_configured(db, settings):
    assert settings.OIDC_ENABLED is False
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/", {"code": "x", "state": "y"}).status_code == 404
    assert "single sign-on" not in Client().get(LOGIN).content.decode()


def test_it_links_to_single_sign_on_from_the_login_page(provider):
    page = Client().get(LOGIN).content.decode()

    assert "Sign in with single sign-on" in page
    assert Group.objects.filter(name="incident_manager").exists()
