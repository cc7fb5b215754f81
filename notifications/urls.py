"""Routes of the customer-notification pages, included under ``/incidents/<pk>/`` with the
namespace ``notifications`` (every route takes the incident's ``pk``)."""

from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("notification/", views.incident_notification, name="incident_notification"),
    path("clocks/<int:clock_pk>/manage/", views.clock_manage, name="clock_manage"),
    path("clocks/<int:clock_pk>/late-reason/", views.clock_late_reason, name="clock_late_reason"),
    path("clocks/<int:clock_pk>/waive/", views.clock_waive, name="clock_waive"),
    path("clocks/<int:clock_pk>/restart/", views.clock_restart, name="clock_restart"),
    path("withholdings/", views.withholding_create, name="withholding_create"),
    path(
        "withholdings/<int:withholding_pk>/release/",
        views.withholding_release,
        name="withholding_release",
    ),
    path("notices/", views.notice_draft, name="notice_draft"),
    path("notices/<int:number>/", views.notice_detail, name="notice_detail"),
    path("notices/<int:number>/edit/", views.notice_edit, name="notice_edit"),
    path("notices/<int:number>/approve/", views.notice_approve, name="notice_approve"),
    path("notices/<int:number>/translations/", views.notice_translate, name="notice_translate"),
    path(
        "notices/<int:number>/customers/<int:customer_pk>/acknowledge-failure/",
        views.deliveries_acknowledge_failure,
        name="deliveries_acknowledge_failure",
    ),
]
