"""Routes of the webhook subscribers' pages (included at /webhooks/ with namespace ``webhooks``)."""

from django.urls import path

from incidents import webhook_views

app_name = "webhooks"
urlpatterns = [
    path("", webhook_views.subscriber_list, name="subscriber_list"),
    path("new/", webhook_views.subscriber_new, name="subscriber_new"),
    path("<int:pk>/", webhook_views.subscriber_detail, name="subscriber_detail"),
    path("<int:pk>/deactivate/", webhook_views.subscriber_deactivate, name="subscriber_deactivate"),
    path("<int:pk>/rotate-secret/", webhook_views.subscriber_rotate_secret, name="subscriber_rotate_secret"),
    path(
        "<int:pk>/deliveries/<int:delivery_pk>/redeliver/",
        webhook_views.delivery_redeliver,
        name="delivery_redeliver",
    ),
]
