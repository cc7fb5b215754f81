"""URL routes: the web pages (the due-next board at /), the REST API under /api/, /admin/ for
superusers and the read-only auditor site under /audit/. 403 and 404 pages: templates/403.html
and templates/404.html (Django's default handlers render them with the reason)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dashboard.api import MetricsView
from incidents.audit_site import audit_site

urlpatterns = [
    path("", include("dashboard.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("incidents/", include("incidents.urls")),
    path("incidents/", include("triage.urls")),
    path("incidents/<int:pk>/", include("notifications.urls")),
    path("api/", include("incidents.api.urls")),
    path("api/", include("triage.api.urls")),
    path("api/", include("notifications.api.urls")),
    path("api/", include("postmortems.api.urls")),
    path("api/metrics/", MetricsView.as_view(), name="api-metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("admin/", admin.site.urls),
    path("audit/", audit_site.urls),
]
