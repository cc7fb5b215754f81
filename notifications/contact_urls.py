"""Routes about customers' contacts, included at ``/contacts/`` with the namespace ``contacts``:
the public confirmation page (no login; the signed token is the authority) and the readiness
pages for incident managers."""

from django.urls import path

from notifications import contact_views

app_name = "contacts"
urlpatterns = [
    path("confirm/<str:token>/", contact_views.contact_confirmation, name="confirm"),
    path("confirmed/", contact_views.contact_confirmation_done, name="confirmed"),
    path("readiness/", contact_views.readiness, name="readiness"),
    path("customers/<int:pk>/", contact_views.customer_readiness, name="customer_readiness"),
    path(
        "customers/<int:pk>/send-confirmation/",
        contact_views.customer_confirmation_send,
        name="customer_confirmation_send",
    ),
]
