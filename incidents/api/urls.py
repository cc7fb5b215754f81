"""REST API routes under ``/api/`` (schema at ``/api/schema/``): incidents with their
transitions, affected customers and need-to-know restriction, customers, contacts, the signed alert intake and the
user's own API tokens."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api.intake import AlertIntakeView
from incidents.api.restriction import IncidentRestrictionView
from incidents.api.tokens import ApiTokenViewSet
from incidents.api.views import ContactViewSet, CustomerViewSet, IncidentViewSet, ReadLogViewSet

# SimpleRouter: no browsable API root, whose view has no model for ModelPermissions.
router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register("customers", CustomerViewSet, basename="customer")
router.register("contacts", ContactViewSet, basename="contact")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("read-log", ReadLogViewSet, basename="read-log")

app_name = "api"
urlpatterns = [
    path("intake/alerts/", AlertIntakeView.as_view(), name="intake-alerts"),
    path("incidents/<int:pk>/restriction/", IncidentRestrictionView.as_view(), name="incident-restriction"),
    *router.urls,
]
