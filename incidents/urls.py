"""Routes of the incident pages (included at /incidents/ with namespace ``incidents``)."""

from django.urls import path

from incidents import evidence_views, merge_views, restriction_views, views

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
    path("<int:pk>/merge/", merge_views.incident_merge_view, name="incident_merge"),
    # Evidence files (incidents.evidence_views).
    path("<int:pk>/files/", evidence_views.evidence_file_upload, name="evidence_file_upload"),
    path(
        "<int:pk>/files/<int:file_id>/download/",
        evidence_views.evidence_file_download,
        name="evidence_file_download",
    ),
    path(
        "<int:pk>/files/<int:file_id>/supersede/",
        evidence_views.evidence_file_supersede,
        name="evidence_file_supersede",
    ),
    path(
        "<int:pk>/files/<int:file_id>/delete/",
        evidence_views.evidence_file_delete,
        name="evidence_file_delete",
    ),
]
