"""REST API routes for notifications under ``/api/`` (next to ``incidents.api.urls``): an
incident's clocks, notices, withholdings and delivery-failure acknowledgement under
``/api/incidents/{id}/``, and ``/api/clocks/``, ``/api/withholdings/``, ``/api/deliveries/``."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from notifications.api.views import (
    AcknowledgeDeliveryFailureView,
    ClockViewSet,
    DeliveryViewSet,
    IncidentClockViewSet,
    IncidentNoticeViewSet,
    IncidentTranslationViewSet,
    IncidentWithholdingViewSet,
    WithholdingViewSet,
)

INCIDENT = r"incidents/(?P<incident_pk>[^/.]+)"

# SimpleRouter: no browsable API root, whose view has no model for ModelPermissions.
router = SimpleRouter()
router.register(f"{INCIDENT}/clocks", IncidentClockViewSet, basename="incident-clock")
router.register(f"{INCIDENT}/notices", IncidentNoticeViewSet, basename="incident-notice")
router.register(f"{INCIDENT}/translations", IncidentTranslationViewSet, basename="incident-translation")
router.register(f"{INCIDENT}/withholdings", IncidentWithholdingViewSet, basename="incident-withholding")
router.register("clocks", ClockViewSet, basename="clock")
router.register("withholdings", WithholdingViewSet, basename="withholding")
router.register("deliveries", DeliveryViewSet, basename="delivery")

# A different namespace from incidents.api.urls ("api"), so reversing never picks the wrong one.
app_name = "notifications_api"
urlpatterns = [
    *router.urls,
    re_path(
        rf"^{INCIDENT}/acknowledge-delivery-failure/$",
        AcknowledgeDeliveryFailureView.as_view(),
        name="incident-acknowledge-delivery-failure",
    ),
]
