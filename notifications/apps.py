from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Register the tasks in every process (web too), so the services can queue them by
        # name (``config.celery.enqueue``) and the tests run them in process.
        from notifications import tasks  # noqa: F401
