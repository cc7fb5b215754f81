"""REST API routes under ``/api/`` (schema at ``/api/schema/``): incidents with their
transitions and affected customers, customers, contacts, the signed alert intake, the
user's own API tokens and the webhook subscribers (``incidents.api.webhooks``)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api.intake import AlertIntakeView
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
    *router.urls,
]
