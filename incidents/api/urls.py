"""REST API routes under ``/api/`` (schema at ``/api/schema/``): incidents with their
transitions, affected customers, need-to-know restriction, merging, evidence files, customers,
contacts, the signed alert intake, the user's own API tokens and the webhook subscribers
(``incidents.api.webhooks``)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api.files import (
    IncidentFileDownloadView,
    IncidentFileSupersedeView,
    IncidentFilesView,
    IncidentFileView,
)
from incidents.api.intake import AlertIntakeView
from incidents.api.merge import IncidentMergeView
from incidents.api.restriction import IncidentRestrictionView
from incidents.api.tokens import ApiTokenViewSet
from incidents.api.views import ContactViewSet, CustomerViewSet, IncidentViewSet, ReadLogViewSet
from incidents.api.webhooks import WebhookSubscriberViewSet

# SimpleRouter: no browsable API root, whose view has no model for ModelPermissions.
router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register("customers", CustomerViewSet, basename="customer")
router.register("contacts", ContactViewSet, basename="contact")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("read-log", ReadLogViewSet, basename="read-log")
router.register("webhooks/subscribers", WebhookSubscriberViewSet, basename="webhook-subscriber")

app_name = "api"
urlpatterns = [
    path("intake/alerts/", AlertIntakeView.as_view(), name="intake-alerts"),
    path("incidents/<int:pk>/merge/", IncidentMergeView.as_view(), name="incident-merge"),
    # Evidence files (incidents.api.files).
    path("incidents/<int:pk>/files/", IncidentFilesView.as_view(), name="incident-files"),
    path("incidents/<int:pk>/files/<int:file_id>/", IncidentFileView.as_view(), name="incident-file"),
    path(
        "incidents/<int:pk>/files/<int:file_id>/supersede/",
        IncidentFileSupersedeView.as_view(),
        name="incident-file-supersede",
    ),
    path(
        "incidents/<int:pk>/files/<int:file_id>/download/",
        IncidentFileDownloadView.as_view(),
        name="incident-file-download",
    ),
    path("incidents/<int:pk>/restriction/", IncidentRestrictionView.as_view(), name="incident-restriction"),
    *router.urls,
]
