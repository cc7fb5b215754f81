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
    path(
        "incidents/<int:incident_id>/tasks/",
        views.IncidentTaskListView.as_view(),
        name="task_list",
    ),
    path("tasks/<int:pk>/", views.ResponseTaskDetailView.as_view(), name="task_detail"),
    path("severity/", views.SeverityView.as_view(), name="severity"),
]
