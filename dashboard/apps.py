from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The response team's pages across the apps: the due-next board (the home page), customers
    and contacts, and the metrics. It sits above ``incidents``, ``triage``, ``notifications`` and
    ``postmortems`` and may read any of them; none of them imports it."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the tasks in every process (web too), so the lifecycle hook can queue them by
        # name (``config.celery.enqueue``) and the tests run them in process.
        from dashboard import tasks  # noqa: F401
