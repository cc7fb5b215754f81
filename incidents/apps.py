from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        # Resolve the lifecycle hook table now, so a wrong path stops start-up with a message.
        from incidents import lifecycle

        lifecycle.hook_table()
        # Logins, failures, lock-outs and logouts become SecurityAuditEvents (issue 8.3).
        from incidents import signin

        signin.connect_signal_receivers()
