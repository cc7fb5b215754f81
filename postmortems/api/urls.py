"""REST API routes for post-mortems, action items and drills under ``/api/``."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from postmortems.api.views import (
    ActionItemViewSet,
    DrillViewSet,
    IncidentActionItemViewSet,
    IncidentDrillViewSet,
    IncidentPostMortemViewSet,
)

INCIDENT = "incidents/<int:incident_pk>"

router = SimpleRouter()
router.register("action-items", ActionItemViewSet, basename="action-item")
router.register("drills", DrillViewSet, basename="drill")

post_mortem = IncidentPostMortemViewSet.as_view({"get": "retrieve", "patch": "partial_update"})
drill = IncidentDrillViewSet.as_view({"get": "retrieve", "put": "update"})

app_name = "postmortems_api"
urlpatterns = [
    *router.urls,
    path(f"{INCIDENT}/post-mortem/", post_mortem, name="incident-post-mortem"),
    path(
        f"{INCIDENT}/post-mortem/complete/",
        IncidentPostMortemViewSet.as_view({"post": "complete"}),
        name="incident-post-mortem-complete",
    ),
    path(
        f"{INCIDENT}/post-mortem/review/",
        IncidentPostMortemViewSet.as_view({"post": "review"}),
        name="incident-post-mortem-review",
    ),
    path(
        f"{INCIDENT}/post-mortem/summary-into-notice/",
        IncidentPostMortemViewSet.as_view({"post": "summary_into_notice"}),
        name="incident-post-mortem-summary-into-notice",
    ),
    path(
        f"{INCIDENT}/action-items/",
        IncidentActionItemViewSet.as_view({"get": "list", "post": "create"}),
        name="incident-action-items",
    ),
    path(f"{INCIDENT}/drill/", drill, name="incident-drill"),
    path(
        f"{INCIDENT}/drill/complete/",
        IncidentDrillViewSet.as_view({"post": "complete"}),
        name="incident-drill-complete",
    ),
]
