"""Routes of the incident pages (included at /incidents/ with namespace ``incidents``)."""

from django.urls import path

from incidents import restriction_views, views

app_name = "incidents"
urlpatterns = [
    path("", views.incident_list, name="incident_list"),
    path("new/", views.incident_new, name="incident_new"),
    path("<int:pk>/", views.incident_detail, name="incident_detail"),
    path("<int:pk>/edit/", views.incident_edit, name="incident_edit"),
    path(
        "<int:pk>/transitions/<slug:name>/",
        views.incident_transition,
        name="incident_transition",
    ),
    path("<int:pk>/notes/", views.note_add, name="note_add"),
    path("<int:pk>/restriction/", restriction_views.incident_restriction, name="incident_restriction"),
    path(
        "<int:pk>/affected-customers/",
        views.affected_customer_add,
        name="affected_customer_add",
    ),
    path(
        "<int:pk>/affected-customers/<int:customer_pk>/remove/",
        views.affected_customer_remove,
        name="affected_customer_remove",
    ),
]
