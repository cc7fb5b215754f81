"""The second factor in a real browser (issue 8.3): an incident manager registers a passkey with
Chromium's virtual authenticator (WebAuthn through the DevTools protocol, so no hardware is
needed) and signs in with it; an auditor enrols an authenticator app by the key the page shows.
No content-security-policy violation on the way."""

from __future__ import annotations

import re
from base64 import b32decode

import pytest

PASSWORD = "correct horse battery"


def _log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _collect_csp_violations(page, violations: list[str]) -> None:
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_registers_a_passkey_and_signs_in_with_it(
    chromium_browser, live_server, manager, settings, tmp_path
):
    from playwright.sync_api import expect

    from incidents.models import SecurityAuditEvent

    settings.TWO_FACTOR_REQUIRED = True
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    base_url = live_server.url
    assert base_url.startswith("http://localhost:")  # WebAuthn needs https or localhost
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    violations: list[str] = []
    _collect_csp_violations(page, violations)
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )

    _log_in(page, base_url, manager.username)
    page.wait_for_url(re.compile(r".*/accounts/two-factor/setup/\?next=%2F$"))
    page.screenshot(path=str(tmp_path / "two-factor-setup.png"), full_page=True)
    page.get_by_role("button", name="Register a security key or passkey").click()
    expect(page.locator("#passkey-register-status-message")).to_contain_text("successful")
    page.goto(f"{base_url}/incidents/")
    expect(page).to_have_url(f"{base_url}/incidents/")

    page.get_by_role("button", name="Log out").click()
    _log_in(page, base_url, manager.username)
    page.wait_for_url(re.compile(r".*/accounts/two-factor/\?next=%2F$"))
    page.get_by_role("button", name="Use your security key or passkey").click()
    page.wait_for_url(f"{base_url}/")
    page.screenshot(path=str(tmp_path / "signed-in-with-passkey.png"), full_page=True)

    kinds = set(
        SecurityAuditEvent.objects.filter(user=manager, detail__device="webauthn").values_list(
            "kind", flat=True
        )
    )
    assert kinds == {"second_factor_enrolled", "second_factor_passed"}
    assert violations == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_enrols_an_authenticator_app_by_its_key(chromium_browser, live_server, auditor, settings):
    from django_otp.oath import totp
    from playwright.sync_api import expect

    settings.TWO_FACTOR_REQUIRED = True
    base_url = live_server.url
    page = chromium_browser.new_context().new_page()
    violations: list[str] = []
    _collect_csp_violations(page, violations)

    _log_in(page, base_url, auditor.username)
    page.wait_for_url(re.compile(r".*/accounts/two-factor/setup/"))
    expect(page.locator("#totp-qr")).to_be_visible()
    key = page.locator("#totp-key").inner_text().replace(" ", "")
    secret = b32decode(key + "=" * (-len(key) % 8))
    page.get_by_label("Code from your authenticator app").fill(f"{totp(secret):06d}")
    page.get_by_role("button", name="Confirm the app").click()

    page.wait_for_url(f"{base_url}/")
    page.goto(f"{base_url}/audit/")
    expect(page).to_have_url(f"{base_url}/audit/")
    assert violations == []
