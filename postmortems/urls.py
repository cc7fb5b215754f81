"""Routes of the post-mortem, drill and action-item pages (namespace ``postmortems``)."""

from django.urls import path

from postmortems import views

app_name = "postmortems"
urlpatterns = [
    path("incidents/<int:pk>/post-mortem/", views.post_mortem, name="post_mortem"),
    path("incidents/<int:pk>/post-mortem/complete/", views.post_mortem_complete, name="post_mortem_complete"),
    path("incidents/<int:pk>/post-mortem/review/", views.post_mortem_review, name="post_mortem_review"),
    path(
        "incidents/<int:pk>/post-mortem/summary-into-notice/",
        views.post_mortem_summary_into_notice,
        name="post_mortem_summary_into_notice",
    ),
    path("incidents/<int:pk>/action-items/", views.action_item_add, name="action_item_add"),
    path(
        "incidents/<int:pk>/action-items/<int:item_pk>/", views.action_item_status, name="action_item_status"
    ),
    path(
        "incidents/<int:pk>/action-items/<int:item_pk>/verify/",
        views.action_item_verify,
        name="action_item_verify",
    ),
    path("incidents/<int:pk>/drill/", views.drill, name="drill"),
    path("incidents/<int:pk>/drill/complete/", views.drill_complete, name="drill_complete"),
    path("action-items/", views.action_items, name="action_items"),
]
