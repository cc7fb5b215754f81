"""The sign-in pages (issue 8.3): the login page (with single sign-on when configured), the
second factor after the password, enrolling one, and the WebAuthn ceremonies that record what
they did. ``incidents.signin`` decides who must pass a second factor and sends them here.

Routes (``config/urls.py``):

- ``GET|POST /accounts/login/`` (``login``): username and password (django-axes locks out a
  username and address after ``AXES_FAILURE_LIMIT`` failures: 429); a "Sign in with single
  sign-on" link when ``OIDC_ENABLED``.
- ``GET|POST /accounts/two-factor/`` (``two_factor_verify``): a code from the authenticator app
  (TOTP, RFC 6238), or the security key or passkey (WebAuthn) button; then ``next``.
- ``GET|POST /accounts/two-factor/setup/`` (``two_factor_setup``): enrol an authenticator app
  (QR code and key, confirmed by a first code) or a security key or passkey. A user who already
  has a device must pass it first (a stolen password must not enrol the thief's device).
- ``/accounts/webauthn/…`` (namespace ``otp_webauthn``): django-otp-webauthn's JSON ceremonies
  (registration and authentication, begin and complete; POST), each recorded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn import views as webauthn_views
from django_otp_webauthn.models import AbstractWebAuthnCredential
from django_otp_webauthn.utils import get_credential_model

from incidents.accounts import ExpiryAwareAuthenticationForm
from incidents.models import SecurityAuditEvent
from incidents.signin import security_event_record, session_second_factor_done, two_factor_required

#: The name given to the authenticator-app device a user enrols here.
TOTP_DEVICE_NAME = "Authenticator app"


class SignInView(auth_views.LoginView):
    """Django's login view with the expiry-aware form and, when ``OIDC_ENABLED``, a link to
    single sign-on (``/oidc/authenticate/``)."""

    authentication_form = ExpiryAwareAuthenticationForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.OIDC_ENABLED
        return context


class TokenForm(forms.Form):
    """A six-digit code from an authenticator app."""

    token = forms.CharField(
        label="Code from your authenticator app",
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        value = "".join(self.cleaned_data["token"].split())
        if not value.isdigit():
            raise forms.ValidationError("Enter the digits your authenticator app shows.")
        return value


def _next_url(request: HttpRequest) -> str:
    """The ``next`` of the request when it is a safe local URL, else ``LOGIN_REDIRECT_URL``."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _has_webauthn(user: Any) -> bool:
    return bool(get_credential_model().objects.filter(user=user, confirmed=True).exists())


@sensitive_post_parameters("token")
@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The second factor after the password. ``GET``: the code form (when the user has an
    authenticator app) and the WebAuthn button (when they have a security key or passkey).
    ``POST`` ``token``: verified against the user's confirmed authenticator apps (django-otp
    throttles repeated wrong codes); right: the session is verified (its key is cycled), a
    ``second_factor_passed`` event, redirect to ``next``; wrong: 400 with the form's error and a
    ``second_factor_failed`` event. A user without any device is sent to enrol; a session
    already verified goes on to ``next``."""
    user = request.user
    next_url = _next_url(request)
    if session_second_factor_done(request):
        return redirect(next_url)
    if not user_has_device(user, confirmed=True):
        return redirect(f"{resolve_url('two_factor_setup')}?{urlencode({'next': next_url})}")
    totp_devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    form = TokenForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        device = None
        if form.is_valid():
            device = next((d for d in totp_devices if d.verify_token(form.cleaned_data["token"])), None)
        if device is not None:
            request.session.cycle_key()
            otp_login(request, device)
            security_event_record(
                kind=SecurityAuditEvent.Kind.SECOND_FACTOR_PASSED,
                request=request,
                user=user,
                detail={"device": "totp"},
            )
            return redirect(next_url)
        if form.is_valid():
            form.add_error("token", "That code is not right, or it has expired. Try the current one.")
        security_event_record(
            kind=SecurityAuditEvent.Kind.SECOND_FACTOR_FAILED,
            request=request,
            user=user,
            detail={"device": "totp"},
        )
        status = 400
    return render(
        request,
        "registration/two_factor_verify.html",
        {
            "form": form,
            "has_totp": bool(totp_devices),
            "has_webauthn": _has_webauthn(user),
            "next": next_url,
        },
        status=status,
    )


def _pending_totp_device(user: Any) -> TOTPDevice:
    """The user's unconfirmed authenticator-app device, created on first need (the same secret
    while the page is reloaded)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def _manual_key(device: TOTPDevice) -> str:
    """The TOTP secret in Base32, in groups of four, for typing into an app by hand."""
    from base64 import b32encode

    key = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(key[index : index + 4] for index in range(0, len(key), 4))


@sensitive_post_parameters("token")
@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol a second factor. ``GET``: an authenticator app's QR code (``otpauth://`` URI as
    an SVG image) and its key, with a form for the first code; a button to register a security
    key or passkey (WebAuthn, in the browser). ``POST`` ``token``: the app's first code confirms
    the device, verifies the session and records ``second_factor_enrolled``, then ``next``;
    a wrong code is 400. A user who already has a confirmed device but whose session has not
    passed it is sent to ``/accounts/two-factor/`` first."""
    user = request.user
    next_url = _next_url(request)
    if user_has_device(user, confirmed=True) and not session_second_factor_done(request):
        return redirect(f"{resolve_url('two_factor_verify')}?{urlencode({'next': next_url})}")
    device = _pending_totp_device(user)
    form = TokenForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid() and device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            security_event_record(
                kind=SecurityAuditEvent.Kind.SECOND_FACTOR_ENROLLED,
                request=request,
                user=user,
                detail={"device": "totp"},
            )
            return redirect(next_url)
        if form.is_valid():
            form.add_error("token", "That code is not right. Check the app's clock and try the current code.")
        status = 400
    qr = segno.make(device.config_url, error="m")
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "qr_data_uri": qr.svg_data_uri(scale=4, border=2),
            "manual_key": _manual_key(device),
            "next": next_url,
            "required": two_factor_required(user),
            "verified": session_second_factor_done(request),
        },
        status=status,
    )


# --- WebAuthn ceremonies, recorded -------------------------------------------------------


class WebAuthnRegistrationComplete(webauthn_views.CompleteCredentialRegistrationView):
    """django-otp-webauthn's registration, completed; records ``second_factor_enrolled``."""

    def post(self, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(*args, **kwargs)
        if response.status_code == 200:
            security_event_record(
                kind=SecurityAuditEvent.Kind.SECOND_FACTOR_ENROLLED,
                request=self.request,
                user=self.request.user,
                detail={"device": "webauthn"},
            )
        return response


class WebAuthnAuthenticationComplete(webauthn_views.CompleteCredentialAuthenticationView):
    """django-otp-webauthn's second-factor authentication, completed; records
    ``second_factor_passed`` (and ``second_factor_failed`` when the assertion is refused)."""

    def complete_auth(self, device: AbstractWebAuthnCredential) -> Any:
        result = super().complete_auth(device)
        security_event_record(
            kind=SecurityAuditEvent.Kind.SECOND_FACTOR_PASSED,
            request=self.request,
            user=self.request.user,
            detail={"device": "webauthn"},
        )
        return result

    def handle_exception(self, exc: Exception) -> HttpResponse:
        security_event_record(
            kind=SecurityAuditEvent.Kind.SECOND_FACTOR_FAILED,
            request=self.request,
            user=getattr(self.request, "user", None),
            detail={"device": "webauthn", "reason": str(exc)[:200]},
        )
        return super().handle_exception(exc)
