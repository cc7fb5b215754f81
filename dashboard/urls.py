"""Routes of the dashboard (namespace ``dashboard``): the board at ``/``, ``/metrics/``, and
customers and contacts under ``/customers/``."""

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.board, name="board"),
    path("metrics/", views.metrics_page, name="metrics"),
    path("my-work/", views.my_work, name="my_work"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_new, name="customer_new"),
    path("customers/import/", views.customer_import, name="customer_import"),
    path("customers/<int:pk>/", views.customer_detail, name="customer_detail"),
    path("customers/<int:pk>/edit/", views.customer_edit, name="customer_edit"),
    path("customers/<int:pk>/contacts/new/", views.contact_new, name="contact_new"),
    path("customers/<int:pk>/contacts/<int:contact_pk>/edit/", views.contact_edit, name="contact_edit"),
    path(
        "customers/<int:pk>/contacts/<int:contact_pk>/deactivate/",
        views.contact_deactivate,
        name="contact_deactivate",
    ),
]
