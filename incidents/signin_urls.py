"""The sign-in routes (``incidents.signin_views``, ``incidents.oidc``), included at the root by
``config/urls.py``: the second factor under ``/accounts/two-factor/``, the WebAuthn ceremonies
under ``/accounts/webauthn/`` (namespace ``otp_webauthn``, as django-otp-webauthn's template tags
expect) and single sign-on under ``/oidc/`` (404 unless ``OIDC_ENABLED``)."""

from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import views as webauthn_views

from incidents import oidc, signin_views

webauthn_patterns = (
    [
        path(
            "registration/begin/",
            webauthn_views.BeginCredentialRegistrationView.as_view(),
            name="credential-registration-begin",
        ),
        path(
            "registration/complete/",
            signin_views.WebAuthnRegistrationComplete.as_view(),
            name="credential-registration-complete",
        ),
        path(
            "authentication/begin/",
            webauthn_views.BeginCredentialAuthenticationView.as_view(),
            name="credential-authentication-begin",
        ),
        path(
            "authentication/complete/",
            signin_views.WebAuthnAuthenticationComplete.as_view(),
            name="credential-authentication-complete",
        ),
        path(
            "jsi18n/",
            JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]),
            name="js-i18n-catalog",
        ),
    ],
    "otp_webauthn",
)

urlpatterns = [
    path("accounts/login/", signin_views.SignInView.as_view(), name="login"),
    path("accounts/two-factor/", signin_views.two_factor_verify, name="two_factor_verify"),
    path("accounts/two-factor/setup/", signin_views.two_factor_setup, name="two_factor_setup"),
    path("accounts/webauthn/", include(webauthn_patterns)),
    path("oidc/authenticate/", oidc.OidcAuthenticationRequest.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.OidcCallback.as_view(), name="oidc_authentication_callback"),
]
