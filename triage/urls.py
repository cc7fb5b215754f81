"""Routes of the triage pages, under /incidents/ (namespace ``triage``)."""

from django.urls import path

from triage import views

app_name = "triage"
urlpatterns = [
    path("<int:pk>/triage/", views.assessment_new, name="assessment_new"),
    # Ahead of incidents.urls' transition route: triage takes an assessment (one triage path).
    path("<int:pk>/transitions/triage/", views.triage_transition, name="triage_transition"),
    path("<int:pk>/tasks/<int:task_pk>/", views.task_update, name="task_update"),
]
