"""URL routes: the web pages (the due-next board at /), the REST API under /api/, /admin/ for
superusers and the read-only auditor site under /audit/, and the public customer report page
/report/. Errors under /api/ are RFC 9457 problems (``incidents.api.problems``); pages elsewhere
are Django's, with templates/403.html and templates/404.html saying why."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dashboard.api import MetricsView
from incidents.admin_guard import guard_admin_site
from incidents.audit_site import audit_site
from incidents.report import customer_report
from postmortems import training_urls, training_views
from postmortems.audit_views import breach_register_csv, breach_register_xlsx, incident_evidence_pack

urlpatterns = [
    path("", include("dashboard.urls")),
    path("report/", customer_report, name="customer_report"),
    # Sign-in: the login page, the second factor, WebAuthn, single sign-on (incidents.signin_urls).
    path("", include("incidents.signin_urls")),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # triage first: it serves the triage transition routes (one triage path, with an assessment).
    path("incidents/", include("triage.urls")),
    path("incidents/", include("incidents.urls")),
    path("incidents/<int:pk>/", include("notifications.urls")),
    path("contacts/", include("notifications.contact_urls")),
    path("webhooks/", include("incidents.webhook_urls")),
    path("", include("postmortems.urls")),
    path("training/", include(training_urls.pages)),
    path("api/", include("triage.api.urls")),
    path("api/", include("incidents.api.urls")),
    path("api/", include("notifications.api.urls")),
    path("api/", include("postmortems.api.urls")),
    path("api/", include(training_urls.api)),
    path("api/metrics/", MetricsView.as_view(), name="api-metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("admin/", admin.site.urls),
    # The auditors' exports, beside their read-only site (same login and permission).
    path("audit/register.csv", audit_site.admin_view(breach_register_csv), name="audit-register-csv"),
    path("audit/register.xlsx", audit_site.admin_view(breach_register_xlsx), name="audit-register-xlsx"),
    path(
        "audit/incidents/<int:pk>/evidence-pack.zip",
        audit_site.admin_view(incident_evidence_pack),
        name="audit-evidence-pack",
    ),
    path(
        "audit/training/verify/",
        audit_site.admin_view(training_views.training_audit_verify),
        name="audit-training-verify",
    ),
    path("audit/", audit_site.urls),
]

# Need to know in /admin/ (the auditor site guards itself when it builds its URLs): every model
# admin whose rows belong to an incident reads through incidents.selectors.
guard_admin_site(admin.site)

handler400 = "incidents.api.problems.bad_request"
handler403 = "incidents.api.problems.permission_denied"
handler404 = "incidents.api.problems.page_not_found"
handler500 = "incidents.api.problems.server_error"
