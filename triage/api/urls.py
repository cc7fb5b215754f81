"""Routes of the triage API, included under ``/api/`` (namespace ``triage_api``)."""

from django.urls import path

from triage.api import views

app_name = "triage_api"
urlpatterns = [
    path(
        "incidents/<int:incident_id>/assessments/",
        views.AssessmentListCreateView.as_view(),
        name="assessment_list",
    ),
    # Served here, ahead of incidents.api's transition route: triage takes an assessment.
    path(
        "incidents/<int:incident_id>/transitions/triage/",
        views.TriageTransitionView.as_view(),
        name="triage_transition",
    ),
    path(
        "incidents/<int:incident_id>/tasks/",
        views.IncidentTaskListView.as_view(),
        name="task_list",
    ),
    path("tasks/<int:pk>/", views.ResponseTaskDetailView.as_view(), name="task_detail"),
    path("severity/", views.SeverityView.as_view(), name="severity"),
]
